"""The station's OCPP 2.1 connection against a real CSMS on loopback: boot before anything else,
the outbox delivered in order with offline=true for events raised while disconnected, back-off,
security profiles 1–3, CALLERROR handling, and kill -9 at random moments of a transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ocpp_bridge.core import StationCore
from ocpp_bridge.outbox import Outbox
from ocpp_bridge.store import MemoryStore
from ocpp_bridge.station import ChargingStation, ConfigError, StationConfig, ssl_context, transaction_event

from .csms import CSMS

PASSWORD = "a-very-secret-passphrase"
FAST = dict(retry_backoff_min=0.05, retry_backoff_random=0.05, retry_backoff_repeat=2)


def _tx(kind: str, seq_hint: int, tx: str = "tx-1") -> dict:
    meter = [{"timestamp": "2026-11-26T12:00:00Z", "sampledValue": [{"value": float(seq_hint)}]}]
    return transaction_event(kind, {"Started": "EVDetected", "Updated": "MeterValuePeriodic",
                                    "Ended": "EVDeparted"}[kind], tx, meter_value=meter)


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


def test_boot_first_then_the_outbox_in_order(tmp_path):
    async def run():
        csms = await CSMS(passwords={"CS001": PASSWORD}).start()
        outbox = Outbox(tmp_path / "cs.db")
        cs = ChargingStation(StationConfig("CS001", csms.url(), password=PASSWORD, **FAST), outbox)
        for i, kind in enumerate(["Started", "Updated", "Updated"]):  # raised before any connection
            cs.enqueue("TransactionEvent", _tx(kind, i))
        task = asyncio.ensure_future(cs.run())
        await csms.wait_for(lambda c: len(c.actions("TransactionEvent")) == 3)
        cs.enqueue("TransactionEvent", _tx("Ended", 3))  # raised while connected
        await csms.wait_for(lambda c: len(c.actions("TransactionEvent")) == 4)
        await _until(lambda: len(outbox) == 0)  # the answer reached the station
        task.cancel()
        await csms.close()
        return csms, outbox

    csms, outbox = asyncio.run(run())
    assert csms.received[0].action == "BootNotification"
    assert csms.received[0].payload["reason"] == "PowerUp"
    events = csms.actions("TransactionEvent")
    assert [e.payload["seqNo"] for e in events] == [0, 1, 2, 3]
    assert [e.payload["eventType"] for e in events] == ["Started", "Updated", "Updated", "Ended"]
    assert [e.payload.get("offline", False) for e in events] == [True, True, True, False]
    assert len(outbox) == 0


def test_events_survive_a_csms_outage_and_arrive_offline_in_order(tmp_path):
    async def run():
        csms = await CSMS(passwords={"CS001": PASSWORD}).start()
        port = csms.port
        cs = ChargingStation(StationConfig("CS001", csms.url(), password=PASSWORD, **FAST), Outbox(tmp_path / "cs.db"))
        task = asyncio.ensure_future(cs.run())
        cs.enqueue("TransactionEvent", _tx("Started", 0))
        await csms.wait_for(lambda c: len(c.actions("TransactionEvent")) == 1)
        await _until(lambda: len(cs.outbox) == 0)
        await csms.close()  # the CSMS goes away
        await _until(lambda: not cs.connected.is_set())
        for i in range(1, 6):
            cs.enqueue("TransactionEvent", _tx("Updated", i))
        await asyncio.sleep(0.3)  # the station retries meanwhile
        csms2 = await CSMS(passwords={"CS001": PASSWORD}).start(port=port)
        await csms2.wait_for(lambda c: len(c.actions("TransactionEvent")) == 5)
        task.cancel()
        await csms2.close()
        return csms, csms2

    first, second = asyncio.run(run())
    # a reconnect is not a boot: the registration Accepted before the outage holds (part 2 B01),
    # the queued events go first
    assert not second.actions("BootNotification") and second.received[0].action == "TransactionEvent"
    events = second.actions("TransactionEvent")
    assert [e.payload["seqNo"] for e in events] == [1, 2, 3, 4, 5]
    assert all(e.payload["offline"] is True for e in events)


def test_back_off_doubles_up_to_repeat_times_plus_random():
    core = StationCore(StationConfig("CS001", "ws://x", password=PASSWORD, retry_backoff_min=3,
                                     retry_backoff_random=10, retry_backoff_repeat=3), MemoryStore(), now=0.0,
                       rng=lambda: 0.5)
    assert [core.backoff(a) for a in range(6)] == [8, 11, 17, 29, 29, 29]


@pytest.mark.parametrize("kwargs, message", [
    (dict(csms_url="ws://h"), "needs the basic-auth password"),
    (dict(csms_url="ws://h", password="short"), "16 to 40"),
    (dict(csms_url="http://h", password=PASSWORD), "ws:// or wss://"),
    (dict(csms_url="wss://h", client_cert="c.pem"), "key"),
])
def test_inconsistent_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        StationConfig("CS001", **kwargs).check()


def test_wrong_password_is_refused_and_nothing_is_lost(tmp_path):
    async def run():
        csms = await CSMS(passwords={"CS001": PASSWORD}).start()
        outbox = Outbox(tmp_path / "cs.db")
        cs = ChargingStation(StationConfig("CS001", csms.url(), password="not-the-right-password", **FAST), outbox)
        cs.enqueue("TransactionEvent", _tx("Started", 0))
        task = asyncio.ensure_future(cs.run())
        await _until(lambda: len(csms.refused) >= 2)
        task.cancel()
        await csms.close()
        return csms, outbox

    csms, outbox = asyncio.run(run())
    assert csms.received == [] and set(csms.refused) == {"CS001: bad credentials"}
    # the event waits, and so does one SecurityEventNotification for the whole failure streak
    assert len(outbox) == 2
    queued = [outbox.head()]
    outbox.done(queued[0].id)
    queued.append(outbox.head())
    assert [q.action for q in queued] == ["TransactionEvent", "SecurityEventNotification"]
    assert queued[1].payload["type"] == "FailedToAuthenticateAtCsms"


def test_a_callerror_is_retried_then_set_aside(tmp_path):
    async def run():
        csms = await CSMS(passwords={"CS001": PASSWORD}, answer_error_for={"MeterValues"}).start()
        outbox = Outbox(tmp_path / "cs.db")
        cs = ChargingStation(StationConfig("CS001", csms.url(), password=PASSWORD, message_attempts=3, **FAST),
                             outbox)
        cs.enqueue("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": "2026-11-26T12:00:00Z",
                                                                "sampledValue": [{"value": 1.0}]}]})
        cs.enqueue("TransactionEvent", _tx("Started", 0))
        task = asyncio.ensure_future(cs.run())
        await csms.wait_for(lambda c: len(c.actions("TransactionEvent")) == 1)
        await _until(lambda: len(outbox) == 0)
        task.cancel()
        await csms.close()
        return csms, outbox

    csms, outbox = asyncio.run(run())
    attempts = csms.actions("MeterValues")
    assert len(attempts) == 3 and len({a.message_id for a in attempts}) == 1  # same message, same id
    assert [r["error"] for r in outbox.get("rejected")] == ["InternalError"]


# --- security profiles 2 and 3 -------------------------------------------------------------------

def _cert(subject: str, issuer_key, issuer_name, key, *, ca: bool, san_ip: str | None = None):
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san_ip:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA, the CSMS server certificate for 127.0.0.1, and a station certificate (CN = identity)."""
    d = tmp_path_factory.mktemp("ocpp-tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Test CSMS Root", ca_key, None, ca_key, ca=True)
    files = {"ca": d / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, cn, ip in (("server", "csms.test", "127.0.0.1"), ("station", "CS003", None)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(cn, ca_key, ca.subject, key, ca=False, san_ip=ip)
        files[name] = d / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{name}_key"] = d / f"{name}.key"
        files[f"{name}_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return files


def _server_ctx(files, client_auth: bool):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["server"], files["server_key"])
    if client_auth:
        ctx.load_verify_locations(files["ca"])
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.mark.parametrize("profile", [2, 3])
def test_security_profiles_over_tls(tmp_path, tls_files, profile):
    station = "CS002" if profile == 2 else "CS003"

    async def run():
        csms = await CSMS(passwords={"CS002": PASSWORD}, ssl_context=_server_ctx(tls_files, profile == 3),
                          require_client_cert=profile == 3).start()
        extra = dict(password=PASSWORD) if profile == 2 else dict(client_cert=tls_files["station"],
                                                                  client_key=tls_files["station_key"])
        cfg = StationConfig(station, csms.url("wss"), csms_ca=tls_files["ca"], **extra, **FAST)
        assert cfg.security_profile == profile
        cs = ChargingStation(cfg, Outbox(tmp_path / "cs.db"))
        cs.enqueue("TransactionEvent", _tx("Started", 0))
        task = asyncio.ensure_future(cs.run())
        await csms.wait_for(lambda c: len(c.actions("SecurityEventNotification")) == 1)
        task.cancel()
        await csms.close()
        return csms

    csms = asyncio.run(run())
    assert [r.action for r in csms.received] == ["BootNotification", "StatusNotification", "TransactionEvent",
                                                 "SecurityEventNotification"]
    assert csms.received[-1].payload["type"] == "StartupOfTheDevice"


def test_profile_3_without_a_trusted_station_certificate_is_refused(tmp_path, tls_files):
    async def run():
        csms = await CSMS(ssl_context=_server_ctx(tls_files, True), require_client_cert=True).start()
        cfg = StationConfig("CS003", csms.url("wss"), csms_ca=tls_files["ca"], client_cert=tls_files["server"],
                            client_key=tls_files["station_key"], **FAST)  # certificate and key do not match
        with pytest.raises(Exception, match="KEY_VALUES_MISMATCH|key values mismatch"):
            ssl_context(cfg)
        cfg = StationConfig("CS003", csms.url("wss"), password=PASSWORD, csms_ca=tls_files["ca"], **FAST)
        cs = ChargingStation(cfg, Outbox(tmp_path / "cs.db"))  # profile 2 against a profile-3 CSMS
        task = asyncio.ensure_future(cs.run())
        await asyncio.sleep(0.5)
        task.cancel()
        await csms.close()
        return csms, cs

    csms, cs = asyncio.run(run())
    assert csms.received == [] and not cs.boot_accepted


def test_an_untrusted_csms_is_refused(tmp_path, tls_files):
    async def run():
        csms = await CSMS(passwords={"CS002": PASSWORD}, ssl_context=_server_ctx(tls_files, False)).start()
        cfg = StationConfig("CS002", csms.url("wss"), password=PASSWORD, csms_ca=tls_files["station"], **FAST)
        cs = ChargingStation(cfg, Outbox(tmp_path / "cs.db"))
        task = asyncio.ensure_future(cs.run())
        await asyncio.sleep(0.5)
        task.cancel()
        await csms.close()
        return csms, cs

    csms, cs = asyncio.run(run())
    assert csms.received == [] and not cs.boot_accepted
    assert [m.payload["type"] for m in _queued(cs.outbox)] == ["InvalidCsmsCertificate"]


def _queued(outbox: Outbox) -> list:
    out = []
    while (m := outbox.head()) is not None:
        out.append(m)
        outbox.done(m.id)
    return out


# --- kill -9 ------------------------------------------------------------------------------------

def test_kill_9_at_random_moments_loses_and_reorders_nothing(tmp_path):
    """The station process is killed (SIGKILL) at random moments of a 150-event transaction and
    restarted each time; the CSMS gets every event, seqNo 0..149 in order. A kill between a send
    and its answer makes the station resend that message with the same message id (the CSMS can
    recognise it); no other duplicates are allowed."""
    events, kills = 150, 8
    rnd = random.Random(1234)

    async def run():
        csms = await CSMS(passwords={"CS009": PASSWORD}).start()
        cmd = [sys.executable, "-m", "tests.ocpp.tx_driver", str(tmp_path / "cs.db"), csms.url(), "CS009",
               PASSWORD, str(events), "0.03"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        at_kill = []
        for _ in range(kills):
            boots = len(csms.actions("BootNotification"))
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            # kill at a random moment after the station is up (start-up time varies with load)
            await csms.wait_for(lambda c: len(c.actions("BootNotification")) > boots, timeout=30)
            await asyncio.sleep(rnd.uniform(0.0, 0.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            at_kill.append(len(csms.actions("TransactionEvent")))
            await _until(lambda: "CS009" not in csms.connections)  # the CSMS noticed the dead connection
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = await asyncio.get_running_loop().run_in_executor(None, lambda: proc.communicate(timeout=60))
        await csms.close()
        return csms, proc.returncode, out, err, at_kill

    csms, rc, out, err, at_kill = asyncio.run(run())
    assert rc == 0 and "all delivered" in out, err[-2000:]
    events_seen = csms.actions("TransactionEvent")
    unique: dict[str, dict] = {}
    for e in events_seen:
        if e.message_id in unique:
            assert unique[e.message_id] == e.payload  # a resend is the same message
        unique.setdefault(e.message_id, e.payload)
    seqs = [p["seqNo"] for p in unique.values()]
    assert seqs == list(range(events)), seqs
    assert [p["eventType"] for p in unique.values()][::events - 1] == ["Started", "Ended"]
    assert len(events_seen) - len(unique) <= kills
    # the kills fell inside the transaction: events kept arriving between them, not all before
    assert len(set(at_kill)) >= kills // 2 and at_kill[-1] < events, at_kill


def test_a_payload_that_breaks_the_schema_is_never_queued(tmp_path):
    from ocpp.exceptions import OCPPError

    async def run():
        outbox = Outbox(tmp_path / "cs.db")
        cs = ChargingStation(StationConfig("CS001", "ws://127.0.0.1:9", password=PASSWORD), outbox)
        with pytest.raises(OCPPError):
            cs.enqueue("TransactionEvent", {**_tx("Started", 0), "eventType": "Begun"})
        with pytest.raises(OCPPError):
            cs.enqueue("NotifyEVChargingNeeds", {"evseId": 1})
        return outbox

    outbox = asyncio.run(run())
    assert len(outbox) == 0 and outbox.next_seq("tx-1") == 0

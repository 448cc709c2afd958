"""Complete -20 sessions over real TLS 1.3 on loopback, and the network faults: a car whose
certificate the charger does not trust, a connection that dies mid charge loop, a malformed
V2GTP stream. After each fault the charger is de-energised and serves the next car."""

from __future__ import annotations

import asyncio

import pytest

from iso15118 import exi, pki
from iso15118.aio.session import connect_evcc, run_evcc, start_secc, wall_offset
from iso15118.aio.v2gtp_stream import pump
from iso15118.evcc import Battery, EVCCConfig, EVCCSession
from iso15118.secc import simulated_charger


async def _secc(charger, v2g_pki, profile="iso20-secp521r1"):
    return await start_secc(charger, pki_dir=v2g_pki, profile=profile, host="::1", port=0)


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("service,mode,auth,profile", [
    ("DC_BPT", "dynamic", "eim", "iso20-secp521r1"),
    ("DC_BPT", "scheduled", "pnc", "iso20-secp521r1"),
    ("AC_BPT", "dynamic", "pnc", "iso20-ed448"),
    ("AC", "scheduled", "eim", "iso20-ed448"),
])
def test_session_over_tls(v2g_pki, service, mode, auth, profile):
    charger = simulated_charger(kind=service[:2], setpoint_w=-6000, isolation_time=0.05)

    async def go():
        srv = await _secc(charger, v2g_pki, profile)
        assert 49152 <= srv.port <= 65535  # the range SDP may announce
        chain, key = pki.contract_credentials(v2g_pki, profile) if auth == "pnc" else ((), None)
        cfg = EVCCConfig(service=service, control_mode=mode, auth=auth, loops=4, loop_period=0.05,
                         poll_interval=0.02, contract_chain=chain, contract_key=key)
        result = await run_evcc(Battery(), cfg, pki_dir=v2g_pki, profile=profile, secc=("::1", srv.port))
        await asyncio.wait_for(srv.session_ended.wait(), 5)
        await srv.close()
        return result, srv.sessions

    result, sessions = _run(go())
    assert result.ok, result.reason
    assert sessions[0].end_reason == "SessionStopRes OK" and sessions[0].tls
    if service.endswith("BPT"):
        assert result.discharged_wh > 0
    else:
        assert result.discharged_wh == 0
    assert not charger.stage.measurements(1e12).contactors_closed


def test_untrusted_car_is_refused_and_the_next_car_served(v2g_pki, tmp_path):
    stranger = tmp_path / "stranger"
    pki.init_pki(stranger, profiles=["iso20-secp521r1"])
    charger = simulated_charger(kind="DC", setpoint_w=-6000, isolation_time=0.05)

    async def go():
        srv = await _secc(charger, v2g_pki)
        bad = await run_evcc(Battery(), EVCCConfig(loops=2, loop_period=0.05), pki_dir=stranger,
                             secc=("::1", srv.port))
        good = await run_evcc(Battery(), EVCCConfig(loops=2, loop_period=0.05, poll_interval=0.02), pki_dir=v2g_pki,
                              secc=("::1", srv.port))
        await srv.close()
        return bad, good, srv.sessions

    bad, good, sessions = _run(go())
    assert not bad.ok and ("could not connect" in bad.reason or "connection lost" in bad.reason)
    assert good.ok, good.reason
    assert len(sessions) == 1  # the refused car never got a session


def test_car_refuses_a_charger_it_does_not_trust(v2g_pki, tmp_path):
    stranger = tmp_path / "stranger-cpo"
    pki.init_pki(stranger, profiles=["iso20-secp521r1"])
    charger = simulated_charger(kind="DC")

    async def go():
        srv = await start_secc(charger, pki_dir=stranger, host="::1", port=0)
        result = await run_evcc(Battery(), EVCCConfig(loops=1), pki_dir=v2g_pki, secc=("::1", srv.port))
        await srv.close()
        return result

    result = _run(go())
    assert not result.ok and "could not connect" in result.reason and "CERTIFICATE_VERIFY_FAILED" in result.reason


class _Dropper:
    """Wraps a car session: after ``after`` charge-loop responses it kills the TCP connection."""

    def __init__(self, ev: EVCCSession, after: int, writer):
        self.ev, self.after, self.writer = ev, after, writer
        self.dropped_at: float | None = None

    @property
    def closed(self):
        return self.ev.closed or self.dropped_at is not None

    def next_deadline(self):
        return self.ev.next_deadline()

    def handle_timer(self, now):
        return self.ev.handle_timer(now)

    def on_connection_lost(self, now):
        self.ev.on_connection_lost(now)

    def on_frame(self, frame, now):
        out = self.ev.on_frame(frame, now)
        if self.ev.loops_done >= self.after and self.dropped_at is None:
            self.dropped_at = now
            self.writer.transport.abort()  # RST, no goodbye
            return []
        return out


def test_tcp_drop_in_the_charge_loop_de_energises(v2g_pki):
    charger = simulated_charger(kind="DC", setpoint_w=-6000, isolation_time=0.05)

    async def go():
        srv = await _secc(charger, v2g_pki)
        loop = asyncio.get_running_loop()
        ev = EVCCSession(Battery(), EVCCConfig(loops=50, loop_period=0.05, poll_interval=0.02),
                         clock_offset=wall_offset())
        reader, writer = await connect_evcc(pki_dir=v2g_pki, secc=("::1", srv.port))
        dropper = _Dropper(ev, 3, writer)
        await pump(dropper, reader, writer, first=ev.start(loop.time()))
        await asyncio.wait_for(srv.session_ended.wait(), 5)
        ended = loop.time()
        await srv.close()
        return dropper.dropped_at, ended, srv.sessions[0]

    dropped, ended, session = _run(go())
    assert session.end_reason.startswith("connection lost in ChargeLoop")
    de = [e for e in charger.stage.history.events if e.kind == "deenergise"]
    assert de and 0 <= de[-1].time - dropped < 0.5
    assert not charger.stage.measurements(1e12).contactors_closed


def test_malformed_v2gtp_stream_closes_and_de_energises(v2g_pki):
    charger = simulated_charger(kind="DC", setpoint_w=-6000, isolation_time=0.05)

    async def go():
        srv = await _secc(charger, v2g_pki)
        loop = asyncio.get_running_loop()
        ev = EVCCSession(Battery(), EVCCConfig(loops=50, loop_period=0.05, poll_interval=0.02),
                         clock_offset=wall_offset())
        reader, writer = await connect_evcc(pki_dir=v2g_pki, secc=("::1", srv.port))

        class Liar(_Dropper):
            def on_frame(self, frame, now):
                out = self.ev.on_frame(frame, now)
                if self.ev.loops_done >= 2 and self.dropped_at is None:
                    self.dropped_at = now
                    # a V2GTP header whose length claims 4 GB
                    self.writer.write(bytes.fromhex("01fe8004ffffffff") + b"\x00" * 16)
                    return []
                return out

        liar = Liar(ev, 2, writer)
        await pump(liar, reader, writer, first=ev.start(loop.time()))
        await asyncio.wait_for(srv.session_ended.wait(), 5)
        data = await asyncio.wait_for(reader.read(), 5)  # the charger closed the connection
        writer.close()
        await srv.close()
        return data, srv.sessions[0]

    data, session = _run(go())
    assert data == b""
    assert session.closed and session.state.value == "Ended"
    assert not charger.stage.measurements(1e12).contactors_closed
    assert charger.stage.history.events[-1].kind in ("deenergise", "contactors")


def test_json_lines_log_round_trips(v2g_pki, tmp_path):
    """Every logged message decodes back with from_dict and encodes to EXI."""
    import json

    from iso15118.aio.trace import MessageLog
    charger = simulated_charger(kind="DC", setpoint_w=-6000, isolation_time=0.05)
    path = tmp_path / "evcc.jsonl"

    async def go():
        srv = await _secc(charger, v2g_pki)
        log = MessageLog("EVCC", path=str(path), clock_offset=wall_offset())
        result = await run_evcc(Battery(), EVCCConfig(loops=3, loop_period=0.05, poll_interval=0.02),
                                pki_dir=v2g_pki, secc=("::1", srv.port), observer=log)
        log.close()
        await srv.close()
        return result

    assert _run(go()).ok
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [set(x) for x in lines] == [{"time", "direction", "name", "message"}] * len(lines)
    assert {x["direction"] for x in lines} == {"rx", "tx"}
    assert sum(x["name"] == "DC_ChargeLoopReq" for x in lines) == 3
    for x in lines:
        schema = "apphand" if x["name"].startswith("supportedAppProtocol") else \
            "iso20_dc" if x["name"].startswith("DC_") else "iso20_cm"
        msg = exi.from_dict(x["message"], schema)
        assert type(msg).__name__ == x["name"]
        exi.encode(msg, schema)


def test_car_refuses_a_charger_certificate_without_dc_cpo(v2g_pki, tmp_path):
    """A certificate that chains to the V2G root but is not a CPO's (no DC=CPO) must not serve
    as a charger: TLS accepts it, the car's policy check does not."""
    import datetime as dt
    import shutil

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from iso15118.pki import generate as g

    odd = tmp_path / "odd"
    shutil.copytree(v2g_pki, odd)
    base = odd / "iso20-secp521r1"
    prof = g.PROFILES["iso20-secp521r1"]
    sub2 = x509.load_pem_x509_certificate((base / "cpo_sub_ca_2.pem").read_bytes())
    sub2_key = serialization.load_pem_private_key((base / "cpo_sub_ca_2.key.pem").read_bytes(), None)
    key = prof.new_key()
    leaf = g._cert(prof, g._name("DE*V2H*E0001", "V2H Test V2G Root"), key, sub2.subject, sub2_key, ca=False,
                   path_length=None, days=30, now=dt.datetime.now(dt.timezone.utc), key_agreement=True)
    (base / "secc_chain.pem").write_bytes(g._pem(leaf) + (base / "cpo_sub_ca_2.pem").read_bytes()
                                          + (base / "cpo_sub_ca_1.pem").read_bytes())
    (base / "secc_leaf.key.pem").write_bytes(g._key_pem(key))

    async def go():
        srv = await start_secc(simulated_charger(kind="DC"), pki_dir=odd, host="::1", port=0)
        result = await run_evcc(Battery(), EVCCConfig(loops=1), pki_dir=v2g_pki, secc=("::1", srv.port))
        await srv.close()
        return result

    result = _run(go())
    assert not result.ok and "lacks DC=CPO" in result.reason


def test_secc_leaf_check_directly(v2g_pki):
    from cryptography.hazmat.primitives.serialization import Encoding

    from iso15118.pki import ChainError, check_secc_leaf, load_certificates

    base = v2g_pki / "iso20-secp521r1"
    secc = load_certificates((base / "secc_leaf.pem").read_bytes())[0].public_bytes(Encoding.DER)
    contract = load_certificates((base / "contract_leaf.pem").read_bytes())[0].public_bytes(Encoding.DER)
    check_secc_leaf(secc)
    for bad in (contract, None, b"\x30\x03garbage"):
        with pytest.raises(ChainError):
            check_secc_leaf(bad)

"""`v2h charger` (SECC + OCPP client) as a real process, a simulated car as another, and a real
CSMS in the test: the ISO 15118-20 session reported as TransactionEvents and
NotifyEVChargingNeeds, and a SetChargingProfile with a negative CentralSetpoint turning the live
charge loop into a discharge."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from .csms import CSMS

CLI = [sys.executable, "-m", "v2h.cli"]
PASSWORD = "a-very-secret-passphrase"


async def _start_charger(args: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([*CLI, "charger", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
    m = re.search(r"listening on port (\d+)", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"no listening line: {line!r} {proc.stderr.read()}")
    return proc, int(m.group(1))


def _profile(setpoint: float, *, profile_id: int = 7, purpose: str = "TxProfile", **extra) -> dict:
    return {"evseId": 1, "chargingProfile": {
        "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": purpose, "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
            {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": setpoint,
             "dischargeLimit": -11000.0}]}], **extra}}


def test_charger_reports_the_session_and_applies_a_discharge_setpoint(v2g_pki, tmp_path):
    log = tmp_path / "charger.jsonl"
    ev_log = tmp_path / "evcc.jsonl"

    async def run():
        csms = await CSMS(passwords={"CS100": PASSWORD}).start()
        charger, port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(), "--id", "CS100", "--password", PASSWORD,
             "--db", str(tmp_path / "cs.db"), "--setpoint", "6000", "--tx-interval", "0.5", "--once", "--quiet",
             "--log", str(log)])
        try:
            await csms.wait_for(lambda c: "CS100" in c.connections and c.actions("BootNotification"))
            car = await asyncio.create_subprocess_exec(
                *CLI, "evcc", "--secc", f"[::1]:{port}", "--pki", str(v2g_pki), "--service", "DC_BPT",
                "--control-mode", "dynamic", "--soc", "80", "--loops", "40", "--loop-period", "0.1", "--quiet",
                "--log", str(ev_log), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            await csms.wait_for(lambda c: len(c.actions("NotifyEVChargingNeeds")) == 1)
            await csms.wait_for(lambda c: any(e.payload.get("transactionInfo", {}).get("chargingState") == "Charging"
                                              for e in c.actions("TransactionEvent")))
            await asyncio.sleep(0.5)  # a few loops of charging first
            kind, answer = await csms.send_call("CS100", "SetChargingProfile", _profile(-5000.0))
            accepted_at = time.time()
            out, err = await car.communicate()
            await asyncio.get_running_loop().run_in_executor(None, charger.wait, 30)
            await csms.wait_for(lambda c: any(e.payload["eventType"] == "Ended" for e in c.actions("TransactionEvent")))
        finally:
            charger.kill()
            await csms.close()
        return csms, (kind, answer), accepted_at, car.returncode, out.decode(), err.decode()

    csms, (kind, answer), accepted_at, car_rc, out, err = asyncio.run(run())
    assert (kind, answer) == (3, {"status": "Accepted"})
    assert car_rc == 0, err
    # the session, as the CSMS saw it
    events = csms.actions("TransactionEvent")
    assert [e.payload["seqNo"] for e in events] == list(range(len(events)))
    assert len({e.payload["transactionInfo"]["transactionId"] for e in events}) == 1
    assert events[0].payload["eventType"] == "Started" and events[-1].payload["eventType"] == "Ended"
    # the car ended the session and left (no control pilot here: the session stands for the cable)
    ended = events[-1].payload
    assert ended["triggerReason"] == "EVCommunicationLost" and ended["transactionInfo"]["chargingState"] == "Idle"
    assert ended["transactionInfo"]["stoppedReason"] == "StoppedByEV"
    triggers = [e.payload["triggerReason"] for e in events]
    assert "Authorized" in triggers and "MeterValuePeriodic" in triggers
    needs = csms.actions("NotifyEVChargingNeeds")[0].payload["chargingNeeds"]
    assert needs["requestedEnergyTransfer"] == "DC_BPT" and needs["controlMode"] == "DynamicControl"
    assert needs["v2xChargingParameters"]["maxDischargePower"] > 0

    def register(e, measurand):
        return next(v["value"] for v in e.payload["meterValue"][0]["sampledValue"] if v["measurand"] == measurand)
    assert register(events[-1], "Energy.Active.Import.Register") > 0   # charged before the profile
    assert register(events[-1], "Energy.Active.Export.Register") > 0   # discharged after it
    assert 79 <= register(events[-1], "SoC") <= 80                     # the car's PresentSOC
    # the car's own plan from PowerDelivery(Start), as NotifyEVChargingSchedule
    schedule = csms.actions("NotifyEVChargingSchedule")[0].payload
    assert schedule["evseId"] == 1 and schedule["chargingSchedule"]["chargingRateUnit"] == "W"
    assert schedule["chargingSchedule"]["chargingSchedulePeriod"][0]["startPeriod"] == 0
    # the car saw the new setpoint within one loop period of the CSMS's accepted answer
    loops = [json.loads(x) for x in ev_log.read_text().splitlines()]
    first_discharge = next(d for d in loops if d.get("name") == "DC_ChargeLoopRes"
                           and d["message"]["DC_ChargeLoopRes"]["EVSEPresentCurrent"]["Value"] < 0)
    t = time.mktime(time.strptime(first_discharge["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + \
        float("0." + first_discharge["time"][20:23])
    assert t - accepted_at < 0.1 + 0.15, (t - accepted_at)  # one 0.1 s loop period, plus scheduling slack
    # the OCPP frames are in the charger's JSON-lines log, named by action
    names = [json.loads(x)["name"] for x in log.read_text().splitlines() if '"ocpp"' in x]
    assert "BootNotification" in names and "SetChargingProfile" in names and "TransactionEventResponse" in names


@pytest.mark.parametrize("frame, code", [
    ("not json", "FormationViolation"),
    ('[2, "m1", "NoSuchAction", {}]', "NotImplemented"),
    ('[2, "m2", "GetDisplayMessages", {"requestId": 1}]', "NotSupported"),
    ('[2, "m3", "SetChargingProfile", {"evseId": "one"}]', "TypeConstraintViolation|FormatViolation|"
                                                            "OccurrenceConstraintViolation"),
    ('[2, "m4"]', "FormationViolation"),
])
def test_bad_requests_get_a_callerror_and_an_invalid_messages_event(tmp_path, frame, code):
    """The `ocpp` 2.1.0 defects worked around: no answer for an unhandled action, dropped frames.
    The connection stays up and a SecurityEventNotification InvalidMessages follows."""
    from ocpp_bridge.outbox import Outbox
    from ocpp_bridge.station import ChargingStation, StationConfig

    async def run():
        csms = await CSMS(passwords={"CS101": PASSWORD}).start()
        cs = ChargingStation(StationConfig("CS101", csms.url(), password=PASSWORD), Outbox(tmp_path / "cs.db"))
        cs.handlers["SetChargingProfile"] = lambda payload: {"status": "Accepted"}
        task = asyncio.ensure_future(cs.run())
        await csms.wait_for(lambda c: "CS101" in c.connections and c.actions("BootNotification"))
        await asyncio.sleep(0.1)
        kind, answer = await csms.send_raw("CS101", frame)
        await csms.wait_for(lambda c: any(e.payload["type"] == "InvalidMessages"
                                          for e in c.actions("SecurityEventNotification")))
        still = await csms.send_call("CS101", "SetChargingProfile", _profile(1000.0))
        task.cancel()
        await csms.close()
        return kind, answer, csms, still

    kind, answer, csms, still = asyncio.run(run())
    assert kind == 4 and re.fullmatch(code, answer["errorCode"]), answer
    event = next(e.payload for e in csms.actions("SecurityEventNotification") if e.payload["type"] == "InvalidMessages")
    assert code.split("|")[0][:4] in event["techInfo"]
    assert still == (3, {"status": "Accepted"})  # the connection is still up


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loop_currents(ev_log) -> list[tuple[float, float]]:
    """(wall time, EVSEPresentCurrent) of every DC_ChargeLoopRes the car received."""
    from datetime import datetime
    out = []
    for d in map(json.loads, ev_log.read_text().splitlines()):
        if d.get("name") == "DC_ChargeLoopRes":
            c = d["message"]["DC_ChargeLoopRes"]["EVSEPresentCurrent"]
            out.append((datetime.fromisoformat(d["time"].replace("Z", "+00:00")).timestamp(),
                        c["Value"] * 10.0 ** c["Exponent"]))
    return out


def test_without_a_csms_the_charger_charges_safely_and_delivers_later(v2g_pki, tmp_path):
    """No CSMS at start: the session charges at the default setpoint (never discharges) and
    every event waits in the outbox; when the CSMS appears it gets them all, offline=true."""
    port = _free_port()

    async def run():
        charger, secc_port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", f"ws://127.0.0.1:{port}", "--id", "CS102",
             "--password", PASSWORD, "--db", str(tmp_path / "cs.db"), "--setpoint", "5000", "--tx-interval", "0.3",
             "--retry-backoff", "0.2", "--retry-random", "0.1", "--quiet"])
        try:
            car = await asyncio.create_subprocess_exec(
                *CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service", "DC_BPT",
                "--soc", "50", "--loops", "15", "--loop-period", "0.1", "--quiet", "--log", str(tmp_path / "ev.jsonl"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await car.communicate()
            csms = await CSMS(passwords={"CS102": PASSWORD}).start(port=port)
            await csms.wait_for(lambda c: any(e.payload["eventType"] == "Ended" for e in c.actions("TransactionEvent")),
                                timeout=30)
            await csms.close()
        finally:
            charger.kill()
        return csms, car.returncode, err.decode()

    csms, rc, err = asyncio.run(run())
    assert rc == 0, err
    assert csms.received[0].action == "BootNotification"
    events = csms.actions("TransactionEvent")
    assert [e.payload["seqNo"] for e in events] == list(range(len(events))) and len(events) >= 5
    assert all(e.payload["offline"] is True for e in events)
    assert csms.actions("NotifyEVChargingNeeds")
    currents = [c for _, c in _loop_currents(tmp_path / "ev.jsonl")]
    assert currents and all(c >= 0 for c in currents) and max(currents) > 0


def test_max_offline_duration_stops_the_discharge_and_it_resumes_online(v2g_pki, tmp_path):
    """Q11/Q12: a discharge profile with maxOfflineDuration=1. When the CSMS goes away the
    charger keeps discharging for 1 s, then falls back to the safe default (charging, no
    discharge); when the CSMS is back, the profile applies again and the queued events arrive."""
    ev_log = tmp_path / "ev.jsonl"

    async def run():
        csms = await CSMS(passwords={"CS103": PASSWORD}).start()
        port = csms.port
        charger, secc_port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(), "--id", "CS103", "--password", PASSWORD,
             "--db", str(tmp_path / "cs.db"), "--setpoint", "4000", "--retry-backoff", "0.1", "--retry-random", "0",
             "--tx-interval", "0.5", "--quiet"])
        try:
            await csms.wait_for(lambda c: "CS103" in c.connections and c.actions("BootNotification"))
            car = await asyncio.create_subprocess_exec(
                *CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service", "DC_BPT",
                "--soc", "80", "--loops", "100", "--loop-period", "0.1", "--quiet", "--log", str(ev_log),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            await csms.wait_for(lambda c: any(e.payload.get("transactionInfo", {}).get("chargingState") == "Charging"
                                              for e in c.actions("TransactionEvent")))
            answer = await csms.send_call("CS103", "SetChargingProfile", _profile(-5000.0, maxOfflineDuration=1))
            await asyncio.sleep(1.0)
            offline_at = time.time()
            await csms.close()
            await asyncio.sleep(2.0)
            csms2 = await CSMS(passwords={"CS103": PASSWORD}).start(port=port)
            # a reconnect, not a boot: the station goes on with what it queued meanwhile
            await csms2.wait_for(lambda c: c.actions("TransactionEvent"), timeout=15)
            online_at = time.time()
            out, err = await car.communicate()
            await csms2.close()
        finally:
            charger.kill()
        return answer, offline_at, online_at, car.returncode, err.decode(), csms2

    answer, offline_at, online_at, rc, err, csms2 = asyncio.run(run())
    assert answer == (3, {"status": "Accepted"}) and rc == 0, err
    currents = _loop_currents(ev_log)
    first = [t for t, c in currents if c < 0 and t < online_at]
    assert first and min(first) < offline_at                     # it discharged while online
    assert 1.0 <= max(first) - offline_at + 0.1 < 1.0 + 0.35, (max(first) - offline_at)
    gap = [c for t, c in currents if max(first) < t < online_at]
    assert gap and all(c > 0 for c in gap)                       # offline: charging, never discharging
    back = [c for t, c in currents if t > online_at + 0.2]
    assert back and all(c < 0 for c in back)                     # online again: the profile applies
    offline_events = [e for e in csms2.actions("TransactionEvent") if e.payload.get("offline")]
    assert offline_events                                        # what happened meanwhile arrived


def test_kill_9_of_the_charger_during_sessions(v2g_pki, tmp_path):
    """`v2h charger` is killed (SIGKILL) at random moments of a running ISO 15118 session, five
    times, restarted on the same --db, and finally runs one session to its end. The CSMS gets
    every transaction complete: seqNo contiguous from 0, Started first, exactly one Ended last
    (PowerLoss, sent after the restart, for the killed ones); a message resent after a kill
    carries its first message id and is the same message."""
    rnd = random.Random(99)
    db = tmp_path / "cs.db"

    async def one(csms, *, kill: bool):
        charger, secc_port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(), "--id", "CS104", "--password", PASSWORD,
             "--db", str(db), "--tx-interval", "0.2", "--retry-backoff", "0.1", "--retry-random", "0.1", "--quiet",
             *([] if kill else ["--once"])])
        car = await asyncio.create_subprocess_exec(
            *CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service", "DC_BPT",
            "--loops", "30" if kill else "8", "--loop-period", "0.1", "--quiet",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            if kill:
                started = len([e for e in csms.actions("TransactionEvent") if e.payload["eventType"] == "Started"])
                await csms.wait_for(lambda c: len([e for e in c.actions("TransactionEvent")
                                                   if e.payload["eventType"] == "Started"]) > started, timeout=30)
                await asyncio.sleep(rnd.uniform(0.0, 1.5))
                charger.send_signal(signal.SIGKILL)
                await asyncio.get_running_loop().run_in_executor(None, charger.wait)
                await car.wait()
                await csms.wait_for(lambda c: "CS104" not in c.connections)
            else:
                assert await car.wait() == 0
                await asyncio.get_running_loop().run_in_executor(None, charger.wait, 30)
        finally:
            charger.kill()

    async def run():
        csms = await CSMS(passwords={"CS104": PASSWORD}).start()
        for _ in range(5):
            await one(csms, kill=True)
        await one(csms, kill=False)
        await csms.close()
        return csms

    csms = asyncio.run(run())
    unique: dict[str, dict] = {}
    for e in csms.actions("TransactionEvent"):
        assert unique.setdefault(e.message_id, e.payload) == e.payload
    by_tx: dict[str, list[dict]] = {}
    for p in unique.values():
        by_tx.setdefault(p["transactionInfo"]["transactionId"], []).append(p)
    assert len(by_tx) == 6
    ended_by_power_loss = 0
    for tx, evs in by_tx.items():
        assert [p["seqNo"] for p in evs] == list(range(len(evs))), tx
        assert evs[0]["eventType"] == "Started" and evs[-1]["eventType"] == "Ended"
        assert [p["eventType"] for p in evs].count("Ended") == 1
        ended_by_power_loss += evs[-1]["transactionInfo"].get("stoppedReason") == "PowerLoss"
    assert ended_by_power_loss == 5


@pytest.mark.parametrize("status, allowed, outcome", [
    ("Accepted", ["DC", "DC_BPT"], "discharges"),
    ("Accepted", ["DC"], "charges only"),     # V2X not allowed by the CSMS: the setpoint is held at 0
    ("Invalid", None, "refused"),
])
def test_plug_and_charge_authorized_by_the_csms_with_its_v2x_consent(v2g_pki, tmp_path, status, allowed, outcome):
    ev_log = tmp_path / "ev.jsonl"

    async def run():
        csms = await CSMS(passwords={"CS105": PASSWORD}, authorize_status=status,
                          allowed_energy_transfer=allowed).start()
        charger, secc_port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(), "--id", "CS105", "--password", PASSWORD,
             "--db", str(tmp_path / "cs.db"), "--setpoint", "3000", "--once", "--quiet"])
        try:
            await csms.wait_for(lambda c: "CS105" in c.connections and c.actions("BootNotification"))
            car = await asyncio.create_subprocess_exec(
                *CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service", "DC_BPT",
                "--auth", "pnc", "--soc", "80", "--loops", "25", "--loop-period", "0.1", "--quiet",
                "--log", str(ev_log), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            if outcome != "refused":
                await csms.wait_for(lambda c: any(e.payload.get("transactionInfo", {}).get("chargingState") ==
                                                  "Charging" for e in c.actions("TransactionEvent")))
                await asyncio.sleep(0.3)  # a few loops of charging first
                answer = await csms.send_call("CS105", "SetChargingProfile", _profile(-4000.0))
                assert answer == (3, {"status": "Accepted"})
            out, err = await car.communicate()
            await asyncio.get_running_loop().run_in_executor(None, charger.wait, 30)
            await csms.wait_for(lambda c: any(s.payload["connectorStatus"] == "Available"
                                              for s in c.actions("StatusNotification")[1:]))
        finally:
            charger.kill()
            await csms.close()
        return csms, car.returncode, err.decode()

    csms, rc, err = asyncio.run(run())
    auth = csms.actions("Authorize")
    assert [a.payload["idToken"] for a in auth] == [{"idToken": "DEV2HC1234567X9", "type": "eMAID"}]
    statuses = [s.payload["connectorStatus"] for s in csms.actions("StatusNotification")]
    assert statuses == ["Available", "Occupied", "Available"]
    currents = [c for _, c in _loop_currents(ev_log)]
    if outcome == "refused":
        assert rc == 1 and "Authorization" in err and currents == []
        return
    assert rc == 0, err
    authorized = next(e for e in csms.actions("TransactionEvent") if e.payload["triggerReason"] == "Authorized")
    assert authorized.payload["idToken"] == {"idToken": "DEV2HC1234567X9", "type": "eMAID"}
    if outcome == "discharges":
        assert min(currents) < 0
    else:
        assert min(currents) == 0 and max(currents) > 0


def test_reset_change_availability_and_remote_start(v2g_pki, tmp_path):
    """Reset restarts the charger process (BootNotification RemoteReset); ChangeAvailability
    Inoperative refuses the next car (StatusNotification Unavailable, kept across the restart);
    RequestStartTransaction authorizes the next session, whose Started event carries its
    idToken and remoteStartId; Reset OnIdle during a session is Scheduled and happens after it."""

    async def run():
        csms = await CSMS(passwords={"CS106": PASSWORD}).start()
        charger, secc_port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--port", str(_free_port()), "--csms", csms.url(), "--id",
             "CS106", "--password", PASSWORD, "--db", str(tmp_path / "cs.db"), "--quiet"])

        async def car(loops: int):
            p = await asyncio.create_subprocess_exec(
                *CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service", "DC",
                "--loops", str(loops), "--loop-period", "0.1", "--quiet",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            return p

        def booted(c, n):  # the n-th boot happened and its StatusNotification followed
            actions = [r.action for r in c.received]
            boots_at = [i for i, a in enumerate(actions) if a == "BootNotification"]
            return len(boots_at) >= n and "StatusNotification" in actions[boots_at[n - 1]:]

        async def boots(n):
            await csms.wait_for(lambda c: booted(c, n), timeout=30)
        try:
            await boots(1)
            out = {"unavailable": await csms.send_call("CS106", "ChangeAvailability",
                                                       {"operationalStatus": "Inoperative"})}
            refused = await car(3)
            out["refused_rc"] = await refused.wait()
            out["reset_idle"] = await csms.send_call("CS106", "Reset", {"type": "Immediate"})
            await boots(2)
            out["available"] = await csms.send_call("CS106", "ChangeAvailability", {"operationalStatus": "Operative"})
            out["remote"] = await csms.send_call("CS106", "RequestStartTransaction", {
                "idToken": {"idToken": "HOUSE-1", "type": "Local"}, "remoteStartId": 7})
            session = await car(20)
            await csms.wait_for(lambda c: any(e.payload["eventType"] == "Started" and
                                              e.payload["transactionInfo"].get("remoteStartId") == 7
                                              for e in c.actions("TransactionEvent")))
            out["reset_busy"] = await csms.send_call("CS106", "Reset", {"type": "OnIdle"})
            out["session_rc"] = await session.wait()
            await boots(3)
        finally:
            charger.kill()
            await csms.close()
        return csms, out

    csms, out = asyncio.run(run())
    assert out["unavailable"] == (3, {"status": "Accepted"}) and out["refused_rc"] == 1
    assert out["reset_idle"] == (3, {"status": "Accepted"})
    assert [b.payload["reason"] for b in csms.actions("BootNotification")] == ["PowerUp", "RemoteReset", "ScheduledReset"]
    statuses = [s.payload["connectorStatus"] for s in csms.actions("StatusNotification")]
    # the refused car started no transaction; after the reset: still inoperative
    assert statuses[:3] == ["Available", "Unavailable", "Unavailable"], statuses
    assert out["available"] == (3, {"status": "Accepted"}) and out["remote"] == (3, {"status": "Accepted"})
    started = next(e.payload for e in csms.actions("TransactionEvent") if e.payload["eventType"] == "Started")
    assert started["triggerReason"] == "RemoteStart" and started["idToken"] == {"idToken": "HOUSE-1", "type": "Local"}
    assert out["reset_busy"] == (3, {"status": "Scheduled"}) and out["session_rc"] == 0
    ended = [e.payload for e in csms.actions("TransactionEvent") if e.payload["eventType"] == "Ended"]
    assert len(ended) == 1 and ended[0]["transactionInfo"]["stoppedReason"] == "StoppedByEV"


@pytest.mark.parametrize("profile", [2, 3])
def test_charger_over_tls_with_certificates_from_v2h_pki(v2g_pki, tmp_path, profile):
    """Security profiles 2 (TLS + basic auth) and 3 (mutual TLS) with the certificates of
    `v2h pki init` (DIR/ocpp): a whole session reaches the CSMS."""
    import ssl
    ocpp_dir = v2g_pki / "ocpp"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ocpp_dir / "csms_server.pem", ocpp_dir / "csms_server.key.pem")
    if profile == 3:
        ctx.load_verify_locations(ocpp_dir / "csms_root_ca.pem")
        ctx.verify_mode = ssl.CERT_REQUIRED
    creds = ["--password", PASSWORD] if profile == 2 else []  # profile 3: the station certificate of --pki

    async def run():
        csms = await CSMS(passwords={"CS001": PASSWORD}, ssl_context=ctx, require_client_cert=profile == 3).start()
        charger, secc_port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url("wss"), "--id", "CS001",
             "--csms-ca", str(ocpp_dir / "csms_root_ca.pem"), *creds, "--db", str(tmp_path / "cs.db"),
             "--once", "--quiet"])
        try:
            car = await asyncio.create_subprocess_exec(
                *CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service", "DC",
                "--loops", "4", "--loop-period", "0.1", "--quiet",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            rc = await car.wait()
            await asyncio.get_running_loop().run_in_executor(None, charger.wait, 30)
        finally:
            charger.kill()
            await csms.close()
        return csms, rc

    csms, rc = asyncio.run(run())
    assert rc == 0
    events = [e.payload["eventType"] for e in csms.actions("TransactionEvent")]
    assert events[0] == "Started" and events[-1] == "Ended"
    assert csms.refused == []


def test_per_phase_fields_reach_the_profile_check_with_their_names(tmp_path):
    """`ocpp` 2.1.0 would hand a handler ``setpoint_L2`` renamed by its snake_case conversion;
    v2h keeps payloads camelCase as sent, so the profile check sees the per-phase field and
    refuses it by name (v2h does not apply per-phase setpoints)."""
    from iso15118.secc import SimulatedPowerStage
    from ocpp_bridge.bridge import OCPPBridge
    from ocpp_bridge.outbox import Outbox
    from ocpp_bridge.station import ChargingStation, StationConfig

    async def run():
        csms = await CSMS(passwords={"CS107": PASSWORD}).start()
        cs = ChargingStation(StationConfig("CS107", csms.url(), password=PASSWORD), Outbox(tmp_path / "cs.db"))
        bridge = OCPPBridge(SimulatedPowerStage(), cs)
        task = asyncio.ensure_future(cs.run())
        await csms.wait_for(lambda c: "CS107" in c.connections and c.actions("BootNotification"))
        per_phase = _profile(-3000.0, purpose="TxDefaultProfile")
        per_phase["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(
            {"setpoint_L2": -1000.0, "setpoint_L3": -1000.0})
        refused = await csms.send_call("CS107", "SetChargingProfile", per_phase)
        accepted = await csms.send_call("CS107", "SetChargingProfile", _profile(-3000.0, purpose="TxDefaultProfile"))
        # a SEND frame (2.1, unconfirmed) is neither answered nor fatal
        cp = csms.connections["CS107"]
        await cp._send(json.dumps([6, "s1", "NotifyPeriodicEventStream", {"id": 1, "pending": 0, "basetime":
                                                                         "2026-11-26T12:00:00Z", "data": []}]))
        still = await csms.send_call("CS107", "GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
        composite = await csms.send_call("CS107", "GetCompositeSchedule", {"duration": 600, "evseId": 1})
        amps = await csms.send_call("CS107", "GetCompositeSchedule", {"duration": 600, "evseId": 1,
                                                                      "chargingRateUnit": "A"})
        task.cancel()
        await csms.close()
        return refused, accepted, still, bridge, composite, amps

    refused, accepted, still, bridge, composite, amps = asyncio.run(run())
    # no transaction: the Relative TxDefaultProfile has no start yet, the default applies
    assert composite[1]["status"] == "Accepted"
    assert composite[1]["schedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "operationMode": "ChargingOnly", "setpoint": 7000.0}]
    assert amps[1]["schedule"]["chargingRateUnit"] == "A"  # 7000 W over 400 V DC
    assert amps[1]["schedule"]["chargingSchedulePeriod"][0]["setpoint"] == 17.5
    assert refused[1]["status"] == "Rejected" and refused[1]["statusInfo"]["reasonCode"] == "UnsupportedParam"
    assert accepted == (3, {"status": "Accepted"}) and list(bridge.profiles.profiles) == [7]
    assert still == (3, {"status": "Accepted"})


def test_a_central_schedule_reaches_the_car_in_scheduled_mode(v2g_pki, tmp_path):
    """Q03: a TxDefaultProfile with two periods (charge 6 kW for an hour, then discharge 4 kW for
    two) set before the car arrives; the -20 Scheduled ScheduleExchangeRes carries those steps."""
    from datetime import datetime, timezone
    ev_log = tmp_path / "ev.jsonl"

    async def run():
        csms = await CSMS(passwords={"CS108": PASSWORD}).start()
        charger, secc_port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(), "--id", "CS108", "--password", PASSWORD,
             "--db", str(tmp_path / "cs.db"), "--setpoint", "2000", "--once", "--quiet"])
        try:
            await csms.wait_for(lambda c: "CS108" in c.connections and c.actions("BootNotification"))
            start = datetime.fromtimestamp(int(time.time()), timezone.utc).isoformat().replace("+00:00", "Z")
            answer = await csms.send_call("CS108", "SetChargingProfile", {"evseId": 1, "chargingProfile": {
                "id": 3, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute", "chargingSchedule": [{
                    "id": 1, "chargingRateUnit": "W", "startSchedule": start, "duration": 10800,
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": 6000.0},
                        {"startPeriod": 3600, "operationMode": "CentralSetpoint", "setpoint": -4000.0}]}]}})
            car = await asyncio.create_subprocess_exec(
                *CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service", "DC_BPT",
                "--control-mode", "scheduled", "--loops", "5", "--loop-period", "0.1", "--quiet",
                "--log", str(ev_log), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await car.communicate()
            await asyncio.get_running_loop().run_in_executor(None, charger.wait, 30)
        finally:
            charger.kill()
            await csms.close()
        return answer, car.returncode, err.decode()

    answer, rc, err = asyncio.run(run())
    assert answer == (3, {"status": "Accepted"}) and rc == 0, err
    res = next(json.loads(x) for x in ev_log.read_text().splitlines() if '"ScheduleExchangeRes"' in x)
    tup = res["message"]["ScheduleExchangeRes"]["Scheduled_SEResControlMode"]["ScheduleTuple"][0]

    def steps(schedule):
        return [(e["Duration"], e["Power"]["Value"] * 10 ** e["Power"]["Exponent"])
                for e in schedule["PowerSchedule"]["PowerScheduleEntries"]["PowerScheduleEntry"]]
    charge, discharge = steps(tup["ChargingSchedule"]), steps(tup["DischargingSchedule"])
    assert [d for d, _ in charge] == [d for d, _ in discharge]
    assert charge[0][1] == 6000 and discharge[0][1] == 0 and 3598 <= charge[0][0] <= 3600
    assert charge[1] == (7200, 0) and discharge[1] == (7200, -4000)
    assert charge[2][1] == 2000 and sum(d for d, _ in charge) == 86400  # then the default, to the horizon

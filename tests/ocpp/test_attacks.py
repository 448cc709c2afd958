"""Attacks on the charging station from a malicious CSMS (tests/ocpp/malicious_csms.py), found by
an attack review of `v2h charger`; each reproduced here so that it stays fixed:

1. a NaN setpoint bypassed the station's power cap (11 kW delivered under a 3 kW cap);
2. one bad frame (deep nesting, a garbage date) ended the station task for good;
3. absurd profiles (±1e12 W, negative durations and limits) were Accepted;
4. every invalid frame queued a durable SecurityEventNotification (5,013 after a flood).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys

import pytest

from iso15118.secc import SimulatedPowerStage
from ocpp_bridge import frames
from ocpp_bridge.bridge import OCPPBridge
from ocpp_bridge.outbox import Outbox
from ocpp_bridge.station import ChargingStation, StationConfig

from . import malicious_csms as evil
from .csms import CSMS

PASSWORD = "a-very-secret-passphrase"
FAST = dict(retry_backoff_min=0.05, retry_backoff_random=0.05, retry_backoff_repeat=2)


async def _station(tmp_path, csms: CSMS, station_class=ChargingStation, name: str = "CS666"):
    csms.passwords[name] = PASSWORD
    cs = station_class(StationConfig(name, csms.url(), password=PASSWORD, **FAST), Outbox(tmp_path / f"{name}.db"))
    bridge = OCPPBridge(SimulatedPowerStage(), cs, default_setpoint_w=7000.0)
    task = asyncio.ensure_future(cs.run())
    await csms.wait_for(lambda c: name in c.connections and c.actions("BootNotification"))
    await asyncio.sleep(0.05)
    return cs, bridge, task


@pytest.mark.parametrize("attack", sorted(evil.NON_FINITE_PROFILES))
def test_a_non_finite_number_never_becomes_power(tmp_path, attack):
    """Under a 3 kW station cap, a profile with NaN/±Infinity is refused at the frame (it is not
    JSON) and the setpoint stays within the cap; the link stays up."""
    async def run():
        csms = await CSMS().start()
        cs, bridge, task = await _station(tmp_path, csms)
        cap = await csms.send_raw("CS666", evil.station_cap("cap", 3000))
        answer = await csms.send_raw("CS666", evil.NON_FINITE_PROFILES[attack])
        from ocpp_bridge.bridge import Transaction
        bridge.tx = Transaction("tx-1", 0.0)  # a transaction running since t = 0
        watts = bridge.setpoint(0.0)
        after = await csms.send_call("CS666", "GetCompositeSchedule", {"evseId": 1, "duration": 3600})
        task.cancel()
        await csms.close()
        return cap, answer, watts, after

    cap, answer, watts, after = asyncio.run(run())
    assert cap == (3, {"status": "Accepted"})
    assert answer[0] == 4 and answer[1]["errorCode"] == "FormationViolation", answer
    assert math.isfinite(watts) and watts <= 3000.0
    kind, composite = after
    assert kind == 3 and composite["status"] == "Accepted"
    frames.dumps(composite)  # strict JSON: no NaN/Infinity reaches the CSMS
    assert all(p["setpoint"] <= 3000.0 for p in composite["schedule"]["chargingSchedulePeriod"])


@pytest.mark.parametrize("attack", sorted(evil.ABSURD_PROFILES))
def test_absurd_profiles_are_rejected_with_a_reason(tmp_path, attack):
    async def run():
        csms = await CSMS().start()
        cs, bridge, task = await _station(tmp_path, csms)
        answer = await csms.send_raw("CS666", evil.ABSURD_PROFILES[attack])
        still = await csms.send_call("CS666", "GetChargingProfiles", {"requestId": 1, "chargingProfile": {}})
        task.cancel()
        await csms.close()
        return answer, still, bridge

    (kind, answer), still, bridge = asyncio.run(run())
    assert kind == 3 and answer["status"] == "Rejected", answer
    assert answer["statusInfo"]["reasonCode"] == "InvalidValue" and answer["statusInfo"]["additionalInfo"]
    assert bridge.profiles.profiles == {}
    assert still == (3, {"status": "NoProfiles"})  # the link is up and nothing was half-applied


def test_bad_frames_are_answered_and_the_link_stays_up(tmp_path, caplog):
    """Deep nesting (RecursionError in json.loads), a frame id longer than OCPP-J allows, a
    handler that fails: each gets a CALLERROR and the station keeps its connection."""
    async def run():
        csms = await CSMS().start()
        cs, bridge, task = await _station(tmp_path, csms)

        def broken(payload):
            raise KeyError("a bug in a handler")
        cs.handlers["DataTransfer"] = broken
        deep = await csms.send_raw("CS666", evil.deeply_nested(), unique_id="deep")  # its id recovered
        long_id = await csms.send_raw("CS666", json.dumps([2, "x" * 40, "Heartbeat", {}]), unique_id="-1")
        failing = await csms.send_call("CS666", "DataTransfer", {"vendorId": "v2h"})
        boots = len(csms.actions("BootNotification"))
        still = await csms.send_call("CS666", "GetChargingProfiles", {"requestId": 2, "chargingProfile": {}})
        task.cancel()
        await csms.close()
        return deep, long_id, failing, still, boots, csms, cs

    with caplog.at_level(logging.ERROR, logger="ocpp_bridge.station"):
        deep, long_id, failing, still, boots, csms, cs = asyncio.run(run())
    assert deep[0] == 4 and deep[1]["errorCode"] == "FormationViolation"
    assert long_id[0] == 4 and long_id[1]["errorCode"] == "FormationViolation"
    assert failing[0] == 4 and failing[1]["errorCode"] == "InternalError"
    assert cs.handler_errors == 1 and "a bug in a handler" in caplog.text  # logged with its traceback
    assert still == (3, {"status": "NoProfiles"}) and boots == 1 and cs.crashes == 0


def test_a_flood_of_invalid_frames_queues_few_security_events(tmp_path):
    """200 invalid frames: all answered, but InvalidMessages is reported once per interval with
    the count of those left out, not 200 times into the durable outbox."""
    async def run():
        csms = await CSMS().start()
        cs, bridge, task = await _station(tmp_path, csms)
        answers = [await csms.send_raw("CS666", f) for f in evil.flood(200)]
        await csms.wait_for(lambda c: c.actions("SecurityEventNotification"))
        await asyncio.sleep(0.2)
        cs.security_event("InvalidMessages", "last one")  # forced past the interval below
        task.cancel()
        await csms.close()
        return answers, csms, cs

    answers, csms, cs = asyncio.run(run())
    assert all(kind == 4 and a["errorCode"] == "NotImplemented" for kind, a in answers)
    events = [e.payload for e in csms.actions("SecurityEventNotification") if e.payload["type"] == "InvalidMessages"]
    queued = [m for m in [cs.outbox.head()] if m is not None and m.action == "SecurityEventNotification"]
    assert len(events) + len(queued) <= 2, events
    assert cs.core._security_events["InvalidMessages"][1] == 200  # 199 of the flood + the forced one, counted


def test_the_connection_task_comes_back_after_a_failure_from_inside(tmp_path, caplog):
    """A supervisor restarts the station's connection task when it fails unexpectedly (here: the
    first connection's frame pump raises), logs why and counts it; the station boots again."""
    class Crashing(ChargingStation):
        failures = 1

        async def _serve(self, ws):
            if Crashing.failures:
                Crashing.failures -= 1
                raise RuntimeError("injected failure inside the station task")
            await super()._serve(ws)

    async def run():
        csms = await CSMS(passwords={"CS667": PASSWORD}).start()
        cs = Crashing(StationConfig("CS667", csms.url(), password=PASSWORD, **FAST), Outbox(tmp_path / "cs.db"))
        task = asyncio.ensure_future(cs.run())
        await csms.wait_for(lambda c: c.actions("BootNotification"))
        answer = await csms.send_call("CS667", "GetChargingProfiles", {"requestId": 1, "chargingProfile": {}})
        task.cancel()
        await csms.close()
        return cs, answer

    with caplog.at_level(logging.ERROR, logger="ocpp_bridge.station"):
        cs, answer = asyncio.run(run())
    assert cs.crashes == 1 and "injected failure" in caplog.text
    assert answer[0] == 4 and answer[1]["errorCode"] == "NotSupported"  # connected again and answering


def test_the_controller_interface_refuses_non_finite_setpoints(tmp_path):
    """A local energy manager's setpoint (OCPPBridge.set_external_setpoint) is checked too."""
    async def run():
        cs = ChargingStation(StationConfig("CS", "ws://127.0.0.1:9", password=PASSWORD), Outbox(tmp_path / "cs.db"))
        return OCPPBridge(SimulatedPowerStage(), cs)

    bridge = asyncio.run(run())
    for bad in (math.nan, math.inf, -math.inf, 1e12, True, "5000"):
        with pytest.raises(ValueError):
            bridge.set_external_setpoint(bad)
    bridge.set_external_setpoint(-5000.0)
    assert bridge.external_setpoint == -5000.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_the_secc_turns_a_non_finite_setpoint_into_zero_power(bad):
    """Whatever a controller returns, the charge loop's clamp is safe by construction: NaN or
    ±Infinity gives 0 W, never full power."""
    from iso15118.evcc import Battery, EVCCConfig, EVCCSession
    from iso15118.pair import run_pair
    from iso15118.secc import PowerCommand, SECCSession, simulated_charger

    hw = simulated_charger(setpoint_w=bad)
    stage = hw.stage
    charger = SECCSession(hw, now=0.0, tls=True)
    car = EVCCSession(Battery(soc=50), EVCCConfig(service="DC_BPT", loops=5))
    run_pair(charger, car)
    targets = [e.value for e in stage.history.events if e.kind == "target" and isinstance(e.value, PowerCommand)]
    assert car.result.loops == 5
    assert targets and all(t.current == 0.0 and t.power == 0.0 for t in targets)


def test_end_to_end_the_cap_holds_against_every_attack_frame(v2g_pki, tmp_path):
    """The attack as it was found: `v2h charger` with a car in its charge loop, a 3 kW
    ChargingStationMaxProfile, then NaN/Infinity/absurd profiles and a frame that used to kill
    the link. The car never sees more than 3 kW, and the link still applies a valid profile."""
    from .test_charger import _start_charger

    ev_log = tmp_path / "evcc.jsonl"

    async def run():
        csms = await CSMS(passwords={"CS668": PASSWORD}).start()
        charger, port = await _start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(), "--id", "CS668", "--password", PASSWORD,
             "--db", str(tmp_path / "cs.db"), "--setpoint", "11000", "--once", "--quiet"])
        try:
            await csms.wait_for(lambda c: "CS668" in c.connections and c.actions("BootNotification"))
            answers = [await csms.send_raw("CS668", evil.station_cap("cap", 3000))]
            car = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "v2h.cli", "evcc", "--secc", f"[::1]:{port}", "--pki", str(v2g_pki),
                "--service", "DC_BPT", "--soc", "50", "--loops", "30", "--loop-period", "0.1", "--quiet",
                "--log", str(ev_log), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            await csms.wait_for(lambda c: any(e.payload.get("transactionInfo", {}).get("chargingState") == "Charging"
                                              for e in c.actions("TransactionEvent")))
            for text in [*evil.NON_FINITE_PROFILES.values(), *evil.ABSURD_PROFILES.values()]:
                answers.append(await csms.send_raw("CS668", text))
            answers.append(await csms.send_raw("CS668", evil.deeply_nested(), unique_id="deep"))
            answers.append(await csms.send_raw("CS668", evil.profile_frame(
                "valid", period='{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -2000}')))
            out, err = await car.communicate()
            await asyncio.get_running_loop().run_in_executor(None, charger.wait, 30)
        finally:
            charger.kill()
            await csms.close()
        return answers, car.returncode, err.decode()

    answers, car_rc, err = asyncio.run(run())
    assert car_rc == 0, err
    assert answers[0] == (3, {"status": "Accepted"}) and answers[-1] == (3, {"status": "Accepted"})
    for kind, answer in answers[1:-1]:
        assert kind == 4 or answer["status"] == "Rejected", answer
    loop = [json.loads(x) for x in ev_log.read_text().splitlines()]
    powers = [d["message"]["DC_ChargeLoopRes"] for d in loop if d.get("name") == "DC_ChargeLoopRes"]
    watts = [p["EVSEPresentCurrent"]["Value"] * 10.0 ** p["EVSEPresentCurrent"]["Exponent"]
             * p["EVSEPresentVoltage"]["Value"] * 10.0 ** p["EVSEPresentVoltage"]["Exponent"] for p in powers]
    assert watts and max(abs(w) for w in watts) <= 3000.0 * 1.01, max(watts)
    assert min(watts) < -1000.0  # the valid discharge profile sent after the attacks was applied


@pytest.mark.parametrize("settings", [{"capacity_kwh": 0}, {"soc": math.nan}, {"soc": 150}, {"min_soc": -10},
                                      {"max_discharge_power": math.inf}, {"efficiency": 0},
                                      {"voltage_min": 500, "voltage_max": 400}])
def test_battery_settings_from_a_file_or_flags_are_checked(tmp_path, settings):
    """The simulated car's settings (``v2h evcc --battery FILE`` and its flags) are refused by name
    when they are not finite or outside what a battery can be (capacity 0 divided by zero)."""
    from iso15118.evcc import Battery

    path = tmp_path / "battery.json"
    path.write_text(json.dumps(settings))  # Python writes NaN/Infinity, and reads them back
    with pytest.raises(ValueError, match=next(iter(settings)).split("_")[0]):
        Battery.from_file(path)

"""The car's ISO 15118-20 timers: each one fires at its value, ends the car's session with
its contactors open, and the charger, seeing the car hang up, de-energises."""

from __future__ import annotations

import pytest

from iso15118 import exi
from iso15118.evcc import EVTimers
from iso15118.messages import name_of, schema_of_payload
from iso15118.secc import SECCConfig, simulated_charger

from .helpers import make_pair


def drop_response(name: str, nth: int = 1):
    seen = {"n": 0}

    def tamper(direction, frame, now):
        if direction != "evse→ev":
            return None
        msg = exi.decode(frame.payload, schema_of_payload(frame.payload_type, frame.payload_type != 0x8001))
        if name_of(msg) == name:
            seen["n"] += 1
            if seen["n"] == nth:
                return []
        return None
    return tamper


def sent_at(pair, name: str, nth: int = 1) -> float:
    return [t for t, d, n, _ in pair.ev_log if d == "tx" and n == name][nth - 1]


@pytest.mark.parametrize("service,request_name,nth,timeout", [
    ("DC_BPT", "SessionSetupReq", 1, 2.0),
    ("DC_BPT", "ServiceDiscoveryReq", 1, 2.0),
    ("DC_BPT", "ServiceDetailReq", 1, 5.0),
    ("DC_BPT", "DC_CableCheckReq", 1, 2.0),
    ("DC_BPT", "DC_ChargeLoopReq", 3, 0.5),
    ("AC_BPT", "AC_ChargeLoopReq", 3, 0.5),
    ("DC_BPT", "DC_WeldingDetectionReq", 1, 2.0),
])
def test_message_timeouts(service, request_name, nth, timeout):
    p = make_pair(service, loops=5)
    p.run(tamper=drop_response(request_name[:-3] + "Res", nth))
    r = p.ev.result
    assert not r.ok and r.reason == f"timeout waiting for {request_name[:-3]}Res"
    failed_at = p.ev_log[-1][0]
    assert p.ev.closed and not p.ev.contactors_closed
    # the car gave up exactly at its timer; the charger heard the hang-up and de-energised
    de = [e.time for e in p.stage.history.events if e.kind == "deenergise"][-1]
    assert de == pytest.approx(sent_at(p, request_name, nth) + timeout)
    assert failed_at <= de
    assert not p.stage.measurements(de).contactors_closed
    assert p.secc.end_reason.startswith("connection lost")


def _patient_secc(**kw) -> SECCConfig:
    return SECCConfig(ongoing_timeout=1e6, cable_check_timeout=1e6, precharge_timeout=1e6, **kw)


@pytest.mark.parametrize("stage_kw,request_name,limit,what", [
    ({"authorization_delay": 1e6}, "AuthorizationReq", 60.0, "Authorization still ongoing after 60 s"),
    ({"isolation_time": 1e6}, "DC_CableCheckReq", 40.0, "CableCheck still ongoing after 40 s"),
    ({"voltage_ramp": 1.0}, "DC_PreChargeReq", 10.0, "PreCharge did not reach the battery voltage in time"),
])
def test_phase_timeouts(stage_kw, request_name, limit, what):
    charger = simulated_charger(kind="DC", **stage_kw)
    p = make_pair(charger=charger, secc_config=_patient_secc())
    p.run()
    assert p.ev.result.reason == what
    first = next(t for t, d, n, _ in p.secc_log if n == request_name)
    last = [t for t, d, n, _ in p.secc_log if n == request_name][-1]
    assert limit - 0.2 <= last - first <= limit + 0.2
    assert not p.stage.measurements(1e9).contactors_closed


def test_communication_setup_timeout():
    """No SessionSetupRes within 20 s of plug-in, even with slow message timers."""
    slow = EVTimers(message=100.0)
    p = make_pair(timers=slow)
    p.run(tamper=drop_response("SessionSetupRes"))
    assert p.ev.result.reason.startswith("communication setup timeout")
    assert p.ev_log[0][0] == 0.0
    de = [e.time for e in p.stage.history.events if e.kind == "deenergise"][-1]
    assert de == pytest.approx(20.0)

"""Faults injected at every state of the charger's ISO 15118-2 and DIN SPEC 70121 sessions: a
dropped connection, a malformed message, an out-of-order request, a wrong SessionID, a silent
car, a hardware fault, an emergency stop, a stop asked from above. Each must de-energise the
power stage no later than its deadline, end the session with the right response code (schema-
valid, every mandatory field filled), and leave the charger ready for the next car."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iso15118 import exi
from iso15118.evcc import EVTimers
from iso15118.evcc import handlers_iso2 as ev
from iso15118.pair import CUT
from iso15118.protocols import unwrap, wrap
from iso15118.secc import State
from iso15118.secc.din import TABLE as DIN_TABLE
from iso15118.secc.iso2 import TABLE as ISO2_TABLE
from iso15118.v2gtp import PayloadType, V2GTPFrame

from .helpers import make_pair

DC_STATES = [State.WAIT_SAP, State.WAIT_SESSION_SETUP, State.WAIT_SERVICE_DISCOVERY, State.WAIT_SERVICE_SELECTION,
             State.WAIT_AUTH, State.WAIT_CPD, State.WAIT_CABLE_CHECK, State.WAIT_PRECHARGE, State.WAIT_POWER_DELIVERY,
             State.CHARGE_LOOP, State.WAIT_WELDING]
AC_STATES = [State.WAIT_CPD, State.WAIT_POWER_DELIVERY, State.CHARGE_LOOP, State.WAIT_SESSION_STOP]
CASES = [("din", "DC", s) for s in DC_STATES] + [("iso2", "DC", s) for s in DC_STATES] + \
    [("iso2", "AC", s) for s in AC_STATES]
IDS = [f"{p}-{k}-{s.value}" for p, k, s in CASES]
TABLES = {"din": DIN_TABLE, "iso2": ISO2_TABLE}


class Injector:
    """Applies ``fault`` to the first frame the car sends while the charger is in ``state``."""

    def __init__(self, pair, protocol: str, state: State, fault: str):
        self.pair, self.protocol, self.state, self.fault = pair, protocol, state, fault
        self.fired_at: float | None = None
        self.injected: str | None = None

    def tamper(self, direction: str, frame: V2GTPFrame, now: float):
        if direction != "ev→evse" or self.fired_at is not None and self.fault != "silence":
            return None
        if self.fired_at is not None:  # silence: the car's later frames are lost too
            return []
        if self.pair.secc.state is not self.state:
            return None
        self.fired_at = now
        if self.fault == "drop":
            return CUT
        if self.fault == "silence":
            return []
        if self.fault == "malformed":
            return [V2GTPFrame(frame.payload_type, frame.payload[: len(frame.payload) // 2] + b"\xff\xff")]
        if self.fault == "out_of_order":
            sid = self.pair.secc.ctx.session_id or bytes(8)
            out = wrap(self.protocol, self._out_of_order(now), sid)
            self.injected = unwrap(out)[0]
            return [V2GTPFrame(PayloadType.EXI, exi.encode(out, self.protocol))]
        msg = exi.decode(frame.payload, self.protocol)
        name, element, header = unwrap(msg)
        wrong = bytes(8) if header.SessionID != bytes(8) else b"\x01" * 8  # wrong_session
        header = replace(header, SessionID=wrong)
        out = wrap(self.protocol, element, header.SessionID, name=name)
        self.injected = unwrap(out)[0]
        return [V2GTPFrame(PayloadType.EXI, exi.encode(out, self.protocol))]

    def _out_of_order(self, now: float):
        car = self.pair.ev
        if car.protocol is None:  # before the handshake: use the protocol the car is about to get
            from iso15118.protocols import PROTOCOLS
            car.use(PROTOCOLS[self.protocol])
        for build in (lambda: ev.welding_detection_req(car, now), lambda: ev.session_setup_req(car, now),
                      lambda: ev.cable_check_req(car, now)):
            sid = car.session_id
            element = build()
            car.session_id = sid  # session_setup_req resets it
            name = type(element).__name__
            name = "SessionStopReq" if name == "SessionStop" else name
            if TABLES[self.protocol].get((self.state, name)) is None:
                return element
        raise AssertionError("no out-of-order candidate")


def _run(protocol: str, kind: str, state: State, fault: str, **kw):
    pair = make_pair(kind, protocols=(protocol,), transport="tcp", setpoint=6000.0, loops=6, **kw)
    inj = Injector(pair, protocol, state, fault)
    pair.run(tamper=inj.tamper)
    assert inj.fired_at is not None, f"the session never reached {state}"
    return pair, inj


def _assert_de_energised(pair, by: float) -> None:
    stage = pair.stage
    m = stage.measurements(by)
    assert not m.contactors_closed and m.current == 0 and m.power == 0
    de = [e.time for e in stage.history.events if e.kind == "deenergise"]
    assert de and de[-1] <= by + 1e-9
    last = max(i for i, e in enumerate(stage.history.events) if e.kind == "deenergise")
    assert all(e.kind in ("deenergise", "contactors") and e.value in (None, False)
               for e in stage.history.events[last:])


def _last_response(pair):
    """The charger's last message: its element name, the element, schema-valid."""
    _, direction, name, msg = pair.secc_log[-1]
    assert direction == "tx"
    schema = "apphand" if name.startswith("supportedAppProtocol") else pair.secc.protocol.schema
    assert exi.decode(exi.encode(msg, schema), schema) == msg
    return name, unwrap(msg)[1]


def _next_car_is_served(pair, protocol: str, kind: str) -> None:
    nxt = make_pair(kind, protocols=(protocol,), transport="tcp", setpoint=6000.0, loops=2, charger=pair.charger,
                    now=1000.0)
    nxt.run(start=1000.0)
    assert nxt.ev.result.ok, nxt.ev.result.reason


@pytest.mark.parametrize("protocol,kind,state", CASES, ids=IDS)
def test_connection_drop(protocol, kind, state):
    pair, inj = _run(protocol, kind, state, "drop")
    assert pair.secc.closed and pair.secc.end_reason.startswith("connection lost")
    assert not pair.ev.result.ok
    _assert_de_energised(pair, inj.fired_at)
    _next_car_is_served(pair, protocol, kind)


@pytest.mark.parametrize("protocol,kind,state", CASES, ids=IDS)
def test_malformed_message(protocol, kind, state):
    pair, inj = _run(protocol, kind, state, "malformed")
    assert pair.secc.closed and "undecodable" in pair.secc.end_reason
    assert not pair.ev.result.ok
    _assert_de_energised(pair, inj.fired_at + 0.01)
    _next_car_is_served(pair, protocol, kind)


SEQUENCE_CASES = [c for c in CASES if c[2] is not State.WAIT_SAP]


@pytest.mark.parametrize("protocol,kind,state", SEQUENCE_CASES, ids=[f"{p}-{k}-{s.value}" for p, k, s in SEQUENCE_CASES])
def test_out_of_order_request(protocol, kind, state):
    pair, inj = _run(protocol, kind, state, "out_of_order")
    assert pair.secc.closed
    _assert_de_energised(pair, inj.fired_at + 0.01)
    name, res = _last_response(pair)
    assert name == inj.injected[:-3] + "Res"
    assert str(res.ResponseCode) == "FAILED_SequenceError"
    assert not pair.ev.result.ok
    _next_car_is_served(pair, protocol, kind)


def test_before_the_handshake_only_supported_app_protocol_is_read():
    """A DIN message before the handshake travels in 0x8001 like SupportedAppProtocol: it is read
    as one, does not decode, and the connection ends."""
    pair, inj = _run("din", "DC", State.WAIT_SAP, "out_of_order")
    assert pair.secc.end_reason.startswith("undecodable apphand message")
    _assert_de_energised(pair, inj.fired_at + 0.01)


WRONG_ID_CASES = [c for c in CASES if c[2] not in (State.WAIT_SAP, State.WAIT_SESSION_SETUP)]


@pytest.mark.parametrize("protocol,kind,state", WRONG_ID_CASES, ids=[f"{p}-{k}-{s.value}" for p, k, s in WRONG_ID_CASES])
def test_wrong_session_id(protocol, kind, state):
    pair, inj = _run(protocol, kind, state, "wrong_session")
    name, res = _last_response(pair)
    assert str(res.ResponseCode) == "FAILED_UnknownSession" and name == inj.injected[:-3] + "Res"
    _assert_de_energised(pair, inj.fired_at + 0.01)
    _next_car_is_served(pair, protocol, kind)


PATIENT_EV = EVTimers(message=1e4, service_detail=1e4, charge_loop=1e4, current_demand=1e4, ongoing=1e5,
                      cable_check=1e5, precharge=1e5, precharge_iso2=1e5, communication_setup=1e5)


@pytest.mark.parametrize("protocol,kind,state", CASES, ids=IDS)
def test_silent_car_times_out(protocol, kind, state):
    """The car stops talking: after 2 s while power may flow, the sequence timeout (60 s)
    otherwise, the communication setup timer (20 s) before SessionSetup."""
    pair, inj = _run(protocol, kind, state, "silence", timers=PATIENT_EV)
    setup = state in (State.WAIT_SAP, State.WAIT_SESSION_SETUP)
    assert pair.secc.end_reason.startswith("communication setup timeout" if setup else "sequence timeout")
    last_tx = max((t for t, d, _, _ in pair.secc_log if d == "tx"), default=0.0)
    timeout = 2.0 if state is State.CHARGE_LOOP else 60.0
    expected = 20.0 if setup else last_tx + timeout
    de = [e.time for e in pair.stage.history.events if e.kind == "deenergise"][-1]
    assert de == pytest.approx(expected)
    _assert_de_energised(pair, expected)
    _next_car_is_served(pair, protocol, kind)


GUARDED = {"din": [State.WAIT_CABLE_CHECK, State.WAIT_PRECHARGE, State.WAIT_POWER_DELIVERY, State.CHARGE_LOOP],
           "iso2": [State.WAIT_CABLE_CHECK, State.WAIT_PRECHARGE, State.WAIT_POWER_DELIVERY, State.CHARGE_LOOP]}
FAULT_CASES = [(p, "DC", s, f) for p, states in GUARDED.items() for s in states
               for f in ("estop", "isolation", "supervisor")] + \
    [("iso2", "AC", s, f) for s in (State.WAIT_POWER_DELIVERY, State.CHARGE_LOOP) for f in ("estop", "supervisor")]


@pytest.mark.parametrize("protocol,kind,state,fault", FAULT_CASES,
                         ids=[f"{p}-{k}-{s.value}-{f}" for p, k, s, f in FAULT_CASES])
def test_a_fault_ends_the_session_with_failed_and_stop_charging(protocol, kind, state, fault):
    """A hardware fault, an emergency stop or a stop asked from above, seen when the car's
    request in ``state`` arrives: FAILED, EVSE status shutdown and StopCharging, de-energised."""
    pair = make_pair(kind, protocols=(protocol,), transport="tcp", setpoint=6000.0, loops=6)
    fired = {}

    def tamper(direction, frame, now):
        if direction == "ev→evse" and pair.secc.state is state and not fired:
            fired["at"] = now
            stage, sup = pair.stage, pair.supervisor
            if fault == "estop":
                stage.emergency_stop("button", now)
            elif fault == "isolation":
                stage.isolation_fault = True
            else:
                sup.stop_requested = lambda t: "RequestStopTransaction"
        return None
    pair.run(tamper=tamper)
    assert fired, f"never reached {state}"
    name, res = _last_response(pair)
    assert str(res.ResponseCode) == "FAILED"
    status = res.DC_EVSEStatus if kind == "DC" else res.AC_EVSEStatus
    assert str(status.EVSENotification) == "StopCharging"
    if kind == "DC":
        assert str(status.EVSEStatusCode) == ("EVSE_EmergencyShutdown" if fault == "estop" else "EVSE_Shutdown")
    _assert_de_energised(pair, fired["at"] + 0.01)
    ended = pair.supervisor.events[-1][1]
    assert ended.reason.value == {"estop": "EmergencyStop", "isolation": "Fault", "supervisor": "StoppedBySupervisor"}[fault]
    assert not pair.ev.result.ok


@pytest.mark.parametrize("protocol", ["din", "iso2"])
def test_the_charge_loop_timeout_is_a_quarter_second(protocol):
    """The car's CurrentDemand timer (0.25 s): a charger that answers late is left."""
    pair = make_pair("DC", protocols=(protocol,), transport="tcp", setpoint=6000.0, loops=6)
    seen = {"n": 0}

    def tamper(direction, frame, now):
        if direction == "evse→ev" and pair.ev.protocol is not None and \
                exi.decode(frame.payload, protocol).Body.CurrentDemandRes is not None:
            seen["n"] += 1
            if seen["n"] == 3:
                return []
        return None
    pair.run(tamper=tamper)
    assert pair.ev.result.reason == "timeout waiting for CurrentDemandRes"
    sent = [t for t, d, n, _ in pair.ev_log if d == "tx" and n == "CurrentDemandReq"][2]
    failed = [t for t, d, n, _ in pair.ev_log][-1]
    assert pair.ev.next_deadline() is None and not pair.ev.contactors_closed
    # the charger sees the car hang up and de-energises
    de = [e.time for e in pair.stage.history.events if e.kind == "deenergise"][-1]
    assert de == pytest.approx(sent + 0.25, abs=1e-6) and failed <= de


@pytest.mark.parametrize("protocol", ["din", "iso2"])
def test_the_precharge_timer_is_seven_seconds(protocol):
    from iso15118.secc import simulated_charger

    charger = simulated_charger(kind="DC", setpoint_w=6000.0, voltage_ramp=10.0)  # far too slow
    pair = make_pair("DC", protocols=(protocol,), transport="tcp", charger=charger, loops=2)
    pair.run()
    assert pair.ev.result.reason == "PreCharge did not reach the battery voltage in time"
    first = [t for t, d, n, _ in pair.ev_log if n == "PreChargeReq"][0]
    last = [t for t, d, n, _ in pair.ev_log if n == "PreChargeRes"][-1]
    assert 7.0 < last - first < 7.3
    assert not pair.stage.measurements(1e6).contactors_closed

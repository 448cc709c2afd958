"""Faults injected at every state of the charger's session: a dropped connection, a malformed
message, an out-of-order request, a wrong SessionID, a silent car. Each must de-energise the
power stage (current zero, contactors open) no later than its deadline, end the session with
the right response code, and leave the charger ready for the next car."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iso15118 import exi
from iso15118.evcc import EVTimers
from iso15118.messages import name_of
from iso15118.pair import CUT
from iso15118.secc import State
from iso15118.v2gtp import V2GTPFrame

from .helpers import make_pair

DC_STATES = [State.WAIT_SAP, State.WAIT_SESSION_SETUP, State.WAIT_AUTH_SETUP, State.WAIT_AUTH,
             State.WAIT_SERVICE_DISCOVERY, State.WAIT_SERVICE_SELECTION, State.WAIT_CPD, State.WAIT_SCHEDULE,
             State.WAIT_CABLE_CHECK, State.WAIT_PRECHARGE, State.WAIT_POWER_DELIVERY, State.CHARGE_LOOP,
             State.WAIT_WELDING]
AC_STATES = [State.WAIT_SCHEDULE, State.WAIT_POWER_DELIVERY, State.CHARGE_LOOP, State.WAIT_SESSION_STOP]
CASES = [("DC_BPT", s) for s in DC_STATES] + [("AC_BPT", s) for s in AC_STATES]
IDS = [f"{svc}-{st.value}" for svc, st in CASES]


class Injector:
    """Applies ``fault`` to the first frame the car sends while the charger is in ``state``."""

    def __init__(self, pair, state: State, fault: str):
        self.pair, self.state, self.fault = pair, state, fault
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
            req = self._out_of_order(now)
        else:  # wrong_session
            req = exi.decode(frame.payload, _schema(frame))
            wrong = bytes(8) if req.Header.SessionID != bytes(8) else b"\x01" * 8
            req = replace(req, Header=replace(req.Header, SessionID=wrong))
        self.injected = name_of(req)
        from iso15118.messages import payload_type_of, schema_of_message
        schema = schema_of_message(req)
        return [V2GTPFrame(payload_type_of(schema), exi.encode(req, schema))]

    def _out_of_order(self, now: float):
        from iso15118.secc.iso20 import TABLE
        ev = self.pair.ev
        candidates = [ev.power_delivery_req(now, "Start"), ev.session_setup_req(now)]
        ev.session_id = self.pair.secc.ctx.session_id  # session_setup_req resets it; keep the live one
        for req in candidates:
            req = replace(req, Header=replace(req.Header, SessionID=self.pair.secc.ctx.session_id or bytes(8)))
            if TABLE.get((self.state, name_of(req))) is None:
                return req
        raise AssertionError("no out-of-order candidate")


def _schema(frame):
    from iso15118.messages import schema_of_payload
    return schema_of_payload(frame.payload_type, True)


def _run(service: str, state: State, fault: str, **ev_kw):
    pair = make_pair(service, "dynamic", setpoint=-6000.0, loops=6, **ev_kw)
    inj = Injector(pair, state, fault)
    pair.run(tamper=inj.tamper)
    assert inj.fired_at is not None, f"the session never reached {state}"
    return pair, inj


def _assert_de_energised(pair, by: float) -> None:
    stage = pair.stage
    m = stage.measurements(by)
    assert not m.contactors_closed and m.current == 0 and m.power == 0
    de = [e.time for e in stage.history.events if e.kind == "deenergise"]
    assert de and de[-1] <= by + 1e-9
    # nothing was switched on after the final de-energise
    last = max(i for i, e in enumerate(stage.history.events) if e.kind == "deenergise")
    assert all(e.kind in ("deenergise", "contactors") and e.value in (None, False)
               for e in stage.history.events[last:])


def _next_car_is_served(pair, service: str) -> None:
    nxt = make_pair(service, "dynamic", setpoint=-6000.0, loops=2, charger=pair.charger, now=1000.0)
    nxt.run(start=1000.0)
    assert nxt.ev.result.ok, nxt.ev.result.reason


@pytest.mark.parametrize("service,state", CASES, ids=IDS)
def test_connection_drop(service, state):
    pair, inj = _run(service, state, "drop")
    assert pair.secc.closed and pair.secc.end_reason.startswith("connection lost")
    assert not pair.ev.result.ok
    _assert_de_energised(pair, inj.fired_at)
    _next_car_is_served(pair, service)


@pytest.mark.parametrize("service,state", CASES, ids=IDS)
def test_malformed_message(service, state):
    pair, inj = _run(service, state, "malformed")
    assert pair.secc.closed and "undecodable" in pair.secc.end_reason
    assert not pair.ev.result.ok
    _assert_de_energised(pair, inj.fired_at + 0.01)
    _next_car_is_served(pair, service)


@pytest.mark.parametrize("service,state", CASES, ids=IDS)
def test_out_of_order_request(service, state):
    pair, inj = _run(service, state, "out_of_order")
    assert pair.secc.closed
    _assert_de_energised(pair, inj.fired_at + 0.01)
    if state is State.WAIT_SAP:
        # before the handshake only SupportedAppProtocol may arrive: anything else is dropped
        assert "not allowed" in pair.secc.end_reason
    else:
        last = pair.secc_log[-1]
        assert last[1] == "tx" and last[2] == inj.injected[:-3] + "Res"
        assert str(last[3].ResponseCode) == "FAILED_SequenceError"
        # mandatory fields are filled: the failure response is a valid message
        assert exi.decode(exi.encode(last[3]), _schema_of(last[3])) == last[3]
    assert not pair.ev.result.ok
    _next_car_is_served(pair, service)


def _schema_of(msg):
    from iso15118.messages import schema_of_message
    return schema_of_message(msg)


WRONG_ID_CASES = [c for c in CASES if c[1] not in (State.WAIT_SAP, State.WAIT_SESSION_SETUP)]


@pytest.mark.parametrize("service,state", WRONG_ID_CASES, ids=[f"{s}-{t.value}" for s, t in WRONG_ID_CASES])
def test_wrong_session_id(service, state):
    pair, inj = _run(service, state, "wrong_session")
    last = pair.secc_log[-1]
    assert str(last[3].ResponseCode) == "FAILED_UnknownSession"
    assert last[2] == inj.injected[:-3] + "Res"
    _assert_de_energised(pair, inj.fired_at + 0.01)
    _next_car_is_served(pair, service)


PATIENT_EV = EVTimers(message=1e4, service_detail=1e4, charge_loop=1e4, ongoing=1e5, cable_check=1e5,
                      precharge=1e5, communication_setup=1e5)


@pytest.mark.parametrize("service,state", CASES, ids=IDS)
def test_silent_car_times_out(service, state):
    """The car stops talking (and never hangs up): the charger's own timer ends the session,
    after 2 s while power may flow, 60 s otherwise; before SessionSetup the communication setup
    timer, 20 s from the connection (no car waits longer for its SessionSetupRes)."""
    pair, inj = _run(service, state, "silence", timers=PATIENT_EV)
    setup = state in (State.WAIT_SAP, State.WAIT_SESSION_SETUP)
    assert pair.secc.end_reason.startswith("communication setup timeout" if setup else "sequence timeout")
    last_tx = max((t for t, d, _, _ in pair.secc_log if d == "tx"), default=0.0)  # 0: session start
    energized_states = (State.CHARGE_LOOP,)
    timeout = 2.0 if state in energized_states else 60.0
    expected = 20.0 if setup else last_tx + timeout  # the pair's session starts at 0
    de = [e.time for e in pair.stage.history.events if e.kind == "deenergise"][-1]
    assert de == pytest.approx(expected)
    _assert_de_energised(pair, expected)
    _next_car_is_served(pair, service)

"""SECC handlers one by one (each a plain function of request, session and time), fed the
reference vectors' golden EXI bytes: each gives the response the state calls for, with every
mandatory field, encodable."""

from __future__ import annotations

import pytest

from iso15118 import exi
from iso15118.protocols import ISO20
from iso15118.secc import SECCConfig, SECCSession, simulated_charger, State
from iso15118.secc import handlers as h
from iso15118.secc.controller import EVSELimits
from iso15118.units import val
from tests.conftest import load_vectors

VEC = {v["name"]: v for v in load_vectors("reference.json")}
SID = bytes.fromhex("5a2cde53f701d4ac")  # the SessionID in the vectors


def golden(name: str):
    v = VEC[name]
    return exi.decode(bytes.fromhex(v["exi_hex"]), v["namespace"])


def session(state: State, *, bpt=True, mode="Scheduled", setpoint=-20000.0, **ctx) -> SECCSession:
    stage = simulated_charger(kind="DC", setpoint_w=setpoint,
                                stage_limits=EVSELimits(max_charge_current=200, max_discharge_current=200,
                                                        max_voltage=920, max_charge_power=50000,
                                                        max_discharge_power=20000))
    s = SECCSession(stage, SECCConfig(), now=0.0, rng=lambda n: bytes(range(1, n + 1)))
    s.use(ISO20)  # as SupportedAppProtocol would have chosen
    s.state = state
    s.ctx.session_id, s.ctx.kind, s.ctx.bpt, s.ctx.control_mode = SID, "DC", bpt, mode
    for k, v in ctx.items():
        setattr(s.ctx, k, v)
    s._schema = "iso20_dc"
    return s


def encodes(reply) -> None:
    msg = reply.response
    schema = "iso20_dc" if type(msg).__name__.startswith("DC_") else "iso20_cm"
    assert exi.decode(exi.encode(msg, schema), schema) == msg


def test_session_setup_gives_a_new_eight_byte_session():
    s = SECCSession(simulated_charger(), SECCConfig(), now=0.0, rng=lambda n: bytes(range(1, n + 1)))
    s.state, s.ctx.kind = State.WAIT_SESSION_SETUP, "DC"
    reply = h.session_setup(golden("SessionSetupReq"), s, 1.0)
    res = reply.response
    assert str(res.ResponseCode) == "OK_NewSessionEstablished" and res.Header.SessionID == bytes(range(1, 9))
    assert res.EVSEID == "DE*V2H*E0001" and reply.next_state is State.WAIT_AUTH_SETUP
    assert s.ctx.evcc_id == "WMIV1234567890ABCDEX"
    encodes(reply)


def test_bpt_charge_parameter_discovery_keeps_the_cars_limits():
    s = session(State.WAIT_CPD, mode="Dynamic")
    reply = h.dc_charge_parameter_discovery(golden("DC_ChargeParameterDiscoveryReq_BPT"), s, 1.0)
    res = reply.response
    assert str(res.ResponseCode) == "OK" and reply.next_state is State.WAIT_SCHEDULE
    mode = res.BPT_DC_CPDResEnergyTransferMode
    assert val(mode.EVSEMaximumDischargePower) == 20000 and val(mode.EVSEMaximumVoltage) == 920
    ev = s.ctx.ev
    assert (ev["max_charge_power"], ev["max_discharge_power"], ev["max_discharge_current"]) == (150000, 11000, 30)
    assert s.supervisor.needs.service == "DC_BPT"
    encodes(reply)


def _energised(s: SECCSession, voltage: float) -> None:
    c = s.stage
    c.close_contactors(0.0)
    c.set_target(h.PowerCommand(voltage=voltage), 0.0)
    c.measurements(5.0)  # the output has ramped to the battery's voltage
    s.ctx.authorized = s.ctx.precharge_done = s.ctx.energized = True


def test_bpt_scheduled_loop_follows_the_cars_target_current():
    """BPT_Scheduled, the car asks for +20 A at 400 V; the setpoint asks for discharge: a
    scheduled car on the Charge channel gets no discharge, and never more than it asked."""
    s = session(State.CHARGE_LOOP, ev={"max_charge_power": 150000, "max_discharge_power": 11000,
                                       "max_charge_current": 300, "max_discharge_current": 30,
                                       "max_voltage": 900})
    s.supervisor.setpoint_w = 8000.0
    _energised(s, 400.0)
    reply = h.dc_charge_loop(golden("DC_ChargeLoopReq_bpt_min"), s, 5.0)
    res = reply.response
    assert str(res.ResponseCode) == "OK" and res.BPT_Scheduled_DC_CLResControlMode is not None
    assert val(res.EVSEPresentCurrent) == pytest.approx(20.0)  # 8 kW / 400 V = 20 A, = the car's target
    assert reply.next_state is State.CHARGE_LOOP
    encodes(reply)


def test_scheduled_full_loop_reports_soc_and_meter():
    s = session(State.CHARGE_LOOP, bpt=False, setpoint=50000.0,
                ev={"max_charge_power": 150000, "max_charge_current": 300, "max_voltage": 900})
    _energised(s, 398.7)
    reply = h.dc_charge_loop(golden("DC_ChargeLoopReq_scheduled_full"), s, 5.0)
    res = reply.response
    target = val(golden("DC_ChargeLoopReq_scheduled_full").Scheduled_DC_CLReqControlMode.EVTargetCurrent)
    assert 0 < val(res.EVSEPresentCurrent) <= target + 1e-9
    assert s.ctx.ev_soc == 42 and s.ctx.ev_min_soc == 20
    assert res.MeterInfo is not None and res.MeterInfo.MeterID == "V2H-METER-1"  # MeterInfoRequested
    encodes(reply)


def test_a_loop_in_the_wrong_control_mode_fails_with_a_complete_response():
    s = session(State.CHARGE_LOOP, mode="Dynamic")
    _energised(s, 400.0)
    reply = h.dc_charge_loop(golden("DC_ChargeLoopReq_bpt_min"), s, 5.0)
    assert str(reply.response.ResponseCode) == "FAILED" and reply.terminate
    assert reply.response.BPT_Dynamic_DC_CLResControlMode is not None
    encodes(reply)


def test_out_of_order_golden_request_is_a_sequence_error():
    s = session(State.WAIT_AUTH_SETUP)
    from iso15118.messages import payload_type_of
    from iso15118.v2gtp import V2GTPFrame
    out = s.on_frame(V2GTPFrame(payload_type_of("iso20_dc"), bytes.fromhex(VEC["DC_ChargeLoopReq_bpt_min"]["exi_hex"])),
                     1.0)
    res = exi.decode(out[0].payload, "iso20_dc")
    assert type(res).__name__ == "DC_ChargeLoopRes" and str(res.ResponseCode) == "FAILED_SequenceError"
    assert s.closed and not s.stage.measurements(1.0).contactors_closed

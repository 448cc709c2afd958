"""DC energy transfer starts only at the battery's voltage, the loop reports what really flows,
and the limit-achieved flags compare with the limit of the direction of the flow. In memory
(``run_pair``), the car's rule-breaking in ``attackers.py``."""

from __future__ import annotations

import pytest

from iso15118.evcc import Battery, EVCCConfig, EVCCSession
from iso15118.pair import run_pair
from iso15118.secc import EVSELimits, PowerCommand, SECCConfig, SECCSession, simulated_charger
from iso15118.units import val

from .attackers import EarlyPreChargeCar


def _run(car_cls=EVCCSession, *, setpoint=-6000.0, limits: EVSELimits | None = None, config: SECCConfig | None = None,
         loops: int = 8, ramp: float = 400.0, **car_kw):
    charger = simulated_charger(kind="DC", setpoint_w=setpoint, stage_limits=limits or EVSELimits(), voltage_ramp=ramp)
    secc = SECCSession(charger, config or SECCConfig(), now=0.0)
    car = car_cls(Battery(soc=60.0), EVCCConfig(service="DC_BPT", loops=loops), **car_kw)  # battery at 378 V
    log: list = []
    secc.observer = lambda *entry: log.append(entry)
    run_pair(secc, car)
    return charger, secc, car, log


def _loops(log):
    """(request, response) of every DC_ChargeLoop the charger answered."""
    out, req = [], None
    for _, direction, name, msg in log:
        if name == "DC_ChargeLoopReq":
            req = msg
        elif name == "DC_ChargeLoopRes":
            out.append((req, msg))
    return out


def test_power_delivery_refused_while_the_output_is_far_from_the_battery():
    """The attack as found: the car ends PreCharge at the first answer (the output still near
    0 V, its battery at 378 V) and asks for PowerDelivery(Start). The charger refuses with
    FAILED_PowerDeliveryNotApplied, never connects the battery, never drives a current."""
    charger, secc, car, log = _run(EarlyPreChargeCar, window=None)
    assert car.precharge_voltages[0] < 100  # it really ended far from its 378 V
    res = [m for _, d, n, m in log if n == "PowerDeliveryRes"]
    assert [str(r.ResponseCode) for r in res] == ["FAILED_PowerDeliveryNotApplied"]
    assert not car.result.ok and "FAILED_PowerDeliveryNotApplied" in car.result.reason
    assert "the car at 378 V (tolerance 20 V)" in secc.end_reason
    assert not [e for e in charger.stage.history.events if e.kind == "ev_connected"]
    assert all(not e.value.current for e in charger.stage.history.events if e.kind == "target")
    m = charger.stage.measurements(1e6)
    assert not m.contactors_closed and m.current == 0 and m.power == 0


def test_the_tolerance_is_configurable():
    """A slow charger (50 V/s): the car ends PreCharge 5-15 V short. Within the default 20 V that
    is accepted; with a 5 V tolerance it is refused."""
    _, _, car, _ = _run(EarlyPreChargeCar, window=15.0, ramp=50.0)
    assert car.result.ok, car.result.reason
    _, _, car, _ = _run(EarlyPreChargeCar, window=15.0, ramp=50.0, config=SECCConfig(precharge_tolerance=5.0))
    assert not car.result.ok and "FAILED_PowerDeliveryNotApplied" in car.result.reason
    with pytest.raises(ValueError):
        SECCConfig(precharge_tolerance=0)


@pytest.mark.parametrize("car_cls,kw", [(EVCCSession, {}), (EarlyPreChargeCar, {"window": 15.0})],
                         ids=["car-waits-10V", "car-ends-within-15V"])
@pytest.mark.parametrize("setpoint", [-6000.0, 6000.0])
def test_the_loop_reports_the_batterys_voltage_and_the_asked_power(car_cls, kw, setpoint):
    """Once the car's contactors are closed its battery holds the output: every
    DC_ChargeLoopRes reports the car's own voltage, and voltage × current is the setpoint (it
    used to report the output still ramping, 82 → 250 V, and so a fraction of the power)."""
    charger, secc, car, log = _run(car_cls, setpoint=setpoint, **kw)
    assert car.result.ok, car.result.reason
    (before, battery), = [e.value for e in charger.stage.history.events if e.kind == "ev_connected"]
    assert abs(before - battery) <= 20.0
    loops = _loops(log)
    assert len(loops) == 8
    for req, res in loops:
        v = val(res.EVSEPresentVoltage)
        assert v == pytest.approx(val(req.EVPresentVoltage), abs=0.01)
        assert v * val(res.EVSEPresentCurrent) == pytest.approx(setpoint, rel=0.002)


def _flags(log):
    return [(res.EVSEPowerLimitAchieved, res.EVSECurrentLimitAchieved, res.EVSEVoltageLimitAchieved)
            for _, res in _loops(log)]


@pytest.mark.parametrize("setpoint,limits,power_flag,current_flag", [
    # discharging at the discharge power limit (the charge limit is far away)
    (-6000.0, EVSELimits(max_discharge_power=3000.0), True, False),
    # discharging below the discharge limit, above the charge limit: not at a limit
    (-6000.0, EVSELimits(max_charge_power=2000.0, max_discharge_power=11000.0), False, False),
    # charging at the charge power limit
    (6000.0, EVSELimits(max_charge_power=3000.0), True, False),
    # charging below the charge limit, above the discharge limit: not at a limit
    (6000.0, EVSELimits(max_charge_power=11000.0, max_discharge_power=2000.0), False, False),
    # discharging at the discharge current limit (6 kW at 378 V wants 15.9 A)
    (-6000.0, EVSELimits(max_discharge_current=10.0), False, True),
    # discharging with a low charge current limit only: not at a limit
    (-6000.0, EVSELimits(max_charge_current=10.0), False, False),
], ids=["discharge-power", "discharge-under-charge-limit", "charge-power", "charge-under-discharge-limit",
        "discharge-current", "discharge-under-charge-current"])
def test_limit_achieved_flags_follow_the_direction_of_the_flow(setpoint, limits, power_flag, current_flag):
    charger, secc, car, log = _run(setpoint=setpoint, limits=limits)
    assert car.result.ok, car.result.reason
    assert set(_flags(log)) == {(power_flag, current_flag, False)}


def test_voltage_limit_achieved_when_the_battery_is_outside_the_chargers_range():
    from iso15118.messages import DC
    from iso15118.secc.handlers import dc_charge_loop
    from iso15118.secc.session import State
    from iso15118.units import rn

    charger = simulated_charger(kind="DC", setpoint_w=5000.0, stage_limits=EVSELimits(max_voltage=400.0))
    s = SECCSession(charger, SECCConfig(), now=0.0)
    s.state, s.ctx.kind, s.ctx.bpt, s.ctx.control_mode = State.CHARGE_LOOP, "DC", False, "Dynamic"
    s.ctx.session_id, s.ctx.authorized, s.ctx.precharge_done, s.ctx.energized = bytes(8), True, True, True
    s.ctx.ev = {"max_charge_power": 11000.0, "max_charge_current": 100.0, "max_voltage": 450.0}
    charger.stage.close_contactors(0.0)
    charger.stage.set_target(PowerCommand(voltage=400.0), 0.0)
    mode = DC.Dynamic_DC_CLReqControlMode(EVTargetEnergyRequest=rn(1000), EVMaximumEnergyRequest=rn(2000),
                                          EVMinimumEnergyRequest=rn(0), EVMaximumChargePower=rn(11000),
                                          EVMinimumChargePower=rn(0), EVMaximumChargeCurrent=rn(100),
                                          EVMaximumVoltage=rn(450), EVMinimumVoltage=rn(300))
    for battery_v, flag in ((420.0, True), (390.0, False)):
        req = DC.DC_ChargeLoopReq(Header=s.header(1.0), MeterInfoRequested=False, EVPresentVoltage=rn(battery_v),
                                  Dynamic_DC_CLReqControlMode=mode)
        assert dc_charge_loop(req, s, 1.0).response.EVSEVoltageLimitAchieved is flag

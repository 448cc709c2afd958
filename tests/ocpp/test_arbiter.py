"""The setpoint arbiter (ocpp_bridge.arbiter.decide): one pure function for the charge loop,
GetCompositeSchedule and the Scheduled plan."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_bridge.arbiter import PowerLimits, SetpointDecision, composite, decide
from ocpp_bridge.profiles import Profile

T0 = 1_800_000_000.0


def prof(period: dict, *, pid: int = 1, purpose: str = "TxDefaultProfile", stack: int = 0, **extra) -> Profile:
    return Profile.parse({"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
                          "chargingProfileKind": "Relative", "chargingSchedule": [{
                              "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, **period}]}],
                          **extra})


DISCHARGE = prof({"operationMode": "CentralSetpoint", "setpoint": -5000.0, "dischargeLimit": -6000.0},
                 maxOfflineDuration=60)


def test_online_the_profile_decides_with_its_limits_and_reason():
    d = decide([DISCHARGE], wall=T0, tx_start=T0, offline_for=0.0, default_w=3000.0)
    assert (d.power_w, d.discharge_limit_w, d.source, d.mode, d.profile_id) == (-5000.0, -6000.0, "profile",
                                                                                  "CentralSetpoint", 1)
    assert d.reason == "profile 1 CentralSetpoint" and not d.grid_forming


def test_offline_past_max_offline_the_safe_default_never_discharges():
    d = decide([DISCHARGE], wall=T0, tx_start=T0, offline_for=61.0, default_w=3000.0)
    assert (d.power_w, d.discharge_limit_w, d.source) == (3000.0, 0.0, "offline")


def test_islanded_the_charger_forms_the_island_whatever_the_csms_state():
    """The transfer switch isolates the grid: offline or not, the island keeps its power, within
    the last discharge limit, and nothing flows into the car from the island."""
    for offline in (0.0, 61.0, 86400.0):
        d = decide([DISCHARGE], wall=T0, tx_start=T0, offline_for=offline, default_w=3000.0, islanded=True)
        assert (d.source, d.mode, d.power_w, d.discharge_limit_w) == ("island", "GridForming", -5000.0, -6000.0)
        assert d.grid_forming
    charging = prof({"operationMode": "CentralSetpoint", "setpoint": 4000.0})
    d = decide([charging], wall=T0, tx_start=T0, offline_for=0.0, default_w=3000.0, islanded=True,
               limits=PowerLimits(max_discharge_w=7000.0))
    assert d.power_w == 0.0 and d.discharge_limit_w == -7000.0  # no profile limit: the session's


def test_limits_of_the_car_and_charger_bound_the_decision():
    d = decide([DISCHARGE], wall=T0, tx_start=T0, offline_for=0.0, default_w=3000.0,
               limits=PowerLimits(max_charge_w=2000.0, max_discharge_w=4000.0))
    assert (d.power_w, d.discharge_limit_w) == (-4000.0, -4000.0)
    d = decide([], wall=T0, tx_start=None, offline_for=0.0, default_w=7000.0, limits=PowerLimits(max_charge_w=2000.0))
    assert (d.power_w, d.source, d.charge_limit_w) == (2000.0, "default", 2000.0)


def test_the_composite_schedule_is_made_of_decisions():
    periods = composite([DISCHARGE], start=T0, duration=3600, tx_start=T0, default_w=3000.0)
    assert periods == [{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -5000.0}]


power = st.floats(-4e6, 4e6, allow_nan=False)
limit = st.floats(0, 4e6, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(setpoint=power, lim=st.one_of(st.none(), limit), dlim=st.one_of(st.none(), st.floats(-4e6, 0)),
       external=st.one_of(st.none(), power, st.just(math.nan), st.just(math.inf)),
       mode=st.sampled_from(["CentralSetpoint", "ExternalSetpoint", "ExternalLimits", "ChargingOnly", "Idle"]),
       max_c=limit, max_d=limit, offline=st.floats(0, 1e6), islanded=st.booleans(), default=st.floats(0, 3e6))
def test_every_decision_is_finite_and_within_its_limits(setpoint, lim, dlim, external, mode, max_c, max_d, offline,
                                                        islanded, default):
    period = {"operationMode": mode, "setpoint": setpoint}
    if lim is not None and 0 <= lim <= 3.75e6:
        period["limit"] = lim
    if dlim is not None and -3.75e6 <= dlim:
        period["dischargeLimit"] = dlim
    if abs(setpoint) > 3.75e6:
        period["setpoint"] = math.copysign(3.75e6, setpoint)
    d = decide([prof(period, maxOfflineDuration=30)], wall=T0, tx_start=T0, offline_for=offline,
               default_w=min(default, 3.75e6), external=external, islanded=islanded,
               limits=PowerLimits(max_charge_w=max_c, max_discharge_w=max_d))
    assert all(math.isfinite(x) for x in (d.power_w, d.charge_limit_w, d.discharge_limit_w))
    assert d.discharge_limit_w <= d.power_w <= d.charge_limit_w or d.grid_forming
    assert -max_d <= d.power_w <= max_c or d.grid_forming and d.power_w <= 0
    assert d.power_w >= 0 or d.source in ("profile", "external", "island")  # only a CSMS says discharge


def test_hand_written_inits_match_the_dataclass_fields():
    """SetpointDecision and PowerCommand write their __init__ by hand (speed): the same parameters,
    order and defaults as their fields, still frozen, equal and hashable like the generated one."""
    import dataclasses
    import inspect

    from iso15118.secc.controller import PowerCommand

    for cls in (SetpointDecision, PowerCommand):
        params = list(inspect.signature(cls).parameters.values())
        fields = dataclasses.fields(cls)
        assert [p.name for p in params] == [f.name for f in fields]
        for p, f in zip(params, fields):
            assert (p.default is inspect.Parameter.empty) == (f.default is dataclasses.MISSING)
            if f.default is not dataclasses.MISSING:
                assert p.default == f.default
    d = SetpointDecision(1.0, 2.0, -3.0, "profile", "CentralSetpoint", "why", 7)
    assert d == dataclasses.replace(d) and hash(d) == hash(dataclasses.replace(d)) and d.profile_id == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.power_w = 0.0  # type: ignore[misc]
    assert PowerCommand(1.0, ev_voltage=2.0) == PowerCommand(voltage=1.0, current=0.0, power=0.0, ev_voltage=2.0)

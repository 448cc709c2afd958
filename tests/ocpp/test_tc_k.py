"""Smart charging as a station that supports it is checked: part 6 of this edition has no such
test case (TC_K_38_CS is for a station without smart charging), so these are the checks the OCA
cases would make, from the SmartChargingCtrlr variables of OCPP 2.1 part 2 appendix 3
(ProfileStackLevel, PeriodsPerSchedule, Entries, RateUnit) and GetCompositeSchedule: stack levels,
validity windows, the composite's periods — through the OCTT harness (tests/ocpp/octt.py)."""

from __future__ import annotations

from .octt import OCTT, T0
from ocpp_bridge.core import iso


def _profile(pid: int, periods: list[dict], *, stack: int = 0, purpose: str = "TxDefaultProfile",
             unit: str = "W", kind: str = "Absolute", start: float = T0, **extra) -> dict:
    schedule = {"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": periods}
    if kind == "Absolute":
        schedule["startSchedule"] = iso(start)
    return {"evseId": 0, "chargingProfile": {"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose,
                                             "chargingProfileKind": kind, "chargingSchedule": [schedule], **extra}}


def _limit(watts: float, start: int = 0) -> dict:
    return {"startPeriod": start, "limit": watts}


def _set(o: OCTT, request: dict) -> dict:
    return o.ok("SetChargingProfile", request)


def _composite(o: OCTT, duration: int, unit: str | None = None) -> list[dict]:
    answer = o.ok("GetCompositeSchedule", {"evseId": 1, "duration": duration,
                                           **({"chargingRateUnit": unit} if unit else {})})
    assert answer["status"] == "Accepted"
    periods = answer["schedule"]["chargingSchedulePeriod"]
    assert [p["startPeriod"] for p in periods] == sorted(p["startPeriod"] for p in periods)  # part 6 §2.1 rule
    return periods


def test_stack_level_above_ProfileStackLevel_is_rejected():
    o = OCTT()
    top = int(o.get_variable("SmartChargingCtrlr", "ProfileStackLevel")["attributeValue"])
    assert _set(o, _profile(1, [_limit(5000)], stack=top))["status"] == "Accepted"
    answer = _set(o, _profile(2, [_limit(5000)], stack=top + 1))
    assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "InvalidValue"


def test_more_periods_than_PeriodsPerSchedule_are_rejected():
    o = OCTT()
    n = int(o.get_variable("SmartChargingCtrlr", "PeriodsPerSchedule")["attributeValue"])
    assert _set(o, _profile(1, [_limit(5000, 60 * i) for i in range(n)]))["status"] == "Accepted"
    assert _set(o, _profile(2, [_limit(5000, 60 * i) for i in range(n + 1)], stack=1))["status"] == "Rejected"


def test_Entries_counts_the_profiles_up_to_its_maxLimit():
    o = OCTT()
    assert o.get_variable("SmartChargingCtrlr", "Entries", "ChargingProfiles")["attributeValue"] == "0"
    for level in range(3):
        assert _set(o, _profile(level + 1, [_limit(1000)], stack=level))["status"] == "Accepted"
    assert o.get_variable("SmartChargingCtrlr", "Entries", "ChargingProfiles")["attributeValue"] == "3"
    assert _set(o, _profile(9, [_limit(1000)], stack=2))["status"] == "Accepted"   # replaces level 2's
    assert o.get_variable("SmartChargingCtrlr", "Entries", "ChargingProfiles")["attributeValue"] == "3"
    o.bridge.profiles.max_entries = 3                                           # a station with room for 3
    assert _set(o, _profile(10, [_limit(1000)], stack=3))["status"] == "Rejected"


def test_the_highest_stack_level_wins_and_the_composite_follows_it():
    o = OCTT()
    assert _set(o, _profile(1, [_limit(6000)], stack=0))["status"] == "Accepted"
    assert _set(o, _profile(2, [_limit(2000), _limit(4000, 600)], stack=1))["status"] == "Accepted"
    periods = _composite(o, 1200)
    assert [(p["startPeriod"], p["setpoint"]) for p in periods] == [(0, 2000.0), (600, 4000.0)]


def test_validity_windows_shape_the_composite():
    o = OCTT()
    assert _set(o, _profile(1, [_limit(6000)]))["status"] == "Accepted"
    assert _set(o, _profile(2, [_limit(1000)], stack=1, validFrom=iso(T0 + 300),
                            validTo=iso(T0 + 900)))["status"] == "Accepted"
    periods = _composite(o, 1200)
    assert [(p["startPeriod"], p["setpoint"]) for p in periods] == [(0, 6000.0), (300, 1000.0), (900, 6000.0)]


def test_RateUnit_A_is_read_in_watts_and_reported_in_either():
    """RateUnit lists A and W: an A schedule becomes W (DC: 400 V), the composite comes in both."""
    o = OCTT()
    assert o.get_variable("SmartChargingCtrlr", "RateUnit")["attributeValue"] == "A,W"
    assert _set(o, _profile(1, [{"startPeriod": 0, "limit": 10.0}], unit="A"))["status"] == "Accepted"
    assert [p["setpoint"] for p in _composite(o, 600)] == [4000.0]
    amps = _composite(o, 600, "A")
    assert amps[0]["setpoint"] == 10.0 and amps[0]["numberPhases"] == 1
    started = o.transaction()
    assert started["eventType"] == "Started"
    o.run(5)
    assert 3800 <= o.stage.measurements(o.now).power <= 4000                   # the car gets 10 A at ~400 V


def test_TxProfile_needs_a_transaction_and_ends_with_it():
    o = OCTT()
    tx = _profile(5, [_limit(3000)], purpose="TxProfile", kind="Relative")
    assert _set(o, tx)["status"] == "Rejected"
    started = o.transaction()
    assert _set(o, tx)["status"] == "Accepted"
    assert _composite(o, 60)[0]["setpoint"] == 3000.0
    o.ok("RequestStopTransaction", {"transactionId": started["transactionInfo"]["transactionId"]})
    o.run(5)
    o.unplug()
    o.run(1)
    assert 5 not in o.bridge.profiles.profiles

"""Charging profiles → the setpoint the charge loop reads: operation modes, bounds, stacking,
time, and the offline rules."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ocpp_bridge.arbiter import composite
from ocpp_bridge.profiles import ProfileRejected, ProfileStore

T0 = 1_800_000_000.0  # a wall-clock instant


def profile(periods, *, pid=1, purpose="TxProfile", stack=0, kind="Relative", start=None, **extra):
    schedule = {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": periods}
    if start is not None:
        schedule["startSchedule"] = start
    return {"id": pid, "stackLevel": stack, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
            "chargingSchedule": [schedule], **extra}


def store(*profiles, default=7000.0, tx="tx-1"):
    s = ProfileStore(default)
    for p in profiles:
        s.set(p, tx)
    return s


@pytest.mark.parametrize("period, watts", [
    ({"operationMode": "CentralSetpoint", "setpoint": -5000.0}, -5000.0),
    ({"operationMode": "CentralSetpoint", "setpoint": -9000.0, "dischargeLimit": -4000.0}, -4000.0),
    ({"operationMode": "CentralSetpoint", "setpoint": 9000.0, "limit": 3000.0}, 3000.0),
    ({"operationMode": "ExternalSetpoint", "setpoint": 2500.0}, 2500.0),
    ({"operationMode": "ChargingOnly", "limit": 4000.0}, 4000.0),
    ({"operationMode": "ChargingOnly"}, 7000.0),
    ({"limit": 1500.0}, 1500.0),  # no operationMode: ChargingOnly
    ({"operationMode": "Idle"}, 0.0),
    ({"operationMode": "ExternalLimits", "limit": 6000.0}, 6000.0),
])
def test_operation_modes(period, watts):
    s = store(profile([{"startPeriod": 0, **period}]))
    assert s.setpoint(T0 + 10, T0, 0.0)[0] == watts


def test_no_profile_gives_the_default_which_never_discharges():
    assert store().setpoint(T0, T0, 0.0) == (7000.0, "default")
    with pytest.raises(ValueError):
        ProfileStore(-1.0)


def test_periods_follow_the_transaction_clock():
    s = store(profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": 3000.0},
                       {"startPeriod": 60, "operationMode": "CentralSetpoint", "setpoint": -3000.0}]))
    assert s.setpoint(T0 + 59, T0, 0.0)[0] == 3000.0
    assert s.setpoint(T0 + 60, T0, 0.0)[0] == -3000.0


def test_absolute_profiles_and_validity():
    p = profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -2000.0}], kind="Absolute",
                start="2027-01-15T08:00:00Z", validTo="2027-01-15T09:00:00Z")
    s = store(p)
    start = datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp()
    assert s.setpoint(start - 1, None, 0.0)[0] == 7000.0
    assert s.setpoint(start + 1, None, 0.0)[0] == -2000.0
    assert s.setpoint(start + 3600, None, 0.0)[0] == 7000.0


def test_tx_profile_beats_default_and_higher_stack_wins():
    s = store(profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": 1000.0}],
                      pid=1, purpose="TxDefaultProfile"),
              profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -1000.0}], pid=2, stack=0),
              profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -2000.0}], pid=3, stack=1))
    assert s.setpoint(T0, T0, 0.0) == (-2000.0, "profile 3 CentralSetpoint")
    s.end_transaction()
    assert s.setpoint(T0, T0, 0.0)[0] == 1000.0


def test_station_max_profile_bounds_everything():
    s = store(profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -9000.0}], pid=1),
              profile([{"startPeriod": 0, "limit": 5000.0, "dischargeLimit": -3000.0}], pid=2,
                      purpose="ChargingStationMaxProfile"))
    assert s.setpoint(T0, T0, 0.0)[0] == -3000.0


def test_offline_past_max_offline_duration_falls_back_to_the_safe_default():
    s = store(profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -5000.0}],
                      maxOfflineDuration=120, invalidAfterOfflineDuration=False))
    assert s.setpoint(T0, T0, 119.0)[0] == -5000.0
    assert s.setpoint(T0, T0, 121.0) == (7000.0, "offline 121 s: safe default")
    assert s.setpoint(T0, T0, 0.0)[0] == -5000.0     # back online: applies again
    assert s.expire(10_000.0) == [] and len(s.profiles) == 1  # kept: it applies again online


def test_invalid_after_offline_duration_deletes_the_profile_for_good():
    """invalidAfterOfflineDuration is a boolean in OCPP 2.1: true means the profile is gone once
    the station has been offline longer than maxOfflineDuration."""
    s = store(profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -5000.0}],
                      maxOfflineDuration=120, invalidAfterOfflineDuration=True))
    assert s.setpoint(T0, T0, 119.0)[0] == -5000.0
    assert s.expiry_after() == 120
    assert s.expire(119.0) == [] and s.setpoint(T0, T0, 121.0)[0] == 7000.0  # reading changes nothing
    assert len(s.profiles) == 1
    assert s.expire(121.0) == [1]                    # offline too long: deleted for good
    assert s.profiles == {} and s.setpoint(T0, T0, 0.0)[0] == 7000.0


@pytest.mark.parametrize("raw, reason", [
    (profile([{"startPeriod": 0}], purpose="PriorityCharging"), "UnsupportedPurpose"),
    (profile([{"startPeriod": 0}], kind="Recurring"), "UnsupportedKind"),
    (profile([{"startPeriod": 0, "operationMode": "CentralFrequency"}]), "UnsupportedOperationMode"),
    (profile([{"startPeriod": 0, "operationMode": "CentralSetpoint"}]), "MissingParam"),
    (profile([{"startPeriod": 0, "dischargeLimit": 10.0}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "setpoint": 10.0, "setpoint_L2": 5.0, "operationMode": "CentralSetpoint"}]),
     "UnsupportedParam"),
    (profile([{"startPeriod": 10}]), "InvalidSchedule"),
    (profile([{"startPeriod": 0}], kind="Absolute"), "MissingParam"),
    ({**profile([{"startPeriod": 0}]), "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                                                              "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                          "limit": 1e6}]}]},
     "InvalidValue"),  # A are turned into W: a million amperes is no schedule
    # what OCPP 2.1 or physics rules out (an attack review found these Accepted)
    (profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": float("nan")}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": float("inf")}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": 1e12}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -1e12}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "limit": float("nan")}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "limit": float("-inf")}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "limit": -3000.0}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "dischargeLimit": float("nan")}]), "InvalidValue"),
    (profile([{"startPeriod": 0, "setpoint": True, "operationMode": "CentralSetpoint"}]), "InvalidValue"),
    (profile([{"startPeriod": 0}, {"startPeriod": -5}]), "InvalidValue"),
    ({**profile([{"startPeriod": 0}]), "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "duration": -60,
                                                              "chargingSchedulePeriod": [{"startPeriod": 0}]}]},
     "InvalidValue"),
    (profile([{"startPeriod": 0}], maxOfflineDuration=-1), "InvalidValue"),
    (profile([{"startPeriod": 0}], kind="Absolute", start="garbage"), "InvalidValue"),
    (profile([{"startPeriod": 0}], kind="Absolute", start="2027-01-15T08:00:00"), "InvalidValue"),  # no offset
    (profile([{"startPeriod": 0}], validFrom="tomorrow"), "InvalidValue"),
    (profile([{"startPeriod": 0}], validFrom="2027-01-15T09:00:00Z", validTo="2027-01-15T08:00:00Z"), "InvalidValue"),
])
def test_what_we_cannot_apply_is_rejected_whole(raw, reason):
    s = ProfileStore(7000.0)
    with pytest.raises(ProfileRejected) as e:
        s.set(raw, "tx-1")
    assert e.value.reason == reason and s.profiles == {}


def test_a_tx_profile_needs_a_transaction():
    s = ProfileStore(7000.0)
    with pytest.raises(ProfileRejected, match="running transaction"):
        s.set(profile([{"startPeriod": 0}]), None)
    with pytest.raises(ProfileRejected, match="no transaction"):
        s.set(profile([{"startPeriod": 0}], transactionId="other"), "tx-1")


def test_composite_schedule_lists_each_change():
    day = datetime(2027, 1, 15, 0, tzinfo=timezone.utc).timestamp()
    s = store(profile([{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -4000.0},
                       {"startPeriod": 3600, "operationMode": "Idle"}],
                      pid=1, purpose="TxDefaultProfile", kind="Absolute", start="2027-01-15T18:00:00Z",
                      validTo="2027-01-15T21:00:00Z"))
    periods = composite(s.profiles.values(), start=day + 17 * 3600, duration=5 * 3600, tx_start=None, default_w=7000.0)
    assert periods == [
        {"startPeriod": 0, "operationMode": "ChargingOnly", "setpoint": 7000.0},          # before: the default
        {"startPeriod": 3600, "operationMode": "CentralSetpoint", "setpoint": -4000.0},   # 18:00 discharge
        {"startPeriod": 7200, "operationMode": "Idle", "setpoint": 0.0},                 # 19:00 idle
        {"startPeriod": 4 * 3600, "operationMode": "ChargingOnly", "setpoint": 7000.0},  # 21:00 validTo
    ]


@pytest.mark.parametrize("period, external, watts", [
    ({"operationMode": "ExternalSetpoint", "setpoint": 1000.0, "dischargeLimit": -3000.0}, -5000.0, -3000.0),
    ({"operationMode": "ExternalSetpoint", "setpoint": 1000.0}, None, 1000.0),   # no local setpoint yet
    ({"operationMode": "ExternalLimits", "limit": 4000.0, "dischargeLimit": -2000.0}, -1500.0, -1500.0),
    ({"operationMode": "ExternalLimits", "limit": 4000.0}, 9000.0, 4000.0),
    ({"operationMode": "CentralSetpoint", "setpoint": 1000.0}, -5000.0, 1000.0),  # ignored outside External*
])
def test_a_local_setpoint_counts_only_in_external_periods(period, external, watts):
    s = store(profile([{"startPeriod": 0, **period}]))
    assert s.setpoint(T0, T0, 0.0, external)[0] == watts


def test_profiles_survive_a_restart_but_tx_profiles_do_not(tmp_path):
    """Accepted profiles are kept in the charger's database (TxDefault, station max); a
    TxProfile ends with its transaction, which a restart ends too."""
    import asyncio

    from iso15118.secc import SimulatedPowerStage
    from ocpp_bridge.bridge import OCPPBridge
    from ocpp_bridge.outbox import Outbox
    from ocpp_bridge.station import ChargingStation, StationConfig

    db = tmp_path / "cs.db"

    async def start():
        cs = ChargingStation(StationConfig("CS", "ws://127.0.0.1:9", password="a-very-secret-passphrase"),
                             Outbox(db))
        return OCPPBridge(SimulatedPowerStage(), cs)

    from ocpp_bridge.bridge import Transaction

    bridge = asyncio.run(start())
    bridge.tx = Transaction("tx-1", 0.0)  # a transaction runs
    for pid, purpose in ((1, "TxDefaultProfile"), (2, "TxProfile"), (3, "ChargingStationMaxProfile")):
        answer = bridge._set_charging_profile({"evseId": 1, "chargingProfile": profile(
            [{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -1000.0 * pid}],
            pid=pid, purpose=purpose)})
        assert answer == {"status": "Accepted"}
    again = asyncio.run(start())
    assert sorted(again.profiles.profiles) == [1, 3]
    assert again._clear_charging_profile({"chargingProfileId": 3}) == {"status": "Accepted"}
    assert sorted(asyncio.run(start()).profiles.profiles) == [1]

"""What a malicious (or broken) CSMS sends a charging station: the frames an attack review used
against `v2h charger`, as raw text so that they reach the station exactly as written (Python's
``json`` would refuse to write some of them)."""

from __future__ import annotations

import json


def profile_frame(message_id: str, *, purpose: str = "TxDefaultProfile", profile_id: int = 11, stack: int = 0,
                  period: str = '{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": NaN}',
                  schedule_extra: str = "", profile_extra: str = "", evse_id: int = 1) -> str:
    """A SetChargingProfile CALL with ``period`` spliced in verbatim (NaN, 1e400, …)."""
    return (f'[2, "{message_id}", "SetChargingProfile", {{"evseId": {evse_id}, "chargingProfile": {{'
            f'"id": {profile_id}, "stackLevel": {stack}, "chargingProfilePurpose": "{purpose}", '
            f'"chargingProfileKind": "{"Absolute" if "startSchedule" in schedule_extra else "Relative"}"'
            f'{profile_extra}, "chargingSchedule": [{{"id": 1, "chargingRateUnit": "W"{schedule_extra}, '
            f'"chargingSchedulePeriod": [{period}]}}]}}}}]')


def station_cap(message_id: str, watts: float) -> str:
    """A ChargingStationMaxProfile limiting charge and discharge to ``watts``."""
    return profile_frame(message_id, purpose="ChargingStationMaxProfile", profile_id=1,
                         period=f'{{"startPeriod": 0, "limit": {watts}, "dischargeLimit": {-watts}}}')


NON_FINITE_PROFILES = {
    "setpoint NaN": profile_frame("nan-setpoint"),
    "setpoint Infinity": profile_frame(
        "inf-setpoint", period='{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": Infinity}'),
    "setpoint 1e400 (overflows to inf)": profile_frame(
        "big-setpoint", period='{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": 1e400}'),
    "limit -Infinity": profile_frame(
        "inf-limit", period='{"startPeriod": 0, "operationMode": "ChargingOnly", "limit": -Infinity}'),
    "limit NaN": profile_frame("nan-limit", period='{"startPeriod": 0, "limit": NaN}'),
}

ABSURD_PROFILES = {
    "setpoint 1e12 W": profile_frame(
        "huge", period='{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": 1e12}'),
    "setpoint -1e12 W": profile_frame(
        "huge-neg", period='{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -1e12}'),
    "negative limit": profile_frame("neg-limit", period='{"startPeriod": 0, "limit": -3000}'),
    "negative duration": profile_frame("neg-duration", period='{"startPeriod": 0, "limit": 3000}',
                                       schedule_extra=', "duration": -60'),
    "negative maxOfflineDuration": profile_frame("neg-offline", period='{"startPeriod": 0, "limit": 3000}',
                                                 profile_extra=', "maxOfflineDuration": -5'),
    "garbage startSchedule": profile_frame("garbage-date", period='{"startPeriod": 0, "limit": 3000}',
                                           schedule_extra=', "startSchedule": "garbage"'),
}


def deeply_nested(message_id: str = "deep", depth: int = 100_000) -> str:
    """A CALL whose payload nests ``depth`` arrays (RecursionError in json.loads)."""
    return f'[2, "{message_id}", "SetChargingProfile", {{"evseId": {"[" * depth}{"]" * depth}}}]'


def flood(n: int) -> list[str]:
    """``n`` distinct malformed frames (each one a CALLERROR and an InvalidMessages event)."""
    return [json.dumps([2, f"flood-{i}", "NoSuchAction", {}]) for i in range(n)]

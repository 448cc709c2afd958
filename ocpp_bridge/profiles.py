"""Charging profiles from the CSMS (SetChargingProfile) turned into the setpoint the SECC reads
every charge loop: OCPP 2.1 operation modes, ``setpoint`` (negative discharges),
``limit``/``dischargeLimit`` bounds, and the offline rules (``maxOfflineDuration``: the profile
stops applying and the safe default takes over; with ``invalidAfterOfflineDuration`` true it is
deleted).

Only what v2h implements is accepted; anything else is Rejected with a reason, never half-applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

PURPOSES = ("TxDefaultProfile", "TxProfile", "ChargingStationMaxProfile")
MODES = ("ChargingOnly", "CentralSetpoint", "ExternalSetpoint", "ExternalLimits", "Idle")


class ProfileRejected(ValueError):
    """SetChargingProfile we cannot apply; ``reason`` becomes statusInfo.reasonCode."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


# No charging station connector carries more than a Megawatt Charging System (IEC 63379 /
# SAE J3271: 3,000 A at 1,250 V = 3.75 MW): a power beyond it is a broken CSMS, not a plan.
MAX_POWER_W = 3_750_000.0
MAX_SECONDS = 10 * 366 * 86400  # durations, offsets: ten years is already absurd for a schedule


def epoch(text: str, what: str) -> float:
    """An OCPP dateTime (RFC 3339, with 'Z' or an offset) as Unix seconds; anything else,
    including a time without its offset, is refused with a reason (the schema does not check it)."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, TypeError, AttributeError):
        raise ProfileRejected("InvalidValue", f"{what} {text!r} is not an RFC 3339 date-time") from None
    if t.tzinfo is None:
        raise ProfileRejected("InvalidValue", f"{what} {text!r} has no time zone offset")
    return t.timestamp()


def _number(obj: dict, key: str, lo: float, hi: float, what: str) -> float | None:
    """``obj[key]`` as a float within [lo, hi], None when absent; NaN, ±Infinity (Python's json
    reads them) and out-of-range values are refused, never clamped."""
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ProfileRejected("InvalidValue", f"{what}.{key} = {v!r} is not a number in [{lo:g}, {hi:g}]")
    return float(v)


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


@dataclass
class Period:
    start: float                    # seconds from the schedule's start
    mode: str
    limit: float | None             # W, charging bound (≥ 0)
    discharge_limit: float | None   # W, ≤ 0
    setpoint: float | None          # W, negative discharges


@dataclass
class Profile:
    """One accepted profile, reduced to what the setpoint needs (``raw`` keeps the original for
    GetChargingProfiles)."""

    id: int
    stack_level: int
    purpose: str
    kind: str
    start: float | None             # absolute start (Absolute); None: from the transaction's start
    duration: float | None
    periods: list[Period]
    valid_from: float | None
    valid_to: float | None
    transaction_id: str | None
    max_offline: float | None       # maxOfflineDuration, s
    invalid_after_offline: bool     # invalidAfterOfflineDuration: deleted once offline past max_offline
    raw: dict

    @classmethod
    def parse(cls, p: dict, *, volts: float = 230.0, phases: int = 3, max_stack_level: int | None = None,
              max_periods: int | None = None) -> Profile:
        """Check a ChargingProfileType (already schema-valid) against what we implement and what
        OCPP 2.1 and physics allow; anything else raises ProfileRejected with the reason. An A
        schedule is turned into W with ``volts`` per phase (AC; for DC the output voltage) times
        the period's numberPhases (default ``phases``). SmartChargingCtrlr.ProfileStackLevel and
        PeriodsPerSchedule bound stackLevel and the number of periods."""
        if max_stack_level is not None and p["stackLevel"] > max_stack_level:
            raise ProfileRejected("InvalidValue", f"stackLevel {p['stackLevel']} is above ProfileStackLevel "
                                                  f"{max_stack_level}")
        if p["chargingProfilePurpose"] not in PURPOSES:
            raise ProfileRejected("UnsupportedPurpose", f"purpose {p['chargingProfilePurpose']} is not supported")
        if p["chargingProfileKind"] not in ("Absolute", "Relative"):
            raise ProfileRejected("UnsupportedKind", f"kind {p['chargingProfileKind']} is not supported")
        schedules = p["chargingSchedule"]
        if len(schedules) != 1:
            raise ProfileRejected("UnsupportedSchedule", "exactly one chargingSchedule is supported")
        s = schedules[0]
        unit = s["chargingRateUnit"]
        if unit not in ("W", "A"):
            raise ProfileRejected("UnsupportedRateUnit", "only W and A schedules are supported")
        if max_periods is not None and len(s["chargingSchedulePeriod"]) > max_periods:
            raise ProfileRejected("InvalidSchedule", f"more than PeriodsPerSchedule ({max_periods}) periods")
        periods = []
        for n, q in enumerate(s["chargingSchedulePeriod"]):
            where = f"chargingSchedulePeriod[{n}]"
            mode = q.get("operationMode", "ChargingOnly")
            if mode not in MODES:
                raise ProfileRejected("UnsupportedOperationMode", f"operationMode {mode} is not supported")
            if any(k.endswith(("_L2", "_L3")) for k in q):
                raise ProfileRejected("UnsupportedParam", "per-phase values are not supported")
            factor = 1.0
            if unit == "A":
                n_phases = _number(q, "numberPhases", 1, 3, where)
                factor = volts * (n_phases or phases)
            top = MAX_POWER_W / factor  # the same physical bound in the schedule's unit
            start = _number(q, "startPeriod", 0, MAX_SECONDS, where)
            limit = _scaled(_number(q, "limit", 0, top, where), factor)  # negative: only a pre-2.1 discharge bound
            discharge_limit = _scaled(_number(q, "dischargeLimit", -top, 0, where), factor)
            setpoint = _scaled(_number(q, "setpoint", -top, top, where), factor)
            if mode in ("CentralSetpoint", "ExternalSetpoint") and setpoint is None:
                raise ProfileRejected("MissingParam", f"operationMode {mode} needs a setpoint")
            periods.append(Period(start, mode, limit, discharge_limit, setpoint))
        if [x.start for x in periods] != sorted(x.start for x in periods) or periods[0].start != 0:
            raise ProfileRejected("InvalidSchedule", "periods must start at 0 and be in order")
        if p["chargingProfileKind"] == "Absolute" and "startSchedule" not in s:
            raise ProfileRejected("MissingParam", "an Absolute profile needs startSchedule")
        duration = _number(s, "duration", 1, MAX_SECONDS, "chargingSchedule")
        max_offline = _number(p, "maxOfflineDuration", 0, MAX_SECONDS, "chargingProfile")
        valid_from = epoch(p["validFrom"], "validFrom") if "validFrom" in p else None
        valid_to = epoch(p["validTo"], "validTo") if "validTo" in p else None
        if valid_from is not None and valid_to is not None and valid_to <= valid_from:
            raise ProfileRejected("InvalidValue", "validTo is not after validFrom")
        return cls(p["id"], p["stackLevel"], p["chargingProfilePurpose"], p["chargingProfileKind"],
                   epoch(s["startSchedule"], "startSchedule") if "startSchedule" in s else None, duration, periods,
                   valid_from, valid_to, p.get("transactionId"), max_offline,
                   p.get("invalidAfterOfflineDuration") is True, p)

    def period_at(self, wall: float, tx_start: float | None) -> Period | None:
        if self.valid_from is not None and wall < self.valid_from:
            return None
        if self.valid_to is not None and wall >= self.valid_to:
            return None
        start = self.start if self.start is not None else tx_start
        if start is None or wall < start:
            return None
        t = wall - start
        if self.duration is not None and t >= self.duration:
            return None
        current = None
        for q in self.periods:
            if q.start <= t:
                current = q
        return current


class ProfileStore:
    """The accepted profiles, as the CSMS set them (what they mean now is ``arbiter.decide``)."""

    def __init__(self, default_setpoint_w: float, on_change: Callable[[list[dict]], None] | None = None, *,
                 volts: float = 230.0, phases: int = 3, max_stack_level: int | None = None,
                 max_periods: int | None = None, max_entries: int | None = None):
        """``on_change`` gets the accepted profiles (as sent) after every change, to persist them.
        ``volts``/``phases`` turn A schedules into W; ``max_stack_level``, ``max_periods`` and
        ``max_entries`` are SmartChargingCtrlr.ProfileStackLevel, PeriodsPerSchedule and the
        maxLimit of Entries."""
        if not (isinstance(default_setpoint_w, (int, float)) and 0 <= default_setpoint_w <= MAX_POWER_W):
            raise ValueError(f"the default (no profile, offline) setpoint must be a power in [0, {MAX_POWER_W:g}] W "
                             f"(it never discharges), got {default_setpoint_w!r}")
        self.default_setpoint_w = default_setpoint_w
        self.profiles: dict[int, Profile] = {}
        self.on_change = on_change
        self.volts, self.phases = volts, phases
        self.max_stack_level, self.max_periods, self.max_entries = max_stack_level, max_periods, max_entries

    def parse(self, raw: dict) -> Profile:
        return Profile.parse(raw, volts=self.volts, phases=self.phases, max_stack_level=self.max_stack_level,
                             max_periods=self.max_periods)

    def restore(self, raws: list[dict]) -> None:
        """Profiles persisted before a restart (TxProfiles died with their transaction)."""
        for raw in raws:
            prof = self.parse(raw)
            if prof.purpose != "TxProfile":
                self.profiles[prof.id] = prof

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change([p.raw for p in self.profiles.values()])

    def set(self, raw: dict, transaction_id: str | None) -> Profile:
        prof = self.parse(raw)
        if prof.purpose == "TxProfile" and prof.transaction_id is None:
            if transaction_id is None:
                raise ProfileRejected("TxNotFound", "a TxProfile needs a running transaction")
        if prof.purpose == "TxProfile" and prof.transaction_id not in (None, transaction_id):
            raise ProfileRejected("TxNotFound", f"no transaction {prof.transaction_id}")
        replaced = [o.id for o in self.profiles.values()  # same id, or same purpose and stack level
                    if o.id == prof.id or (o.purpose == prof.purpose and o.stack_level == prof.stack_level)]
        if self.max_entries is not None and len(self.profiles) - len(replaced) >= self.max_entries:
            raise ProfileRejected("InvalidValue", f"SmartChargingCtrlr.Entries is at its maxLimit {self.max_entries}")
        for i in replaced:
            del self.profiles[i]
        self.profiles[prof.id] = prof
        self._changed()
        return prof

    def clear(self, profile_id: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> int:
        gone = [p.id for p in self.profiles.values()
                if (profile_id is None or p.id == profile_id) and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)]
        for i in gone:
            del self.profiles[i]
        if gone:
            self._changed()
        return len(gone)

    def end_transaction(self) -> None:
        """TxProfiles end with their transaction."""
        gone = [p.id for p in self.profiles.values() if p.purpose == "TxProfile"]
        for i in gone:
            del self.profiles[i]
        if gone:
            self._changed()

    def expire(self, offline_for: float) -> list[int]:
        """Delete the profiles whose invalidAfterOfflineDuration has come: offline longer than
        their maxOfflineDuration. Called by the station's timer, never while computing a setpoint."""
        gone = [p.id for p in self.profiles.values() if p.invalid_after_offline and p.max_offline is not None
                and offline_for > p.max_offline]
        for i in gone:
            del self.profiles[i]
        if gone:
            self._changed()
        return gone

    def expiry_after(self) -> float | None:
        """The shortest offline time after which ``expire`` deletes something."""
        times = [p.max_offline for p in self.profiles.values() if p.invalid_after_offline and p.max_offline is not None]
        return min(times) if times else None

    def setpoint(self, wall: float, tx_start: float | None, offline_for: float,
                 external: float | None = None) -> tuple[float, str]:
        """(watts, reason) of the arbiter's decision for these profiles (no limits of a session)."""
        from .arbiter import decide

        d = decide(self.profiles.values(), wall=wall, tx_start=tx_start, offline_for=offline_for,
                   default_w=self.default_setpoint_w, external=external)
        return d.power_w, d.reason

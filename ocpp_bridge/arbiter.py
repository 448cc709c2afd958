"""The setpoint arbiter: one pure function from everything that has a say in the charger's power
to a typed decision. The charge loop (through ``OCPPBridge``), GetCompositeSchedule and the
Scheduled power plan all ask it, so they always agree; the clamps live here (and in the SECC's
session limits), each through ``iso15118.units.clamp``, which turns a non-finite number into 0 W.

Precedence (OCPP 2.1 part 2, K01/Q04/Q05/Q11): a TxProfile over a TxDefaultProfile, the higher
stack level first; the ChargingStationMaxProfile bounds the result; a local energy manager's
setpoint counts only in ExternalSetpoint/ExternalLimits periods, within their limits; a profile
offline for longer than its maxOfflineDuration no longer applies (Q11: the safe default, which
never discharges). While the site is islanded (the house's transfer switch has isolated it from
the grid), the charger forms the island and follows the house load within the last discharge
limit — offline or not, since no power can reach the grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from iso15118.units import clamp

from .profiles import MAX_POWER_W, Period, Profile


@dataclass(frozen=True)
class PowerLimits:
    """What the charger and the car can do now, as magnitudes in W (the smaller of both sides)."""

    max_charge_w: float = MAX_POWER_W
    max_discharge_w: float = MAX_POWER_W


@dataclass(frozen=True)
class SetpointDecision:
    """The power the charger should run at now, and why.

    ``power_w`` is + charge / − discharge, within ``charge_limit_w`` ≥ 0 ≥ ``discharge_limit_w``;
    ``source`` is 'default' (no profile), 'profile', 'external' (a local energy manager),
    'offline' (profiles lapsed offline: the safe default) or 'island' (grid-forming: the stage
    supplies the house load up to ``discharge_limit_w``; ``power_w`` is the manager's estimate of
    it); ``mode`` the OCPP operationMode in force; ``reason`` a readable account for logs."""

    power_w: float
    charge_limit_w: float
    discharge_limit_w: float
    source: str
    mode: str
    reason: str
    profile_id: int | None = None

    def __init__(self, power_w: float, charge_limit_w: float, discharge_limit_w: float, source: str, mode: str,
                 reason: str, profile_id: int | None = None) -> None:
        """The fields in their order (the generated frozen __init__ sets each through
        object.__setattr__, several times slower, and a decision is made every charge loop)."""
        self.__dict__.update(power_w=power_w, charge_limit_w=charge_limit_w, discharge_limit_w=discharge_limit_w,
                             source=source, mode=mode, reason=reason, profile_id=profile_id)

    @property
    def grid_forming(self) -> bool:
        return self.source == "island"


def _higher_stack_first(p: Profile) -> int:
    return -p.stack_level


def _first_in_force(cands: list[Profile], wall: float, tx_start: float | None) -> tuple[Profile, Period] | None:
    """Of the candidates (one purpose, none lapsed), the highest stack level with a period now."""
    if len(cands) > 1:
        cands = sorted(cands, key=_higher_stack_first)  # stable: equal levels keep their order
    for p in cands:
        q = p.period_at(wall, tx_start)
        if q is not None:
            return p, q
    return None


def _by_purpose(profiles: list[Profile], offline_for: float) -> dict[str, list[Profile]]:
    """The profiles that have not lapsed offline, by purpose, in their order (one pass for ``decide``)."""
    out: dict[str, list[Profile]] = {}
    for p in profiles:
        if not (p.max_offline is not None and offline_for > p.max_offline):
            same = out.get(p.purpose)
            if same is None:
                out[p.purpose] = [p]
            else:
                same.append(p)
    return out


def decide(profiles: Iterable[Profile], *, wall: float, tx_start: float | None, offline_for: float,
           default_w: float, external: float | None = None, islanded: bool = False,
           limits: PowerLimits = PowerLimits()) -> SetpointDecision:
    """The decision at Unix time ``wall`` (``tx_start``: the transaction's start, for Relative
    profiles; ``offline_for``: seconds the CSMS has been unreachable, 0 online)."""
    profiles = list(profiles)
    if islanded:  # no grid to protect: the profiles keep applying however long the CSMS is away
        offline_for = 0.0
    lapsed = offline_for > 0 and any(p.max_offline is not None and offline_for > p.max_offline
                                     for p in profiles if p.purpose != "ChargingStationMaxProfile")
    charge_hi, discharge_lo = limits.max_charge_w, -limits.max_discharge_w
    live = _by_purpose(profiles, offline_for)
    found = None
    for purpose in ("TxProfile", "TxDefaultProfile"):
        cands = live.get(purpose)
        if cands:
            found = _first_in_force(cands, wall, tx_start)
            if found is not None:
                break
    profile_id = None
    if found is None:
        watts, mode = default_w, "ChargingOnly"
        source, reason = ("offline", f"offline {offline_for:.0f} s: safe default") if lapsed else ("default", "default")
        charge_hi, discharge_lo = min(charge_hi, default_w), 0.0  # the default never discharges
    else:
        p, q = found
        profile_id, mode = p.id, q.mode
        source, reason = "profile", f"profile {p.id} {q.mode}"
        if q.mode == "Idle":
            watts = 0.0
        elif q.mode in ("ExternalSetpoint", "ExternalLimits") and external is not None:
            watts, source, reason = external, "external", f"external setpoint within profile {p.id} {q.mode}"
        elif q.mode in ("CentralSetpoint", "ExternalSetpoint"):
            watts = float(q.setpoint)
        else:  # ChargingOnly, ExternalLimits without a local setpoint: charge at the limit (or the default)
            watts = default_w if q.limit is None else q.limit
        if q.limit is not None:
            charge_hi = min(charge_hi, q.limit)
        if q.mode in ("ChargingOnly", "Idle"):
            discharge_lo = 0.0
        elif q.discharge_limit is not None:
            discharge_lo = max(discharge_lo, q.discharge_limit)
    cands = live.get("ChargingStationMaxProfile")
    cap = _first_in_force(cands, wall, tx_start) if cands else None
    if cap is not None:
        if cap[1].limit is not None:
            charge_hi = min(charge_hi, cap[1].limit)
        if cap[1].discharge_limit is not None:
            discharge_lo = max(discharge_lo, cap[1].discharge_limit)
    charge_hi = clamp(charge_hi, 0.0, MAX_POWER_W)
    discharge_lo = clamp(discharge_lo, -MAX_POWER_W, 0.0)
    if islanded:
        # the transfer switch isolates the grid: the island needs power whatever the CSMS's state,
        # bounded by the last discharge limit in force (a profile's, the station max, the session's).
        # A grid-forming stage supplies what the house draws; ``power_w`` is the manager's estimate
        # of that load (its setpoint), never a charge: nothing may flow into the car from the island.
        bound = clamp(discharge_lo if discharge_lo < 0 else -limits.max_discharge_w, -MAX_POWER_W, 0.0)
        return SetpointDecision(clamp(watts, bound, 0.0), 0.0, bound, "island", "GridForming",
                                f"islanded: following the house load up to {-bound:.0f} W", profile_id)
    watts = clamp(watts, discharge_lo, charge_hi)
    return SetpointDecision(watts, charge_hi, discharge_lo, source, mode, reason, profile_id)


def composite(profiles: Iterable[Profile], *, start: float, duration: float, tx_start: float | None,
              default_w: float, external: float | None = None,
              limits: PowerLimits = PowerLimits()) -> list[dict]:
    """The decisions over [start, start + duration) as ChargingSchedulePeriods (the online view):
    what GetCompositeSchedule reports and the Scheduled power plan sends the car. Evaluated at
    every instant where a profile changes."""
    profiles = list(profiles)
    edges = {start}
    for p in profiles:
        origin = p.start if p.start is not None else tx_start
        if origin is not None:
            edges.update(origin + q.start for q in p.periods)
            if p.duration is not None:
                edges.add(origin + p.duration)
        edges.update(t for t in (p.valid_from, p.valid_to) if t is not None)
    periods: list[dict] = []
    for t in sorted(e for e in edges if start <= e < start + duration and math.isfinite(e)):
        d = decide(profiles, wall=t, tx_start=tx_start, offline_for=0.0, default_w=default_w, external=external,
                   limits=limits)
        if periods and periods[-1]["setpoint"] == d.power_w and periods[-1]["operationMode"] == d.mode:
            continue
        periods.append({"startPeriod": int(t - start), "operationMode": d.mode, "setpoint": d.power_w})
    return periods

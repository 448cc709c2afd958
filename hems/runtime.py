"""How long the car can carry the house in an outage: "critical loads for 2 d 4 h; everything for 9 h".

A pure function of the car's SoC and capacity, the reserve kept for driving, the conversion
efficiency (battery → house), the charger's standby draw and the load of the circuits that stay
on — constant (per circuit, from ``hems.config`` ratings or measurements) or a per-priority
forecast profile (the learned consumption). The same estimate serves the what-if shown while
grid-connected and the live figure on the island (recomputed when circuits are shed or restored:
call it again with what is on).

Arithmetic: energy the house can get = (SoC − reserve) × capacity × efficiency; it lasts while the
house's load plus the charger's standby are drawn. A 98 kWh pack at a steady 1.5 kW: 98 / 1.5 =
65.3 h ≈ 2.7 days gross; with a 20 % reserve and 90 % efficiency 98 × 0.8 × 0.9 / 1.5 = 47.0 h ≈
2 days (docs/hems.md, "Outage runtime").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from .config import CircuitConfig, Priority, number
from .errors import ConfigError

# the three scenarios, each with the priorities it keeps on
SCENARIOS: tuple[tuple[str, tuple[Priority, ...]], ...] = (
    ("critical", (Priority.CRITICAL,)),
    ("essential", (Priority.CRITICAL, Priority.ESSENTIAL)),
    ("everything", (Priority.CRITICAL, Priority.ESSENTIAL, Priority.DEFERRABLE)),
)
_LABEL = {"critical": "critical loads", "essential": "critical + essential", "everything": "everything"}
MAX_HOURS = 366 * 24.0           # a profile walk stops here: "more than a year" is shown as such


@dataclass(frozen=True, kw_only=True, slots=True)
class ScenarioRuntime:
    """One scenario: its mean load (W, AC, without standby), the hours it lasts (``math.inf`` with
    no load at all) and whether the island can carry it (``fits``; False: above ``capacity_w``)."""

    name: str
    load_w: float
    hours: float
    fits: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class RuntimeEstimate:
    """Usable stored energy above the reserve, what reaches the house, and each scenario."""

    usable_kwh: float
    deliverable_kwh: float
    standby_w: float
    scenarios: tuple[ScenarioRuntime, ...]

    def get(self, name: str) -> ScenarioRuntime:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise KeyError(name)

    def text(self, *, live: bool = False) -> str:
        """The line shown to the user; ``live`` while islanded, else a what-if."""
        parts = []
        for s in self.scenarios:
            if not s.fits:
                parts.append(f"{_LABEL[s.name]}: more than the island can carry")
            else:
                parts.append(f"{_LABEL[s.name]} for {format_duration(s.hours)}")
        head = "On backup: " if live else "If the grid failed now: "
        return head + "; ".join(parts)


def format_duration(hours: float) -> str:
    """Rounded down (never promise more than there is): '2 d 4 h', '9 h', '5 h 30 min', '40 min'."""
    if math.isinf(hours) or hours >= MAX_HOURS:
        return "more than a year"
    minutes = math.floor(hours * 60.0 + 1e-9)
    d, rem = divmod(minutes, 24 * 60)
    h, m = divmod(rem, 60)
    if d:
        return f"{d} d {h} h"
    if h >= 10 or (h and m == 0):
        return f"{h} h"
    if h:
        return f"{h} h {m // 10 * 10} min" if m >= 10 else f"{h} h"
    return f"{m} min"


def circuit_loads(circuits: Sequence[CircuitConfig], measured: Mapping[str, float] | None = None
                  ) -> dict[Priority, float]:
    """W per priority: each circuit's measured power where given, else its rating."""
    out = {p: 0.0 for p in Priority}
    measured = measured or {}
    names = {c.name for c in circuits}
    for name in measured:
        if name not in names:
            raise ConfigError(f"measured.{name}", "no such circuit")
    for c in circuits:
        w = number(f"measured.{c.name}", measured[c.name], 0.0, 1e6) if c.name in measured else c.power_w
        out[c.priority] += w
    return out


def estimate(*, soc_pct: float, capacity_kwh: float, reserve_pct: float, efficiency: float, standby_w: float,
             loads: Mapping[Priority, float | Sequence[float]], slot_s: float = 900.0,
             capacity_w: float | None = None) -> RuntimeEstimate:
    """The runtime of each scenario (critical only / + essential / everything).

    ``loads`` gives W per priority, either a constant or a forecast profile of mean W per slot of
    ``slot_s`` from now (repeated past its end, e.g. a learned day or week). ``efficiency`` is
    battery → house (the charger's and the car's conversion). ``capacity_w``: what the island can
    carry (inverter and discharge limits); a scenario above it is marked ``fits=False``.
    """
    number("soc_pct", soc_pct, 0.0, 100.0)
    number("capacity_kwh", capacity_kwh, 0.1, 1000.0)
    number("reserve_pct", reserve_pct, 0.0, 100.0)
    number("efficiency", efficiency, 0.1, 1.0)
    number("standby_w", standby_w, 0.0, 1e4)
    number("slot_s", slot_s, 1.0, 86400.0)
    if capacity_w is not None:
        number("capacity_w", capacity_w, 0.0, 1e6)
    profiles: dict[Priority, list[float]] = {}
    for p in Priority:
        v = loads.get(p, 0.0)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            profiles[p] = [number(f"loads.{p.value}", v, 0.0, 1e6)]
        else:
            seq = list(v)                                   # type: ignore[arg-type]
            if not seq:
                raise ConfigError(f"loads.{p.value}", "empty profile")
            profiles[p] = [number(f"loads.{p.value}[{i}]", x, 0.0, 1e6) for i, x in enumerate(seq)]
    for key in loads:
        if not isinstance(key, Priority):
            raise ConfigError(f"loads.{key}", "want critical, essential or deferrable")
    usable = max(0.0, (soc_pct - reserve_pct) / 100.0 * capacity_kwh)
    deliverable = usable * efficiency
    out = []
    for name, prios in SCENARIOS:
        n = max(len(profiles[p]) for p in prios)
        prof = [sum(profiles[p][k % len(profiles[p])] for p in prios) for k in range(n)]
        mean = sum(prof) / n
        fits = capacity_w is None or max(prof) + standby_w <= capacity_w
        out.append(ScenarioRuntime(name=name, load_w=mean, hours=_hours(deliverable, prof, standby_w, slot_s),
                                   fits=fits))
    return RuntimeEstimate(usable_kwh=usable, deliverable_kwh=deliverable, standby_w=standby_w, scenarios=tuple(out))


def _hours(kwh: float, profile: list[float], standby_w: float, slot_s: float) -> float:
    """Hours until ``kwh`` (at the AC side) is drawn by ``profile`` (W per slot, cyclic) + standby."""
    if kwh <= 0.0:
        return 0.0
    per_cycle_kwh = sum(w + standby_w for w in profile) * slot_s / 3.6e6
    if per_cycle_kwh <= 0.0:
        return math.inf
    cycle_h = len(profile) * slot_s / 3600.0
    full = math.floor(kwh / per_cycle_kwh)
    if full * cycle_h >= MAX_HOURS:
        return math.inf
    left = kwh - full * per_cycle_kwh
    hours = full * cycle_h
    for w in profile:
        slot_kwh = (w + standby_w) * slot_s / 3.6e6
        if slot_kwh >= left:
            return hours + (left / slot_kwh) * slot_s / 3600.0 if slot_kwh > 0 else hours
        left -= slot_kwh
        hours += slot_s / 3600.0
    return hours

"""What the planner takes and gives: the car, the horizon's inputs, the options and the plan.

Every number is checked for type, finiteness and range when the object is made (``ConfigError``
naming the field, e.g. ``load_w[17]`` or ``car.eff_charge``), so nothing out of range reaches the
solver. Power is in W at the charger's AC side (+ charge / − discharge; grid + import / − export),
energy in kWh, SoC in % of the usable capacity, prices in currency per kWh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from ..config import number
from ..errors import ConfigError

MAX_POWER_W = 1e6          # a house connection or a charger above 1 MW is a unit error
MAX_PRICE = 1e6            # per kWh, in any currency (day-ahead caps are a few EUR/kWh; some currencies are large)
MAX_SLOTS = 7 * 96         # a week of quarter-hours: the planner looks 24-48 h ahead


def _aware(key: str, t: object) -> datetime:
    if not isinstance(t, datetime):
        raise ConfigError(key, f"want a datetime, got {t!r}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ConfigError(key, f"want a time with a UTC offset, got {t.isoformat()}")
    return t


def series(key: str, values: Sequence[float], lo: float, hi: float) -> tuple[float, ...]:
    """``values`` as a tuple of finite floats within [lo, hi]; the error names ``key[i]``."""
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            try:                                   # numpy scalars
                v = float(v)                       # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ConfigError(f"{key}[{i}]", f"want a number, got {v!r}") from None
        f = float(v)
        if not math.isfinite(f):
            raise ConfigError(f"{key}[{i}]", f"want a finite number, got {v!r}")
        if f < lo or f > hi:
            raise ConfigError(f"{key}[{i}]", f"{f:g} is outside {lo:g}..{hi:g}")
        out.append(f)
    return tuple(out)


@dataclass(frozen=True, kw_only=True, slots=True)
class CarParams:
    """The car and the charger as the planner sees them.

    ``charge_max_w`` / ``discharge_max_w`` are at the charger's AC side: the smaller of the
    charger's rating and the car's own limits from the ISO 15118-20 session
    (EVMaximumChargePower / EVMaximumDischargePower). ``soc_min_pct`` is the floor kept whenever the
    car is home: the outage reserve, i.e. the higher of the user's trip reserve and the car's own
    minimum (EVMinimumV2XEnergyRequest / MinimumSOC). Stored energy grows by ``eff_charge`` × AC
    energy in and falls by AC energy out ÷ ``eff_discharge``. ``wear_cost_per_kwh`` is charged per
    kWh discharged at the AC side (battery wear, in the tariff's currency).
    """

    capacity_kwh: float
    soc_pct: float
    charge_max_w: float
    discharge_max_w: float
    soc_min_pct: float = 0.0
    soc_max_pct: float = 100.0
    soc_final_pct: float | None = None     # required at the end of the horizon
    eff_charge: float = 0.95
    eff_discharge: float = 0.95
    wear_cost_per_kwh: float = 0.0

    def __post_init__(self) -> None:
        number("car.capacity_kwh", self.capacity_kwh, 0.1, 1000.0)
        for k in ("soc_pct", "soc_min_pct", "soc_max_pct"):
            number(f"car.{k}", getattr(self, k), 0.0, 100.0)
        if self.soc_final_pct is not None:
            number("car.soc_final_pct", self.soc_final_pct, 0.0, 100.0)
        number("car.charge_max_w", self.charge_max_w, 0.0, MAX_POWER_W)
        number("car.discharge_max_w", self.discharge_max_w, 0.0, MAX_POWER_W)
        number("car.eff_charge", self.eff_charge, 0.5, 1.0)
        number("car.eff_discharge", self.eff_discharge, 0.5, 1.0)
        number("car.wear_cost_per_kwh", self.wear_cost_per_kwh, 0.0, MAX_PRICE)
        if self.soc_min_pct > self.soc_max_pct:
            raise ConfigError("car.soc_min_pct", f"{self.soc_min_pct:g} % is above soc_max_pct "
                                                 f"{self.soc_max_pct:g} %")


@dataclass(frozen=True, kw_only=True, slots=True)
class Trip:
    """The car is away from ``start`` to ``end`` and uses ``energy_kwh`` (stored energy) meanwhile;
    ``depart_soc_pct``, if given, is the SoC wanted when it leaves."""

    start: datetime
    end: datetime
    energy_kwh: float
    depart_soc_pct: float | None = None

    def __post_init__(self) -> None:
        _aware("trip.start", self.start)
        _aware("trip.end", self.end)
        if self.end <= self.start:
            raise ConfigError("trip.end", f"{self.end.isoformat()} is not after the start {self.start.isoformat()}")
        number("trip.energy_kwh", self.energy_kwh, 0.0, 1000.0)
        if self.depart_soc_pct is not None:
            number("trip.depart_soc_pct", self.depart_soc_pct, 0.0, 100.0)

    def label(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Outage:
    """An announced outage (a utility's shut-off warning, a published load-shedding slot): no grid
    from ``start`` to ``end``; the car alone carries the house (solar inverters stop without a grid,
    UL 1741 / IEEE 1547 anti-islanding). ``load_w`` is the expected island consumption (e.g. the
    critical and essential circuits); None takes the load forecast of those slots."""

    start: datetime
    end: datetime
    load_w: float | None = None

    def __post_init__(self) -> None:
        _aware("outage.start", self.start)
        _aware("outage.end", self.end)
        if self.end <= self.start:
            raise ConfigError("outage.end", f"{self.end.isoformat()} is not after the start {self.start.isoformat()}")
        if self.load_w is not None:
            number("outage.load_w", self.load_w, 0.0, MAX_POWER_W)

    def label(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanInputs:
    """The horizon: slot ``k`` covers [start + k·slot_s, start + (k+1)·slot_s). Forecast house load
    and solar are mean W over the slot; prices per kWh (import and export, each may be negative)."""

    start: datetime
    load_w: Sequence[float]
    pv_w: Sequence[float]
    import_price: Sequence[float]
    export_price: Sequence[float]
    slot_s: float = 900.0
    trips: tuple[Trip, ...] = ()
    outages: tuple[Outage, ...] = ()

    def __post_init__(self) -> None:
        _aware("start", self.start)
        number("slot_s", self.slot_s, 60.0, 3600.0)
        n = len(self.load_w)
        if n < 1:
            raise ConfigError("load_w", "the horizon has no slot")
        if n > MAX_SLOTS:
            raise ConfigError("load_w", f"{n} slots is more than the {MAX_SLOTS} the planner takes")
        for k in ("pv_w", "import_price", "export_price"):
            if len(getattr(self, k)) != n:
                raise ConfigError(k, f"has {len(getattr(self, k))} slots, load_w has {n}")
        object.__setattr__(self, "load_w", series("load_w", self.load_w, 0.0, MAX_POWER_W))
        object.__setattr__(self, "pv_w", series("pv_w", self.pv_w, 0.0, MAX_POWER_W))
        object.__setattr__(self, "import_price", series("import_price", self.import_price, -MAX_PRICE, MAX_PRICE))
        object.__setattr__(self, "export_price", series("export_price", self.export_price, -MAX_PRICE, MAX_PRICE))
        object.__setattr__(self, "trips", tuple(self.trips))
        object.__setattr__(self, "outages", tuple(self.outages))
        for i, t in enumerate(self.trips):
            if not isinstance(t, Trip):
                raise ConfigError(f"trips[{i}]", f"want a Trip, got {t!r}")
        for i, o in enumerate(self.outages):
            if not isinstance(o, Outage):
                raise ConfigError(f"outages[{i}]", f"want an Outage, got {o!r}")

    @property
    def slots(self) -> int:
        return len(self.load_w)

    def slot_time(self, k: int) -> datetime:
        return self.start + timedelta(seconds=k * self.slot_s)


@dataclass(frozen=True, kw_only=True, slots=True)
class PlanOptions:
    """``no_export``: the car never pushes power out through the meter — its discharge is at most
    the house load less solar in each slot (the site controller's ``allow_export = false``, checked
    by invariant I5); solar surplus itself is still exported (the site does not curtail solar)."""

    no_export: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """The optimal schedule. Per slot: ``car_w`` (+ charge / − discharge, AC side), ``grid_w``
    (+ import / − export), ``soc_pct`` at the slot's end. The objective's parts: ``import_cost``,
    ``export_revenue``, ``wear_cost``; ``cost`` = import_cost − export_revenue + wear_cost.
    ``mode_slots`` counts the slots that needed a charge-or-discharge / import-or-export decision
    (0: the linear program alone was exact); ``optimal`` is False only when such a search hit its
time limit (the plan is then feasible but not proven best); ``solve_ms`` is the solver's own run
time; ``away`` marks the slots the car is away."""

    start: datetime
    slot_s: float
    car_w: tuple[float, ...]
    grid_w: tuple[float, ...]
    soc_pct: tuple[float, ...]
    import_cost: float
    export_revenue: float
    wear_cost: float
    cost: float
    charged_kwh: float
    discharged_kwh: float
    solve_ms: float
    mode_slots: int = 0
    optimal: bool = True
    away: tuple[bool, ...] = field(default=())

    def slot_time(self, k: int) -> datetime:
        return self.start + timedelta(seconds=k * self.slot_s)

    def slot_at(self, now: datetime) -> int | None:
        """The slot ``now`` falls in, or None outside the horizon."""
        k = math.floor((now - self.start).total_seconds() / self.slot_s)
        return k if 0 <= k < len(self.car_w) else None

    def setpoint_w(self, now: datetime) -> float | None:
        """The charger setpoint the plan asks for at ``now`` (None outside the horizon). The site
        controller still has the last word: limits, reserve and safety come first."""
        k = self.slot_at(now)
        return None if k is None else self.car_w[k]


def outages_from_config(items: Any, key: str = "outages") -> tuple[Outage, ...]:
    """Announced outages from configuration data (a TOML ``[[outages]]`` list, a JSON body from the
    manager's API): each ``{start, end, load_w?}`` with ISO 8601 times that carry an offset
    (TOML's offset date-times arrive as datetimes). Errors name the entry (``outages[1].end``)."""
    if not isinstance(items, list):
        raise ConfigError(key, "want a list of tables ([[outages]])")
    out = []
    for i, it in enumerate(items):
        k = f"{key}[{i}]"
        if not isinstance(it, Mapping):
            raise ConfigError(k, "want a table")
        for f in it:
            if f not in ("start", "end", "load_w"):
                raise ConfigError(f"{k}.{f}", "unknown key")
        times = {}
        for f in ("start", "end"):
            if f not in it:
                raise ConfigError(f"{k}.{f}", "missing")
            v = it[f]
            if isinstance(v, str):
                try:
                    v = datetime.fromisoformat(v.strip())
                except ValueError:
                    raise ConfigError(f"{k}.{f}", f"want an ISO 8601 time with an offset, got {v!r}") from None
            times[f] = _aware(f"{k}.{f}", v)
        load = it.get("load_w")
        if load is not None:
            load = number(f"{k}.load_w", load, 0.0, MAX_POWER_W)
        try:
            out.append(Outage(start=times["start"], end=times["end"], load_w=load))
        except ConfigError as e:
            raise ConfigError(f"{k}.{e.key.split('.')[-1]}", e.message) from None
    return tuple(out)

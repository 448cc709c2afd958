"""The plan in the running manager: when to plan, and with what.

Every ``interval_s`` (15 min) and on every event that changes the picture (a car plugged in or
leaving, a departure or reserve change, an outage beginning or ending) the ``Planner`` plans the
next hours (``hems.plan``) from: the house's learned consumption (``hems.forecast.load``: weekday
× quarter-hour over recent weeks, the last hour for the near term, the BDEW H0 profile until
there is history), the solar forecast (a ``pvlib`` model of the configured array, or the
simulator's own script in a simulation), the tariff (a file, or flat prices), and the car as its
charger reports it. The plan's setpoint for the present slot is what the manager asks of the
charger while grid-connected; the site controller has the last word.

Pure: time is passed in (Unix seconds), no I/O besides the load history's SQLite connection.
"""

from __future__ import annotations

import bisect
import logging
import math
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .config import SiteConfig
from .errors import ConfigError

log = logging.getLogger(__name__)
SLOT_S = 900.0


@dataclass(frozen=True)
class CarView:
    """What the planner needs of the car (from the charger's reports and the configuration)."""

    soc_pct: float
    capacity_kwh: float
    charge_max_w: float
    discharge_max_w: float
    min_soc_pct: float


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


class Planner:
    """Plans on demand and on its interval; ``wanted_w(now)`` is the present slot's setpoint."""

    def __init__(self, plan_cfg: dict, *, load_forecast: Callable[[datetime, int], Sequence[float]],
                 pv_forecast: Callable[[datetime, int], Sequence[float]],
                 prices: Callable[[datetime, int], tuple[Sequence[float], Sequence[float]]], allow_export: bool):
        self.cfg = plan_cfg
        self.load_forecast, self.pv_forecast, self.prices = load_forecast, pv_forecast, prices
        self.allow_export = allow_export
        self.plan = None
        self.planned_at: float | None = None
        self.reason = ""
        self.error: str | None = None
        self.sources: dict = {}          # where the inputs come from, for the status (the service fills it)
        self._due: float | None = None   # a replan asked for (an event), or the interval's next one

    def request(self, now: float, reason: str) -> None:
        """Plan again at the next step (a plug-in, a setting, an outage…)."""
        self._due, self.reason = now, reason

    def next_deadline(self) -> float | None:
        return self._due

    def wanted_w(self, now: float) -> float | None:
        if self.plan is None:
            return None
        w = self.plan.setpoint_w(_dt(now))
        return None if w is None or not math.isfinite(w) else w

    def run(self, now: float, car: CarView | None, *, reserve_pct: float, departure: tuple[int, int] | None,
            outages: Sequence = ()) -> None:
        """Plan now if one is due (or there is none): with the car, or nothing to plan without one."""
        if self._due is not None and now < self._due and self.plan is not None:
            return
        self._due = now + float(self.cfg.get("interval_s", 900.0))
        if car is None:
            self.plan, self.error = None, None
            return
        from .plan import CarParams, InfeasiblePlan, PlanError, PlanInputs, PlanOptions, Trip, plan
        from .plan import SolverError

        start = _dt(now - now % SLOT_S)
        slots = int(round(float(self.cfg.get("horizon_h", 24.0)) * 3600 / SLOT_S))
        floor = max(reserve_pct, car.min_soc_pct)
        soc = min(100.0, max(car.soc_pct, 0.0))
        trips = ()
        if departure is not None and self.cfg.get("return") is not None:
            trips = (self._trip(start, departure, self.cfg["return"], Trip),)
        try:  # a forecast that cannot be made (a bad forecast file) is a failed plan, not a failed manager
            imp, exp_ = self.prices(start, slots)
            inputs = PlanInputs(start=start, load_w=list(self.load_forecast(start, slots)),
                                pv_w=list(self.pv_forecast(start, slots)), import_price=list(imp),
                                export_price=list(exp_), slot_s=SLOT_S, trips=trips, outages=tuple(outages))
        except (ConfigError, OSError) as e:
            self.plan, self.error = None, f"{type(e).__name__}: {e}"
            log.warning("no plan: %s", self.error)
            return
        params = CarParams(capacity_kwh=car.capacity_kwh, soc_pct=soc, charge_max_w=car.charge_max_w,
                           discharge_max_w=car.discharge_max_w, soc_min_pct=min(floor, soc),
                           eff_charge=float(self.cfg.get("charge_efficiency", 0.95)),
                           eff_discharge=float(self.cfg.get("discharge_efficiency", 0.95)),
                           wear_cost_per_kwh=float(self.cfg.get("wear_cost", 0.0)))
        try:
            self.plan = plan(inputs, params, PlanOptions(no_export=not self.allow_export))
            self.planned_at, self.error = now, None
        except (InfeasiblePlan, SolverError, PlanError, ConfigError) as e:
            # the previous plan is dropped: the site controller's configured setpoint applies
            self.plan, self.error = None, f"{type(e).__name__}: {e}"
            log.warning("no plan: %s", self.error)

    def _trip(self, start: datetime, departure: tuple[int, int], back: tuple[int, int], trip_cls):
        leave = start.replace(hour=departure[0], minute=departure[1], second=0, microsecond=0)
        if leave <= start:
            leave += timedelta(days=1)
        ret = leave.replace(hour=back[0], minute=back[1])
        if ret <= leave:
            ret += timedelta(days=1)
        return trip_cls(start=leave, end=ret, energy_kwh=float(self.cfg.get("trip_kwh", 0.0)),
                        depart_soc_pct=float(self.cfg.get("target_soc", 80.0)))

    def slots(self, now: float, hours: float = 24.0) -> list[dict]:
        """The plan from the present slot on, for the API and the dashboard."""
        p = self.plan
        if p is None:
            return []
        k0 = p.slot_at(_dt(now)) or 0
        n = min(len(p.car_w), k0 + int(hours * 3600 / p.slot_s))
        imp, _ = self.prices(p.slot_time(k0), n - k0) if n > k0 else ([], [])
        return [{"t": p.slot_time(k).timestamp(), "car_w": round(p.car_w[k]), "grid_w": round(p.grid_w[k]),
                 "soc": round(p.soc_pct[k], 1), "import_price": imp[k - k0]} for k in range(k0, n)]


def flat_prices(import_price: float, export_price: float):
    """A tariff of constant prices (the default without a tariff file)."""
    def prices(start: datetime, slots: int) -> tuple[list[float], list[float]]:
        return [import_price] * slots, [export_price] * slots
    return prices


def tariff_prices(tariff, fallback):
    """Prices from a ``hems.tariff.Tariff``, with ``fallback`` for slots it does not cover."""
    def prices(start: datetime, slots: int):
        covered = tariff.covered_slots(start, slots, SLOT_S)
        imp, exp_ = fallback(start, slots)
        if covered:
            ti, te = tariff.slot_prices(start, covered, SLOT_S)
            imp[:covered], exp_[:covered] = ti, te
        return imp, exp_
    return prices


def scripted_pv(site_events: Sequence, t0: float):
    """The simulator's own solar script as a perfect forecast (a simulated house only: a real one
    forecasts with pvlib)."""
    steps = sorted((t0 + e.at_s, e.pv_w) for e in site_events if e.pv_w is not None)

    def at(t: float) -> float:
        w = 0.0
        for when, pv in steps:
            if when <= t:
                w = pv
        return w

    def pv(start: datetime, slots: int) -> list[float]:
        s = start.timestamp()
        return [sum(at(s + k * SLOT_S + q * SLOT_S / 3) for q in range(3)) / 3 for k in range(slots)]
    return pv


class MeasuredSolar:
    """The plan's solar forecast from the configured array (``hems.forecast.solar``: pvlib under a
    clear sky) corrected by what the inverter measured: ``observe`` integrates the measured power
    into quarter-hour means, the last ``keep_s`` of which give the clear-sky index."""

    def __init__(self, array, *, keep_s: float = 7 * 86400.0, db: sqlite3.Connection | None = None) -> None:
        """``db``: where the means are kept across restarts (table ``pv_measured``; the caller
        commits), else in memory only."""
        self.array = array
        self.keep_s = keep_s
        self.db = db
        self.samples: deque[tuple[datetime, float]] = deque()   # (the quarter-hour's middle, mean W)
        self._slot: tuple[float, float, float] | None = None     # (slot start, ∫pv dt, seconds)
        self._last: tuple[float, float] | None = None            # (time, W) of the last reading
        if db is not None:
            db.execute("CREATE TABLE IF NOT EXISTS pv_measured (slot INTEGER PRIMARY KEY, w REAL NOT NULL)")
            rows = db.execute("SELECT slot, w FROM pv_measured WHERE slot >= "
                              "(SELECT MAX(slot) FROM pv_measured) - ? ORDER BY slot", (keep_s,)).fetchall()
            self.samples.extend((_dt(slot + SLOT_S / 2), w) for slot, w in rows
                                if math.isfinite(w) and 0.0 <= w <= 1e7)

    def observe(self, now: float, pv_w: float | None) -> None:
        """A reading of the inverter at ``now``; None (no reading), a non-finite or negative value
        ends the interval without counting it."""
        last = self._last
        ok = pv_w is not None and math.isfinite(pv_w) and pv_w >= 0.0
        self._last = (now, pv_w) if ok else None
        if last is None or now <= last[0]:
            return
        t, w = last
        while t < now:  # the held reading, split at the quarter-hours it spans
            slot = t - t % SLOT_S
            end = min(now, slot + SLOT_S)
            if self._slot is not None and self._slot[0] != slot:
                self._close()
            start, energy, seconds = self._slot if self._slot is not None else (slot, 0.0, 0.0)
            self._slot = (start, energy + w * (end - t), seconds + (end - t))
            t = end

    def _close(self) -> None:
        start, energy, seconds = self._slot
        self._slot = None
        if seconds >= SLOT_S / 3:  # a third of a quarter-hour measured at least
            self.samples.append((_dt(start + SLOT_S / 2), energy / seconds))
            if self.db is not None:
                self.db.execute("INSERT OR REPLACE INTO pv_measured (slot, w) VALUES (?, ?)",
                                (int(start), energy / seconds))
                self.db.execute("DELETE FROM pv_measured WHERE slot < ?", (int(start - self.keep_s),))
        while self.samples and (self.samples[-1][0] - self.samples[0][0]).total_seconds() > self.keep_s:
            self.samples.popleft()

    def __call__(self, start: datetime, slots: int) -> list[float]:
        from .forecast.solar import forecast

        return forecast(self.array, start, slots, slot_s=SLOT_S, recent=list(self.samples))

    def index(self) -> float | None:
        """The clear-sky index of all the samples kept (None before a daylight sample)."""
        from .forecast.solar import clear_sky_index

        return clear_sky_index(self.array, list(self.samples))


def file_pv(points: Sequence[tuple[datetime, float]]):
    """A solar forecast from a file's (time, W) points: each holds until the next, the last for the
    file's own step (one slot for a single point); outside that, 0 W (the file does not say)."""
    pts = sorted(points)
    times = [t.timestamp() for t, _ in pts]
    step = times[-1] - times[-2] if len(times) > 1 else SLOT_S

    def pv(start: datetime, slots: int) -> list[float]:
        out = []
        for k in range(slots):
            mid = start.timestamp() + (k + 0.5) * SLOT_S
            i = bisect.bisect_right(times, mid) - 1
            out.append(pts[i][1] if i >= 0 and mid < times[-1] + step else 0.0)
        return out
    return pv


def circuit_forecast(site: SiteConfig):
    """The house's load as its circuits' ratings (no history, no H0: a flat forecast)."""
    total = sum(c.power_w for c in site.circuits)

    def forecast(start: datetime, slots: int) -> list[float]:
        return [total] * slots
    return forecast

"""The simulated site: the real ``SiteController`` driving simulated devices on a simulated clock.

Sans-I/O: ``Site.run(until)`` advances the clock and collects timeline rows; writing files is the
command's job (v2h/hems_cmd.py). The clock is not tied to ``step_s``: every scripted event, every
controller deadline, every contact's travel and every measurement change is visited at its own time.
``skip=True`` (the default) visits only those; ``skip=False`` also visits every multiple of ``step_s``.
Between visits nothing can change (the battery is integrated exactly), so both give one timeline.

The plant (docs/hems.md draws it): utility ─ K1 utility contact ─ backed-up panel ─ circuit relays;
the charger's grid-tie port and the solar inverter sit on the utility side of K1 (both cease to
energise without a grid: UL 1741 / IEEE 1547 anti-islanding); its stand-alone port feeds the panel
through K2, the island contact; K3 bonds neutral to ground on the panel side while islanded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .config import SiteConfig
from .controller import SiteController
from .devices.charger_sim import CarSim, ChargerSim
from .devices.contact import ContactSim
from .invariants import InvariantChecker, Physical, Violation
from .model import ChargerMode, Commands, GridReading, Measurements

SAMPLE_S = 0.1     # after a visit that changed what the meters read, the next sample comes this much later
FAULTS = frozenset({"utility_stuck_closed", "utility_stuck_open", "utility_feedback_lost", "island_stuck_open",
                    "island_stuck_closed", "island_feedback_lost", "relay_stuck_on", "charger_link_lost",
                    "charger_ignores_limit", "sensor_failed", "clear"})


@dataclass(frozen=True, kw_only=True, slots=True)
class SimEvent:
    """One scripted change (the scenario's ``[[events]]``)."""

    at_s: float
    grid_voltage: float | None = None
    grid_frequency: float | None = None
    sensor: int | None = None            # 1 or 2: only that sensor's reading (a sensor fault), else the grid
    circuit: str | None = None
    power_w: float | None = None
    pv_w: float | None = None
    plugged: bool | None = None
    soc: float | None = None
    fault: str | None = None
    restart: bool = False


@dataclass(slots=True)
class SensorSim:
    voltage_v: float
    frequency_hz: float
    failed: bool = False

    def read(self, phases: int) -> GridReading | None:
        return None if self.failed else GridReading(voltage_v=(self.voltage_v,) * phases,
                                                    frequency_hz=self.frequency_hz)


@dataclass(slots=True)
class Stats:
    visits: int = 0
    islanded_s: float = 0.0
    energy_to_house_wh: float = 0.0
    min_soc: float = 100.0


class Site:
    def __init__(self, cfg: SiteConfig, *, car: CarSim | None = None, charger_max_charge_w: float = 11000.0,
                 charger_max_discharge_w: float = 11000.0, efficiency: float = 0.95, charger=None,
                 events: list[SimEvent] | tuple[SimEvent, ...] = (), step_s: float = 1.0, phases: int = 1,
                 controller_factory: Callable[[SiteConfig, float], SiteController] = SiteController) -> None:
        self.cfg = cfg
        self.step_s = step_s
        self.phases = phases
        self.t = 0.0
        v, f = cfg.nominal_voltage, cfg.nominal_frequency
        self.grid_v, self.grid_f = v, f
        self.sensors = [SensorSim(v, f) for _ in range(cfg.grid_sensors)]
        self.utility = ContactSim(closed=True)
        self.island = ContactSim(closed=False)
        self.bond = ContactSim(closed=False)
        self.relays = [ContactSim(closed=True, travel_s=0.02) for _ in cfg.circuits]
        self.demand = [c.power_w for c in cfg.circuits]
        self.index = {c.name: i for i, c in enumerate(cfg.circuits)}
        self.pv_demand = 0.0
        # the simulated charger and car, or another with the same surface (hems.ocpp_charger: a real
        # charger over OCPP 2.1, whose car and power stage live in another process)
        self.charger = charger if charger is not None else ChargerSim(
            car=car or CarSim(), max_charge_w=charger_max_charge_w, max_discharge_w=charger_max_discharge_w,
            efficiency=efficiency)
        self.wanted_w: float | None = None  # the energy manager's wish while grid-connected (None: the config's)
        self.factory = controller_factory
        self.controller = controller_factory(cfg, 0.0)
        self.checker = InvariantChecker(cfg)
        self.events = sorted(events, key=lambda e: e.at_s)
        self.ev_i = 0
        self.rows: list[dict] = []
        self.stats = Stats(min_soc=self.charger.car.soc if self.charger.car.plugged and self.charger.car.soc is not None
                           else 100.0)
        self._last_key: tuple | None = None
        self._dirty = True
        self._pending_reasons: list[str] = []
        # derived physical state (set by _resolve)
        self.load_w = 0.0
        self.pv_w = 0.0
        self.export_w = 0.0
        self.energised: list[bool] = [False] * len(cfg.circuits)
        self.last_cmd: Commands | None = None
        self._resolve(0.0)

    # ----------------------------------------------------------------- physics

    def _grid_live(self) -> bool:
        return self.grid_v >= 0.5 * self.cfg.nominal_voltage and self.grid_f > 0.0

    def _grid_in_trip_window(self) -> bool:
        w, nv = self.cfg.trip, self.cfg.nominal_voltage
        return w.v_min_pu * nv <= self.grid_v <= w.v_max_pu * nv and w.f_min_hz <= self.grid_f <= w.f_max_hz

    def _resolve(self, now: float) -> None:
        ch = self.charger
        in_window = self._grid_in_trip_window()
        fed_by_grid = self.utility.closed and self._grid_live()
        relay_on = [r.closed for r in self.relays]
        island_load = None
        if self.island.closed:
            island_load = 0.0 if fed_by_grid else sum(d for d, on in zip(self.demand, relay_on) if on)
        ch.resolve(now, in_window, island_load)
        live = fed_by_grid or (self.island.closed and ch.mode is ChargerMode.GRID_FORMING)
        self.energised = [on and live for on in relay_on]
        self.load_w = sum(d for d, e in zip(self.demand, self.energised) if e)
        self.pv_w = self.pv_demand if in_window else 0.0
        grid_side = ch.power_w if ch.mode is ChargerMode.GRID_FOLLOWING else 0.0
        net = self.pv_w - grid_side - (self.load_w if fed_by_grid else 0.0)
        self.export_w = net if net > 0.0 else 0.0

    def measure(self) -> Measurements:
        return Measurements(
            grid=tuple(s.read(self.phases) for s in self.sensors), load_w=self.load_w, pv_w=self.pv_w,
            utility_fb=self.utility.feedback(), island_fb=self.island.feedback(),
            bond_fb=self.bond.feedback() if self.cfg.neutral_ground_bond else None,
            relay_fb=tuple(r.feedback() for r in self.relays),
            circuit_w=tuple(d if e else 0.0 for d, e in zip(self.demand, self.energised)),
            charger=self.charger.read_state())

    def physical(self) -> Physical:
        ch = self.charger
        return Physical(grid_live=self._grid_live(), utility_closed=self.utility.closed,
                        island_closed=self.island.closed, bond_closed=self.bond.closed, charger_mode=ch.mode,
                        charger_w=ch.power_w, soc=ch.car.soc if ch.car.plugged else None,
                        car_min_soc=ch.car.min_soc, export_w=self.export_w,
                        relays_closed=tuple(r.closed for r in self.relays))

    # ----------------------------------------------------------------- events

    def _apply_event(self, e: SimEvent, now: float) -> None:
        if e.grid_voltage is not None or e.grid_frequency is not None:
            targets = self.sensors if e.sensor is None else [self.sensors[e.sensor - 1]]
            for s in targets:
                if e.grid_voltage is not None:
                    s.voltage_v = e.grid_voltage
                if e.grid_frequency is not None:
                    s.frequency_hz = e.grid_frequency
            if e.sensor is None:
                self.grid_v = self.grid_v if e.grid_voltage is None else e.grid_voltage
                self.grid_f = self.grid_f if e.grid_frequency is None else e.grid_frequency
        if e.circuit is not None and e.power_w is not None:
            self.demand[self.index[e.circuit]] = e.power_w
        if e.pv_w is not None:
            self.pv_demand = e.pv_w
        if e.plugged is not None:
            self.charger.car.plugged = e.plugged
        if e.soc is not None:
            self.charger.set_soc(e.soc, now)
        if e.fault is not None:
            self._fault(e, now)
        if e.restart:
            self.controller = self.factory(self.cfg, now)
            self.checker.restarted(now)
            self._pending_reasons.append("controller restarted")

    def reconfigure(self, cfg: SiteConfig) -> None:
        """A user's change of reserve or circuit priorities, for the controller and the checker alike."""
        self.controller.reconfigure(cfg)
        self.cfg = self.checker.cfg = cfg

    def schedule(self, e: SimEvent) -> None:
        """Add an event during a run (it must not be in the past)."""
        if e.at_s < self.t:
            raise ValueError(f"event at {e.at_s} s is before the clock ({self.t} s)")
        i = self.ev_i
        while i < len(self.events) and self.events[i].at_s <= e.at_s:
            i += 1
        self.events.insert(i, e)

    def _fault(self, e: SimEvent, now: float) -> None:
        f = e.fault
        if f == "clear":
            for c in (self.utility, self.island, self.bond, *self.relays):
                c.clear(now)
            for s in self.sensors:
                s.failed = False
            self.charger.link_up = True
            self.charger.ignores_limit = False
        elif f == "utility_stuck_closed":
            self.utility.stuck = "closed"
        elif f == "utility_stuck_open":
            self.utility.stuck = "open"
        elif f == "utility_feedback_lost":
            self.utility.feedback_lost = True
        elif f == "island_stuck_open":
            self.island.stuck = "open"
        elif f == "island_stuck_closed":
            self.island.stuck = "closed"
        elif f == "island_feedback_lost":
            self.island.feedback_lost = True
        elif f == "relay_stuck_on":
            targets = self.relays if e.circuit is None else [self.relays[self.index[e.circuit]]]
            for r in targets:
                r.stuck = "closed"
        elif f == "charger_link_lost":
            self.charger.link_up = False
        elif f == "charger_ignores_limit":
            self.charger.ignores_limit = True
        elif f == "sensor_failed":
            for i, s in enumerate(self.sensors):
                if e.sensor is None or e.sensor == i + 1:
                    s.failed = True
        if f != "clear":
            self._pending_reasons.append(f"fault {f}")
        else:
            self._pending_reasons.append("faults cleared")

    # ----------------------------------------------------------------- the loop

    def _advance(self, now: float) -> None:
        dt = now - self.t
        if dt > 0:
            if self.island.closed and self.charger.mode is ChargerMode.GRID_FORMING and not self.utility.closed:
                self.stats.islanded_s += dt
                self.stats.energy_to_house_wh += -self.charger.power_w * dt / 3600.0
        for c in (self.utility, self.island, self.bond, *self.relays):
            c.advance(now)
        self.charger.advance(now)
        self.t = now

    def visit(self, now: float) -> dict | None:
        self._advance(now)
        while self.ev_i < len(self.events) and self.events[self.ev_i].at_s <= now:
            self._apply_event(self.events[self.ev_i], now)
            self.ev_i += 1
        self._resolve(now)
        m = self.measure()
        c = self.controller.step(m, now, self.wanted_w)
        self.utility.command(c.utility_close, now)
        self.island.command(c.island_close, now)
        self.bond.command(c.bond_close, now)
        for r, on in zip(self.relays, c.relays):
            r.command(on, now)
        self.charger.send(c.charger)
        self._resolve(now)
        self._dirty = self.measure() != m
        self.checker.check(now, m, c, self.physical())
        self.last_cmd = c
        self.stats.visits += 1
        soc = self.charger.car.soc
        if self.charger.car.plugged and soc is not None and soc < self.stats.min_soc:
            self.stats.min_soc = soc
        return self._row(now, m, c)

    def _row(self, now: float, m: Measurements, c: Commands) -> dict | None:
        reasons = self._pending_reasons + [e.reason for e in self.controller.take_events()]
        self._pending_reasons = []
        ch = self.charger
        key = (self.controller.grid_ok, self.controller.phase.value, c.utility_close, m.utility_fb,
               c.island_close, m.island_fb,
               tuple(n.name for n, e in zip(self.cfg.circuits, self.energised) if e),
               None if ch.car.soc is None else round(ch.car.soc, 1), round(ch.power_w), round(self.load_w), round(self.export_w),
               tuple(sorted(c.alarms)))
        if key == self._last_key and not reasons:
            return None
        self._last_key = key
        row = {"t": round(float(now), 6), "grid_ok": key[0], "phase": key[1], "utility_cmd": key[2], "utility_fb": key[3],
               "island_cmd": key[4], "island_fb": key[5], "circuits_on": list(key[6]), "soc": key[7],
               "car_w": key[8], "load_w": key[9], "export_w": key[10], "alarms": list(key[11]),
               "reason": "; ".join(reasons)}
        self.rows.append(row)
        return row

    def next_time(self, now: float, skip: bool = True) -> float:
        best = math.inf
        if self.ev_i < len(self.events):
            best = self.events[self.ev_i].at_s
        d = self.controller.next_deadline()
        if d is not None and d < best:
            best = d
        for c in (self.utility, self.island, self.bond, *self.relays):
            if c.move_at is not None and c.move_at < best:
                best = c.move_at
        d = self.charger.deadline()
        if d is not None and d > now:
            best = min(best, d)
        if self._dirty:
            best = min(best, now + SAMPLE_S)
        g = self._soc_deadline(now)
        if g is not None and g < best:
            best = g
        if not skip:
            best = min(best, self._next_grid_point(now))
        return best

    def _next_grid_point(self, now: float) -> float:
        return (math.floor(now / self.step_s + 1e-9) + 1) * self.step_s

    def _soc_deadline(self, now: float) -> float | None:
        """The grid point just before the SoC crosses a level that matters (the 0.1 % the timeline
        shows, the controller's levels, the car's minimum and 100 %), so that skipping visits the
        same grid points near a crossing as stepping every ``step_s`` does."""
        ch = self.charger
        rate = ch.rate
        if rate == 0.0:
            return None
        soc = ch.car.soc
        levels = [*self.controller.watch_soc(), ch.car.min_soc, 100.0, 0.0]
        if rate < 0:
            b = math.floor((soc - 0.05) / 0.1) * 0.1 + 0.05
            if b >= soc:
                b -= 0.1
            target = max([b] + [x for x in levels if x < soc])
        else:
            b = math.ceil((soc - 0.05) / 0.1) * 0.1 + 0.05
            if b <= soc:
                b += 0.1
            target = min([b] + [x for x in levels if x > soc])
        tc = now + (target - soc) / rate
        g = (math.ceil(tc / self.step_s - 1e-9)) * self.step_s - self.step_s
        return g if g > now + 1e-9 else self._next_grid_point(now)

    def run(self, until: float, skip: bool = True) -> None:
        """Visit every time that matters up to and including ``until``."""
        t = self.t if self.stats.visits else 0.0
        if self.stats.visits == 0:
            self.visit(0.0)
        while True:
            t = self.next_time(self.t, skip)
            if t > until:
                break
            self.visit(t)
        if self.t < until:
            self._advance(until)

    @property
    def violations(self) -> list[Violation]:
        return self.checker.violations

    def summary(self) -> dict:
        v = self.checker.violations
        return {"invariants_ok": not v, "violations": [x.to_dict() for x in v[:100]],
                "violation_count": len(v), "islanded_s": round(self.stats.islanded_s, 3),
                "energy_to_house_kwh": round(self.stats.energy_to_house_wh / 1000.0, 3),
                "min_soc": round(self.stats.min_soc, 2), "steps_checked": self.checker.steps,
                "visits": self.stats.visits, "end_soc": None if self.charger.car.soc is None else round(self.charger.car.soc, 2),
                "final_phase": self.controller.phase.value}

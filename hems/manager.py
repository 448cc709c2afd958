"""The energy manager's core, sans-I/O: the house (``hems.sim.Site``: the site controller with the
house's devices) with its charger driven over OCPP 2.1 (``hems.ocpp_charger`` on the CSMS core),
the plan (``hems.planning``), the user's settings, the outage runtime, and a log of every decision
with its reason.

Time: the manager runs on Unix time (``now``); the site counts seconds from the manager's start.
``next_deadline()`` says when the manager must look again; anything the chargers report (a new
meter value, a plug-in) makes it look at once (``poke``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .config import ConfigError, Priority, SiteConfig, check_site, number
from .csms import CSMSCore
from .hems_config import parse_clock
from .live import LiveSite
from .model import ChargerMode
from .ocpp_charger import OCPPCharger
from .planning import SLOT_S, CarView, Planner
from .sim import SimEvent, Site

if TYPE_CHECKING:
    from .live import LiveSite


@dataclass(frozen=True)
class Decision:
    """One thing the manager decided, and why (``decisions.jsonl``)."""

    t: float
    kind: str          # 'site' (the controller: phases, circuits, alarms) | 'charger' (a request) | 'plan' | 'settings'
    reason: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"t": self.t, "kind": self.kind, "reason": self.reason, **self.details}


@dataclass(frozen=True)
class Settings:
    """What a household changes (``POST /api/settings``): the trip reserve, the daily departure
    and the circuits' priorities."""

    reserve_soc: float
    departure: tuple[int, int] | None
    priorities: dict[str, str]

    def to_dict(self) -> dict:
        return {"reserve_soc": self.reserve_soc,
                "departure": None if self.departure is None else f"{self.departure[0]:02d}:{self.departure[1]:02d}",
                "priorities": dict(self.priorities)}


class EnergyManager:
    """The house of one charger (the multi-charger building is the CSMS core's; the site
    controller drives one island source)."""

    def __init__(self, site_cfg: SiteConfig, csms: CSMSCore, *, station_id: str, now: float,
                 events: list[SimEvent] | tuple[SimEvent, ...] = (), deadband_w: float = 200.0,
                 max_charge_w: float = 11000.0, max_discharge_w: float = 11000.0,
                 plan: Callable[[float], float | None] | None = None, planner: Planner | None = None,
                 departure: tuple[int, int] | None = None, capacity_kwh: float = 60.0, standby_w: float = 30.0,
                 efficiency: float = 0.9, meter_interval_s: int = 60, load_history=None, store=None,
                 site_factory: Callable[[SiteConfig, OCPPCharger], Site | LiveSite] | None = None):
        """``events``: the simulated house's script (times from ``now``); ``plan(t)``: a fixed wish
        for the charger's power at Unix time ``t`` while grid-connected, or ``planner``: the
        optimiser; ``load_history``: where the house's quarter-hour loads are learned;
        ``store``: where settings persist; ``site_factory(site_cfg, charger)``: the house on other
        devices (``hems.live.LiveSite`` on real ones) instead of the simulated ``Site``."""
        self.t0 = now
        self.csms = csms
        self.decisions: list[Decision] = []
        self.charger = OCPPCharger(csms, station_id, deadband_w=deadband_w, max_charge_w=max_charge_w,
                                   max_discharge_w=max_discharge_w, time_offset=now, meter_interval_s=meter_interval_s,
                                   decision=lambda t, why, d: self._decide(t, "charger", why, d))
        if site_factory is not None and events:
            raise ValueError("events script the simulated house only")
        self.site = site_factory(site_cfg, self.charger) if site_factory is not None \
            else Site(site_cfg, charger=self.charger, events=list(events))
        self.fixed_plan = plan
        self.planner = planner
        self.capacity_kwh, self.standby_w, self.efficiency = capacity_kwh, standby_w, efficiency
        self.load_history = load_history
        self.store = store
        self.outages: list = []           # announced outages (hems.plan.Outage)
        self.settings = Settings(site_cfg.reserve_soc, departure, {c.name: c.priority.value for c in site_cfg.circuits})
        self._poked: float | None = now   # before the saved settings: applying them pokes
        if store is not None:
            saved = store.get_setting("settings")
            if saved:
                self.update_settings(saved, now, persist=False)
        self._phase: str | None = None
        self._plugged = False
        self._load_slot: tuple[float, float, float] | None = None  # (slot start, ∫load dt, seconds)
        self._last_visit = now

    # --- time -------------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        t = self.t0 + self.site.next_time(self.site.t)
        for d in (self._poked, self.planner.next_deadline() if self.planner else None):
            if d is not None:
                t = min(t, d)
        return t if math.isfinite(t) else None

    def poke(self, now: float) -> None:
        """Something the site reads changed outside it (a charger's report): look now."""
        self._poked = now if self._poked is None else min(self._poked, now)

    def handle_timer(self, now: float) -> None:
        self._poked = None
        self._learn_load(now)
        if self.planner is not None:
            self._plan(now)
            self.site.wanted_w = self.planner.wanted_w(now)
        else:
            self.site.wanted_w = self.fixed_plan(now) if self.fixed_plan is not None else None
        t = now - self.t0
        due = self.site.next_time(self.site.t)
        if t < due <= t + 1e-5:  # Unix time has less resolution than the site's clock: the site's own time
            t = due
        row = self.site.visit(max(self.site.t, t))  # the timeline's row of this visit, if it made one
        if row is not None and row["reason"]:
            self._decide(now, "site", row["reason"], {"phase": row["phase"], "circuits_on": row["circuits_on"],
                                                      "alarms": row["alarms"]})
        phase, plugged = self.site.controller.phase.value, self.charger.car.plugged
        if self.planner is not None and (phase != self._phase or plugged != self._plugged):
            self.planner.request(now, f"phase {phase}" if phase != self._phase else
                                 "car plugged in" if plugged else "car left")
        self._phase, self._plugged = phase, plugged
        self._last_visit = now

    def _plan(self, now: float) -> None:
        before = self.planner.planned_at
        car = self._car_view()
        self.planner.run(now, car, reserve_pct=self.settings.reserve_soc, departure=self.settings.departure,
                         outages=self.outages)
        if self.planner.planned_at != before and self.planner.plan is not None:
            p = self.planner.plan
            self._decide(now, "plan", f"planned ({self.planner.reason or 'every 15 min'}): cost {p.cost:.2f}, "
                         f"charge {p.charged_kwh:.1f} kWh, discharge {p.discharged_kwh:.1f} kWh",
                         {"solve_ms": round(p.solve_ms, 2), "slot_w": round(p.car_w[0])})
            self.planner.reason = ""
        elif self.planner.error and self.planner.planned_at == before:
            pass  # the error is in the status; the site's configured setpoint applies

    def _car_view(self) -> CarView | None:
        st = self.charger.read_state()
        if not (st.link_up and st.car_plugged and st.soc is not None):
            return None
        return CarView(soc_pct=st.soc, capacity_kwh=self.charger.car.capacity_kwh or self.capacity_kwh,
                       charge_max_w=min(st.car_max_charge_w, st.charger_max_charge_w),
                       discharge_max_w=min(st.car_max_discharge_w, st.charger_max_discharge_w),
                       min_soc_pct=st.car_min_soc)

    def _learn_load(self, now: float) -> None:
        """The house's mean load per quarter-hour into the history the forecast learns from."""
        if self.load_history is None:
            return
        slot = now - now % SLOT_S
        load = self.site.load_w
        dt = max(0.0, now - self._last_visit)
        if self._load_slot is None or self._load_slot[0] != slot:
            if self._load_slot is not None and self._load_slot[2] > 0:
                start, energy, seconds = self._load_slot
                self.load_history.record(datetime.fromtimestamp(start, timezone.utc), energy / seconds)
                self.load_history.commit()
            self._load_slot = (slot, load * dt, dt)
        else:
            start, energy, seconds = self._load_slot
            self._load_slot = (start, energy + load * dt, seconds + dt)

    # --- settings -------------------------------------------------------------------------------------------
    def update_settings(self, changes: dict, now: float, *, persist: bool = True) -> Settings:
        """Check and apply a user's change at once (ConfigError naming the key when it is wrong);
        persisted in the store; the plan is made again."""
        if not isinstance(changes, dict):
            raise ConfigError("settings", "want a JSON object")
        unknown = set(changes) - {"reserve_soc", "departure", "priorities"}
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown setting")
        s = self.settings
        reserve = number("reserve_soc", changes["reserve_soc"], 0.0, 100.0) if "reserve_soc" in changes \
            else s.reserve_soc
        departure = s.departure
        if "departure" in changes:
            departure = None if changes["departure"] in (None, "") else parse_clock("departure", changes["departure"])
        priorities = dict(s.priorities)
        if "priorities" in changes:
            new = changes["priorities"]
            if not isinstance(new, dict):
                raise ConfigError("priorities", "want an object circuit → critical|essential|deferrable")
            for name, prio in new.items():
                if name not in priorities:
                    raise ConfigError(f"priorities.{name}", "no such circuit")
                if prio not in {p.value for p in Priority}:
                    raise ConfigError(f"priorities.{name}", "want critical, essential or deferrable")
                priorities[name] = prio
        cfg = replace(self.site.cfg, reserve_soc=reserve, circuits=tuple(
            replace(c, priority=Priority(priorities[c.name])) for c in self.site.cfg.circuits))
        check_site(cfg, island_capacity_w=self.charger.max_discharge_w, prefix="")
        self.site.reconfigure(cfg)
        self.settings = Settings(reserve, departure, priorities)
        if persist:
            if self.store is not None:
                self.store.set_setting("settings", self.settings.to_dict())
            self._decide(now, "settings", "settings changed", self.settings.to_dict())
        if self.planner is not None:
            self.planner.request(now, "settings changed")
        self.poke(now)
        return self.settings

    # --- views --------------------------------------------------------------------------------------------
    @property
    def islanded(self) -> bool:
        s = self.site
        return s.island.closed and not s.utility.closed and self.charger.mode is ChargerMode.GRID_FORMING

    def runtime(self):
        """How long the car could carry the house: what-if while on the grid, live while islanded."""
        from .runtime import circuit_loads, estimate

        st = self.charger.read_state()
        if not st.car_plugged or st.soc is None:
            return None
        on = {c.name: w for c, w, e in zip(self.site.cfg.circuits, self.site.demand, self.site.energised)}
        loads = circuit_loads(self.site.cfg.circuits, on)
        capacity = self.charger.car.capacity_kwh or self.capacity_kwh
        return estimate(soc_pct=st.soc, capacity_kwh=capacity, reserve_pct=max(self.settings.reserve_soc, st.car_min_soc),
                        efficiency=self.efficiency, standby_w=self.standby_w, loads=loads,
                        capacity_w=min(self.site.cfg.inverter_max_w, st.charger_max_discharge_w, st.car_max_discharge_w))

    def status(self, now: float) -> dict:
        """Everything the API and the dashboard show (``GET /api/status``)."""
        s, ctl, ch = self.site, self.site.controller, self.charger
        st = ch.read_state()
        cmd = s.last_cmd
        rt = self.runtime()
        circuits = [{"name": c.name, "priority": c.priority.value, "on": on, "w": round(d if on else 0.0),
                     "rated_w": c.power_w, "relay_cmd": bool(cmd.relays[i]) if cmd else None}
                    for i, (c, on, d) in enumerate(zip(s.cfg.circuits, s.energised, s.demand))]
        return {
            "t": now, "phase": ctl.phase.value, "islanded": self.islanded,
            "grid": {"ok": ctl.grid_ok, "voltage": s.grid_v, "frequency": s.grid_f},
            "switch": {"utility_cmd": cmd.utility_close if cmd else None, "utility_fb": s.utility.feedback(),
                       "island_cmd": cmd.island_close if cmd else None, "island_fb": s.island.feedback()},
            "house": {"load_w": round(s.load_w), "pv_w": round(s.pv_w), "export_w": round(s.export_w),
                      "grid_w": round((s.load_w - s.pv_w + (ch.power_w if ch.mode is ChargerMode.GRID_FOLLOWING else 0))
                                      if not self.islanded else 0.0)},
            "circuits": circuits,
            "car": {"plugged": st.car_plugged, "soc": st.soc, "min_soc": st.car_min_soc,
                    "reserve_soc": max(self.settings.reserve_soc, st.car_min_soc), "user_reserve_soc":
                    self.settings.reserve_soc, "capacity_kwh": ch.car.capacity_kwh or self.capacity_kwh},
            "charger": {"station": ch.station_id, "link_up": st.link_up, "mode": ch.mode.value,
                        "setpoint_w": None if ch.accepted is None else round(ch.accepted.power_w),
                        "measured_w": round(st.power_w), "wanted_w": None if s.wanted_w is None else round(s.wanted_w)},
            "plan": {"slots": self.planner.slots(now) if self.planner else [],
                     "planned_at": self.planner.planned_at if self.planner else None,
                     "error": self.planner.error if self.planner else None,
                     "inputs": dict(self.planner.sources) if self.planner else {}},
            "runtime": None if rt is None else {
                "text": rt.text(live=self.islanded), "usable_kwh": round(rt.usable_kwh, 2),
                "scenarios": [{"name": x.name, "hours": None if math.isinf(x.hours) else round(x.hours, 2),
                               "load_w": round(x.load_w), "fits": x.fits} for x in rt.scenarios]},
            "alarms": sorted(cmd.alarms) if cmd else [],
            "devices": s.device_status() if isinstance(s, LiveSite) else None,  # None: the simulated house
            "settings": self.settings.to_dict(),
        }

    def summary(self) -> dict:
        return self.site.summary()

    def _decide(self, t: float, kind: str, reason: str, details: dict) -> None:
        self.decisions.append(Decision(t, kind, reason, details))

"""The energy manager's core, sans-I/O: the house (``hems.sim.Site``: the site controller with the
house's devices) with its charger driven over OCPP 2.1 (``hems.ocpp_charger`` on the CSMS core),
what the plan wants from the charger, and a log of every decision with its reason.

Time: the manager runs on Unix time (``now``); the site counts seconds from the manager's start.
``next_deadline()`` says when the manager must look again; anything the chargers report (a new
meter value, a plug-in) makes it look at once (``poke``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import SiteConfig
from .csms import CSMSCore
from .model import ChargerMode
from .ocpp_charger import OCPPCharger
from .sim import SimEvent, Site


@dataclass(frozen=True)
class Decision:
    """One thing the manager decided, and why (``decisions.jsonl``)."""

    t: float
    kind: str          # 'site' (the controller: phases, circuits, alarms) | 'charger' (a request) | 'plan'
    reason: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"t": self.t, "kind": self.kind, "reason": self.reason, **self.details}


class EnergyManager:
    """The house of one charger (the multi-charger building is the CSMS core's; the site
    controller drives one island source)."""

    def __init__(self, site_cfg: SiteConfig, csms: CSMSCore, *, station_id: str, now: float,
                 events: list[SimEvent] | tuple[SimEvent, ...] = (), deadband_w: float = 200.0,
                 max_charge_w: float = 11000.0, max_discharge_w: float = 11000.0,
                 plan: Callable[[float], float | None] | None = None):
        """``events``: the simulated house's script (times from ``now``); ``plan(t)``: the power the
        plan wants from the charger at Unix time ``t`` while grid-connected (None: the site's
        configured setpoint)."""
        self.t0 = now
        self.csms = csms
        self.decisions: list[Decision] = []
        self.charger = OCPPCharger(csms, station_id, deadband_w=deadband_w, max_charge_w=max_charge_w,
                                   max_discharge_w=max_discharge_w, time_offset=now,
                                   decision=lambda t, why, d: self._decide(t, "charger", why, d))
        self.site = Site(site_cfg, charger=self.charger, events=list(events))
        self.plan = plan
        self._poked: float | None = now
        self._last_phase: str | None = None

    # --- time -------------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        t = self.t0 + self.site.next_time(self.site.t)
        if self._poked is not None:
            t = min(t, self._poked)
        return t if math.isfinite(t) else None

    def poke(self, now: float) -> None:
        """Something the site reads changed outside it (a charger's report): look now."""
        self._poked = now if self._poked is None else min(self._poked, now)

    def handle_timer(self, now: float) -> None:
        self._poked = None
        self.site.wanted_w = self.plan(now) if self.plan is not None else None
        before = len(self.site.rows)
        t = now - self.t0
        due = self.site.next_time(self.site.t)
        if t < due <= t + 1e-5:  # Unix time has less resolution than the site's clock: the site's own time
            t = due
        self.site.visit(max(self.site.t, t))
        for row in self.site.rows[before:]:
            if row["reason"]:
                self._decide(now, "site", row["reason"], {"phase": row["phase"], "circuits_on": row["circuits_on"],
                                                          "alarms": row["alarms"]})

    # --- views --------------------------------------------------------------------------------------------
    @property
    def islanded(self) -> bool:
        s = self.site
        return s.island.closed and not s.utility.closed and self.charger.mode is ChargerMode.GRID_FORMING

    def summary(self) -> dict:
        return self.site.summary()

    def _decide(self, t: float, kind: str, reason: str, details: dict) -> None:
        self.decisions.append(Decision(t, kind, reason, details))

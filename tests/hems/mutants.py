"""Plausible bugs seeded into the controller; the stateful test must catch each one.

Each entry patches the controller (through pytest's monkeypatch) and names the invariant expected
to catch it."""

from __future__ import annotations

from hems import controller, grid, loads
from hems.config import Priority


def close_before_feedback(mp):
    """The utility contact is taken as open once *commanded* open: its feedback is never read."""
    mp.setattr(controller.SiteController, "utility_open", lambda self: True)

    def transition(self, m, now):
        for guard, new, reason in controller.TRANSITIONS[self.phase]:
            if getattr(self, guard)():
                return new, reason
        return None
    mp.setattr(controller.SiteController, "_transition", transition)
    return ("I1", "I2")      # with a bond fitted, the bond closing first is caught as I2


def return_without_full_window(mp):
    """The return timer is not restarted by an excursion: any 300 s since the first good reading."""
    orig = grid.GridMonitor.update

    def update(self, readings, now):
        keep = self.stable_since
        orig(self, readings, now)
        if keep is not None and self.outage:
            self.stable_since = keep
    mp.setattr(grid.GridMonitor, "update", update)
    return "I4"


def shed_critical_at_warning(mp):
    """Near the reserve, 'shed everything' sheds the critical circuits too."""
    orig = controller.SiteController._island_loads

    def island_loads(self, m, now):
        orig(self, m, now)
        cs = m.charger
        if cs.soc is not None and cs.soc <= self._floor(cs) + self.cfg.warn_band_soc:
            for i in range(len(self.cfg.circuits)):
                self._set_relay(i, False, now, "mutant: shed all")
    mp.setattr(controller.SiteController, "_island_loads", island_loads)
    return "I7"


def outage_from_zero_import(mp):
    """No import at the meter (solar covers the house) is taken for an outage."""
    mp.setattr(controller.SiteController, "outage",
               lambda self: self.grid.outage or (self._m.pv_w is not None and self._m.load_w is not None
                                                 and self._m.pv_w >= self._m.load_w))
    return "I3"


def ignore_link_loss(mp):
    """The island keeps forming when the charger's link is lost (its last command stands)."""
    mp.setattr(controller.SiteController, "car_lost", lambda self: not self._m.charger.car_plugged)
    orig = controller.SiteController._charger_command

    def cmd(self, m, now, out):
        from dataclasses import replace
        return orig(self, replace(m, charger=replace(m.charger, link_up=True)), now, out)
    mp.setattr(controller.SiteController, "_charger_command", cmd)
    return "I8"


def deferrable_before_critical(mp):
    """Shedding order sorts the wrong way: critical circuits may be shed on an overload."""
    mp.setattr(loads, "shed_order", lambda circuits, on, measured: sorted(
        (i for i in range(len(circuits)) if on[i]), key=lambda i: circuits[i].priority.rank))
    mp.setattr(controller.loads, "shed_order", loads.shed_order)
    return "I7"


MUTANTS = {f.__name__: f for f in (close_before_feedback, return_without_full_window, shed_critical_at_warning,
                                    outage_from_zero_import, ignore_link_loss, deferrable_before_critical)}
_ = Priority

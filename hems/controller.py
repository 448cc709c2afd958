"""The site controller: transfer switch, island, load shedding — a sans-I/O state machine.

``step(measurements, now) -> Commands`` once per sample; ``next_deadline()`` says when, with the
inputs unchanged, the outputs could next change (a runner may sleep or skip until then). The
phases and their transitions are the two tables ``OUTPUTS`` and ``TRANSITIONS`` below; reading them
is reading the sequence (docs/hems.md draws it).

The controller never reads a clock and never touches I/O. After a restart (a new instance) nothing
flows until every feedback has been read and agrees.

Every wait ends when ``now >= since + span``: the same sum ``next_deadline()`` gives, so a runner
that visits exactly at the deadline sees the wait over (``now - since >= span`` can fall a rounding
short there, and the wait would then run on to some later, unrelated visit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from . import loads
from .config import Priority, SiteConfig
from .events import AlarmCleared, AlarmRaised, CircuitSwitched, Event, PhaseChanged
from .grid import GridMonitor, GridVerdict
from .model import CHARGER_OFF, ChargerCommand, ChargerMode, ChargerState, Commands, Measurements


class Phase(str, Enum):
    STARTUP = "startup"              # after a restart: read every feedback before anything flows
    CONNECTED = "connected"          # on the grid, the charger grid-following
    SHED = "shed"                    # outage: non-critical circuits off, proven by relay feedback
    OPEN_UTILITY = "open_utility"    # utility contact commanded open, waiting for its feedback
    BOND = "bond"                    # neutral–ground bond closing (where fitted)
    CLOSE_ISLAND = "close_island"    # island contact closing
    FORM = "form"                    # the charger asked to form the island
    ISLANDED = "islanded"            # the car powers the house; circuits restored as capacity allows
    END_STOP = "end_stop"            # ending the island (reserve, overload): the charger stops first
    RETURN_STOP = "return_stop"      # grid back and stable: the island source stops
    RETURN_OPEN = "return_open"      # island contact and bond open, waiting for their feedback
    RETURN_CLOSE = "return_close"    # utility contact closing
    DARK = "dark"                    # switch open, nothing energised: waiting for the grid or the car
    LOCKOUT = "lockout"              # a contact that cannot be proven where it must be: all open, alarm


HOLD = None  # keep the utility contact as it is


@dataclass(frozen=True, slots=True)
class Outputs:
    utility: bool | None      # HOLD: as before
    island: bool
    bond: bool                # closed (where a bond contactor is fitted)
    charger: ChargerMode
    shed: bool                # non-critical circuits off (else ISLANDED/CONNECTED decide per circuit, others hold)
    indicator: bool           # on backup
    timeout: str = ""         # which configured timeout bounds the wait in this phase


P = Phase
OFF, FOLLOW, FORM_ = ChargerMode.OFF, ChargerMode.GRID_FOLLOWING, ChargerMode.GRID_FORMING

#                          utility island  bond   charger shed   indicator timeout
OUTPUTS: dict[Phase, Outputs] = {
    P.STARTUP:      Outputs(HOLD,  False, False, OFF,    False, False, "contact"),
    P.CONNECTED:    Outputs(True,  False, False, FOLLOW, False, False),
    P.SHED:         Outputs(HOLD,  False, False, OFF,    True,  False, "contact"),
    P.OPEN_UTILITY: Outputs(False, False, False, OFF,    True,  False, "contact"),
    P.BOND:         Outputs(False, False, True,  OFF,    True,  False, "contact"),
    P.CLOSE_ISLAND: Outputs(False, True,  True,  OFF,    True,  False, "contact"),
    P.FORM:         Outputs(False, True,  True,  FORM_,  True,  True,  "charger"),
    P.ISLANDED:     Outputs(False, True,  True,  FORM_,  False, True),
    P.END_STOP:     Outputs(False, True,  True,  OFF,    True,  True,  "charger"),
    P.RETURN_STOP:  Outputs(False, True,  True,  OFF,    False, True,  "charger"),
    P.RETURN_OPEN:  Outputs(False, False, False, OFF,    False, False, "contact"),
    P.RETURN_CLOSE: Outputs(True,  False, False, OFF,    False, False, "contact"),
    P.DARK:         Outputs(False, False, False, OFF,    True,  False),
    P.LOCKOUT:      Outputs(False, False, False, OFF,    True,  False),
}

# Phases in which the island may be energised: the utility contact must read open throughout.
ISLAND_SIDE = frozenset({P.BOND, P.CLOSE_ISLAND, P.FORM, P.ISLANDED, P.END_STOP, P.RETURN_STOP})

# (guard, next phase, reason). Guards are SiteController methods of the same name; the first that
# holds wins. Several transitions may follow each other in one step.
TRANSITIONS: dict[Phase, tuple[tuple[str, Phase, str], ...]] = {
    P.STARTUP: (
        ("fb_island_stuck", P.LOCKOUT, "restart: island contact or bond does not read open"),
        ("fb_known_on_grid", P.CONNECTED, "restart: every feedback read, switch on the grid"),
        ("fb_known_open", P.DARK, "restart: every feedback read, switch open"),
    ),
    P.CONNECTED: (
        ("outage", P.SHED, "outage: grid outside its trip window for the ride-through time"),
    ),
    P.SHED: (
        ("grid_back_before_transfer", P.CONNECTED, "grid back inside its trip window before the utility contact "
                                                   "opened: stays on the grid"),
        ("shed_proven_may_open", P.OPEN_UTILITY, "non-critical circuits shed"),
        ("timed_out_may_open", P.OPEN_UTILITY, "a relay did not open: counted as on, transfer continues"),
    ),
    P.OPEN_UTILITY: (
        ("utility_open_island_ok_bond", P.BOND, "utility contact reads open"),
        ("utility_open_island_ok", P.CLOSE_ISLAND, "utility contact reads open"),
        ("utility_open", P.DARK, "utility contact reads open; no island possible"),
        ("timed_out", P.LOCKOUT, "utility contact did not open: staying dark"),
    ),
    P.BOND: (
        ("island_not_possible", P.DARK, "island abandoned"),
        ("bond_closed", P.CLOSE_ISLAND, "neutral–ground bond reads closed"),
        ("timed_out", P.LOCKOUT, "neutral–ground bond did not close"),
    ),
    P.CLOSE_ISLAND: (
        ("island_not_possible", P.DARK, "island abandoned"),
        ("island_closed", P.FORM, "island contact reads closed"),
        ("timed_out", P.DARK, "island contact did not close"),
    ),
    P.FORM: (
        ("car_lost", P.DARK, "charger link lost or car unplugged: island de-energised"),
        ("reserve_end", P.END_STOP, "car at its reserve"),
        ("charger_forming", P.ISLANDED, "the charger forms the island"),
        ("timed_out", P.END_STOP, "the charger did not form the island"),
    ),
    P.ISLANDED: (
        ("car_lost", P.DARK, "charger link lost or car unplugged: island de-energised"),
        ("grid_returned", P.RETURN_STOP, "grid inside the reconnect window for the whole return time"),
        ("reserve_end", P.END_STOP, "car at its reserve: island ended"),
        ("overload_stuck", P.END_STOP, "overload with nothing left to shed: island ended"),
        ("charger_not_forming", P.END_STOP, "the charger stopped forming the island"),
    ),
    P.END_STOP: (
        ("charger_stopped", P.DARK, "island source stopped"),
        ("car_lost", P.DARK, "charger link lost or car unplugged"),
        ("timed_out", P.DARK, "the charger did not report stopping: island contact opened anyway"),
    ),
    P.RETURN_STOP: (
        ("charger_stopped", P.RETURN_OPEN, "island source stopped"),
        ("car_lost", P.RETURN_OPEN, "charger link lost or car unplugged"),
        ("timed_out", P.RETURN_OPEN, "the charger did not report stopping: island contact opened anyway"),
    ),
    P.RETURN_OPEN: (
        ("island_side_open_grid_held", P.RETURN_CLOSE, "island contact (and bond) read open"),
        ("island_side_open", P.DARK, "the grid left its reconnect window during the return: the utility "
                                     "contact stays open"),
        ("timed_out", P.LOCKOUT, "island contact or bond did not open: utility stays open"),
    ),
    P.RETURN_CLOSE: (
        ("utility_closed", P.CONNECTED, "utility contact reads closed: back on the grid"),
        ("timed_out", P.DARK, "utility contact did not close"),
    ),
    P.DARK: (
        ("grid_returned_retry", P.RETURN_OPEN, "grid inside the reconnect window for the whole return time"),
        ("island_possible_dark", P.SHED, "outage: the car can form an island"),
    ),
    P.LOCKOUT: (
        ("all_open_retry", P.DARK, "every contact reads open again"),
    ),
}

RETRY_S = 60.0  # a failed transfer or return is tried again after this long


def _finite(x: float, lo: float, hi: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and lo <= x <= hi


def charger_sane(cs: ChargerState) -> bool:
    """The charger's report is usable: every number finite and in range."""
    return (cs.soc is not None and _finite(cs.soc, 0.0, 100.0) and _finite(cs.car_min_soc, 0.0, 100.0)
            and _finite(cs.car_max_charge_w, 0.0, 1e6) and _finite(cs.car_max_discharge_w, 0.0, 1e6)
            and _finite(cs.charger_max_charge_w, 0.0, 1e6) and _finite(cs.charger_max_discharge_w, 0.0, 1e6)
            and _finite(cs.power_w, -1e6, 1e6))


class SiteController:
    """One instance per controller life: a restart is a new instance."""

    def __init__(self, cfg: SiteConfig, now: float) -> None:
        self.cfg = cfg
        n = len(cfg.circuits)
        self.phase = Phase.STARTUP
        self.phase_since = now
        self.grid = GridMonitor(cfg)
        self.utility_cmd: bool | None = None        # unknown until the feedback is read
        self.relay_cmd: list[bool] = [False] * n
        self.off_since: list[float | None] = [None] * n
        self.last_restore = -math.inf
        self.mismatch_since: dict[str, float] = {}
        self.alarms: frozenset[str] = frozenset()
        self.reserve_latched = False
        self.retry_at = -math.inf                    # no transfer/return attempt before this
        self.charger_fault_until = -math.inf
        self.follow_bad_since: float | None = None
        self.overload_since: float | None = None
        self.events: list[Event] = []
        self._deadline: float | None = None
        self._critical = tuple(c.priority is Priority.CRITICAL for c in cfg.circuits)
        self._critical_w = sum(c.power_w for c in cfg.circuits if c.priority is Priority.CRITICAL)
        self._m: Measurements | None = None
        self._now = now
        self._wanted = cfg.grid_setpoint_w
        self.last_commands: Commands | None = None

    # ------------------------------------------------------------------ the step

    def step(self, m: Measurements, now: float, wanted_w: float | None = None) -> Commands:
        """One step. ``wanted_w``: the power the energy manager's plan wants from the charger while
        grid-connected (+ charge / − discharge; default the configured ``grid_setpoint_w``); the
        controller has the last word — it bounds or refuses it."""
        self._m, self._now = m, now
        self._wanted = self.cfg.grid_setpoint_w if wanted_w is None or not math.isfinite(wanted_w) else wanted_w
        self._deadlines: list[float] = []
        self.grid.update(m.grid, now)
        if self.phase is Phase.STARTUP:
            self._hold_relays(m, now)
        for _ in range(6):
            nxt = self._transition(m, now)
            if nxt is None:
                break
            new, reason = nxt
            self._enter(new, now, reason)
        out = OUTPUTS[self.phase]
        cs = m.charger
        self._update_reserve(cs)
        utility = self.utility_cmd if out.utility is HOLD else out.utility
        if self.phase is Phase.STARTUP and utility is None:
            utility = m.utility_fb if m.utility_fb is not None else False
        self.utility_cmd = utility
        bond = out.bond and self.cfg.neutral_ground_bond
        self._relays(m, now, out)
        charger = self._charger_command(m, now, out)
        alarms = self._alarms(m, now, utility, out.island, bond, charger)
        self._deadline_candidates(now, out)
        cmds = Commands(utility_close=bool(utility), island_close=out.island, bond_close=bond,
                        relays=tuple(self.relay_cmd), charger=charger, indicator=out.indicator, alarms=alarms)
        self.last_commands = cmds
        return cmds

    def reconfigure(self, cfg: SiteConfig) -> None:
        """A user's change (reserve, circuit priorities) from the next step on. The circuits must
        stay the same ones in the same order (their relays and timers are kept)."""
        if cfg.circuit_names != self.cfg.circuit_names:
            raise ValueError("reconfigure keeps the circuits; a new set of circuits needs a new controller")
        self.cfg = cfg
        self._critical = tuple(c.priority is Priority.CRITICAL for c in cfg.circuits)
        self._critical_w = sum(c.power_w for c in cfg.circuits if c.priority is Priority.CRITICAL)

    def next_deadline(self) -> float | None:
        """When, with unchanged inputs, the commands could next change (None: not before new inputs)."""
        return self._deadline

    @property
    def grid_ok(self) -> bool:
        """The controller's view of the grid: no outage latched and the sensors read it good."""
        return not self.grid.outage and self.grid.verdict is GridVerdict.GOOD

    def watch_soc(self) -> tuple[float, ...]:
        """The SoC levels at which this controller's decisions change (for a runner's skip-ahead)."""
        m = self._m
        if m is None or m.charger.soc is None:
            return ()
        f = self._floor(m.charger)
        return (f, f + self.cfg.end_margin_soc, f + self.cfg.warn_band_soc)

    def take_events(self) -> list[Event]:
        ev, self.events = self.events, []
        return ev

    # ------------------------------------------------------------------ transitions

    def _transition(self, m: Measurements, now: float) -> tuple[Phase, str] | None:
        # the one rule that applies everywhere the island may be energised
        if self.phase in ISLAND_SIDE and m.utility_fb is not False:
            return Phase.LOCKOUT, "utility contact not proven open while the island side is closed: de-energised"
        for guard, new, reason in TRANSITIONS[self.phase]:
            if getattr(self, guard)():
                return new, reason
        return None

    def _enter(self, new: Phase, now: float, reason: str) -> None:
        old = self.phase
        self.phase, self.phase_since = new, now
        if new is Phase.ISLANDED:
            self.last_restore = now          # the critical circuits' inrush settles first
        if new is Phase.CONNECTED:
            self.grid.clear_outage()
            self.reserve_latched = False
        if reason.startswith(("utility contact did not", "island contact did not", "neutral–ground bond did not",
                              "the charger did not form", "island contact or bond did not", "overload with",
                              "the charger stopped forming")):
            self.retry_at = now + RETRY_S
        self.events.append(PhaseChanged(t=now, reason=reason, old=old.value, new=new.value))

    # guards ---------------------------------------------------------------

    def timed_out(self) -> bool:
        return self._now >= self.phase_since + self._timeout(OUTPUTS[self.phase])

    def _timeout(self, out: Outputs) -> float:
        return self.cfg.charger_timeout_s if out.timeout == "charger" else self.cfg.contact_timeout_s

    def _bond_reads(self, closed: bool) -> bool:
        return not self.cfg.neutral_ground_bond or self._m.bond_fb is closed

    def _relays_known(self) -> bool:
        return all(fb is not None for fb in self._m.relay_fb) and len(self._m.relay_fb) == len(self.cfg.circuits)

    def fb_island_stuck(self) -> bool:
        m = self._m
        # with the utility contact closed the house stays on the grid (the charger is off): hold, alarm
        return self.timed_out() and m.utility_fb is False and (m.island_fb is not False or not self._bond_reads(False))

    def fb_known_on_grid(self) -> bool:
        m = self._m
        return (m.utility_fb is True and m.island_fb is False and self._bond_reads(False) and self._relays_known())

    def fb_known_open(self) -> bool:
        m = self._m
        return (m.utility_fb is False and m.island_fb is False and self._bond_reads(False) and self._relays_known())

    def outage(self) -> bool:
        return self.grid.outage

    def shed_proven(self) -> bool:
        """Every non-critical relay reads open (what SHED commands; judged on the feedback, not on
        ``relay_cmd``, which still holds the previous phase's commands in the step SHED is entered)."""
        fb = self._m.relay_fb
        return all(self._critical[i] or fb[i] is False for i in range(len(self.relay_cmd)))

    def _may_open_utility(self) -> bool:
        """The utility contact may open: it is open already (the island comes from DARK), or the grid
        reads outside its trip window now and has for the ride-through — the excursion that latched
        the outage may have ended while the relays were shedding, and a memory of it is no outage."""
        g = self.grid
        return self.utility_cmd is False or (g.verdict is GridVerdict.BAD and g.bad_since is not None
                                             and self._now >= g.bad_since + self.cfg.ride_through_s)

    def grid_back_before_transfer(self) -> bool:
        return self.utility_cmd is True and self.grid.verdict is GridVerdict.GOOD

    def shed_proven_may_open(self) -> bool:
        return self.shed_proven() and self._may_open_utility()

    def timed_out_may_open(self) -> bool:
        return self.timed_out() and self._may_open_utility()

    def utility_open(self) -> bool:
        return self._m.utility_fb is False

    def utility_open_island_ok(self) -> bool:
        return self.utility_open() and self._island_possible()

    def utility_open_island_ok_bond(self) -> bool:
        return self.cfg.neutral_ground_bond and self.utility_open_island_ok()

    def island_not_possible(self) -> bool:
        return not self._island_possible()

    def bond_closed(self) -> bool:
        return self._m.bond_fb is True

    def island_closed(self) -> bool:
        return self._m.island_fb is True

    def car_lost(self) -> bool:
        cs = self._m.charger
        return not (cs.link_up and cs.car_plugged and charger_sane(cs))

    def reserve_end(self) -> bool:
        cs = self._m.charger
        return cs.soc is not None and cs.soc <= self._floor(cs) + self.cfg.end_margin_soc

    def charger_forming(self) -> bool:
        return self._m.charger.mode is ChargerMode.GRID_FORMING

    def charger_not_forming(self) -> bool:
        return self._m.charger.mode is not ChargerMode.GRID_FORMING

    def charger_stopped(self) -> bool:
        return self._m.charger.mode is ChargerMode.OFF

    def grid_returned(self) -> bool:
        return self.grid.returned(self._now)

    def grid_returned_retry(self) -> bool:
        return self._now >= self.retry_at and self.grid_returned()

    def overload_stuck(self) -> bool:
        return self.overload_since is not None and self._now >= self.overload_since + self.cfg.follow_timeout_s

    def island_side_open(self) -> bool:
        return self._m.island_fb is False and self._bond_reads(False)

    def island_side_open_grid_held(self) -> bool:
        """The island side reads open and the grid is still inside its reconnect window, held for
        the whole return time up to now: an excursion while the island was stopping starts over."""
        return self.island_side_open() and self.grid_returned()

    def utility_closed(self) -> bool:
        return self._m.utility_fb is True

    def island_possible_dark(self) -> bool:
        return (self.grid.outage and self.grid.verdict is not GridVerdict.UNKNOWN
                and self._m.utility_fb is False and self._island_possible())

    def all_open_retry(self) -> bool:
        m = self._m
        return (self._now >= self.retry_at and m.utility_fb is False and m.island_fb is False
                and self._bond_reads(False))

    # ------------------------------------------------------------------ helpers

    def _floor(self, cs: ChargerState) -> float:
        """The car's hard floor: the higher of the user's trip reserve and the car's own minimum."""
        return max(self.cfg.reserve_soc, cs.car_min_soc)

    def capacity_w(self, cs: ChargerState) -> float:
        """What the island can carry: the smallest of the charger's, the car's and the inverter's rating."""
        return min(self.cfg.inverter_max_w, cs.charger_max_discharge_w, cs.car_max_discharge_w)

    def _update_reserve(self, cs: ChargerState) -> None:
        if cs.soc is None or not charger_sane(cs):
            return
        floor = self._floor(cs)
        if cs.soc <= floor + self.cfg.end_margin_soc:
            self.reserve_latched = True
        elif cs.soc > floor + self.cfg.warn_band_soc:
            self.reserve_latched = False

    def _island_possible(self) -> bool:
        cs = self._m.charger
        if self.car_lost() or self.reserve_latched or self.reserve_end():
            return False
        if self._now < self.retry_at or self._now < self.charger_fault_until:
            return False
        return self.capacity_w(cs) >= self._critical_w and self.capacity_w(cs) > 0.0

    # relays ---------------------------------------------------------------

    def _set_relay(self, i: int, on: bool, now: float, reason: str) -> None:
        if self.relay_cmd[i] != on:
            self.relay_cmd[i] = on
            self.off_since[i] = None if on else now
            self.events.append(CircuitSwitched(t=now, reason=reason, circuit=self.cfg.circuits[i].name, on=on))

    def _hold_relays(self, m: Measurements, now: float) -> None:
        """After a restart: keep each relay as read (critical on); one that reads off (or nothing)
        starts its minimum off-time now, as its real off-time is unknown."""
        for i in range(len(self.cfg.circuits)):
            fb = m.relay_fb[i] if i < len(m.relay_fb) else None
            on = True if self._critical[i] else bool(fb)
            self.relay_cmd[i] = on
            self.off_since[i] = None if on else now

    def _relays(self, m: Measurements, now: float, out: Outputs) -> None:
        circuits = self.cfg.circuits
        n = len(circuits)
        if self.phase in (Phase.STARTUP, Phase.RETURN_STOP, Phase.RETURN_OPEN, Phase.RETURN_CLOSE):
            return     # held: the house comes back on the grid as it was on the island
        if out.shed:
            for i in range(n):
                self._set_relay(i, self._critical[i], now, "shed for the transfer" if not self._critical[i]
                                else "critical: kept on")
            return
        if self.phase is Phase.CONNECTED:
            for i in range(n):
                if not self.relay_cmd[i]:
                    since = self.off_since[i]
                    if since is None or now >= since + circuits[i].min_off_s:
                        self._set_relay(i, True, now, "on the grid")
            self.overload_since = None
            return
        self._island_loads(m, now)

    def _island_loads(self, m: Measurements, now: float) -> None:
        """ISLANDED: keep the load within capacity; restore one circuit per settle delay."""
        circuits, cs = self.cfg.circuits, m.charger
        cap = self.capacity_w(cs)
        for i in range(len(circuits)):
            if self._critical[i]:
                self._set_relay(i, True, now, "critical: kept on")
        measured = m.circuit_w
        load = m.load_w if (m.load_w is not None and _finite(m.load_w, 0.0, 1e6)) else sum(
            loads.estimate(circuits[i], measured[i] if i < len(measured) else None)
            for i in range(len(circuits)) if self.relay_cmd[i] or m.relay_fb[i])
        warn = cs.soc is not None and cs.soc <= self._floor(cs) + self.cfg.warn_band_soc
        if warn:
            for i in range(len(circuits)):
                if not self._critical[i]:
                    self._set_relay(i, False, now, "car near its reserve: only critical circuits stay on")
        if load > cap:
            est = load
            for i in loads.shed_order(circuits, self.relay_cmd, measured):
                if est <= cap:
                    break
                drop = loads.estimate(circuits[i], measured[i] if i < len(measured) else None) \
                    if (i < len(measured) and measured[i] is not None) else circuits[i].power_w
                self._set_relay(i, False, now, f"overload: {load:.0f} W measured, island carries {cap:.0f} W")
                est -= drop
            if self.overload_since is None:
                self.overload_since = now
            self.last_restore = now
            return
        self.overload_since = None
        if warn or now < self.last_restore + self.cfg.restore_settle_s:
            return
        allowed = frozenset((Priority.CRITICAL, Priority.ESSENTIAL, Priority.DEFERRABLE))
        i = loads.restore_candidate(circuits, self.relay_cmd, self.off_since, measured, load,
                                    cap * self.cfg.island_headroom, now, allowed)
        if i is not None:
            self._set_relay(i, True, now, "restored: the island has room")
            self.last_restore = now

    # charger --------------------------------------------------------------

    def _charger_command(self, m: Measurements, now: float, out: Outputs) -> ChargerCommand:
        cmd = self._charger_target(m, now, out)
        if self._watch_following(m.charger, now, cmd):
            return CHARGER_OFF  # past its limits for the follow timeout: off from this step on
        return cmd

    def _charger_target(self, m: Measurements, now: float, out: Outputs) -> ChargerCommand:
        cs = m.charger
        sane = charger_sane(cs)
        if out.charger is ChargerMode.OFF or not (cs.link_up and cs.car_plugged and sane):
            return CHARGER_OFF
        floor = self._floor(cs)
        if out.charger is ChargerMode.GRID_FORMING:
            if cs.soc <= floor + self.cfg.end_margin_soc or m.utility_fb is not False:
                return CHARGER_OFF
            return ChargerCommand(mode=ChargerMode.GRID_FORMING, discharge_limit_w=self.capacity_w(cs))
        # grid-following: only on a grid we can see, through a switch we can prove, from a charger we trust
        if (now < self.charger_fault_until or self.grid.verdict is not GridVerdict.GOOD or self.grid.outage
                or m.utility_fb is not True or m.island_fb is not False):
            return CHARGER_OFF
        dis_max = min(cs.car_max_discharge_w, cs.charger_max_discharge_w)
        if cs.soc <= floor + self.cfg.end_margin_soc:
            dis_max = 0.0
        if not self.cfg.allow_export:
            if m.load_w is None or m.pv_w is None or not (_finite(m.load_w, 0, 1e6) and _finite(m.pv_w, 0, 1e6)):
                dis_max = 0.0
            else:
                dis_max = min(dis_max, max(0.0, m.load_w - m.pv_w))
        chg_max = min(cs.car_max_charge_w, cs.charger_max_charge_w) if cs.soc < 100.0 else 0.0
        p = min(max(self._wanted, -dis_max), chg_max)
        if p == 0.0:
            return CHARGER_OFF       # nothing to do: off, so a charger that ignores limits cannot drain the car
        return ChargerCommand(mode=ChargerMode.GRID_FOLLOWING, power_w=p, discharge_limit_w=dis_max,
                              charge_limit_w=chg_max)

    def _watch_following(self, cs: ChargerState, now: float, cmd: ChargerCommand) -> bool:
        """A grid-following charger running past the limits it is held to (this step's command:
        the follow timeout runs from the first step it is past them, also the first step after a
        restart) is switched off for a while; True when that happens now."""
        bad = False
        if charger_sane(cs) and cmd.mode is ChargerMode.GRID_FOLLOWING and cs.mode is ChargerMode.GRID_FOLLOWING:
            over = (-cs.power_w - cmd.discharge_limit_w) if cs.power_w < 0 else (cs.power_w - cmd.charge_limit_w)
            bad = over > self.cfg.follow_tolerance_w
        if not bad:
            self.follow_bad_since = None
            return False
        if self.follow_bad_since is None:
            self.follow_bad_since = now
        if now >= self.follow_bad_since + self.cfg.follow_timeout_s:
            self.charger_fault_until = now + self.cfg.charger_retry_s
            self.follow_bad_since = None
            return True
        return False

    # alarms ---------------------------------------------------------------

    def _alarms(self, m: Measurements, now: float, utility: bool, island: bool, bond: bool,
                charger: ChargerCommand) -> frozenset[str]:
        a: set[str] = set()
        if self.grid.fault:
            a.add(self.grid.fault)
        pairs = [("utility", utility, m.utility_fb), ("island", island, m.island_fb)]
        if self.cfg.neutral_ground_bond:
            pairs.append(("bond", bond, m.bond_fb))
        if self.phase is not Phase.STARTUP:
            for i, c in enumerate(self.cfg.circuits):
                pairs.append((f"relay:{c.name}", self.relay_cmd[i], m.relay_fb[i] if i < len(m.relay_fb) else None))
        for name, cmd, fb in pairs:
            if fb is cmd:
                self.mismatch_since.pop(name, None)
                continue
            since = self.mismatch_since.setdefault(name, now)
            if now >= since + self.cfg.contact_timeout_s:
                a.add(f"{name}_feedback")
        if self.phase is Phase.LOCKOUT:
            a.add("lockout")
        if now < self.charger_fault_until:
            a.add("charger_not_following")
        if self.reserve_latched and self.grid.outage:
            a.add("reserve_reached")
        cs = m.charger
        if self.grid.outage and self.phase not in (Phase.ISLANDED, Phase.RETURN_STOP) and self.car_lost():
            a.add("car_unavailable")
        if self.phase is Phase.ISLANDED and cs.soc is not None and cs.soc <= self._floor(cs) + self.cfg.warn_band_soc:
            a.add("reserve_near")
        if self.overload_since is not None:
            a.add("island_overload")
        if self.grid.outage and self.phase in (Phase.DARK, Phase.LOCKOUT):
            a.add("house_dark")
        if now < self.retry_at:
            a.add("transfer_failed")
        fa = frozenset(a)
        if fa != self.alarms:
            for code in sorted(fa - self.alarms):
                self.events.append(AlarmRaised(t=now, reason=f"alarm {code}", code=code))
            for code in sorted(self.alarms - fa):
                self.events.append(AlarmCleared(t=now, reason=f"alarm {code} cleared", code=code))
            self.alarms = fa
        return fa

    # deadlines ------------------------------------------------------------

    def _deadline_candidates(self, now: float, out: Outputs) -> None:
        c = self._deadlines
        g = self.grid.deadline()
        if g is not None:
            c.append(g)
        if self.phase is Phase.SHED and self.grid.bad_since is not None:  # a new excursion's ride-through
            c.append(self.grid.bad_since + self.cfg.ride_through_s)
        if out.timeout:
            c.append(self.phase_since + self._timeout(out))
        for since in self.mismatch_since.values():
            c.append(since + self.cfg.contact_timeout_s)
        c.append(self.retry_at)
        c.append(self.charger_fault_until)
        if self.follow_bad_since is not None:
            c.append(self.follow_bad_since + self.cfg.follow_timeout_s)
        if self.overload_since is not None:
            c.append(self.overload_since + self.cfg.follow_timeout_s)
        if self.phase is Phase.ISLANDED and not all(self.relay_cmd):
            c.append(self.last_restore + self.cfg.restore_settle_s)
        if self.phase in (Phase.ISLANDED, Phase.CONNECTED):
            d = loads.min_off_deadline(self.cfg.circuits, self.relay_cmd, self.off_since, now)
            if d is not None:
                c.append(d)
        best = None
        for t in c:
            if t > now and (best is None or t < best):
                best = t
        self._deadline = best


"""The transfer-switch invariants, checked from the outside.

The checker never looks inside the controller: it sees what the controller read (``Measurements``),
what it commanded (``Commands``) and what physically happened after the commands were applied
(``Physical``, from the plant or its simulator), and keeps its own history of those (grid windows,
mismatch timers). It is used by the scenario runner (summary ``invariants_ok``), the stateful test,
and the demo. Each invariant, its wording and its source are in docs/hems.md:

I1 break-before-make, proven by feedback; never parallel the island with the grid
I2 utility contact and neutral–ground bond never closed together
I3 an outage only from measured voltage/frequency, never from zero import (no flicker islands)
I4 return only after the reconnect window has held for return_stable_s; island source stopped first
I5 no export from the car unless allowed; no backfeed into a dead grid
I6 the reserve is a hard floor
I7 critical circuits stay on while the island is up and the car is above its reserve
I8 after a restart nothing flows until every feedback is read; link lost → no current
I9 sensors disagree or fail → no export, no transfer, alarm
I10 indication while on backup; a fault (feedback disagreeing with its command) raises an alarm
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Priority, SiteConfig
from .model import ChargerMode, Commands, GridReading, Measurements

TOL_W = 50.0   # measurement tolerance for power comparisons


@dataclass(frozen=True, kw_only=True, slots=True)
class Physical:
    """What is physically so after the step's commands took effect."""

    grid_live: bool               # the utility energises its side (≥ 0.5 pu)
    utility_closed: bool
    island_closed: bool
    bond_closed: bool
    charger_mode: ChargerMode     # what the charger actually runs
    charger_w: float              # + charge / − discharge
    soc: float | None
    car_min_soc: float
    export_w: float               # into the grid at the point of connection
    relays_closed: tuple[bool, ...]

    @property
    def island_energised(self) -> bool:
        return self.island_closed and self.charger_mode is ChargerMode.GRID_FORMING


@dataclass(frozen=True, kw_only=True, slots=True)
class Violation:
    t: float
    invariant: str
    detail: str

    def to_dict(self) -> dict:
        return {"t": self.t, "invariant": self.invariant, "detail": self.detail}


def _inside(r: GridReading, v_lo: float, v_hi: float, f_lo: float, f_hi: float) -> bool:
    return f_lo <= r.frequency_hz <= f_hi and all(v_lo <= v <= v_hi for v in r.voltage_v)


class InvariantChecker:
    """Call ``check`` after every controller step; ``restarted`` when the controller restarts."""

    def __init__(self, cfg: SiteConfig) -> None:
        self.cfg = cfg
        self.violations: list[Violation] = []
        self.steps = 0
        self.prev: Commands | None = None
        self.prev_utility_cmd = True          # the plant starts on the grid
        self.bad_since: float | None = None   # the grid measured outside its trip window since
        self.good_since: float | None = None  # measured inside the reconnect window since
        self.known_since_restart = True
        self.mismatch: dict[str, float] = {}
        self.car_export_since: float | None = None
        self.below_floor_since: float | None = None  # the car measured discharging below its floor

    def restarted(self, now: float) -> None:
        self.known_since_restart = False
        self.mismatch.clear()

    # --------------------------------------------------------------------------------------

    def _grid(self, m: Measurements) -> tuple[str, bool]:
        """('good' | 'bad' | 'doubt', inside the reconnect window) from the readings alone."""
        cfg = self.cfg
        rs = m.grid
        if len(rs) != cfg.grid_sensors or any(r is None for r in rs):
            return "doubt", False
        for r in rs:
            if not (math.isfinite(r.frequency_hz) and all(math.isfinite(v) for v in r.voltage_v)):
                return "doubt", False
        nv = cfg.nominal_voltage
        t, rc = cfg.trip, cfg.reconnect
        ins = [_inside(r, t.v_min_pu * nv, t.v_max_pu * nv, t.f_min_hz, t.f_max_hz) for r in rs]
        if len(rs) == 2:
            a, b = rs
            if (ins[0] != ins[1] or abs(a.frequency_hz - b.frequency_hz) > cfg.sensor_f_tolerance_hz
                    or len(a.voltage_v) != len(b.voltage_v)
                    or any(abs(x - y) > cfg.sensor_v_tolerance_pu * nv for x, y in zip(a.voltage_v, b.voltage_v))):
                return "doubt", False
        back = all(_inside(r, rc.v_min_pu * nv, rc.v_max_pu * nv, rc.f_min_hz, rc.f_max_hz) for r in rs)
        return ("good" if all(ins) else "bad"), back

    def _v(self, now: float, inv: str, detail: str) -> None:
        self.violations.append(Violation(t=now, invariant=inv, detail=detail))

    def check(self, now: float, m: Measurements, c: Commands, p: Physical) -> list[Violation]:
        self.steps += 1
        n0 = len(self.violations)
        cfg = self.cfg
        cs, ch = m.charger, c.charger
        forming_cmd = ch.mode is ChargerMode.GRID_FORMING
        discharging_cmd = forming_cmd or (ch.mode is ChargerMode.GRID_FOLLOWING
                                          and (ch.power_w < 0 or ch.discharge_limit_w > 0))

        grid, back = self._grid(m)
        if grid == "bad":
            self.bad_since = now if self.bad_since is None else self.bad_since
        else:
            self.bad_since = None
        if back and grid != "doubt":
            self.good_since = now if self.good_since is None else self.good_since
        else:
            self.good_since = None

        closing = c.utility_close and not self.prev_utility_cmd and m.utility_fb is not True
        opening = (not c.utility_close) and self.prev_utility_cmd and m.utility_fb is True

        # I1 break-before-make, proven by feedback
        if p.utility_closed and p.island_energised:
            self._v(now, "I1", "island energised with the utility contact closed (paralleled with the grid)")
        utility_proven_open = m.utility_fb is False and not c.utility_close
        if forming_cmd and not utility_proven_open:
            self._v(now, "I1", "charger asked to form the island while the utility contact is not proven open")
        if c.island_close and not utility_proven_open:
            self._v(now, "I1", "island contact closed while the utility contact is not proven open")
        if c.utility_close and c.island_close:
            self._v(now, "I1", "utility and island contacts commanded closed together")
        if closing and (m.island_fb is not False or forming_cmd or cs.mode is ChargerMode.GRID_FORMING):
            self._v(now, "I1", "utility contact closing while the island side is not proven open and stopped")

        # I2 utility and neutral–ground bond
        if c.bond_close and not utility_proven_open:
            self._v(now, "I2", "neutral–ground bond closed while the utility contact is not proven open")
        if p.bond_closed and p.utility_closed:
            self._v(now, "I2", "neutral–ground bond and utility contact closed together")
        if closing and cfg.neutral_ground_bond and m.bond_fb is not False:
            self._v(now, "I2", "utility contact closing while the bond is not proven open")

        # I3 outage only from measured voltage and frequency, after the ride-through
        if opening:
            if grid != "bad":
                self._v(now, "I3", f"utility contact opened while the grid measured {grid}")
            elif now - self.bad_since < cfg.ride_through_s - 1e-9:
                self._v(now, "I3", f"utility contact opened {now - self.bad_since:.3f} s into an excursion "
                                   f"(ride-through {cfg.ride_through_s} s)")

        # I4 return only after the full window
        if closing:
            held = -1.0 if self.good_since is None else now - self.good_since
            if held < cfg.return_stable_s - 1e-9:
                self._v(now, "I4", f"utility contact closing after {max(held, 0):.1f} s inside the reconnect "
                                   f"window (needs {cfg.return_stable_s} s)")

        # I5 no export from the car; no backfeed
        if p.export_w > TOL_W and not p.grid_live:
            self._v(now, "I5", f"{p.export_w:.0f} W into a dead grid")
        if not cfg.allow_export and ch.mode is ChargerMode.GRID_FOLLOWING:
            room = 0.0
            if m.load_w is not None and m.pv_w is not None:
                room = max(0.0, m.load_w - m.pv_w)
            if max(-ch.power_w, ch.discharge_limit_w) > room + TOL_W:
                self._v(now, "I5", f"discharge of {max(-ch.power_w, ch.discharge_limit_w):.0f} W allowed with "
                                   f"{room:.0f} W of house load left after solar")
        car_export = 0.0
        if p.charger_mode is ChargerMode.GRID_FOLLOWING and p.charger_w < 0:
            car_export = min(p.export_w, -p.charger_w)
        # a deviation inside the configured follow tolerance cannot be told from metering error
        if car_export > max(TOL_W, cfg.follow_tolerance_w) and not cfg.allow_export:
            self.car_export_since = now if self.car_export_since is None else self.car_export_since
            if now - self.car_export_since > cfg.follow_timeout_s + 1.0:
                self._v(now, "I5", f"the car exports {car_export:.0f} W for {now - self.car_export_since:.1f} s")
        else:
            self.car_export_since = None

        # I6 the reserve is a hard floor
        if cs.soc is not None:
            floor = max(cfg.reserve_soc, cs.car_min_soc)
            if cs.soc <= floor and discharging_cmd:
                self._v(now, "I6", f"discharge commanded at {cs.soc:.2f} % with the floor at {floor:.2f} %")
        # what the car does: a charger that ignores its command is caught within the follow timeout
        # (as for I5), so the measured discharge below the floor may last that long + 1 s
        if p.soc is not None and p.charger_w < -TOL_W and p.soc < max(cfg.reserve_soc, p.car_min_soc) - 1e-6:
            self.below_floor_since = now if self.below_floor_since is None else self.below_floor_since
            if now - self.below_floor_since > cfg.follow_timeout_s + 1.0:
                self._v(now, "I6", f"car discharging at {p.soc:.3f} %, below its floor, for "
                                   f"{now - self.below_floor_since:.1f} s")
        else:
            self.below_floor_since = None

        # I7 critical circuits on while the island is up and the car above its reserve
        if p.island_energised and cs.soc is not None and cs.soc > max(cfg.reserve_soc, cs.car_min_soc):
            cap = min(cfg.inverter_max_w, cs.charger_max_discharge_w, cs.car_max_discharge_w)
            crit = [i for i, ci in enumerate(cfg.circuits) if ci.priority is Priority.CRITICAL]
            if sum(cfg.circuits[i].power_w for i in crit) <= cap:
                off = [cfg.circuits[i].name for i in crit if not c.relays[i]]
                if off:
                    self._v(now, "I7", f"critical circuit(s) {', '.join(off)} off on the island at {cs.soc:.1f} %")

        # I8 restart; link
        fb_known = (m.utility_fb is not None and m.island_fb is not None
                    and (not cfg.neutral_ground_bond or m.bond_fb is not None)
                    and all(f is not None for f in m.relay_fb) and not (m.utility_fb and m.island_fb))
        if not self.known_since_restart and fb_known:
            self.known_since_restart = True      # read in this step: the controller may act on it
        if not self.known_since_restart and (ch.mode is not ChargerMode.OFF or c.island_close or c.bond_close):
            self._v(now, "I8", "power flows after a restart before every feedback was read")
        if not (cs.link_up and cs.car_plugged) and ch.mode is not ChargerMode.OFF:
            self._v(now, "I8", "charger asked to run with its link down or the car unplugged")

        # I9 sensors disagree or fail
        if grid == "doubt":
            if ch.mode is ChargerMode.GRID_FOLLOWING and (ch.power_w < 0 or ch.discharge_limit_w > 0):
                self._v(now, "I9", "discharge allowed while the grid sensors are in doubt")
            if closing or opening:
                self._v(now, "I9", "transfer switch moved while the grid sensors are in doubt")
            if not c.alarms:
                self._v(now, "I9", "grid sensors in doubt without an alarm")

        # I10 indication; faults raise an alarm
        if (p.island_energised or forming_cmd) and not c.indicator:
            self._v(now, "I10", "island energised without the backup indication")
        pairs = [("utility", c.utility_close, m.utility_fb), ("island", c.island_close, m.island_fb)]
        if cfg.neutral_ground_bond:
            pairs.append(("bond", c.bond_close, m.bond_fb))
        pairs += [(f"relay:{ci.name}", c.relays[i], m.relay_fb[i]) for i, ci in enumerate(cfg.circuits)]
        for name, cmd, fb in pairs:
            if fb is cmd:
                self.mismatch.pop(name, None)
                continue
            since = self.mismatch.setdefault(name, now)
            if now - since > cfg.contact_timeout_s + 1e-6 and not c.alarms:
                self._v(now, "I10", f"{name} feedback disagrees with its command for {now - since:.2f} s, no alarm")

        self.prev = c
        self.prev_utility_cmd = c.utility_close
        return self.violations[n0:]

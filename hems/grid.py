"""Grid sensing: outage detection with ride-through, the return window, two-sensor agreement.

Sans-I/O: ``update(readings, now)`` once per step. An outage is only ever declared from measured
voltage and frequency — never from the power flow (zero import is not an outage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from .config import SiteConfig, Window
from .model import GridReading


class GridVerdict(str, Enum):
    GOOD = "good"          # every sensor reads inside the trip window
    BAD = "bad"            # every sensor reads outside it, and they agree
    UNKNOWN = "unknown"    # a sensor failed, or two sensors disagree


def reading_sane(r: GridReading) -> bool:
    """A reading that can be believed at all: finite, non-negative, frequency 0 (dead) or 30–90 Hz."""
    if not r.voltage_v:
        return False
    for v in r.voltage_v:
        if not (math.isfinite(v) and 0.0 <= v <= 2000.0):
            return False
    f = r.frequency_hz
    return math.isfinite(f) and (f == 0.0 or 30.0 <= f <= 90.0)


def inside(r: GridReading, w: Window, nominal_v: float) -> bool:
    """Every phase's voltage and the frequency inside ``w`` (inclusive)."""
    if not (w.f_min_hz <= r.frequency_hz <= w.f_max_hz):
        return False
    lo, hi = w.v_min_pu * nominal_v, w.v_max_pu * nominal_v
    for v in r.voltage_v:
        if not (lo <= v <= hi):
            return False
    return True


def disagree(a: GridReading, b: GridReading, cfg: SiteConfig) -> bool:
    """Two sensors further apart than the configured tolerance (any phase, or the frequency), or
    one seeing the grid inside the trip window and the other outside."""
    if len(a.voltage_v) != len(b.voltage_v):
        return True
    tol = cfg.sensor_v_tolerance_pu * cfg.nominal_voltage
    for va, vb in zip(a.voltage_v, b.voltage_v):
        if abs(va - vb) > tol:
            return True
    if abs(a.frequency_hz - b.frequency_hz) > cfg.sensor_f_tolerance_hz:
        return True
    return inside(a, cfg.trip, cfg.nominal_voltage) != inside(b, cfg.trip, cfg.nominal_voltage)


def classify(readings: tuple[GridReading | None, ...], cfg: SiteConfig) -> tuple[GridVerdict, bool, str]:
    """(verdict, inside the reconnect window, why-unknown) for one step's readings."""
    if len(readings) != cfg.grid_sensors:
        return GridVerdict.UNKNOWN, False, "sensor_failed"
    for r in readings:
        if r is None or not reading_sane(r):
            return GridVerdict.UNKNOWN, False, "sensor_failed"
    if len(readings) == 2 and disagree(readings[0], readings[1], cfg):
        return GridVerdict.UNKNOWN, False, "sensor_disagree"
    good = all(inside(r, cfg.trip, cfg.nominal_voltage) for r in readings)
    back = all(inside(r, cfg.reconnect, cfg.nominal_voltage) for r in readings)
    return (GridVerdict.GOOD if good else GridVerdict.BAD), back, ""


@dataclass(slots=True)
class GridMonitor:
    """Latches an outage after ``ride_through_s`` outside the trip window; clears it after
    ``return_stable_s`` continuously inside the reconnect window (any excursion or doubt restarts)."""

    cfg: SiteConfig
    outage: bool = False
    bad_since: float | None = None
    stable_since: float | None = None
    verdict: GridVerdict = GridVerdict.UNKNOWN
    fault: str = ""

    def update(self, readings: tuple[GridReading | None, ...], now: float) -> None:
        verdict, back, fault = classify(readings, self.cfg)
        self.verdict, self.fault = verdict, fault
        if verdict is GridVerdict.UNKNOWN:
            # hold: no outage is declared and no return is timed on readings we cannot trust
            self.bad_since = None
            self.stable_since = None
            return
        if verdict is GridVerdict.BAD:
            if self.bad_since is None:
                self.bad_since = now
            if not self.outage and now >= self.bad_since + self.cfg.ride_through_s:
                self.outage = True
        else:
            self.bad_since = None
        if back:
            if self.stable_since is None:
                self.stable_since = now
        else:
            self.stable_since = None

    def returned(self, now: float) -> bool:
        """Inside the reconnect window for the whole ``return_stable_s`` up to ``now``."""
        return self.stable_since is not None and now >= self.stable_since + self.cfg.return_stable_s

    def clear_outage(self) -> None:
        self.outage = False

    def deadline(self) -> float | None:
        if self.bad_since is not None and not self.outage:
            return self.bad_since + self.cfg.ride_through_s
        if self.outage and self.stable_since is not None:
            return self.stable_since + self.cfg.return_stable_s
        return None

"""Time for the application's processes: Unix time, or a simulated clock that all the processes of
`v2h demo` share — simulated Unix time = start + speed × max(0, wall clock − anchor), the same in
every process because they read the same wall clock and were given the same three numbers. Before
the anchor the clock stands at ``start``: the processes start up without the day running away."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SimClock:
    start: float     # simulated Unix time at the anchor
    speed: float     # simulated seconds per real second
    anchor: float    # the wall clock (Unix time) at which the simulation started

    def __post_init__(self) -> None:
        for name in ("start", "speed", "anchor"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"clock {name} must be a finite number, got {v!r}")
        if not 0 < self.speed <= 1e6:
            raise ValueError(f"clock speed must be in (0, 1e6], got {self.speed!r}")

    def now(self) -> float:
        return self.start + self.speed * max(0.0, time.time() - self.anchor)

    def wall(self, t: float) -> float:
        """The wall clock (Unix time) at which the simulation reaches ``t``."""
        return self.anchor + max(0.0, t - self.start) / self.speed

    def spec(self) -> str:
        """As the processes are told: START:SPEED:ANCHOR."""
        return f"{self.start!r}:{self.speed!r}:{self.anchor!r}"

    @classmethod
    def parse(cls, text: str) -> SimClock:
        try:
            start, speed, anchor = (float(x) for x in text.split(":"))
        except ValueError:
            raise ValueError(f"want START:SPEED:ANCHOR (three numbers), got {text!r}") from None
        return cls(start, speed, anchor)


def wall_clock() -> Callable[[], float]:
    """Unix time from the monotonic clock (a clock step does not fire every timer at once)."""
    offset = time.time() - time.monotonic()
    return lambda: time.monotonic() + offset

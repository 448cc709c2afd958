"""A simulated bidirectional charger and the car behind it.

The battery's state of charge is integrated piecewise: between two changes of power it is an exact
function of time (``soc0 + rate·(t − t0)``), so stepping every second and skipping idle seconds
give the same numbers. The car's own BMS stops discharging at its minimum SoC and charging at 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import CHARGER_OFF, ChargerCommand, ChargerMode, ChargerState, charger_state


@dataclass(slots=True)
class CarSim:
    capacity_kwh: float = 60.0
    soc: float = 80.0
    min_soc: float = 10.0
    charge_max_w: float = 11000.0
    discharge_max_w: float = 11000.0
    plugged: bool = True


@dataclass(slots=True)
class ChargerSim:
    car: CarSim = field(default_factory=CarSim)
    max_charge_w: float = 11000.0
    max_discharge_w: float = 11000.0
    efficiency: float = 0.95                # one way, AC port ↔ cells
    link_up: bool = True
    ignores_limit: bool = False             # fault: runs past the limits it is given
    cmd: ChargerCommand = CHARGER_OFF
    mode: ChargerMode = ChargerMode.OFF
    power_w: float = 0.0
    t0: float = 0.0
    soc0: float = 0.0
    rate: float = 0.0                       # %/s
    tripped: bool = False                   # island overload: stays off until commanded off
    overload_s: float = 5.0                 # carries up to 1.5 × its limit this long, then trips
    overload_since: float | None = None

    def __post_init__(self) -> None:
        self.soc0 = self.car.soc

    # -- the battery
    def soc_at(self, now: float) -> float:
        s = self.soc0 + self.rate * (now - self.t0)
        return 0.0 if s < 0.0 else 100.0 if s > 100.0 else s

    def advance(self, now: float) -> None:
        self.car.soc = self.soc_at(now)

    def set_soc(self, soc: float, now: float) -> None:
        self.car.soc = soc
        self._anchor(now, self.power_w)

    def _anchor(self, now: float, p: float) -> None:
        self.soc0, self.t0 = self.car.soc, now
        cells_w = p * self.efficiency if p > 0 else p / self.efficiency
        self.rate = cells_w / (self.car.capacity_kwh * 36000.0)   # W → %/s
        self.power_w = p

    # -- the driver interface
    def send(self, cmd: ChargerCommand) -> None:
        if self.link_up:
            self.cmd = cmd
        if cmd.mode is ChargerMode.OFF:
            self.tripped = False

    def read_state(self) -> ChargerState:
        return charger_state(self)

    # -- physics
    def deadline(self) -> float | None:
        return None if self.overload_since is None else self.overload_since + self.overload_s

    def hw_discharge_w(self) -> float:
        return min(self.car.discharge_max_w, self.max_discharge_w)

    def resolve(self, now: float, grid_live: bool, island_load_w: float | None) -> None:
        """Settle mode and power at ``now``. ``island_load_w``: what the house draws from the
        stand-alone port (None: the port is not connected to the house)."""
        c = self.car
        cmd = self.cmd if self.link_up else CHARGER_OFF       # link lost: the charger's offline default, off
        mode, p = ChargerMode.OFF, 0.0
        if not c.plugged or self.tripped:
            pass
        elif cmd.mode is ChargerMode.GRID_FOLLOWING:
            mode = ChargerMode.GRID_FOLLOWING
            if grid_live:                                    # anti-islanding: no grid, no current
                if self.ignores_limit:
                    p = -self.hw_discharge_w()
                else:
                    lo = -min(cmd.discharge_limit_w, self.hw_discharge_w())
                    hi = min(cmd.charge_limit_w, c.charge_max_w, self.max_charge_w)
                    p = min(max(cmd.power_w, lo), hi)
        elif cmd.mode is ChargerMode.GRID_FORMING:
            mode = ChargerMode.GRID_FORMING
            if c.soc <= c.min_soc:
                mode = ChargerMode.OFF                      # the car's BMS refuses
            elif island_load_w is not None:
                limit = self.hw_discharge_w() if self.ignores_limit else min(cmd.discharge_limit_w,
                                                                               self.hw_discharge_w())
                over = island_load_w > limit
                if over and self.overload_since is None:
                    self.overload_since = now
                elif not over:
                    self.overload_since = None
                if island_load_w > 1.5 * limit or (over and now - self.overload_since >= self.overload_s):
                    mode, self.tripped, self.overload_since = ChargerMode.OFF, True, None
                else:
                    p = -island_load_w
        if p < 0 and c.soc <= c.min_soc:
            p = 0.0
        if p > 0 and c.soc >= 100.0:
            p = 0.0
        self.mode = mode
        if p != self.power_w:
            self._anchor(now, p)

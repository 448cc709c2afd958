"""A traction battery model for the simulated car.

State of charge moves with the power at the inlet and the conversion efficiency; the charge
limit tapers above 80 % SoC and the discharge limit tapers towards the minimum SoC kept for
driving, below which the car gives nothing; voltage follows SoC between ``voltage_min`` and
``voltage_max``. Everything is explicit in time (``apply(power, dt)``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass
class Battery:
    capacity_kwh: float = 60.0
    soc: float = 60.0                  # %
    min_soc: float = 20.0              # % kept for driving: never discharged below
    target_soc: float = 80.0           # %
    max_charge_power: float = 11000.0  # W at the inlet
    max_discharge_power: float = 11000.0
    max_charge_current: float = 200.0  # A (DC)
    max_discharge_current: float = 200.0
    efficiency: float = 0.95           # one way, inlet ↔ cells
    voltage_min: float = 330.0
    voltage_max: float = 410.0

    # (field, lowest, highest, lowest allowed itself): what a car's battery can physically be
    _RANGES = (("capacity_kwh", 0.0, 1000.0, False), ("soc", 0.0, 100.0, True), ("min_soc", 0.0, 100.0, True),
               ("target_soc", 0.0, 100.0, True), ("max_charge_power", 0.0, 1e6, True),
               ("max_discharge_power", 0.0, 1e6, True), ("max_charge_current", 0.0, 3000.0, True),
               ("max_discharge_current", 0.0, 3000.0, True), ("efficiency", 0.0, 1.0, False),
               ("voltage_min", 0.0, 1500.0, False), ("voltage_max", 0.0, 1500.0, False))

    def __post_init__(self) -> None:
        """Every setting is a finite number in its physical range (from flags or a file): NaN,
        infinities and nonsense are refused with the setting's name, never clamped."""
        for name, lo, hi, lo_ok in self._RANGES:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not (lo <= v if lo_ok else lo < v) or v > hi:
                raise ValueError(f"battery setting {name} = {v!r} is not a number in "
                                 f"{'[' if lo_ok else '('}{lo:g}, {hi:g}]")
        if self.voltage_min >= self.voltage_max:
            raise ValueError(f"battery voltage_min {self.voltage_min} must be below voltage_max {self.voltage_max}")

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> Battery:
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown battery settings: {', '.join(sorted(unknown))}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def energy_wh(self) -> float:
        return self.capacity_kwh * 1000.0 * self.soc / 100.0

    def voltage(self) -> float:
        return self.voltage_min + (self.voltage_max - self.voltage_min) * self.soc / 100.0

    def charge_limit(self) -> float:
        """Watts the car accepts now at the inlet."""
        if self.soc >= 100.0:
            return 0.0
        taper = 1.0 if self.soc <= 80.0 else (100.0 - self.soc) / 20.0
        return self.max_charge_power * taper

    def discharge_limit(self) -> float:
        """Watts the car gives now at the inlet; zero at the minimum SoC."""
        room = self.soc - self.min_soc
        if room <= 0:
            return 0.0
        taper = 1.0 if room >= 5.0 else room / 5.0
        return self.max_discharge_power * taper

    def energy_to(self, soc: float) -> float:
        """Wh from the present SoC to ``soc`` (negative: energy the car can give)."""
        return self.capacity_kwh * 1000.0 * (soc - self.soc) / 100.0

    def apply(self, power_w: float, dt: float) -> None:
        """Power at the inlet (positive into the car) for ``dt`` seconds."""
        if dt <= 0:
            return
        cells = power_w * self.efficiency if power_w > 0 else power_w / self.efficiency
        self.soc += cells * dt / 3600.0 / (self.capacity_kwh * 10.0)
        self.soc = min(100.0, max(0.0, self.soc))

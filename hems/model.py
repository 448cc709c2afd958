"""What the site controller reads and what it commands: typed, frozen, keyword-only.

Sign convention everywhere: charger/car power is + charging, − discharging (W, at the charger's AC
port). A measurement that could not be read is ``None`` (a sensor failure), never a guessed 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ChargerMode(str, Enum):
    """The charger's operating mode; GridFollowing/GridForming are ISO 15118-20 ServiceDetail
    GeneratorMode 1 and 2, and OCPP 2.1 carries them as a setpoint/limit profile and an island mode."""

    OFF = "off"
    GRID_FOLLOWING = "grid_following"   # on the grid-tie port: follows power_w within the limits
    GRID_FORMING = "grid_forming"       # on the stand-alone port: sets voltage and frequency of the island


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerState:
    """What the charger driver reports (from its -20 session and its own power stage)."""

    link_up: bool                  # the controller ↔ charger link (OCPP or local) is alive
    car_plugged: bool
    soc: float | None              # % (None: unknown)
    car_min_soc: float             # % the car's own minimum (-20 EVMinimumV2XEnergyRequest / MinimumSOC)
    car_max_charge_w: float
    car_max_discharge_w: float     # magnitude, ≥ 0
    charger_max_charge_w: float
    charger_max_discharge_w: float
    power_w: float                 # measured, + charge / − discharge
    mode: ChargerMode              # the mode actually running


def charger_state(ch) -> ChargerState:
    """The report of a charger driver that holds its car (``plugged``, ``soc``, ``min_soc``,
    ``charge_max_w``, ``discharge_max_w``), ``link_up``, its ratings, ``power_w`` and ``mode`` —
    the simulated charger and the one driven over OCPP alike."""
    c = ch.car
    return ChargerState(link_up=ch.link_up, car_plugged=c.plugged, soc=c.soc if c.plugged else None,
                        car_min_soc=c.min_soc, car_max_charge_w=c.charge_max_w, car_max_discharge_w=c.discharge_max_w,
                        charger_max_charge_w=ch.max_charge_w, charger_max_discharge_w=ch.max_discharge_w,
                        power_w=ch.power_w, mode=ch.mode)


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerCommand:
    """What the controller asks of the charger.

    GRID_FOLLOWING: run at ``power_w`` (+ charge / − discharge), clipped to ``charge_limit_w`` and
    ``discharge_limit_w``. GRID_FORMING: hold the island's voltage and frequency, supplying whatever
    the house draws up to ``discharge_limit_w``. OFF: no current."""

    mode: ChargerMode = ChargerMode.OFF
    power_w: float = 0.0
    discharge_limit_w: float = 0.0
    charge_limit_w: float = 0.0


CHARGER_OFF = ChargerCommand()


@dataclass(frozen=True, kw_only=True, slots=True)
class GridReading:
    """One grid sensor's reading at the utility side of the transfer switch.

    ``voltage_v`` is per phase (1 or 3 values, line-to-neutral RMS). A sensor that failed (timeout,
    Modbus error, a value not finite or out of range) is ``None`` in ``Measurements.grid``."""

    voltage_v: tuple[float, ...]
    frequency_hz: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Measurements:
    """Everything the controller reads in one step."""

    grid: tuple[GridReading | None, ...]        # one entry per configured grid sensor
    load_w: float | None                        # the backed-up panel's load
    pv_w: float | None                          # solar on the utility side
    utility_fb: bool | None                     # auxiliary contact: True = closed
    island_fb: bool | None
    bond_fb: bool | None                        # neutral–ground bond contact (None if not fitted)
    relay_fb: tuple[bool | None, ...]           # per circuit, in configuration order: True = on
    circuit_w: tuple[float | None, ...] = ()    # measured power per circuit where metered
    charger: ChargerState


@dataclass(frozen=True, kw_only=True, slots=True)
class Commands:
    """Everything the controller drives in one step."""

    utility_close: bool
    island_close: bool
    bond_close: bool
    relays: tuple[bool, ...]                    # per circuit, in configuration order: True = on
    charger: ChargerCommand
    indicator: bool                             # audible/visual "on backup" indication
    alarms: frozenset[str] = field(default_factory=frozenset)

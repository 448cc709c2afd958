"""The device interfaces. A simulator implements them in memory; a real driver over Modbus or OCPP.

Reads return ``None`` for a value that could not be read (timeout, error, out of range): the
controller counts that as a sensor failure. The async drivers have the same methods as coroutines.
"""

from __future__ import annotations

from typing import Protocol

from ..model import ChargerCommand, ChargerState, GridReading


class GridSensor(Protocol):
    def read_grid(self) -> GridReading | None: ...


class PowerMeter(Protocol):
    def read_power(self) -> float | None: ...          # W


class SwitchIO(Protocol):
    """The transfer switch and circuit relays: coils out, auxiliary contacts in."""

    def read_feedback(self) -> tuple[bool | None, bool | None, bool | None, tuple[bool | None, ...]]: ...
    # (utility, island, bond, relays) — True = closed/on

    def write(self, utility: bool, island: bool, bond: bool, relays: tuple[bool, ...]) -> None: ...


class ChargerDriver(Protocol):
    """What a real charger driver implements: its state in, a command out (OCPP 2.1 later carries
    the command as SetChargingProfile setpoint/limits, or the island mode)."""

    def read_state(self) -> ChargerState: ...

    def send(self, command: ChargerCommand) -> None: ...

"""A Modbus TCP relay/IO module (pymodbus) for the transfer switch and the circuit relays: coils
drive the contactors, discrete inputs read their auxiliary contacts. A failed read is ``None``
for every input (a feedback that cannot be read is not proven)."""

from __future__ import annotations

from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException


@dataclass(frozen=True, kw_only=True, slots=True)
class IOMap:
    """Coil and discrete-input addresses; ``bond`` None where no bond contactor is fitted."""

    utility: int
    island: int
    bond: int | None
    relays: tuple[int, ...]


class RelayIO:
    def __init__(self, client: AsyncModbusTcpClient, coils: IOMap, inputs: IOMap, device_id: int = 1) -> None:
        self.client, self.coils, self.inputs, self.device_id = client, coils, inputs, device_id

    def _span(self, m: IOMap) -> tuple[int, int]:
        addrs = [m.utility, m.island, *m.relays] + ([m.bond] if m.bond is not None else [])
        return min(addrs), max(addrs) - min(addrs) + 1

    async def read_feedback(self) -> tuple[bool | None, bool | None, bool | None, tuple[bool | None, ...]]:
        m = self.inputs
        lo, n = self._span(m)
        try:
            rr = await self.client.read_discrete_inputs(lo, count=n, device_id=self.device_id)
            ok = not rr.isError() and len(rr.bits) >= n
        except (ModbusException, OSError, TimeoutError):
            ok = False
        if not ok:
            return None, None, None, tuple(None for _ in m.relays)
        bits = rr.bits
        return (bool(bits[m.utility - lo]), bool(bits[m.island - lo]),
                None if m.bond is None else bool(bits[m.bond - lo]), tuple(bool(bits[a - lo]) for a in m.relays))

    async def write(self, utility: bool, island: bool, bond: bool, relays: tuple[bool, ...]) -> bool:
        """Write every coil; False if the module did not take them (the feedback will show it)."""
        m = self.coils
        lo, n = self._span(m)
        values = [False] * n
        values[m.utility - lo], values[m.island - lo] = utility, island
        if m.bond is not None:
            values[m.bond - lo] = bond
        for a, on in zip(m.relays, relays):
            values[a - lo] = on
        try:
            rr = await self.client.write_coils(lo, values, device_id=self.device_id)
            return not rr.isError()
        except (ModbusException, OSError, TimeoutError):
            return False

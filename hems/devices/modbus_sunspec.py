"""SunSpec meter and inverter over Modbus TCP (pymodbus). A timeout, a Modbus exception or a value
out of range reads as ``None``: the controller counts it as a sensor failure."""

from __future__ import annotations

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from ..errors import SensorError
from ..model import GridReading
from . import sunspec


class SunSpecDevice:
    def __init__(self, client: AsyncModbusTcpClient, device_id: int = 1) -> None:
        self.client = client
        self.device_id = device_id
        self.models: dict[int, tuple[int, int]] = {}

    async def _read(self, address: int, count: int) -> list[int]:
        try:
            rr = await self.client.read_holding_registers(address, count=count, device_id=self.device_id)
        except (ModbusException, OSError, TimeoutError) as e:
            raise SensorError(f"Modbus read {address}+{count}: {e}") from None
        if rr.isError() or len(rr.registers) != count:
            raise SensorError(f"Modbus read {address}+{count}: {rr}")
        return list(rr.registers)

    async def discover(self) -> dict[int, tuple[int, int]]:
        """Walk the model directory (reads of at most 125 registers, Modbus's limit); the models
        are kept only once the whole directory was read (a failed walk leaves none)."""
        regs = await self._read(sunspec.BASE, 2)
        if tuple(regs) != sunspec.MARKER:
            raise SensorError("no SunSpec marker at 40000")
        addr = sunspec.BASE + 2
        models: dict[int, tuple[int, int]] = {}
        for _ in range(sunspec.MAX_MODELS):
            mid, length = await self._read(addr, 2)
            if mid == 0xFFFF:
                self.models = models
                return models
            models[mid] = (addr + 2, length)
            addr += 2 + length
        raise SensorError("SunSpec map without an end block")

    async def _block(self, wanted) -> tuple[int, list[int]]:
        for mid in wanted:
            if mid in self.models:
                addr, length = self.models[mid]
                return mid, await self._read(addr, min(length, 125))
        raise SensorError(f"none of the models {sorted(wanted)} on this device")


class SunSpecMeter(SunSpecDevice):
    """Grid sensor and power meter (models 201–204)."""

    def __init__(self, client: AsyncModbusTcpClient, nominal_v: float, device_id: int = 1) -> None:
        super().__init__(client, device_id)
        self.nominal_v = nominal_v

    async def read(self) -> tuple[GridReading | None, float | None]:
        """The grid (per-phase voltage, frequency) and the net power from one read of the block;
        each None on its own when its registers are absent or out of range."""
        try:
            mid, d = await self._block(sunspec.METERS)
        except SensorError:
            return None, None
        out: list = []
        for decode in (lambda: sunspec.meter_grid(mid, d, self.nominal_v), lambda: sunspec.meter_power(mid, d)):
            try:
                out.append(decode())
            except SensorError:
                out.append(None)
        return out[0], out[1]

    async def read_grid(self) -> GridReading | None:
        try:
            mid, d = await self._block(sunspec.METERS)
            return sunspec.meter_grid(mid, d, self.nominal_v)
        except SensorError:
            return None

    async def read_power(self) -> float | None:
        try:
            mid, d = await self._block(sunspec.METERS)
            return sunspec.meter_power(mid, d)
        except SensorError:
            return None


class SunSpecInverter(SunSpecDevice):
    """Solar inverter (models 101–103)."""

    async def read_power(self) -> float | None:
        try:
            mid, d = await self._block(sunspec.INVERTERS)
            return sunspec.inverter_power(mid, d)
        except SensorError:
            return None

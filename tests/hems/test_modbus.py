"""The Modbus TCP drivers against a pymodbus server on loopback holding a SunSpec map and a relay
module's coils and discrete inputs."""

from __future__ import annotations

import asyncio

import pytest

pymodbus = pytest.importorskip("pymodbus")
from pymodbus.client import AsyncModbusTcpClient  # noqa: E402
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext  # noqa: E402
from pymodbus.server import ModbusTcpServer  # noqa: E402

from hems.devices import sunspec  # noqa: E402
from hems.devices.modbus_relay import IOMap, RelayIO  # noqa: E402
from hems.devices.modbus_sunspec import SunSpecInverter, SunSpecMeter  # noqa: E402


def s(v: int) -> int:
    return v & 0xFFFF


def sunspec_map(meter_model=203, volts=(2401, 2399, 2402), hz=5999, watts=-1234, pv_w=3210,
                inverter_model=103) -> list[int]:
    regs = list(sunspec.MARKER)
    regs += [1, 66] + [0] * 66                                   # common model
    m = [0] * 105
    m[6:9] = list(volts) + [0] * (3 - len(volts))
    m[13] = s(-1)                                                # V_SF: 0.1 V
    m[14], m[15] = hz, s(-2)                                     # Hz, Hz_SF: 0.01 Hz
    m[16], m[20] = s(watts), 0                                   # W, W_SF
    regs += [meter_model, len(m)] + m
    if inverter_model == 701:                                    # DER AC measurement: W 8, W_SF 114
        inv = [0] * 153
        inv[8], inv[114] = pv_w * 10, s(-1)
    else:
        inv = [0] * 50
        inv[12], inv[13], inv[14], inv[15] = pv_w, 0, 6000, s(-2)
    regs += [inverter_model, len(inv)] + inv
    regs += [0xFFFF, 0]
    return regs


def _offset_probe():
    """pymodbus data blocks are addressed one above the protocol address (its device context adds 1)."""
    return 1


async def start(regs: list[int], inputs: list[bool] = [False] * 16):
    co, di = ModbusSequentialDataBlock(1, [False] * 16), ModbusSequentialDataBlock(1, list(inputs))
    dev = ModbusDeviceContext(hr=ModbusSequentialDataBlock(sunspec.BASE + _offset_probe(), regs), co=co, di=di)
    ctx = ModbusServerContext(devices=dev, single=True)
    server = ModbusTcpServer(ctx, address=("127.0.0.1", 0))
    task = asyncio.create_task(server.serve_forever())
    for _ in range(100):
        await asyncio.sleep(0.02)
        t = getattr(server, "transport", None)
        if t is not None:
            break
    port = server.transport.sockets[0].getsockname()[1]
    return server, task, port, (co, di)


async def stop(server, task):
    await server.shutdown()
    task.cancel()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_sunspec_meter_and_inverter_on_loopback():
    async def go():
        server, task, port, _ = await start(sunspec_map())
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        await client.connect()
        try:
            meter = SunSpecMeter(client, nominal_v=240.0)
            models = await meter.discover()
            assert set(models) == {1, 203, 103}
            g = await meter.read_grid()
            assert g.voltage_v == pytest.approx((240.1, 239.9, 240.2)) and g.frequency_hz == pytest.approx(59.99)
            assert await meter.read_power() == pytest.approx(-1234.0)
            inv = SunSpecInverter(client)
            await inv.discover()
            assert await inv.read_power() == pytest.approx(3210.0)
        finally:
            client.close()
            await stop(server, task)
    run(go())


def test_a_der_inverter_model_701_reads_its_power():
    async def go():
        server, task, port, _ = await start(sunspec_map(inverter_model=701, pv_w=2345))
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        await client.connect()
        try:
            inv = SunSpecInverter(client)
            assert set(await inv.discover()) == {1, 203, 701}
            assert await inv.read_power() == pytest.approx(2345.0)
        finally:
            client.close()
            await stop(server, task)
    run(go())
    short = [0] * 100  # a 701 block cut before its scale factors is a failed read, not a value
    from hems.errors import SensorError
    with pytest.raises(SensorError, match="too short"):
        sunspec.inverter_power(701, short)


def test_not_implemented_and_failures_read_as_absent():
    async def go():
        server, task, port, _ = await start(sunspec_map(meter_model=201, volts=(0xFFFF,)))
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        await client.connect()
        try:
            meter = SunSpecMeter(client, nominal_v=120.0)
            await meter.discover()
            assert await meter.read_grid() is None              # voltage not implemented: a sensor failure
            meter.device_id = 1
            await stop(server, task)
            await asyncio.sleep(0.1)
            assert await meter.read_power() is None             # the device is gone: a sensor failure
        finally:
            client.close()
    run(go())


def test_relay_module_coils_and_discrete_inputs():
    async def go():
        feedback = [False] * 8 + [True, False, False, True] + [False] * 4
        server, task, port, _ = await start(sunspec_map(), feedback)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        await client.connect()
        try:
            io = RelayIO(client, coils=IOMap(utility=0, island=1, bond=2, relays=(3, 4)),
                         inputs=IOMap(utility=8, island=9, bond=None, relays=(10, 11)))
            assert await io.write(True, False, False, (True, False))
            rr = await client.read_coils(0, count=5)
            assert list(rr.bits[:5]) == [True, False, False, True, False]
            assert await io.read_feedback() == (True, False, None, (False, True))
        finally:
            client.close()
            await stop(server, task)
    run(go())


def test_sunspec_decoding_refuses_bad_scale_factors():
    from hems.errors import SensorError
    with pytest.raises(SensorError):
        sunspec.scaled(100, 0x8000)
    with pytest.raises(SensorError):
        sunspec.scaled(100, 20)
    with pytest.raises(SensorError):
        sunspec.parse_directory([0, 0])
    assert sunspec.parse_directory(sunspec_map())[1][0] == 203

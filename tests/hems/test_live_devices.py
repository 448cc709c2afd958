"""`v2h hems` on real devices: the service in-process with ``[devices]``, against two pymodbus
servers on loopback that play the house's plant — a SunSpec grid meter (model 203) with the solar
inverter (model 103) in one map, and a relay module whose discrete inputs (the auxiliary contacts)
follow its coils after a travel time. The grid fails by setting the meter's voltage to 0; the
relay module goes away by stopping its server. The charger, where one is needed, is a station made
from the `ocpp` package's own v2.1 ChargePoint with a car plugged in that may discharge."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass, field

import pytest

pytest.importorskip("pymodbus")
aiohttp = pytest.importorskip("aiohttp")
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hems import hems_config
from hems.aio.service import HemsService
from hems.devices import sunspec

PASSWORD = "a-16-to-40-char-password"
TRAVEL_S = 0.05
COILS = {"utility": 0, "island": 1, "relays": [2, 3, 4]}
INPUTS = {"utility": 8, "island": 9, "relays": [10, 11, 12]}
CONFIG = """
[site]
nominal_voltage = 230
nominal_frequency = 50
inverter_max_w = 7400
reserve_soc = 20
ride_through_s = 0.3
contact_timeout_s = 0.5
charger_timeout_s = 3
return_stable_s = 2

[[circuits]]
name = "fridge"
priority = "critical"
power_w = 300

[[circuits]]
name = "lights"
priority = "essential"
power_w = 700

[[circuits]]
name = "dryer"
priority = "deferrable"
power_w = 3000

[ocpp]
port = 0

[ocpp.stations]
CS001 = "a-16-to-40-char-password"

[charger]
station_id = "CS001"
meter_interval_s = 1

[plan]
enabled = false

[http]
port = 0

[devices]
poll_s = 0.05
timeout_s = 0.2

[devices.grid_meter]
host = "127.0.0.1"
port = METER_PORT

[devices.pv_inverter]
host = "127.0.0.1"
port = METER_PORT

[devices.switch]
host = "127.0.0.1"
port = SWITCH_PORT
coils = {utility = 0, island = 1, relays = [2, 3, 4]}
inputs = {utility = 8, island = 9, relays = [10, 11, 12]}
"""


def _pack(bits: list[bool]) -> list[int]:
    """Bits into 16-bit registers, the lowest address in the lowest bit (pymodbus's bit blocks)."""
    return [sum(1 << i for i, b in enumerate(bits[k:k + 16]) if b) for k in range(0, len(bits), 16)]


@dataclass
class Plant:
    """The meters and the switchgear behind the two servers. Registers are raw SunSpec values."""

    volts: int = 2301          # × V_SF
    v_sf: int = -1
    hz: int = 5000             # × Hz_SF (−2)
    watts: int = 1234          # net at the grid meter, + import
    w_sf: int = 0
    pv: int = 3210
    pv_sf: int = 0
    coils: list[bool] = field(default_factory=lambda: [True, False, True, True, True] + [False] * 27)
    inputs: list[bool] = field(default_factory=lambda: [False] * 8 + [True, False, True, True, True] + [False] * 19)
    coil_log: list[tuple[float, list[bool]]] = field(default_factory=list)    # (wall time, coils 0–4 written)
    input_log: list[tuple[float, int, bool]] = field(default_factory=list)    # (wall time, input, value)

    def sunspec_map(self) -> list[int]:
        regs = list(sunspec.MARKER) + [1, 66] + [0] * 66
        m = [0] * 105
        m[6:9] = [self.volts & 0xFFFF] * 3
        m[13], m[14], m[15] = self.v_sf & 0xFFFF, self.hz, (-2) & 0xFFFF
        m[16], m[20] = self.watts & 0xFFFF, self.w_sf & 0xFFFF
        inv = [0] * 50
        inv[12], inv[13], inv[14], inv[15] = self.pv & 0xFFFF, self.pv_sf & 0xFFFF, 5000, (-2) & 0xFFFF
        return regs + [203, len(m)] + m + [103, len(inv)] + inv + [0xFFFF, 0]

    async def meter_action(self, fc, start, address, count, registers, values):
        if fc == 3:                       # every read sees the plant as it is now
            registers[:len(self.sunspec_map())] = self.sunspec_map()

    async def switch_action(self, fc, start, address, count, registers, values):
        loop = asyncio.get_running_loop()
        if fc in (5, 15) and values:
            self.coil_log.append((time.time(), list(values[:5])))
            for i, v in enumerate(values):
                a = address + i
                if self.coils[a] != v:
                    self.coils[a] = v
                    target = INPUTS["relays"][COILS["relays"].index(a)] if a in COILS["relays"] else \
                        {COILS["utility"]: INPUTS["utility"], COILS["island"]: INPUTS["island"]}[a]
                    loop.call_later(TRAVEL_S, self._move, target, v)
        elif fc == 2:
            registers[:2] = _pack(self.inputs)

    def _move(self, addr: int, value: bool) -> None:
        if self.inputs[addr] != value:
            self.inputs[addr] = value
            self.input_log.append((time.time(), addr, value))

    def coil(self, name: str, writes=None) -> list[bool]:
        return [w[COILS[name]] for _, w in (writes if writes is not None else self.coil_log)]


async def _serve(device: SimDevice, port: int = 0):
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if getattr(server, "transport", None) is not None:
            break
    return server, task, server.transport.sockets[0].getsockname()[1]


def _relay_module(plant: Plant) -> SimDevice:
    """The relay module as the plant stands (a module that comes back reads its contacts as they are)."""
    return SimDevice(id=1, simdata=([SimData(0, values=list(plant.coils), datatype=DataType.BITS)],
                                    [SimData(0, values=list(plant.inputs), datatype=DataType.BITS)],
                                    [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
                                    [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]),
                     action=plant.switch_action)


async def _stop(server, task) -> None:
    if not task.done():   # a server the test stopped already is not stopped again
        await server.shutdown()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _until(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def _station(port: int, received: list):
    """A station from the `ocpp` package: booted, a car plugged in at 80 % that may discharge 11 kW."""
    import websockets
    from ocpp.routing import on
    from ocpp.v21 import ChargePoint, call, call_result

    class Station(ChargePoint):
        @on("SetVariables")
        def set_variables(self, set_variable_data, **_):
            received.extend(("SetVariables", d["variable"]["name"], d["attribute_value"]) for d in set_variable_data)
            return call_result.SetVariables(set_variable_result=[
                {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"]}
                for d in set_variable_data])

        @on("SetChargingProfile")
        def set_charging_profile(self, evse_id, charging_profile, **_):
            received.append(("SetChargingProfile", charging_profile["charging_schedule"][0]))
            return call_result.SetChargingProfile(status="Accepted")

    auth = {"Authorization": "Basic " + base64.b64encode(f"CS001:{PASSWORD}".encode()).decode()}
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/CS001", subprotocols=["ocpp2.1"], additional_headers=auth)
    cp = Station("CS001", ws)
    reader = asyncio.ensure_future(cp.start())
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    await cp.call(call.BootNotification(charging_station={"vendor_name": "other", "model": "x"}, reason="PowerUp"))
    await cp.call(call.TransactionEvent(
        event_type="Started", timestamp=now, trigger_reason="CablePluggedIn", seq_no=0,
        transaction_info={"transaction_id": "tx-1"}, evse={"id": 1, "connector_id": 1},
        meter_value=[{"timestamp": now, "sampled_value": [{"value": 80.0, "measurand": "SoC"}]}]))
    await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs={
        "requested_energy_transfer": "DC_BPT", "control_mode": "DynamicControl",
        "v2x_charging_parameters": {"max_charge_power": 11000.0, "max_discharge_power": 11000.0}}))
    return ws, reader


@dataclass
class House:
    """The plant's two servers, the service on them and, with a car, the station's requests."""

    plant: Plant
    service: HemsService
    meter: tuple
    switch: tuple                  # (server, task, port) of the relay module
    received: list = field(default_factory=list)

    async def relay_module_gone(self) -> None:
        await _stop(*self.switch[:2])

    async def relay_module_back(self) -> None:
        self.switch = await _serve(_relay_module(self.plant), self.switch[2])

    def status(self) -> dict:
        return self.service.manager.status(self.service.clock())


@contextlib.asynccontextmanager
async def _house(tmp_path, *, car: bool):
    """The plant served, the service started on it and connected to the house; with ``car`` a station
    (the `ocpp` package's) with the car ready to island."""
    plant = Plant()
    meter = await _serve(SimDevice(id=1, simdata=(
        [SimData(0, count=16, values=False, datatype=DataType.BITS)],
        [SimData(0, count=16, values=False, datatype=DataType.BITS)],
        [SimData(sunspec.BASE, values=plant.sunspec_map(), datatype=DataType.REGISTERS)],
        [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]), action=plant.meter_action))
    switch = await _serve(_relay_module(plant))
    cfg = hems_config.load(CONFIG.replace("METER_PORT", str(meter[2])).replace("SWITCH_PORT", str(switch[2])))
    h = House(plant, await HemsService(cfg, db=tmp_path / "hems.db").start(), meter, switch)
    ws = reader = None
    try:
        if car:
            ws, reader = await _station(h.service.ocpp_port, h.received)
        await _until(lambda: h.status()["phase"] == "connected" and h.status()["house"]["pv_w"] and (
            not car or (h.status()["charger"]["link_up"] and h.status()["car"]["soc"] == 80.0)), 5,
            "connected, the meters read" + (", the car ready" if car else ""))
        yield h
    finally:
        if reader is not None:
            reader.cancel()
            await ws.close()
        await h.service.close()
        await _stop(*h.meter[:2])
        await _stop(*h.switch[:2])


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 30))


def test_the_house_reads_its_meters_and_goes_dark_in_an_outage_without_a_car(tmp_path):
    async def main():
        async with _house(tmp_path, car=False) as h:
            plant, service = h.plant, h.service
            async with aiohttp.ClientSession() as http, \
                    http.get(f"http://127.0.0.1:{service.http_port}/api/status") as r:
                status = await r.json()
            assert status["grid"] == {"ok": True, "voltage": pytest.approx(230.1), "frequency": pytest.approx(50.0)}
            # the house: 1234 W imported + 3210 W of solar, the charger idle
            assert status["house"]["pv_w"] == 3210 and status["house"]["load_w"] == 4444
            assert status["switch"] == {"utility_cmd": True, "utility_fb": True, "island_cmd": False,
                                        "island_fb": False}
            assert [c["on"] for c in status["circuits"]] == [True, True, True]
            # the relay module's coils are written again at least every second (its watchdog)
            n, t = len(plant.coil_log), time.time()
            await asyncio.sleep(1.5)
            gaps = [b - a for (a, _), (b, _) in zip(plant.coil_log[n - 1:], plant.coil_log[n:])]
            assert plant.coil_log[-1][0] > t and gaps and max(gaps) < 1.0, gaps

            plant.volts = plant.hz = plant.watts = plant.pv = 0      # the grid fails
            outage = time.time()
            await _until(lambda: h.status()["phase"] == "dark", 5, "dark")
            status = h.status()
            assert status["grid"]["ok"] is False and status["grid"]["voltage"] == 0.0
            assert {"house_dark", "car_unavailable"} <= set(status["alarms"]), status["alarms"]
            assert status["switch"]["utility_fb"] is False and not any(plant.coil("island"))
            # shed first (the critical fridge stays on), the utility contact opened only once the
            # relays read open, and the house called dark only once the utility contact read open
            after = [(t, w) for t, w in plant.coil_log if t > outage]
            shed = next(t for t, w in after if w[3:5] == [False, False])
            opened = next(t for t, w in after if not w[0])
            relays_open = max(t for t, a, v in plant.input_log if a in (11, 12) and not v)
            utility_open = next(t for t, a, v in plant.input_log if a == 8 and not v)
            assert shed < relays_open <= opened < utility_open
            assert all(w[2] for _, w in after)
            dark = next(d for d in service.manager.decisions if d.details.get("phase") == "dark")
            assert dark.t >= utility_open - 0.01 and "reads open" in dark.reason
            assert service.manager.summary()["invariants_ok"], service.manager.summary()["violations"]
            stats = service.devices.stats
            print(f"poll cycle: mean {stats.mean_s * 1000:.1f} ms, max {stats.max_s * 1000:.1f} ms "
                  f"over {stats.cycles} cycles")

    run(main())


def test_malformed_registers_read_as_failed_sensors_never_as_power(tmp_path):
    async def main():
        async with _house(tmp_path, car=False) as h:
            plant, site = h.plant, h.service.manager.site
            assert site.last_measurements.load_w == pytest.approx(4444.0)
            plant.pv_sf = 20                 # a scale factor outside −10…10: the inverter's power is unknown
            plant.w_sf = 0x8000              # the meter's power "not implemented"
            await _until(lambda: site.last_measurements.pv_w is None, 2, "solar unknown")
            m = site.last_measurements
            assert m.pv_w is None and m.load_w is None and m.grid[0] is not None   # the voltage still reads
            plant.v_sf, plant.volts = 0, 1035   # 4.5 × nominal: out of range
            await _until(lambda: site.last_measurements.grid == (None,), 2, "grid reading refused")
            await _until(lambda: "device:grid_meter" in h.status()["alarms"], 3, "device alarm")
            status = h.status()
            assert "sensor_failed" in status["alarms"] and "device:pv_inverter" in status["alarms"]
            assert status["grid"]["voltage"] is None and status["phase"] == "connected"   # no outage from it
            assert site.failures["grid_meter"] > 0 and site.failures["pv_inverter"] > 0
            assert {"grid_meter", "pv_inverter"} <= set(status["devices"]["failing"])
            assert status["devices"]["failures"]["pv_inverter"] > 0 and status["devices"]["failures"]["switch"] == 0
            plant.v_sf, plant.volts, plant.w_sf, plant.pv_sf = -1, 2301, 0, 0
            await _until(lambda: not any(a.startswith("device:") or a == "sensor_failed"
                                         for a in h.status()["alarms"]), 3, "alarms cleared")
            await _until(lambda: h.status()["devices"]["failing"] == [], 2, "no device failing")
            assert site.last_measurements.load_w == pytest.approx(4444.0)
            assert h.service.manager.summary()["invariants_ok"], h.service.manager.summary()["violations"]

    run(main())


def test_the_island_closes_on_the_relay_modules_feedback_and_never_without_it(tmp_path):
    async def main():
        async with _house(tmp_path, car=True) as h:
            plant, service, site, received = h.plant, h.service, h.service.manager.site, h.received
            # the positive control: an outage islands the house on the car, the island contact
            # written closed only after the utility contact read open
            plant.volts = plant.hz = plant.watts = plant.pv = 0
            await _until(lambda: h.status()["phase"] == "islanded", 8, "islanded")
            status = h.status()
            assert status["islanded"] and status["charger"]["mode"] == "grid_forming"
            assert ("SetVariables", "Islanded", "true") in received
            utility_open = next(t for t, a, v in plant.input_log if a == 8 and not v)
            island_closed = next(t for t, w in plant.coil_log if w[1])
            assert utility_open < island_closed
            assert service.manager.summary()["invariants_ok"], service.manager.summary()["violations"]

            # the relay module goes away while islanded: nothing proves the utility contact open,
            # so the island is de-energised at once (charger off) and the house locked out
            n_received = len(received)
            await h.relay_module_gone()
            await _until(lambda: h.status()["phase"] == "lockout", 3, "lockout")
            assert not site.last_cmd.island_close and site.last_cmd.charger.mode.value == "off"
            await _until(lambda: ("SetVariables", "Islanded", "false") in received[n_received:], 3,
                         "the charger told to leave island mode")
            await _until(lambda: {"device:switch", "lockout"} <= set(h.status()["alarms"]), 3, "alarms")
            assert h.status()["switch"]["island_fb"] is None
            # and it stays so: nothing can prove the utility contact open, nothing closes the island
            await asyncio.sleep(1.0)
            rows = list(site.rows)
            locked = next(i for i, r in enumerate(rows) if r["phase"] == "lockout")
            assert h.status()["phase"] == "lockout" and not any(r["island_cmd"] for r in rows[locked:])
            assert site.failures["switch"] > 0 and site.failures["switch_write"] > 0

    run(main())


def test_no_island_when_the_relay_module_is_gone_before_the_outage(tmp_path):
    async def main():
        async with _house(tmp_path, car=True) as h:
            plant, service, site = h.plant, h.service, h.service.manager.site
            await h.relay_module_gone()
            await _until(lambda: {"device:switch", "utility_feedback"} <= set(h.status()["alarms"]), 3,
                         "the module's alarms")
            plant.volts = plant.hz = plant.watts = plant.pv = 0   # and then the grid fails, a car ready
            await _until(lambda: h.status()["phase"] == "lockout", 5, "lockout")
            await asyncio.sleep(0.5)
            rows = list(site.rows)
            assert not any(r["island_cmd"] for r in rows) and not any(r["phase"] == "close_island" for r in rows)
            assert ("SetVariables", "Islanded", "true") not in h.received
            assert {"lockout", "house_dark"} <= set(h.status()["alarms"])

            # the module comes back on its port: the runner reconnects by itself, reads it, writes
            # the coils again (the island open), and the alarm clears
            n = len(plant.coil_log)
            await h.relay_module_back()
            await _until(lambda: "device:switch" not in h.status()["alarms"] and len(plant.coil_log) > n, 8,
                         "the module read and written again")
            assert not any(plant.coil("island", plant.coil_log[n:])) and h.status()["switch"]["island_fb"] is False
            assert service.manager.summary()["invariants_ok"], service.manager.summary()["violations"]

    run(main())

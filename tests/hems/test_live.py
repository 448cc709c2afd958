"""The live house (``hems.live``) without I/O: the ``[devices]`` configuration's checks, and the
site controller stepping on readings as the Modbus adapter hands them over — a small plant in the
test moves each contact's feedback to its coil one poll later, or, when the relay module is gone,
gives no feedback at all."""

from __future__ import annotations

import pytest

from hems import hems_config
from hems.config import ConfigError
from hems.devices.charger_sim import CarSim, ChargerSim
from hems.live import LiveSite, Readings
from hems.model import ChargerMode, GridReading

DEVICES = """
[devices]
poll_s = 0.1

[devices.grid_meter]
host = "10.0.0.5"
port = 502
device_id = 1

[devices.pv_inverter]
host = "10.0.0.5"
device_id = 2

[devices.switch]
host = "10.0.0.6"
coils = {utility = 0, island = 1, relays = [2, 3, 4, 5, 6]}
inputs = {utility = 0, island = 1, relays = [2, 3, 4, 5, 6]}
"""
GOOD = GridReading(voltage_v=(230.0,), frequency_hz=50.0)
DEAD = GridReading(voltage_v=(0.0,), frequency_hz=0.0)


def _config(devices: str = DEVICES, site_extra: str = "") -> hems_config.HemsConfig:
    text = hems_config.DEFAULT.replace("reserve_soc = 30", "reserve_soc = 30\nride_through_s = 0.3" + site_extra)
    return hems_config.load(text + devices)


def test_the_devices_table_is_read():
    d = _config().devices
    assert d.grid_meters[0].host == "10.0.0.5" and d.pv_inverter.device_id == 2 and d.house_meter is None
    assert d.switch.coils.relays == (2, 3, 4, 5, 6) and d.switch.inputs.bond is None
    assert d.poll_s == 0.1 and d.timeout_s == 0.25 and d.switch.endpoint.port == 502
    assert d.names == ("grid_meter", "pv_inverter", "switch")
    assert hems_config.load(hems_config.DEFAULT).devices is None   # absent: the simulated house


@pytest.mark.parametrize("change, key", [
    (("poll_s = 0.1", "poll_s = nan"), "devices.poll_s"),
    (("poll_s = 0.1", "poll_s = 5"), "devices.poll_s"),
    (("poll_s = 0.1", "poll_s = 0.1\ntimeout_s = 0"), "devices.timeout_s"),
    (("poll_s = 0.1", "poll_s = 0.1\nwatchdog = 1"), "devices.watchdog"),
    (("port = 502", "port = 70000"), "devices.grid_meter.port"),
    (("device_id = 2", "device_id = 300"), "devices.pv_inverter.device_id"),
    (("device_id = 2", "device_id = 1.5"), "devices.pv_inverter.device_id"),
    (('host = "10.0.0.6"', "host = 6"), "devices.switch.host"),
    (("coils = {utility = 0, island = 1, relays = [2, 3, 4, 5, 6]}",
      "coils = {utility = 0, island = 1, relays = [2, 3, 4, 5]}"), "devices.switch.coils.relays"),
    (("coils = {utility = 0, island = 1, relays = [2, 3, 4, 5, 6]}",
      "coils = {utility = 0, island = 1, relays = [2, 3, 4, 5, 1]}"), "devices.switch.coils.relays[4]"),
    (("coils = {utility = 0, island = 1, relays = [2, 3, 4, 5, 6]}",
      "coils = {utility = 0, island = 1, bond = 9, relays = [2, 3, 4, 5, 6]}"), "devices.switch.coils.bond"),
    (("coils = {utility = 0, island = 1, relays = [2, 3, 4, 5, 6]}",
      "coils = {utility = 0, island = 5000, relays = [2, 3, 4, 5, 6]}"), "devices.switch.coils"),
    (("inputs = {utility = 0, island = 1, relays = [2, 3, 4, 5, 6]}",
      "inputs = {utility = -1, island = 1, relays = [2, 3, 4, 5, 6]}"), "devices.switch.inputs.utility"),
    (("inputs = {utility = 0, island = 1, relays = [2, 3, 4, 5, 6]}", "x = 1"), "devices.switch.inputs"),
    (("[devices.grid_meter]", "[devices.grid_meter_2]"), "devices.grid_meter"),
    (("[devices.pv_inverter]", "[devices.pv_panel]"), "devices.pv_panel"),
])
def test_a_bad_devices_table_names_its_key(change, key):
    with pytest.raises(ConfigError) as e:
        _config(DEVICES.replace(*change))
    assert e.value.key == key, e.value


def test_the_site_and_the_devices_must_agree():
    with pytest.raises(ConfigError) as e:   # a bond contactor fitted: its coil and input are required
        _config(site_extra="\nneutral_ground_bond = true")
    assert e.value.key == "devices.switch.coils.bond"
    with pytest.raises(ConfigError) as e:   # two grid sensors: two meters
        _config(site_extra="\ngrid_sensors = 2")
    assert e.value.key == "devices.grid_meter_2"
    with pytest.raises(ConfigError) as e:   # nothing to simulate on real devices
        _config(DEVICES + "[[events]]\nat_s = 5\ngrid_voltage = 0\n")
    assert e.value.key == "events"


class Plant:
    """Contacts that follow their coils one poll later; ``gone`` = the relay module does not answer."""

    def __init__(self, n: int) -> None:
        self.utility, self.island, self.relays = True, False, [True] * n
        self.gone = False
        self.island_ever_closed = False

    def feedback(self):
        return None if self.gone else (self.utility, self.island, None, tuple(self.relays))

    def write(self, site: LiveSite) -> None:
        c = site.coils()
        if c is None or self.gone:
            return
        self.utility, self.island, self.relays = c.utility, c.island, list(c.relays)
        self.island_ever_closed |= c.island


def _run(site: LiveSite, plant: Plant, t0: float, t1: float, grid: GridReading, dt: float = 0.1,
         grid_w: float | None = 500.0) -> float:
    t = t0
    while t < t1:
        site.update(Readings(grid=(grid,), grid_w=grid_w, pv_w=0.0, feedback=plant.feedback()))
        site.visit(t)
        plant.write(site)
        t = round(t + dt, 6)
    return t


def _site() -> tuple[LiveSite, ChargerSim, Plant]:
    cfg = _config()
    charger = ChargerSim(car=CarSim(capacity_kwh=60, soc=80, plugged=True))
    return LiveSite(cfg.site, cfg.devices, charger=charger), charger, Plant(len(cfg.site.circuits))


def test_the_house_islands_on_feedback_and_not_without_it():
    # the positive control: with the relay module answering, an outage islands the house
    site, charger, plant = _site()
    assert site.coils() is None                       # nothing written before the module was read
    t = _run(site, plant, 0.0, 2.0, GOOD)
    assert site.controller.phase.value == "connected" and site.coils().utility and not site.coils().island
    t = _run(site, plant, t, 6.0, DEAD)
    assert site.controller.phase.value == "islanded" and plant.island_ever_closed and not plant.utility
    assert charger.mode is ChargerMode.GRID_FORMING and site.summary()["invariants_ok"]

    # the relay module gone before the outage: its feedback is None, the island is never closed
    site, charger, plant = _site()
    t = _run(site, plant, 0.0, 2.0, GOOD)
    plant.gone = True
    t = _run(site, plant, t, 8.0, DEAD)
    rows = list(site.rows)
    assert site.controller.phase.value == "lockout", rows[-1]
    assert not any(r["island_cmd"] for r in rows) and not plant.island_ever_closed
    assert charger.mode is ChargerMode.OFF
    alarms = set(site.last_cmd.alarms)
    assert {"device:switch", "utility_feedback", "lockout", "house_dark"} <= alarms, alarms
    assert site.summary()["invariants_ok"], site.summary()["violations"]
    assert site.summary()["device_failures"]["switch"] == 60

    # gone while islanded: de-energised at once (charger off, island coil open), locked out
    site, charger, plant = _site()
    t = _run(site, plant, 0.0, 2.0, GOOD)
    t = _run(site, plant, t, 6.0, DEAD)
    assert site.controller.phase.value == "islanded"
    plant.gone = True
    _run(site, plant, t, t + 0.1, DEAD)
    assert site.controller.phase.value == "lockout" and not site.coils().island
    assert site.last_cmd.charger.mode is ChargerMode.OFF


def test_the_house_load_comes_from_the_grid_meter_the_solar_and_the_charger():
    site, charger, plant = _site()
    charger.car.soc = 50.0
    site.wanted_w = 2000.0                               # the plan charges the car at 2 kW
    for t in (0.0, 0.1, 0.2):
        site.update(Readings(grid=(GOOD,), grid_w=2700.0, pv_w=800.0, feedback=plant.feedback()))
        site.visit(t)
    assert charger.mode is ChargerMode.GRID_FOLLOWING and charger.power_w == 2000.0
    # 2.7 kW imported + 0.8 kW of solar − 2 kW into the car = 1.5 kW in the house
    assert site.last_measurements.load_w == pytest.approx(1500.0)
    # a failed grid meter or inverter: the controller is told None, never 0
    site.update(Readings(grid=(None,), grid_w=None, pv_w=800.0, feedback=plant.feedback()))
    site.visit(0.3)
    assert site.last_measurements.load_w is None and site.last_measurements.grid == (None,)
    site.update(Readings(grid=(GOOD,), grid_w=2700.0, pv_w=None, feedback=plant.feedback()))
    site.visit(0.4)
    m = site.last_measurements
    assert m.pv_w is None and m.load_w is None
    assert site.last_cmd.charger.discharge_limit_w == 0.0   # no room for a discharge can be proven


def test_a_house_meter_gives_the_load_itself():
    cfg = _config(DEVICES + '[devices.house_meter]\nhost = "10.0.0.7"\n')
    assert cfg.devices.names == ("grid_meter", "house_meter", "pv_inverter", "switch")
    plant = Plant(len(cfg.site.circuits))
    site = LiveSite(cfg.site, cfg.devices, charger=ChargerSim(car=CarSim(capacity_kwh=60, soc=80, plugged=True)))
    for t, house_w in ((0.0, 900.0), (0.1, -500.0), (0.2, None)):
        site.update(Readings(grid=(GOOD,), grid_w=2000.0, house_w=house_w, pv_w=0.0, feedback=plant.feedback()))
        site.visit(t)
        expected = {900.0: 900.0, -500.0: None, None: None}[house_w]   # a large negative load: wired wrong
        assert site.last_measurements.load_w == expected
    assert site.failures["house_meter"] == 1 and site.failures["grid_meter"] == 0

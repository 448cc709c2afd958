"""The energy manager (hems.manager) driving a real charger over OCPP 2.1 in memory: the chain's
charger (SECC + power stage + station core) and car, the house simulated around the manager's
site controller. An outage islands the house, the car carries it through the charger's island
mode, the grid returns and the house goes back — every invariant checked after every step."""

from __future__ import annotations

import pytest

from hems.chain import Chain
from hems.config import site_from_dict
from hems.manager import EnergyManager
from hems.model import ChargerCommand, ChargerMode
from hems.ocpp_charger import OCPPCharger
from hems.sim import SimEvent
from iso15118.evcc import Battery, EVCCConfig

T0 = 1_811_808_000.0
CIRCUITS = [
    {"name": "fridge", "priority": "critical", "power_w": 300, "min_off_s": 120},
    {"name": "sump", "priority": "critical", "power_w": 800},
    {"name": "lights", "priority": "essential", "power_w": 400},
    {"name": "heat_pump", "priority": "essential", "power_w": 3000, "min_off_s": 300},
    {"name": "dryer", "priority": "deferrable", "power_w": 5000},
]
OUTAGE, RETURN = 600.0, 4000.0


def _site():
    return site_from_dict({"nominal_voltage": 120.0, "nominal_frequency": 60, "inverter_max_w": 7600,
                           "reserve_soc": 20}, CIRCUITS)


@pytest.fixture(scope="module")
def outage():
    chain = Chain(start=T0, default_setpoint_w=0.0)
    mgr = EnergyManager(_site(), chain.csms, station_id="CS001", now=T0, plan=lambda t: -1500.0, events=[
        SimEvent(at_s=OUTAGE, grid_voltage=0.0, grid_frequency=0.0),
        SimEvent(at_s=RETURN, grid_voltage=120.0, grid_frequency=60.0)])
    chain.attach(mgr)
    battery = Battery(soc=70, capacity_kwh=60)
    chain.at(T0 + 5, lambda c, now: c.plug(battery, EVCCConfig(service="DC_BPT", loops=10**7, loop_period=0.25)))
    samples = []

    def sample(c, now):
        samples.append({"t": now - T0, "car_w": c.stage.measurements(now).power, "phase": mgr.site.controller.phase.value,
                        "load_w": mgr.site.load_w, "soc": battery.soc})
    for k in range(1, 100):
        chain.at(T0 + k * 50.0, sample)
    chain.run(T0 + 5000)
    return chain, mgr, samples


def test_the_house_islands_on_the_car_and_returns(outage):
    chain, mgr, samples = outage
    summary = mgr.summary()
    assert summary["invariants_ok"], summary["violations"]
    assert summary["final_phase"] == "connected" and summary["islanded_s"] > RETURN - OUTAGE
    before = [s for s in samples if 100 < s["t"] < OUTAGE]
    assert before and all(s["phase"] == "connected" and abs(s["car_w"] + 1500) < 20 for s in before)
    island = [s for s in samples if OUTAGE + 400 < s["t"] < RETURN]
    # the island carries what stays on (the dryer is shed) and the car gives exactly that
    assert island and all(s["phase"] == "islanded" for s in island)
    assert all(s["load_w"] == 4500 and abs(s["car_w"] + s["load_w"]) < 50 for s in island)
    back = [s for s in samples if RETURN + 400 < s["t"]]  # after IEEE 1547's 300 s window
    assert back and all(s["phase"] == "connected" and abs(s["car_w"] + 1500) < 20 for s in back)
    assert samples[-1]["soc"] < samples[0]["soc"]


def test_every_request_to_the_charger_is_a_logged_decision(outage):
    chain, mgr, _ = outage
    asked = [d for d in mgr.decisions if d.kind == "charger"]
    modes = [d.details.get("mode") for d in asked if "mode" in d.details]
    assert modes.index("grid_forming") > modes.index("grid_following")
    assert modes[-1] == "grid_following"
    assert any(d.reason == "island mode on" for d in asked) and any(d.reason == "island mode off" for d in asked)
    phases = [d.details["phase"] for d in mgr.decisions if d.kind == "site"]
    assert "islanded" in phases and phases[-1] == "connected"
    # the charger was asked only when the wanted power moved beyond the dead band
    following = [d.details["setpoint_w"] for d in asked if d.details.get("mode") == "grid_forming"]
    assert all(abs(a - b) > 200 for a, b in zip(following, following[1:]))


def test_a_charger_request_waits_for_the_dead_band():
    """No new profile for a change within the dead band; a mode change always goes out."""
    chain = Chain(start=T0, default_setpoint_w=0.0)
    charger = OCPPCharger(chain.csms, "CS001", deadband_w=200.0, time_offset=0.0)
    chain.run(T0 + 2)
    sent = []
    chain.csms.observer = None
    original = chain.csms.call

    def spy(station, action, payload, *, now, on_answer=None):
        sent.append(action)
        original(station, action, payload, now=now, on_answer=on_answer)
    chain.csms.call = spy
    for watts, mode in [(-1000.0, ChargerMode.GRID_FOLLOWING), (-1100.0, ChargerMode.GRID_FOLLOWING),
                        (-1300.0, ChargerMode.GRID_FOLLOWING), (0.0, ChargerMode.OFF)]:
        charger.send(ChargerCommand(mode=mode, power_w=watts, discharge_limit_w=5000.0, charge_limit_w=5000.0))
        for _ in range(3):  # the configuration first, then the profile; answers come over the chain
            charger.resolve(chain.now, True, None)
            chain.run(chain.now + 0.1)
    assert sent == ["SetVariables", "SetVariables", "SetChargingProfile", "SetChargingProfile", "SetChargingProfile"]
    assert charger.mode is ChargerMode.OFF and charger.failures == 0

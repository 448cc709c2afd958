"""The stateful model of a site: arbitrary sequences of grid events, faults, load, solar, car and
restarts, every invariant checked after every controller step (by hems.invariants, from outside).

Used by tests/hems/test_stateful.py (a modest run, and the mutants) and by
benchmarks/bench_hems_stateful.py (≥ 10,000 sequences)."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from hems.config import site_from_dict
from hems.devices.charger_sim import CarSim
from hems.sim import SimEvent, Site

CIRCUITS = [
    {"name": "fridge", "priority": "critical", "power_w": 300, "min_off_s": 120},
    {"name": "sump", "priority": "critical", "power_w": 800},
    {"name": "lights", "priority": "essential", "power_w": 400},
    {"name": "heat_pump", "priority": "essential", "power_w": 3000, "min_off_s": 300},
    {"name": "dryer", "priority": "deferrable", "power_w": 5000},
]
NAMES = [c["name"] for c in CIRCUITS]
STEPS = {"checked": 0, "sequences": 0}

GRID = {  # kind: [(offset s, voltage pu or None, frequency offset Hz or None)]
    "outage": [(0.0, 0.0, None)],
    "flicker": [(0.0, 0.0, None), (0.2, 1.0, None)],
    "sag": [(0.0, 0.8, None)],
    "swell": [(0.0, 1.15, None)],
    "freq_low": [(0.0, None, -2.0)],
    "freq_high": [(0.0, None, +1.5)],
    "freq_wobble": [(0.0, None, +0.3)],
    "return": [(0.0, 1.0, 0.0)],
    "unstable_return": [(0.0, 1.0, 0.0), (120.0, 0.9, None), (121.0, 1.0, None)],
}
FAULTS = ["utility_stuck_closed", "utility_stuck_open", "utility_feedback_lost", "island_stuck_open",
          "island_stuck_closed", "island_feedback_lost", "relay_stuck_on", "charger_link_lost",
          "charger_ignores_limit", "sensor_failed", "clear"]


class SiteMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.site: Site | None = None

    @initialize(freq=st.sampled_from([50, 60]), sensors=st.sampled_from([1, 2]), bond=st.booleans(),
                soc=st.floats(15.0, 100.0), min_soc=st.floats(0.0, 30.0), reserve=st.floats(0.0, 40.0),
                capacity=st.sampled_from([5.0, 20.0, 60.0, 98.0]), car_w=st.sampled_from([1500.0, 3600.0, 11000.0]),
                setpoint=st.sampled_from([-11000.0, -2000.0, 0.0, 7000.0]), export=st.booleans())
    def setup(self, freq, sensors, bond, soc, min_soc, reserve, capacity, car_w, setpoint, export):
        v = 230.0 if freq == 50 else 120.0
        cfg = site_from_dict({"nominal_voltage": v, "nominal_frequency": freq, "inverter_max_w": 7600.0,
                              "reserve_soc": reserve, "grid_sensors": sensors, "neutral_ground_bond": bond,
                              "return_stable_s": 300.0, "grid_setpoint_w": setpoint, "allow_export": export},
                             CIRCUITS)
        self.v, self.f = v, float(freq)
        car = CarSim(capacity_kwh=capacity, soc=soc, min_soc=min_soc, discharge_max_w=car_w)
        self.site = Site(cfg, car=car)
        self.site.run(0.0)

    def _at(self, dt: float = 0.0) -> float:
        return self.site.t + dt

    @rule(kind=st.sampled_from(sorted(GRID)))
    def grid(self, kind):
        for off, pu, df in GRID[kind]:
            self.site.schedule(SimEvent(at_s=self._at(off), grid_voltage=None if pu is None else pu * self.v,
                                        grid_frequency=None if df is None else self.f + df))

    @rule(settle=st.sampled_from([2.0, 15.0, 40.0]))
    def outage_and_island(self, settle):
        """The common case made common: an outage, then time for the island to form and fill."""
        self.site.schedule(SimEvent(at_s=self._at(), grid_voltage=0.0))
        self.site.run(self.site.t + settle)

    @rule(sensor=st.sampled_from([1, 2]), pu=st.sampled_from([0.0, 0.8, 1.0, 1.2]))
    def one_sensor(self, sensor, pu):
        if sensor <= self.site.cfg.grid_sensors:
            self.site.schedule(SimEvent(at_s=self._at(), grid_voltage=pu * self.v, sensor=sensor))

    @rule(fault=st.sampled_from(FAULTS), circuit=st.sampled_from(NAMES), sensor=st.sampled_from([None, 1, 2]))
    def fault(self, fault, circuit, sensor):
        if sensor is not None and sensor > self.site.cfg.grid_sensors:
            sensor = None
        self.site.schedule(SimEvent(at_s=self._at(), fault=fault,
                                    circuit=circuit if fault == "relay_stuck_on" else None,
                                    sensor=sensor if fault == "sensor_failed" else None))

    @rule(circuit=st.sampled_from(NAMES), power=st.sampled_from([0.0, 100.0, 400.0, 1500.0, 3000.0, 7000.0]))
    def load(self, circuit, power):
        self.site.schedule(SimEvent(at_s=self._at(), circuit=circuit, power_w=power))

    @rule(pv=st.sampled_from([0.0, 1000.0, 6000.0, 12000.0]))
    def solar(self, pv):
        self.site.schedule(SimEvent(at_s=self._at(), pv_w=pv))

    @rule(plugged=st.booleans())
    def plug(self, plugged):
        self.site.schedule(SimEvent(at_s=self._at(), plugged=plugged))

    @rule(soc=st.floats(0.0, 100.0))
    def soc(self, soc):
        self.site.schedule(SimEvent(at_s=self._at(), soc=soc))

    @rule()
    def restart(self):
        self.site.schedule(SimEvent(at_s=self._at(), restart=True))

    @rule(dt=st.sampled_from([0.05, 0.15, 0.5, 1.0, 2.5, 10.0, 60.0, 299.0, 310.0, 1800.0, 7200.0]))
    def wait(self, dt):
        self.site.run(self.site.t + dt)

    @invariant()
    def invariants_hold(self):
        if self.site is None:
            return
        v = self.site.violations
        assert not v, "; ".join(f"{x.invariant} at {x.t:.2f} s: {x.detail}" for x in v[:3])

    def teardown(self):
        if self.site is not None:
            STEPS["checked"] += self.site.checker.steps
            STEPS["sequences"] += 1

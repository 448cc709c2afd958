"""The outage runtime estimate (hems.runtime) against the arithmetic."""

from __future__ import annotations

import math

import pytest

from hems.config import CircuitConfig, Priority
from hems.errors import ConfigError
from hems.runtime import circuit_loads, estimate, format_duration

C, E, D = Priority.CRITICAL, Priority.ESSENTIAL, Priority.DEFERRABLE


def test_98_kwh_at_1_5_kw_gross_and_with_losses_and_reserve():
    gross = estimate(soc_pct=100, capacity_kwh=98, reserve_pct=0, efficiency=1.0, standby_w=0, loads={C: 1500.0})
    assert gross.get("critical").hours == pytest.approx(98 / 1.5)            # 65.3 h
    assert gross.get("critical").hours / 24 == pytest.approx(2.72, abs=0.005)
    net = estimate(soc_pct=100, capacity_kwh=98, reserve_pct=20, efficiency=0.9, standby_w=0, loads={C: 1500.0})
    assert net.usable_kwh == pytest.approx(78.4)
    assert net.get("critical").hours == pytest.approx(98 * 0.8 * 0.9 / 1.5)  # 47.04 h
    assert net.get("critical").hours / 24 == pytest.approx(1.96, abs=0.005)
    assert format_duration(net.get("critical").hours) == "1 d 23 h"


def test_scenarios_add_priorities_and_standby():
    est = estimate(soc_pct=60, capacity_kwh=60, reserve_pct=20, efficiency=0.9, standby_w=30,
                   loads={C: 300.0, E: 700.0, D: 2000.0})
    kwh = 60 * 0.4 * 0.9
    assert est.get("critical").hours == pytest.approx(kwh / 0.33)
    assert est.get("essential").hours == pytest.approx(kwh / 1.03)
    assert est.get("everything").hours == pytest.approx(kwh / 3.03)
    text = est.text()
    assert text == ("If the grid failed now: critical loads for 2 d 17 h; critical + essential for 20 h; "
                    "everything for 7 h")
    assert est.text(live=True).startswith("On backup: ")


def test_profile_is_walked_and_repeated():
    # 1 kW for one hour then 0 for three hours (4 slots of 1 h): 2.5 kWh lasts 2 cycles + half an hour
    est = estimate(soc_pct=100, capacity_kwh=2.5, reserve_pct=0, efficiency=1.0, standby_w=0,
                   loads={C: [1000.0, 0.0, 0.0, 0.0]}, slot_s=3600)
    assert est.get("critical").hours == pytest.approx(8.5)


def test_per_circuit_powers_measured_over_rated():
    circuits = (CircuitConfig(name="fridge", priority=C, power_w=300.0),
                CircuitConfig(name="heat", priority=E, power_w=1500.0),
                CircuitConfig(name="ev2", priority=D, power_w=7000.0))
    loads = circuit_loads(circuits, {"heat": 900.0})
    assert loads == {C: 300.0, E: 900.0, D: 7000.0}
    est = estimate(soc_pct=80, capacity_kwh=77, reserve_pct=20, efficiency=0.9, standby_w=20, loads=loads,
                   capacity_w=7600)
    assert est.get("everything").fits is False and est.get("essential").fits
    assert "everything: more than the island can carry" in est.text()
    with pytest.raises(ConfigError):
        circuit_loads(circuits, {"sauna": 10.0})


def test_at_or_below_reserve_is_zero_and_no_load_is_unbounded():
    est = estimate(soc_pct=15, capacity_kwh=60, reserve_pct=20, efficiency=0.9, standby_w=10, loads={C: 100.0})
    assert est.get("critical").hours == 0.0 and format_duration(0.0) == "0 min"
    est = estimate(soc_pct=80, capacity_kwh=60, reserve_pct=20, efficiency=0.9, standby_w=0, loads={})
    assert math.isinf(est.get("critical").hours) and "more than a year" in est.text()


@pytest.mark.parametrize("h,text", [(52.2, "2 d 4 h"), (9.0, "9 h"), (9.99, "9 h 50 min"), (0.67, "40 min"),
                                    (12.5, "12 h"), (1.0, "1 h")])
def test_format(h, text):
    assert format_duration(h) == text


@pytest.mark.parametrize("kw,key", [({"soc_pct": float("nan")}, "soc_pct"), ({"efficiency": 0.0}, "efficiency"),
                                    ({"standby_w": -1.0}, "standby_w"),
                                    ({"loads": {C: float("inf")}}, "loads.critical"),
                                    ({"loads": {C: [1.0, float("nan")]}}, "loads.critical[1]")])
def test_bad_numbers_named(kw, key):
    base = dict(soc_pct=50, capacity_kwh=60, reserve_pct=20, efficiency=0.9, standby_w=10, loads={C: 100.0})
    base.update(kw)
    with pytest.raises(ConfigError) as ei:
        estimate(**base)
    assert ei.value.key == key


def test_importing_the_energy_manager_needs_no_optional_package():
    """numpy, highspy, pvlib and pandas are the 'hems' extra: imported on first use, never by
    'import hems' and its planner/forecast/runtime/tariff modules."""
    import subprocess
    import sys

    code = ("import sys, hems, hems.plan, hems.plan.csvio, hems.runtime, hems.tariff, hems.forecast.load, "
            "hems.forecast.solar, hems.forecast.h0\n"
            "bad = [m for m in ('numpy', 'highspy', 'pvlib', 'pandas', 'scipy') if m in sys.modules]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr

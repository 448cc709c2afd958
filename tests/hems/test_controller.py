"""The site controller on the simulated site: the sequences of the issue, one at a time."""

from __future__ import annotations

import math

from hems.controller import Phase
from hems.model import ChargerMode

from .helpers import make_site, phases, row_at


def ok(site):
    assert site.violations == [], [v.to_dict() for v in site.violations[:5]]


def test_outage_islands_in_order_and_returns_after_the_full_window():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 600, "grid_voltage": 120.0},
                   {"at_s": 700, "grid_frequency": 61.0}, {"at_s": 700.5, "grid_frequency": 60.0}])
    s.run(1200)
    ok(s)
    assert phases(s) == ["connected", "shed", "open_utility", "close_island", "form", "islanded", "return_stop",
                         "return_open", "return_close", "connected"]
    shed, opening = (next(r for r in s.rows if r["phase"] == p) for p in ("shed", "open_utility"))
    assert shed["utility_cmd"] and not opening["utility_cmd"]   # K1 opens only once the relays read open
    assert opening["t"] == shed["t"] + 0.02                       # the relays' travel
    back = next(r for r in s.rows if r["phase"] == "return_stop")
    assert back["t"] == 700.5 + 300          # the excursion at 700 restarted the 300 s window
    isl = row_at(s, 500)
    assert {"fridge", "sump"} <= set(isl["circuits_on"]) and isl["island_fb"] and not isl["utility_fb"]
    assert "dryer" not in isl["circuits_on"]   # 300+800+400+3000 fits under 90 % of 7600; the dryer not
    assert row_at(s, 1100)["circuits_on"] == ["fridge", "sump", "lights", "heat_pump", "dryer"]
    assert row_at(s, 1001)["circuits_on"] == ["fridge", "sump", "lights", "heat_pump", "dryer"]


def test_circuits_are_restored_one_at_a_time_with_the_settle_delay():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}])
    s.run(400)
    ok(s)
    ons = [(r["t"], tuple(r["circuits_on"])) for r in s.rows if r["phase"] == "islanded"]
    counts = [len(c) for _, c in ons]
    assert counts == sorted(counts) and counts[-1] == 4
    times = [t for (t, c), (_, c0) in zip(ons[1:], ons) if len(c) > len(c0)]
    assert all(b - a >= 10.0 for a, b in zip(times, times[1:]))


def test_a_200ms_flicker_does_not_island():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 10.2, "grid_voltage": 120.0}])
    s.run(60)
    ok(s)
    assert phases(s) == ["connected"]


def test_zero_import_is_not_an_outage():
    s = make_site([{"at_s": 5, "pv_w": 9500.0}, {"at_s": 20, "pv_w": 0.0}])
    s.run(60)
    ok(s)
    assert phases(s) == ["connected"]


def test_50hz_site_uses_its_own_windows():
    s = make_site([{"at_s": 10, "grid_frequency": 47.0}, {"at_s": 30, "grid_frequency": 50.0}],
                  nominal_voltage=230.0, nominal_frequency=50, return_stable_s=60)
    s.run(200)
    ok(s)
    assert "islanded" in phases(s) and phases(s)[-1] == "connected"
    assert next(r for r in s.rows if r["phase"] == "return_stop")["t"] == 90.0
    s = make_site([{"at_s": 10, "grid_frequency": 50.15}], nominal_voltage=230.0, nominal_frequency=50)
    s.run(60)
    assert phases(s) == ["connected"]   # inside the EN 50549-1 trip window


def test_utility_stuck_closed_stays_dark_and_never_closes_the_island():
    s = make_site([{"at_s": 1, "fault": "utility_stuck_closed"}, {"at_s": 10, "grid_voltage": 0.0}])
    s.run(300)
    ok(s)
    assert not any(r["island_cmd"] for r in s.rows)
    assert s.controller.phase is Phase.LOCKOUT and "utility_feedback" in s.controller.alarms


def test_utility_feedback_lost_while_islanded_de_energises():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 100, "fault": "utility_feedback_lost"}])
    s.run(200)
    ok(s)
    assert s.charger.mode is ChargerMode.OFF and not s.island.closed
    assert s.controller.phase is Phase.LOCKOUT


def test_island_stuck_open_alarm_and_dark():
    s = make_site([{"at_s": 1, "fault": "island_stuck_open"}, {"at_s": 10, "grid_voltage": 0.0}])
    s.run(40)
    ok(s)
    assert "island_feedback" in s.controller.alarms or "transfer_failed" in s.controller.alarms
    assert s.charger.mode is ChargerMode.OFF


def test_island_stuck_closed_at_return_never_closes_the_utility():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 20, "fault": "island_stuck_closed"},
                   {"at_s": 30, "grid_voltage": 120.0}])
    s.run(1000)
    ok(s)
    assert s.controller.phase is Phase.LOCKOUT and not s.utility.closed


def test_reserve_reached_sheds_then_ends_the_island_cleanly():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}], soc=26.0, capacity_kwh=10.0)
    s.run(6 * 3600)
    ok(s)
    assert s.controller.phase is Phase.DARK and "reserve_reached" in s.controller.alarms
    assert 20.0 <= s.stats.min_soc <= 20.6
    warn = next(r for r in s.rows if "reserve_near" in r["alarms"])
    after = row_at(s, warn["t"] + 0.5)
    assert after["circuits_on"] == ["fridge", "sump"] and "reserve_near" in after["alarms"]


def test_unplug_mid_outage_de_energises_and_waits():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 100, "plugged": False},
                   {"at_s": 200, "plugged": True}])
    s.run(300)
    ok(s)
    assert row_at(s, 150)["circuits_on"] == [] and "car_unavailable" in row_at(s, 150)["alarms"]
    assert s.controller.phase is Phase.ISLANDED


def test_charger_link_lost_while_islanded():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 100, "fault": "charger_link_lost"}])
    s.run(200)
    ok(s)
    assert s.controller.phase is Phase.DARK and not s.island.closed


def test_restart_reads_every_feedback_before_anything_flows():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 100, "restart": True}])
    s.run(300)
    ok(s)
    r = next(r for r in s.rows if "controller restarted" in r["reason"])
    assert r["car_w"] == 0
    assert s.controller.phase is Phase.ISLANDED


def test_sensors_disagree_hold_and_alarm():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0, "sensor": 2}, {"at_s": 100, "grid_voltage": 0.0}],
                  grid_sensors=2, grid_setpoint_w=-2000.0)
    s.run(99)
    ok(s)
    assert s.controller.phase is Phase.CONNECTED and "sensor_disagree" in s.controller.alarms
    assert s.charger.power_w == 0.0
    s.run(200)
    ok(s)
    assert s.controller.phase is Phase.ISLANDED


def test_charger_ignoring_its_limit_is_switched_off():
    s = make_site([{"at_s": 10, "fault": "charger_ignores_limit"}], grid_setpoint_w=-1000.0)
    s.run(60)
    ok(s)
    assert "charger_not_following" in s.controller.alarms and s.charger.mode is ChargerMode.OFF


def test_discharge_follows_the_load_no_export():
    s = make_site([{"at_s": 10, "circuit": "dryer", "power_w": 0.0}, {"at_s": 20, "pv_w": 2000.0}],
                  grid_setpoint_w=-11000.0)
    s.run(30)
    ok(s)
    assert row_at(s, 5)["car_w"] == -9500 and row_at(s, 15)["car_w"] == -4500
    assert row_at(s, 25)["car_w"] == -2500 and row_at(s, 25)["export_w"] == 0


def test_relay_stuck_on_alarm_and_island_still_safe():
    s = make_site([{"at_s": 1, "fault": "relay_stuck_on", "circuit": "lights"}, {"at_s": 10, "grid_voltage": 0.0}])
    s.run(100)
    ok(s)
    assert "relay:lights_feedback" in " ".join(r for row in s.rows for r in row["alarms"])


def test_overload_sheds_lowest_priority_largest_first():
    s = make_site([{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 200, "circuit": "lights", "power_w": 4000.0}])
    s.run(300)
    ok(s)
    assert "heat_pump" not in row_at(s, 201)["circuits_on"] and "lights" in row_at(s, 201)["circuits_on"]


def test_skip_ahead_gives_the_timeline_of_stepping_every_second():
    ev = [{"at_s": 10, "grid_voltage": 0.0}, {"at_s": 40.3, "circuit": "lights", "power_w": 900.0},
          {"at_s": 100, "grid_voltage": 120.0}, {"at_s": 150, "grid_voltage": 0.0},
          {"at_s": 150.2, "grid_voltage": 120.0}, {"at_s": 700, "soc": 27.0}, {"at_s": 720, "grid_voltage": 0.0},
          {"at_s": 900, "plugged": False}, {"at_s": 950, "plugged": True}]
    a = make_site(ev, soc=30.0, capacity_kwh=5.0)
    b = make_site(ev, soc=30.0, capacity_kwh=5.0)
    a.run(3000, skip=True)
    b.run(3000, skip=False)
    ok(a)
    ok(b)
    assert a.rows == b.rows
    assert a.stats.visits < b.stats.visits / 3
    assert math.isclose(a.stats.energy_to_house_wh, b.stats.energy_to_house_wh, rel_tol=1e-9)


def test_next_deadline_is_none_when_idle():
    s = make_site()
    s.run(10)
    assert s.controller.next_deadline() is None

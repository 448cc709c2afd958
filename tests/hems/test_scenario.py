"""Scenario files: the examples run clean, bad input gets one error naming the key, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hems.errors import ConfigError
from hems.scenario import load_scenario
from v2h.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "hems").glob("*.toml"))
GOOD = (ROOT / "examples" / "hems" / "outage_and_return.toml").read_text()


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.stem != "week_outage"], ids=lambda p: p.stem)
def test_examples_hold_every_invariant(path):
    sc = load_scenario(path.read_text())
    site = sc.site()
    site.run(sc.duration_s)
    assert site.summary()["invariants_ok"], site.summary()["violations"][:3]


def test_simulate_writes_timeline_and_summary(tmp_path, capsys):
    rc = main(["hems", "simulate", str(ROOT / "examples/hems/outage_and_return.toml"), "--out", str(tmp_path)])
    assert rc == 0
    rows = [json.loads(x) for x in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    need = {"t", "grid_ok", "utility_cmd", "utility_fb", "island_cmd", "island_fb", "circuits_on", "soc", "car_w",
            "load_w", "export_w", "alarms", "reason"}
    assert all(need <= set(r) for r in rows)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["invariants_ok"] is True and s["violations"] == [] and s["islanded_s"] > 7000
    assert s["energy_to_house_kwh"] > 0 and 0 < s["min_soc"] < 80
    assert "invariants: all held" in capsys.readouterr().out


def test_simulate_exits_non_zero_when_an_invariant_fails(tmp_path, monkeypatch):
    from hems import controller
    monkeypatch.setattr(controller.SiteController, "outage", lambda self: True)  # islands on a healthy grid
    rc = main(["hems", "simulate", str(ROOT / "examples/hems/flicker.toml"), "--out", str(tmp_path)])
    assert rc == 1
    assert json.loads((tmp_path / "summary.json").read_text())["invariants_ok"] is False


@pytest.mark.parametrize("edit, key", [
    (("[site]\n", "[site]\nbogus = 1\n"), "site.bogus"),
    (("inverter_max_w = 7600\n", ""), "site.inverter_max_w"),
    (("reserve_soc = 20", "reserve_soc = 120"), "site.reserve_soc"),
    (("reserve_soc = 20", "reserve_soc = nan"), "site.reserve_soc"),
    (("capacity_kwh = 77", "capacity_kwh = inf"), "car.capacity_kwh"),
    (("discharge_max_w = 11000\n", ""), "car.discharge_max_w"),
    (("power_w = 800\n", "power_w = 9000\n"), "circuits[1].power_w"),
    (('name = "dryer"', 'name = "dryer"\ncolour = "red"'), "circuits[4].colour"),
    (("nominal_frequency = 60", "nominal_frequency = 55"), "site.nominal_frequency"),
    (("at_s = 600\n", "at_s = 600\nfault = \"gremlins\"\n"), "events[0].fault"),
    (("at_s = 600\n", "at_s = 600\nwhen = 3\n"), "events[0].when"),
    (("grid_voltage = 0\n", "grid_voltage = -inf\n"), "events[0].grid_voltage"),
])
def test_bad_input_names_the_key(edit, key):
    old, new = edit
    assert old in GOOD
    with pytest.raises(ConfigError) as e:
        load_scenario(GOOD.replace(old, new, 1))
    assert e.value.key == key, str(e.value)
    assert str(e.value).startswith(key)


def test_critical_larger_than_the_car_can_carry():
    with pytest.raises(ConfigError) as e:
        load_scenario(GOOD.replace("discharge_max_w = 11000", "discharge_max_w = 1000"))
    assert e.value.key == "circuits[1].power_w" and "island can carry" in str(e.value)


def test_cli_reports_a_bad_scenario(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text(GOOD.replace("[site]\n", "[site]\nbogus = 1\n"))
    assert main(["hems", "simulate", str(p), "--out", str(tmp_path / "o")]) == 1
    assert "site.bogus: unknown key" in capsys.readouterr().err

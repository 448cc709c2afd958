"""``v2h hems plan``: CSV in, PLAN.csv and one JSON object out, errors that name what is wrong."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("numpy")
pytest.importorskip("highspy")

from v2h.cli import main  # noqa: E402

T0 = datetime(2025, 3, 3, tzinfo=timezone(timedelta(hours=1)))
CAR = ["--capacity-kwh", "10", "--soc", "50", "--soc-min", "20", "--charge-max-w", "4000",
       "--discharge-max-w", "4000", "--eff-charge", "0.9", "--eff-discharge", "0.9"]


def write_input(path: Path, rows: int = 16, *, bad: dict | None = None, step_min: int = 15) -> Path:
    lines = ["time,load_w,pv_w,import_price,export_price"]
    for k in range(rows):
        t = (T0 + timedelta(minutes=step_min * k)).isoformat()
        vals = {"time": t, "load_w": "1000", "pv_w": "0", "import_price": "0.10" if k < rows // 2 else "0.40",
                "export_price": "0.0"}
        if bad and k == bad["row"]:
            vals[bad["col"]] = bad["value"]
        lines.append(",".join(vals[c] for c in ("time", "load_w", "pv_w", "import_price", "export_price")))
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path: Path, *extra: str, inp: Path | None = None) -> tuple[int, Path]:
    inp = inp or write_input(tmp_path / "in.csv")
    out = tmp_path / "plan.csv"
    return main(["hems", "plan", "--input", str(inp), "--out", str(out), *CAR, *extra]), out


def test_plan_writes_the_csv_and_prints_json(tmp_path, capsys):
    rc, out = run(tmp_path, "--soc-final", "50", "--no-export", "--wear-cost", "0.01")
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert {"cost", "charged_kwh", "discharged_kwh", "solve_ms"} <= set(result)
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["time", "car_w", "soc", "grid_w"] and len(rows) == 16
    assert rows[0]["time"] == T0.isoformat()
    car = [float(r["car_w"]) for r in rows]
    grid = [float(r["grid_w"]) for r in rows]
    assert all(x >= 0 for x in car[:8]) and all(-1000.0 <= x <= 0 for x in car[8:])    # cheap, then dear
    assert all(g == pytest.approx(1000.0 + x, abs=0.2) for g, x in zip(grid, car))
    assert float(rows[-1]["soc"]) >= 50.0 - 1e-3
    # the JSON's totals are the file's
    assert result["charged_kwh"] == pytest.approx(sum(x for x in car if x > 0) / 4000, abs=1e-3)
    assert result["cost"] == pytest.approx(sum(g * (0.1 if k < 8 else 0.4) / 4000 for k, g in enumerate(grid))
                                           + 0.01 * result["discharged_kwh"], abs=1e-3)


def test_away_is_honoured(tmp_path, capsys):
    away = f"{(T0 + timedelta(hours=1)).isoformat()}/{(T0 + timedelta(hours=2)).isoformat()}/2"
    rc, out = run(tmp_path, "--away", away)
    assert rc == 0
    rows = list(csv.DictReader(out.open()))
    assert all(float(r["car_w"]) == 0.0 for r in rows[4:8])
    assert float(rows[7]["soc"]) == pytest.approx(float(rows[3]["soc"]) - 20.0, abs=1e-3)


@pytest.mark.parametrize("extra,words", [
    (["--away", f"{T0.isoformat()}/{(T0 + timedelta(hours=1)).isoformat()}/9"], ["trip", "9 kWh"]),
    (["--soc-final", "100", "--charge-max-w", "500"], ["soc_final", "100 %"]),
])
def test_infeasible_names_the_constraint(tmp_path, capsys, extra, words):
    rc, out = run(tmp_path, *extra)
    assert rc == 1
    err = capsys.readouterr().err
    assert "infeasible" in err and all(w in err for w in words), err
    assert not out.exists()


@pytest.mark.parametrize("bad,words", [
    ({"row": 3, "col": "load_w", "value": "nan"}, ["line 5", "load_w", "finite"]),
    ({"row": 2, "col": "import_price", "value": "inf"}, ["line 4", "import_price"]),
    ({"row": 0, "col": "pv_w", "value": "-3"}, ["line 2", "pv_w"]),
    ({"row": 1, "col": "time", "value": "2025-03-03T00:15:00"}, ["line 3", "offset"]),
    ({"row": 1, "col": "load_w", "value": "abc"}, ["line 3", "load_w", "number"]),
])
def test_bad_csv_names_line_and_column(tmp_path, capsys, bad, words):
    rc, _ = run(tmp_path, inp=write_input(tmp_path / "bad.csv", bad=bad))
    assert rc == 1
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_rows_must_be_15_minutes_apart(tmp_path, capsys):
    rc, _ = run(tmp_path, inp=write_input(tmp_path / "h.csv", step_min=60))
    assert rc == 1
    assert "60 min after" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--soc", "nan"), ("--eff-charge", "1.5"), ("--capacity-kwh", "inf"),
                                        ("--wear-cost", "-1")])
def test_bad_flag_named(tmp_path, capsys, flag, value):
    rc, _ = run(tmp_path, flag, value)
    assert rc == 1
    assert flag in capsys.readouterr().err


def test_stdout_is_only_the_json(tmp_path):
    """In a fresh process (HiGHS prints a banner on its first use): stdout is one JSON line."""
    inp = write_input(tmp_path / "in.csv")
    r = subprocess.run([sys.executable, "-m", "v2h", "hems", "plan", "--input", str(inp), "--out",
                        str(tmp_path / "p.csv"), *CAR], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["solve_ms"] >= 0

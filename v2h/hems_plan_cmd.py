"""``v2h hems plan --input FILE.csv --out PLAN.csv [car options]``: the planner alone.

Plans the whole file as one horizon, writes PLAN.csv (``time, car_w, soc, grid_w``) and prints one
JSON object (``cost``, ``charged_kwh``, ``discharged_kwh``, ``solve_ms`` and the objective's parts).
A bad value names its flag, line or column; an infeasible request names the constraint; exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

# CarParams field -> the flag that sets it (errors name the flag the user typed)
_FLAGS = {"car.capacity_kwh": "--capacity-kwh", "car.soc_pct": "--soc", "car.soc_min_pct": "--soc-min",
          "car.soc_max_pct": "--soc-max", "car.soc_final_pct": "--soc-final", "car.charge_max_w": "--charge-max-w",
          "car.discharge_max_w": "--discharge-max-w", "car.eff_charge": "--eff-charge",
          "car.eff_discharge": "--eff-discharge", "car.wear_cost_per_kwh": "--wear-cost"}


def add_parser(hs) -> None:
    """Register ``plan`` under ``v2h hems``."""
    p = hs.add_parser("plan", help="plan the car's charge/discharge over a CSV horizon (LP, HiGHS)",
                      description="Columns of FILE.csv: time (ISO 8601 with offset), load_w, pv_w, import_price, "
                                  "export_price (per kWh), one row per 15 minutes.")
    p.add_argument("--input", required=True, metavar="FILE.csv")
    p.add_argument("--out", required=True, metavar="PLAN.csv", help="writes time, car_w, soc, grid_w per slot")
    p.add_argument("--capacity-kwh", type=float, required=True, help="usable battery capacity")
    p.add_argument("--soc", type=float, required=True, metavar="PCT", help="SoC at the start (%%)")
    p.add_argument("--soc-min", type=float, default=0.0, metavar="PCT",
                   help="floor kept while home: the outage/trip reserve (default 0)")
    p.add_argument("--soc-max", type=float, default=100.0, metavar="PCT", help="never charged above (default 100)")
    p.add_argument("--soc-final", type=float, default=None, metavar="PCT", help="required at the end of the horizon")
    p.add_argument("--charge-max-w", type=float, required=True, help="at the charger's AC side")
    p.add_argument("--discharge-max-w", type=float, required=True, help="at the charger's AC side")
    p.add_argument("--eff-charge", type=float, default=0.95, help="stored energy += this × AC energy in (default 0.95)")
    p.add_argument("--eff-discharge", type=float, default=0.95,
                   help="stored energy −= AC energy out ÷ this (default 0.95)")
    p.add_argument("--wear-cost", type=float, default=0.0, help="per kWh discharged (AC side), in the tariff's currency")
    p.add_argument("--no-export", action="store_true", help="the car never discharges more than the house uses")
    p.add_argument("--away", action="append", default=[], metavar="START/END/KWH",
                   help="the car is away from START to END (ISO 8601 with offset) and uses KWH; repeatable")


def _away(text: str):
    from hems.errors import ConfigError
    from hems.plan import Trip
    from hems.plan.csvio import parse_time

    parts = text.split("/")
    if len(parts) != 3:
        raise ConfigError("--away", f"want START/END/KWH, got {text!r}")
    start = parse_time("--away START", parts[0])
    end = parse_time("--away END", parts[1])
    try:
        kwh = float(parts[2])
    except ValueError:
        raise ConfigError("--away KWH", f"want a number, got {parts[2]!r}") from None
    try:
        return Trip(start=start, end=end, energy_kwh=kwh)
    except ConfigError as e:
        raise ConfigError(f"--away {text}", e.message) from None


@contextlib.contextmanager
def _native_stdout_to_stderr():
    """HiGHS prints its banner from C on the first solver made in a process; stdout carries only
    the JSON result, so the C library's stdout goes to stderr meanwhile."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:                  # no stdout to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def run(args: argparse.Namespace) -> int:
    from hems.errors import ConfigError
    from hems.plan import CarParams, PlanError, PlanInputs, PlanOptions, plan
    from hems.plan.csvio import read_series, write_plan

    try:
        text = Path(args.input).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {args.input}: {getattr(e, 'strerror', None) or e}") from None
    try:
        series = read_series(text)
    except ConfigError as e:
        raise ConfigError(f"{args.input}: {e.key}", e.message) from None
    try:
        car = CarParams(capacity_kwh=args.capacity_kwh, soc_pct=args.soc, soc_min_pct=args.soc_min,
                        soc_max_pct=args.soc_max, soc_final_pct=args.soc_final, charge_max_w=args.charge_max_w,
                        discharge_max_w=args.discharge_max_w, eff_charge=args.eff_charge,
                        eff_discharge=args.eff_discharge, wear_cost_per_kwh=args.wear_cost)
    except ConfigError as e:
        raise ConfigError(_FLAGS.get(e.key, e.key), e.message) from None
    trips = tuple(_away(a) for a in args.away)
    inputs = PlanInputs(start=series.times[0], load_w=series.load_w, pv_w=series.pv_w,
                        import_price=series.import_price, export_price=series.export_price, trips=trips)
    t0 = time.perf_counter()
    try:
        with _native_stdout_to_stderr():
            result = plan(inputs, car, PlanOptions(no_export=args.no_export))
    except PlanError as e:
        print(f"v2h hems plan: {e}", file=sys.stderr)
        return 1
    total_ms = (time.perf_counter() - t0) * 1000.0
    try:
        Path(args.out).write_text(write_plan(result, series.times), encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot write {args.out}: {e.strerror}") from None
    print(json.dumps({"cost": round(result.cost, 6), "charged_kwh": round(result.charged_kwh, 6),
                      "discharged_kwh": round(result.discharged_kwh, 6), "solve_ms": round(result.solve_ms, 3),
                      "total_ms": round(total_ms, 3), "import_cost": round(result.import_cost, 6),
                      "export_revenue": round(result.export_revenue, 6), "wear_cost": round(result.wear_cost, 6),
                      "slots": len(series.times), "mode_slots": result.mode_slots, "optimal": result.optimal}))
    return 0

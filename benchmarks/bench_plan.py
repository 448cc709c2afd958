"""The planner's speed, one command: python benchmarks/bench_plan.py [--runs N]

For a 24 h and a 48 h horizon in 15-minute slots (96 and 192 slots), a day-ahead style tariff,
house load, solar, a 60 kWh car with a trip, a final SoC and battery wear:

- solve: HiGHS's own run time (median, min, max over N runs)
- total: ``hems.plan.plan`` end to end — checking the inputs, the feasibility walk, building the
  arrays, solving and reading the plan back (median, min, max)

and the same with negative prices (export = spot, import = spot + fees, a small car that fills up
in the negative hours), where a linear program alone would charge and discharge in the same slot
and the planner adds mode variables to those slots (MIP), and with a fixed feed-in paying more
than a negative import price (fewer runs: a much harder MIP).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hems.plan import CarParams, PlanInputs, Trip, plan  # noqa: E402

T0 = datetime(2025, 3, 3, tzinfo=timezone(timedelta(hours=1)))


def case(slots: int, kind: str) -> tuple[PlanInputs, CarParams]:
    load, pv, spot = [], [], []
    for k in range(slots):
        h = (k % 96) / 4
        load.append(450 + 350 * math.sin(k / 7) ** 2 + (1200 if 17 <= h < 21 else 0))
        pv.append(max(0.0, 6000 * math.sin(math.pi * (h - 7) / 12)) if 7 <= h < 19 else 0.0)
        s = 0.09 + 0.06 * math.sin(2 * math.pi * (h - 9) / 24) + 0.04 * math.sin(2 * math.pi * h / 6)
        if kind != "normal" and 11 <= h < 15:
            s -= 0.35
        spot.append(s)
    imp = [s + 0.18 for s in spot]
    exp = [0.08] * slots if kind == "feed-in" else spot
    a, b = (8, 17) if kind == "normal" else (17, 21)        # the car is home in the negative hours
    trips = tuple(Trip(start=T0 + timedelta(days=d, hours=a), end=T0 + timedelta(days=d, hours=b), energy_kwh=8.0)
                  for d in range(slots // 96))
    cap = 60.0 if kind == "normal" else 20.0
    car = CarParams(capacity_kwh=cap, soc_pct=55.0, soc_min_pct=20.0, soc_final_pct=55.0, charge_max_w=11000.0,
                    discharge_max_w=11000.0, eff_charge=0.92, eff_discharge=0.92,
                    wear_cost_per_kwh=0.0 if kind != "normal" else 0.03)
    return PlanInputs(start=T0, load_w=load, pv_w=pv, import_price=imp, export_price=exp, trips=trips), car


def measure(slots: int, kind: str, runs: int) -> tuple[list[float], list[float], int]:
    inputs, car = case(slots, kind)
    plan(inputs, car)                                   # warm: imports, HiGHS's first instance
    solve, total = [], []
    modes = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        p = plan(inputs, car)
        total.append((time.perf_counter() - t0) * 1000.0)
        solve.append(p.solve_ms)
        modes = p.mode_slots
    return solve, total, modes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    rows = [("horizon", "prices", "mode slots", "solve ms median (min-max)", "total ms median (min-max)")]
    for kind, runs in (("normal", args.runs), ("negative", max(3, args.runs // 5)), ("feed-in", 3)):
        for slots in (96, 192):
            s, t, m = measure(slots, kind, runs)
            rows.append((f"{slots // 4} h ({slots} slots)", kind, str(m),
                         f"{statistics.median(s):.2f} ({min(s):.2f}-{max(s):.2f})",
                         f"{statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f})"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

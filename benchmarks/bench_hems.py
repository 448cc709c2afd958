"""Home energy manager figures, one command: python benchmarks/bench_hems.py [--sequences N]

- one SiteController.step (grid-connected and islanded), µs
- the 7-day outage scenario (examples/hems/week_outage.toml, 604,800 s at 1 s), wall time, skipping
  idle seconds; and a 1-day slice stepped every second for comparison
- the stateful invariant test: N sequences (default 10,000), steps checked, violations
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hems.scenario import load_scenario  # noqa: E402


def bench_step() -> list[tuple[str, str]]:
    sc = load_scenario((ROOT / "examples/hems/outage_and_return.toml").read_text())
    out = []
    for label, until in (("step, grid-connected", 100.0), ("step, islanded", 3000.0)):
        site = sc.site()
        site.run(until)
        m = site.measure()
        c = site.controller
        t = site.t
        n = 20000
        t0 = time.perf_counter()
        for i in range(n):
            c.step(m, t + i * 1e-3)
        us = (time.perf_counter() - t0) / n * 1e6
        out.append((label, f"{us:.1f} µs"))
    return out


def bench_week() -> list[tuple[str, str]]:
    sc = load_scenario((ROOT / "examples/hems/week_outage.toml").read_text())
    site = sc.site()
    t0 = time.perf_counter()
    site.run(sc.duration_s)
    wall = time.perf_counter() - t0
    s = site.summary()
    out = [("7-day outage, skipping idle time", f"{wall:.2f} s wall, {s['visits']} steps, "
            f"invariants {'held' if s['invariants_ok'] else 'FAILED'}")]
    site = sc.site()
    t0 = time.perf_counter()
    site.run(86400.0, skip=False)
    wall = time.perf_counter() - t0
    out.append(("1 day stepped every second", f"{wall:.2f} s wall, {site.stats.visits} steps "
                                              f"({wall / site.stats.visits * 1e6:.0f} µs per site step)"))
    return out


def bench_stateful(n: int) -> list[tuple[str, str]]:
    from hypothesis import HealthCheck, settings
    from hypothesis.stateful import run_state_machine_as_test

    from tests.hems.stateful import STEPS, SiteMachine

    t0 = time.perf_counter()
    run_state_machine_as_test(SiteMachine, settings=settings(
        max_examples=n, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))
    wall = time.perf_counter() - t0
    return [("stateful sequences", f"{STEPS['sequences']} sequences, {STEPS['checked']} steps checked, "
                                   f"0 violations, {wall:.0f} s")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sequences", type=int, default=10000)
    args = ap.parse_args()
    rows = bench_step() + bench_week() + (bench_stateful(args.sequences) if args.sequences else [])
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

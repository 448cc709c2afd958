"""``v2h hems simulate SCENARIO.toml --out DIR``: the site controller on simulated devices.
``v2h hems plan --input FILE.csv --out PLAN.csv``: the planner alone on a CSV horizon (hems_plan_cmd)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("hems", help="the home energy manager: site controller, transfer switch, island")
    hs = p.add_subparsers(dest="action", required=True)
    s = hs.add_parser("simulate", help="run a scenario on a simulated clock; exits 1 if an invariant failed")
    s.add_argument("scenario", metavar="SCENARIO.toml")
    s.add_argument("--out", required=True, metavar="DIR", help="writes DIR/timeline.jsonl and DIR/summary.json")
    s.add_argument("--every-step", action="store_true",
                   help="visit every step_s instead of skipping the seconds in which nothing can change")
    from v2h import hems_plan_cmd
    hems_plan_cmd.add_parser(hs)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "plan":
        from v2h import hems_plan_cmd
        return hems_plan_cmd.run(args)
    from hems.scenario import load_scenario

    try:
        text = Path(args.scenario).read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read {args.scenario}: {e.strerror}") from None
    sc = load_scenario(text)
    site = sc.site()
    site.run(sc.duration_s, skip=not args.every_step)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "timeline.jsonl", "w", encoding="utf-8") as f:
        for row in site.rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    summary = site.summary()
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(describe(summary, sc.duration_s, len(site.rows)))
    return 0 if summary["invariants_ok"] else 1


def describe(s: dict, duration: float, rows: int) -> str:
    lines = [f"simulated {duration:.0f} s ({duration / 3600:.1f} h): {s['visits']} steps, {rows} timeline rows",
             f"islanded {s['islanded_s']:.0f} s ({s['islanded_s'] / 3600:.2f} h), "
             f"{s['energy_to_house_kwh']:.2f} kWh from the car to the house",
             f"car SoC: lowest {s['min_soc']:.1f} %, at the end {s['end_soc']:.1f} %; final phase {s['final_phase']}"]
    if s["invariants_ok"]:
        lines.append(f"invariants: all held ({s['steps_checked']} steps checked)")
    else:
        lines.append(f"invariants: {s['violation_count']} VIOLATION(S)")
        lines += [f"  {v['invariant']} at {v['t']:.2f} s: {v['detail']}" for v in s["violations"][:10]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit("use: v2h hems simulate SCENARIO.toml --out DIR")

"""``v2h hems [--config FILE]``: the home energy manager (the chargers' OCPP 2.1 server, the site
controller on its devices, the planner, the HTTP API and dashboard).
``v2h hems simulate SCENARIO.toml --out DIR``: the site controller on simulated devices.
``v2h hems plan --input FILE.csv --out PLAN.csv``: the planner alone on a CSV horizon (hems_plan_cmd)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("hems", help="the home energy manager: site controller, transfer switch, island",
                       description="Without a subcommand: run the energy manager (OCPP 2.1 server for the chargers, "
                                   "site controller, planner, HTTP API and dashboard).")
    p.add_argument("--config", metavar="FILE", help="the manager's configuration (TOML; default: a 230 V house "
                   "with five circuits on simulated devices and one charger CS001; docs/hems.md)")
    p.add_argument("--db", default="v2h-hems.db", metavar="FILE",
                   help="SQLite file: transactions, meter values, settings, load history (default v2h-hems.db)")
    p.add_argument("--ocpp-port", type=_port, metavar="PORT", help="override [ocpp] port")
    p.add_argument("--http-port", type=_port, metavar="PORT", help="override [http] port")
    p.add_argument("--open", action="store_true", help="print the dashboard's URL once it is up")
    p.add_argument("--clock", metavar="START:SPEED:ANCHOR", help="a simulated clock shared with other processes "
                   "(v2h demo sets it): simulated time = START + SPEED × (wall clock − ANCHOR)")
    p.add_argument("--until", type=float, metavar="T", help="stop at simulated Unix time T (v2h demo)")
    p.add_argument("--status-file", metavar="FILE", help="write the final status and summary here as JSON at the end")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="also the libraries' debug lines (OCPP frames, "
                   "devices, plans)")
    g.add_argument("-q", "--quiet", action="store_true", help="no decisions on stdout: the listening line, then "
                   "warnings and errors on stderr only")
    hs = p.add_subparsers(dest="action", required=False)
    s = hs.add_parser("simulate", help="run a scenario on a simulated clock; exits 1 if an invariant failed")
    s.add_argument("scenario", metavar="SCENARIO.toml")
    s.add_argument("--out", required=True, metavar="DIR", help="writes DIR/timeline.jsonl and DIR/summary.json")
    s.add_argument("--every-step", action="store_true",
                   help="visit every step_s instead of skipping the seconds in which nothing can change")
    from v2h import hems_plan_cmd
    hems_plan_cmd.add_parser(hs)
    p.set_defaults(func=run)


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"want a TCP port 0-65535, got {text!r}")
    return n


def run(args: argparse.Namespace) -> int:
    if args.action is None:
        return serve(args)
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


CLOSE_TIMEOUT_S = 15.0  # the OCPP and HTTP servers closed within this, or left


def serve(args: argparse.Namespace) -> int:
    """Run the energy manager until interrupted (or until ``--until`` on a simulated clock)."""
    import asyncio
    import dataclasses
    import logging
    import signal
    import time

    from hems import hems_config
    from hems.aio.service import HemsService
    from v2h.clock import SimClock

    text = hems_config.DEFAULT
    if args.config:
        try:
            text = Path(args.config).read_text(encoding="utf-8")
        except OSError as e:
            raise ValueError(f"cannot read {args.config}: {e.strerror}") from None
    cfg = hems_config.load(text)
    if args.ocpp_port is not None:
        cfg = dataclasses.replace(cfg, ocpp_port=args.ocpp_port)
    if args.http_port is not None:
        cfg = dataclasses.replace(cfg, http_port=args.http_port)
    clock = SimClock.parse(args.clock) if args.clock else None
    logging.basicConfig(level=logging.WARNING, format="v2h hems: %(message)s")
    for name in ("hems", "v2h"):  # the manager's own notes (a tariff fetched, a device back); not the libraries'
        logging.getLogger(name).setLevel(logging.WARNING if args.quiet else
                                         logging.DEBUG if args.verbose else logging.INFO)
    if args.verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    if cfg.devices is not None:   # the device runner says when a device stops or starts answering
        logging.getLogger("pymodbus").setLevel(logging.ERROR)
    if cfg.plan["enabled"]:
        _quiet_solver()

    async def main() -> int:
        service = HemsService(cfg, db=args.db, clock=clock.now if clock else None, speed=clock.speed if clock else 1.0)
        await service.start()
        print(f"v2h hems: OCPP 2.1 server on ws{'s' if cfg.pki else ''}://{cfg.ocpp_host}:{service.ocpp_port}/"
              f"{{station}}, HTTP on port {service.http_port}", flush=True)
        if cfg.devices is not None:
            print(f"v2h hems: the house on Modbus TCP, polled every {cfg.devices.poll_s:g} s: "
                  f"{describe_devices(cfg.devices)}", flush=True)
        if args.open:
            print(f"dashboard: http://{cfg.http_host}:{service.http_port}/", flush=True)
        printer = None if args.quiet else asyncio.ensure_future(_print_decisions(service))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.until is not None and clock is not None:  # the wall time at which the simulation reaches it
            loop.call_later(max(0.0, clock.wall(args.until) - time.time()), stop.set)
        await stop.wait()
        if printer is not None:
            printer.cancel()
        if args.status_file:
            now = service.clock()
            Path(args.status_file).write_text(json.dumps({
                "status": service.manager.status(now), "summary": service.manager.summary(),
                "decisions": [d.to_dict() for d in service.manager.decisions], "history": service.history},
                indent=1), encoding="utf-8")
        try:  # a peer that never finishes its closing handshake must not keep the manager alive
            await asyncio.wait_for(service.close(), CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            logging.getLogger("v2h.hems").warning("the servers did not close within %.0f s; leaving anyway",
                                                  CLOSE_TIMEOUT_S)
        return 0 if service.manager.summary()["invariants_ok"] else 1

    return asyncio.run(main())


async def _print_decisions(service) -> None:
    """Each decision of the manager as it is made, one line with its (simulated) time and reason:
    what the site controller, the charger and the plan did and why."""
    import asyncio
    from datetime import datetime, timezone

    q: asyncio.Queue = asyncio.Queue()
    service.subscribers.add(q)
    try:
        while True:
            ev = await q.get()
            if ev.get("type") == "decision":
                when = datetime.fromtimestamp(ev["t"], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                print(f"{when} {ev['kind']}: {ev['reason']}", flush=True)
    finally:
        service.subscribers.discard(q)


def describe_devices(d) -> str:
    """``grid_meter 10.0.0.5:502 unit 1, …``: where each configured device is asked."""
    ends = [*zip(("grid_meter", "grid_meter_2"), d.grid_meters), ("house_meter", d.house_meter),
            ("pv_inverter", d.pv_inverter), ("switch", d.switch.endpoint)]
    return ", ".join(f"{name} {e.host}:{e.port} unit {e.device_id}" for name, e in ends if e is not None)


def _quiet_solver() -> None:
    """HiGHS prints a banner from C when a process makes its first solver: made here, with the
    C library's stdout sent nowhere, so that the manager's output stays its own."""
    try:
        import highspy
    except ImportError:
        return  # the planner says what is missing when it first plans
    import os

    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)

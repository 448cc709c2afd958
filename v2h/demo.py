"""``v2h demo``: the whole vehicle-to-home story in one command.

It starts, as separate processes talking over loopback, the energy manager (``v2h hems``: the
house's OCPP 2.1 server, the site controller with the simulated grid, circuits and solar, the
planner, the dashboard), a charger (``v2h charger``: SECC + OCPP 2.1 client) and a simulated car
(``v2h evcc``), on an accelerated clock they share (``v2h.clock.SimClock``): ISO 15118-20 over TCP
+ TLS 1.3 between car and charger, OCPP 2.1 over websockets between charger and manager. A scenario
(``--scenario NAME|FILE``; the built-in ones are in ``v2h/scenarios``) is the manager's
configuration with a ``[demo]`` table: start, duration, speed and the car.

While it runs: one live status line. At the end: a summary table, and in ``--out DIR``:
``timeline.png``, ``messages.jsonl`` (every ISO 15118 and OCPP message), ``decisions.jsonl`` (every
manager decision with its reason) and ``summary.json``. The run checks its invariants and exits 1
if one failed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DEFAULT = "day-and-night"
STATION, PASSWORD = "CS001", "v2h-demo-password-16chars"
CLI = [sys.executable, "-m", "v2h.cli"]
LOOP_PERIOD = 0.05  # s (real): the car's charge loop (at 6000× a loop is 300 simulated seconds)
STARTUP = 4.0       # s (real) the clock stands still while the processes start
FINISH_GRACE_S = 40.0  # s (real) after the scenario's end for the manager to write its status and stop


@dataclass(frozen=True)
class DemoScenario:
    name: str
    hems: dict          # the manager's configuration (hems.hems_config)
    start: float        # simulated Unix time
    duration_s: float
    speed: float
    car: dict           # soc, capacity_kwh, min_soc
    unplug_at_s: float | None
    base: Path          # where the scenario's relative paths point


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.toml"))


def load_scenario(name_or_file: str) -> DemoScenario:
    """A built-in scenario by name, or a TOML file; ValueError naming what is wrong."""
    path = Path(name_or_file)
    if not path.suffix and (SCENARIOS / f"{name_or_file}.toml").exists():
        path = SCENARIOS / f"{name_or_file}.toml"
    import tomllib  # here, not at the top: `v2h secc` builds the demo's parser too (docs/aarch64.md)

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no scenario {name_or_file!r}: give a file or one of {', '.join(scenario_names())}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    demo = data.pop("demo", None)
    if not isinstance(demo, dict):
        raise ValueError(f"{path}: a demo scenario needs a [demo] table")
    known = {"start", "duration_h", "speed", "car_soc", "car_capacity_kwh", "car_min_soc", "unplug_at_h", "tariff"}
    for key in demo:
        if key not in known:
            raise ValueError(f"demo.{key}: unknown key")

    def num(key: str, lo: float, hi: float, default: float | None = None) -> float:
        v = demo.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"demo.{key}: want a number in [{lo:g}, {hi:g}], got {v!r}")
        return float(v)
    try:
        start = datetime.fromisoformat(str(demo.get("start", "2027-06-21T04:00:00+00:00"))).timestamp()
    except ValueError:
        raise ValueError(f"demo.start: want an ISO 8601 time with an offset, got {demo.get('start')!r}") from None
    duration = num("duration_h", 0.1, 24 * 14) * 3600
    unplug = demo.get("unplug_at_h")
    if "tariff" in demo:
        data.setdefault("plan", {})["tariff"] = str((path.parent / demo["tariff"]).resolve())
    return DemoScenario(path.stem, data, start, duration, num("speed", 1, 1e5, 2400),
                        {"soc": num("car_soc", 0, 100), "capacity_kwh": num("car_capacity_kwh", 1, 1000, 60),
                         "min_soc": num("car_min_soc", 0, 100, 15)},
                        None if unplug is None else num("unplug_at_h", 0, duration / 3600) * 3600, path.parent)


# --- the manager's configuration for the run ---------------------------------------------------------

def hems_config(sc: DemoScenario, speed: float) -> dict:
    """The scenario's configuration with the run's ports, station and timeouts: the charger answers
    over real OCPP round trips, so the site controller waits for it about half a real second."""
    cfg = json.loads(json.dumps(sc.hems))
    cfg["ocpp"] = {"host": "127.0.0.1", "port": 0, "stations": {STATION: PASSWORD}}
    cfg["http"] = {"host": "127.0.0.1", "port": cfg.get("http", {}).get("port", 0)}
    cfg.setdefault("charger", {}).update(station_id=STATION, meter_interval_s=max(1, int(0.5 * speed)))
    site = cfg.setdefault("site", {})
    for key, real_s in (("charger_timeout_s", 0.5), ("follow_timeout_s", 0.5)):
        site[key] = min(600.0, max(float(site.get(key, 0)), real_s * speed))
    return cfg


def to_toml(data: dict) -> str:
    """The few TOML shapes a configuration uses: scalars, tables, arrays of tables."""
    def scalar(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise ValueError(f"cannot write {v!r} as TOML")

    lines: list[str] = []

    def table(prefix: str, d: dict) -> None:
        plain = {k: v for k, v in d.items() if not isinstance(v, dict) and not (isinstance(v, list) and v
                                                                               and isinstance(v[0], dict))}
        for k, v in plain.items():
            lines.append(f"{json.dumps(k) if not re.fullmatch(r'[A-Za-z0-9_-]+', k) else k} = {scalar(v)}")
        for k, v in d.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                lines.append(f"\n[{name}]")
                table(name, v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"\n[[{name}]]")
                    table(name, item)
    table("", data)
    return "\n".join(lines).strip() + "\n"


# --- running ---------------------------------------------------------------------------------------------

class Processes:
    def __init__(self, out: Path):
        self.out = out
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        err = open(self.out / f"{name}.stderr", "w")
        proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=err, text=True,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self.procs[name] = proc
        return proc

    def first_line(self, name: str, pattern: str, timeout: float = 30.0) -> re.Match:
        proc = self.procs[name]
        line = proc.stdout.readline()
        m = re.search(pattern, line)
        if m is None:
            proc.kill()
            raise RuntimeError(f"v2h {name} did not start: {line.strip()!r}; see {self.out / (name + '.stderr')}")
        threading.Thread(target=self._drain, args=(name, proc), daemon=True).start()
        return m

    def _drain(self, name: str, proc: subprocess.Popen) -> None:
        """The rest of a process's output to its file (a full pipe would stop the process)."""
        with open(self.out / f"{name}.stdout", "w") as f:
            for line in proc.stdout:
                f.write(line)

    def stop(self, name: str, timeout: float = 20.0) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs)[::-1]:
            self.stop(name)


def _die_with_parent() -> None:
    """In the child, before it runs: SIGTERM when the demo dies, however it dies (Linux prctl
    PR_SET_PDEATHSIG), so that no process of a killed demo is left running."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _get(port: int, path: str) -> dict | None:
    import urllib.request  # here: 0.6-1.5 MB resident that `v2h secc` would hold for nothing (docs/aarch64.md)

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None  # the manager is starting or has stopped: the status line waits


def status_line(s: dict) -> str:
    t = datetime.fromtimestamp(s["t"], timezone.utc).strftime("%a %H:%M")
    grid = "grid ok" if s["grid"]["ok"] else "GRID DOWN"
    switch = "islanded" if s["islanded"] else ("on grid" if s["switch"]["utility_fb"] else "dark")
    car = s["car"]
    soc = "—" if car["soc"] is None else f"{car['soc']:.0f} %"
    power = s["charger"]["measured_w"] / 1000
    shed = [c["name"] for c in s["circuits"] if not c["on"]]
    return (f"{t}  {grid:9}  {switch:8}  SoC {soc} (reserve {car['reserve_soc']:.0f} %)  "
            f"house {s['house']['load_w'] / 1000:.1f} kW  sun {s['house']['pv_w'] / 1000:.1f} kW  "
            f"car {power:+.1f} kW  shed: {', '.join(shed) or '—'}")


def run(args: argparse.Namespace) -> int:
    from iso15118 import pki
    from v2h.clock import SimClock

    sc = load_scenario(args.scenario)
    speed = args.speed or sc.speed
    out = Path(args.out or f"v2h-demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"v2h demo: scenario {sc.name}, {sc.duration_s / 3600:.0f} h at {speed:.0f}× "
          f"(about {sc.duration_s / speed:.0f} s); output in {out}/", flush=True)
    pki.init_pki(out / "pki")
    cfg = hems_config(sc, speed)
    if args.http_port is not None:
        cfg["http"]["port"] = args.http_port
    (out / "hems.toml").write_text(to_toml(cfg), encoding="utf-8")
    clock = SimClock(sc.start, speed, time.time() + STARTUP)
    end = sc.start + sc.duration_s
    for f in ("hems.db", "charger.db", "charger.jsonl", "evcc.jsonl", "final.json"):
        (out / f).unlink(missing_ok=True)
    p = Processes(out)
    t_real = time.monotonic()
    try:
        p.start("hems", ["hems", "--config", str(out / "hems.toml"), "--db", str(out / "hems.db"), "--clock", clock.spec(),
                         "--until", repr(end), "--status-file", str(out / "final.json")])
        m = p.first_line("hems", r":(\d+)/\{station\}, HTTP on port (\d+)")
        ocpp_port, http_port = int(m.group(1)), int(m.group(2))
        if args.open:
            print(f"dashboard: http://127.0.0.1:{http_port}/", flush=True)
        p.start("charger", ["charger", "--pki", str(out / "pki"), "--host", "127.0.0.1", "--csms",
                            f"ws://127.0.0.1:{ocpp_port}", "--id", STATION, "--password", PASSWORD,
                            "--db", str(out / "charger.db"), "--setpoint", "0", "--quiet", "--log",
                            str(out / "charger.jsonl"), "--clock", clock.spec(), "--retry-backoff", "0.2",
                            "--retry-random", "0.2"])
        secc_port = int(p.first_line("charger", r"listening on port (\d+)").group(1))
        time.sleep(max(0.0, clock.anchor - time.time()))
        loops = max(1, int((sc.duration_s / speed + 10) / LOOP_PERIOD))  # past the end; an unplug ends it sooner
        car = sc.car
        p.start("evcc", ["evcc", "--secc", f"127.0.0.1:{secc_port}", "--pki", str(out / "pki"), "--service", "DC_BPT",
                         "--soc", repr(car["soc"]), "--capacity", repr(car["capacity_kwh"]), "--min-soc",
                         repr(car["min_soc"]), "--loops", str(loops), "--loop-period", repr(LOOP_PERIOD), "--quiet",
                         "--log", str(out / "evcc.jsonl"), "--clock", clock.spec()])
        unplug = None if sc.unplug_at_s is None else sc.start + sc.unplug_at_s
        _watch(p, http_port, quiet=args.quiet, clock=clock, unplug=unplug, until=clock.wall(end) + FINISH_GRACE_S)
        if p.procs["hems"].poll() is None:
            print(f"v2h demo: the energy manager had not stopped {FINISH_GRACE_S:.0f} s after the scenario's end; "
                  f"stopping it", file=sys.stderr, flush=True)
            p.stop("hems")
        hems_rc = p.procs["hems"].wait()
    finally:
        p.stop_all()
    wall = time.monotonic() - t_real
    final_path = out / "final.json"
    if not final_path.exists():
        raise RuntimeError(f"the energy manager ended without its status (exit {hems_rc}); see {out / 'hems.stderr'}")
    final = json.loads(final_path.read_text())
    summary = summarise(sc, final, wall)
    write_outputs(out, sc, final, summary)
    print_summary(summary)
    return 0 if summary["invariants_ok"] else 1


def _watch(p: Processes, http_port: int, *, quiet: bool, clock, unplug: float | None, until: float) -> None:
    """The live status line until the manager has run the scenario to its end (or the wall time
    ``until`` has passed); the car's cable pulled at ``unplug`` (simulated time: its process ends,
    the charger sees the connection go)."""
    live = None
    if not quiet and sys.stdout.isatty():
        from rich.live import Live

        live = Live("starting…", refresh_per_second=8, transient=True)
        live.start()
    last = ""
    try:
        while p.procs["hems"].poll() is None and time.time() < until:
            if unplug is not None and clock.now() >= unplug:
                p.stop("evcc")
                unplug = None
            s = _get(http_port, "/api/status")
            if s is not None:
                line = status_line(s)
                if live is not None:
                    live.update(line)
                elif not quiet and line[:9] != last[:9]:  # not a terminal: a line per simulated hour or so
                    print(line, flush=True)
                last = line
            time.sleep(0.1)
    finally:
        if live is not None:
            live.stop()


# --- the results -----------------------------------------------------------------------------------------

def summarise(sc: DemoScenario, final: dict, wall: float) -> dict:
    s, hist, decisions = final["summary"], final["history"], final["decisions"]
    reserve = final["status"]["car"]["reserve_soc"]
    socs = [h["soc"] for h in hist if h["soc"] is not None]
    shed: dict[str, float] = {}
    for h, nxt in zip(hist, hist[1:]):  # a circuit whose relay the controller opened (not one dark in a transfer)
        for name in h.get("shed", []):
            shed[name] = shed.get(name, 0.0) + nxt["t"] - h["t"]
    price = _prices(sc)
    cost = charged_kwh = charge_cost = given_kwh = given_value = grid_h = price_h = 0.0
    for h, nxt in zip(hist, hist[1:]):  # on the grid only: the outage's energy is the car's, not bought
        if h["islanded"] or not h["grid_ok"]:
            continue
        step = nxt["t"] - h["t"]
        imp, exp_ = price(h["t"])
        base = h["load_w"] - h["pv_w"]
        grid = base + h["car_w"]
        cost += (imp * max(grid, 0) - exp_ * max(-grid, 0)) * step / 3.6e6
        car_kwh, net_kwh = h["car_w"] * step / 3.6e6, base * step / 3.6e6   # net: the house less solar
        if car_kwh > 0:   # charging: solar surplus costs the export it forgoes, the rest is imported
            solar = min(car_kwh, max(-net_kwh, 0.0))
            charged_kwh, charge_cost = charged_kwh + car_kwh, charge_cost + exp_ * solar + imp * (car_kwh - solar)
        else:             # discharging: it replaces the house's import, anything beyond is exported
            served = min(-car_kwh, max(net_kwh, 0.0))
            given_kwh, given_value = given_kwh - car_kwh, given_value + imp * served + exp_ * (-car_kwh - served)
        grid_h, price_h = grid_h + step / 3600, price_h + imp * step / 3600
    checks = list(s["violations"])
    if socs and min(socs) < reserve - 1.0 and s["islanded_s"] > 0:
        checks.append({"invariant": "reserve", "detail": f"SoC {min(socs):.1f} % below the reserve {reserve:.0f} %"})
    return {"scenario": sc.name, "simulated_h": sc.duration_s / 3600, "wall_s": round(wall, 1),
            "energy_to_house_kwh": s["energy_to_house_kwh"], "islanded_h": round(s["islanded_s"] / 3600, 2),
            "circuits_shed_h": {k: round(v / 3600, 2) for k, v in sorted(shed.items())},
            "lowest_soc": round(min(socs), 1) if socs else None, "reserve_soc": reserve,
            "cost": round(cost, 2), "car_charged_kwh": round(charged_kwh, 2),
            "car_charge_price": round(charge_cost / charged_kwh, 3) if charged_kwh else None,
            "average_import_price": round(price_h / grid_h, 3) if grid_h else None,
            "car_to_house_on_grid_kwh": round(given_kwh, 2), "car_to_house_on_grid_value": round(given_value, 2),
            "invariants_checked": s["steps_checked"], "invariants_ok": not checks, "violations": checks,
            "final_phase": s["final_phase"], "decisions": len(decisions)}


def _prices(sc: DemoScenario):
    """(import, export) price at a time: the scenario's tariff file, or its flat prices."""
    plan = sc.hems.get("plan", {})
    flat = (plan.get("import_price", 0.30), plan.get("export_price", 0.08))
    if not plan.get("tariff"):
        return lambda t: flat
    from hems.tariff import parse_csv

    tariff = parse_csv(Path(plan["tariff"]).read_text(encoding="utf-8"))

    def at(t: float) -> tuple[float, float]:
        slot = datetime.fromtimestamp(t - t % 900, timezone.utc)
        if not tariff.covered_slots(slot, 1):
            return flat
        imp, exp_ = tariff.slot_prices(slot, 1)
        return imp[0], exp_[0]
    return at


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"v2h demo: {summary['scenario']} ({summary['simulated_h']:.0f} h in {summary['wall_s']:.0f} s)")
    t.add_column("")
    t.add_column("", justify="right")
    shed = ", ".join(f"{k} {v:.1f} h" for k, v in summary["circuits_shed_h"].items()) or "none"
    rows = [("energy the car gave the house", f"{summary['energy_to_house_kwh']:.2f} kWh"),
            ("time islanded", f"{summary['islanded_h']:.1f} h"), ("circuits shed", shed),
            ("lowest SoC / reserve", f"{summary['lowest_soc']} % / {summary['reserve_soc']:.0f} %"),
            ("grid cost, house and car", f"{summary['cost']:.2f}"),
            ("car charged on the grid", f"{summary['car_charged_kwh']:.1f} kWh at {_per_kwh(summary['car_charge_price'])}"
                                        f" (average price {_per_kwh(summary['average_import_price'])})"),
            ("car gave the house on the grid", f"{summary['car_to_house_on_grid_kwh']:.1f} kWh, imports worth "
                                               f"{summary['car_to_house_on_grid_value']:.2f} avoided"),
            ("invariants", f"{'all held' if summary['invariants_ok'] else 'VIOLATED'} "
                           f"({summary['invariants_checked']} steps checked)")]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
    for v in summary["violations"][:10]:
        print(f"  violation {v.get('invariant')}: {v.get('detail')}")


def _per_kwh(price: float | None) -> str:
    return "-" if price is None else f"{price:.3f}/kWh"


def write_outputs(out: Path, sc: DemoScenario, final: dict, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with open(out / "decisions.jsonl", "w", encoding="utf-8") as f:
        for d in final["decisions"]:
            f.write(json.dumps(d, separators=(",", ":")) + "\n")
    messages = []
    for name in ("charger.jsonl", "evcc.jsonl"):
        path = out / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    messages.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a process's end
    messages.sort(key=lambda d: d.get("time", ""))
    with open(out / "messages.jsonl", "w", encoding="utf-8") as f:
        for d in messages:
            f.write(json.dumps(d, separators=(",", ":")) + "\n")
    draw_timeline(out / "timeline.png", sc, final)


def draw_timeline(path: Path, sc: DemoScenario, final: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = final["history"]
    if not hist:
        return
    t0 = sc.start
    hours = [(h["t"] - t0) / 3600 for h in hist]
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True, gridspec_kw={"height_ratios": [1, 2, 3]})
    ax = axes[0]
    ax.fill_between(hours, 0, [0 if h["grid_ok"] else 1 for h in hist], step="post", color="tab:red", alpha=0.35,
                    label="grid down")
    ax.fill_between(hours, 0, [1 if h["islanded"] else 0 for h in hist], step="post", color="tab:green", alpha=0.35,
                    label="islanded on the car")
    ax.set_yticks([])
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"v2h demo: {sc.name}")
    ax = axes[1]
    ax.plot(hours, [h["soc"] if h["soc"] is not None else math.nan for h in hist], color="tab:blue", label="car SoC")
    reserve = final["status"]["car"]["reserve_soc"]
    ax.axhline(reserve, color="tab:blue", linestyle="--", linewidth=1, label=f"reserve {reserve:.0f} %")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.step(hours, [h["load_w"] / 1000 for h in hist], where="post", label="house load", color="tab:gray")
    ax.step(hours, [h["pv_w"] / 1000 for h in hist], where="post", label="solar", color="tab:orange")
    ax.step(hours, [h["car_w"] / 1000 for h in hist], where="post", label="car (+ charge / − discharge)",
            color="tab:green")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("kW")
    ax.set_xlabel(f"hours from {datetime.fromtimestamp(t0, timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="the whole vehicle-to-home story in one command (energy manager, charger and car "
                                    "as processes on an accelerated clock)")
    p.add_argument("--scenario", default=DEFAULT, metavar="NAME|FILE",
                   help=f"a built-in scenario ({', '.join(scenario_names())}) or a TOML file (default {DEFAULT})")
    p.add_argument("--out", metavar="DIR", help="where the results go (default: a new v2h-demo-DATE-TIME folder here)")
    p.add_argument("--speed", type=_speed, metavar="X", help="simulated seconds per real one (default: the scenario's)")
    p.add_argument("--open", action="store_true", help="print the dashboard's URL")
    p.add_argument("--http-port", type=int, metavar="PORT", help="the dashboard's port (default: a free one)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live status line")
    p.set_defaults(func=run)


def _speed(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and 1 <= v <= 1e5):
        raise argparse.ArgumentTypeError(f"want a speed from 1 to 100000, got {text!r}")
    return v


if __name__ == "__main__":
    sys.exit("use: v2h demo")

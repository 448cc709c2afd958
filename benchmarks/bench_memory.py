#!/usr/bin/env python3
"""The charger's memory on its SoC: `v2h secc` idle and during a session, and what it loads.

    python benchmarks/bench_memory.py                  # a table; run with the charger's own Python
    python benchmarks/bench_memory.py --json           # machine-readable
    python benchmarks/bench_memory.py --modules        # + every module the charger has loaded
    python benchmarks/bench_memory.py --importtime 15  # + the 15 slowest top-level imports

Runs ``python -m v2h.cli secc`` (this interpreter; from a scratch directory, so it is the installed
package that runs, as on a charger) listening on 127.0.0.1 with a fresh test PKI, and reads from
/proc: resident memory (VmRSS), proportional (Pss) and private (USS: what the process alone
holds; a charger's other processes share the rest) — once listening with no car (idle), every
20 ms while a `v2h evcc` DC_BPT Plug & Charge session of --loops charge loops runs against it
(peak RSS only: the car, run from the same installation, shares pages with it meanwhile), and
after the session. A second charger, started under a small wrapper, writes its
``sys.modules`` when idle and after a session (SIGUSR1), which lists what it loads; the generated
codec modules are imported by ``importlib`` and so do not show in ``-X importtime``, but do here.

PYTHONDONTWRITEBYTECODE is dropped for the charger: a tree that was never byte-compiled compiles
every module at each start, which costs time and some 30 MB more resident memory than a charger
installed by pip (which byte-compiles) ever uses. A warm-up start writes the bytecode first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRAPPER = r"""
import json, signal, sys
dumps = iter(sys.argv[1:3])
def dump(*_):
    with open(next(dumps), "w") as f:
        json.dump(sorted(sys.modules), f)
signal.signal(signal.SIGUSR1, dump)
from v2h.cli import main
sys.exit(main(sys.argv[3:]))
"""


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak RSS), Pss and USS of a process in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()

    def kb(text: str, key: str) -> int:
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        return int(m.group(1)) if m else 0

    return {"rss": kb(status, "VmRSS") / 1024, "hwm": kb(status, "VmHWM") / 1024, "pss": kb(rollup, "Pss") / 1024,
            "uss": (kb(rollup, "Private_Clean") + kb(rollup, "Private_Dirty")) / 1024}


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}


def start_secc(cmd: list[str], cwd: Path) -> tuple[subprocess.Popen, int, float]:
    """Start a charger; wait for its listening line. Returns (process, TLS port, seconds to listen)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on port (\d+)", line)
    if m is None:
        proc.kill()
        raise SystemExit(f"the charger did not start: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, int(m.group(1)), time.perf_counter() - t0


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def evcc_cmd(port: int, pki: Path, loops: int) -> list[str]:
    return [sys.executable, "-m", "v2h.cli", "evcc", "--secc", f"127.0.0.1:{port}", "--pki", str(pki), "--service",
            "DC_BPT", "--control-mode", "dynamic", "--auth", "pnc", "--loops", str(loops), "--loop-period", "0.1",
            "--quiet"]


def measure(work: Path, pki: Path, loops: int) -> dict:
    """Idle, in-session peak and after-session memory of one charger, and the session's wall time."""
    secc, port, startup = start_secc([sys.executable, "-m", "v2h.cli", "secc", "--pki", str(pki), "--host",
                                      "127.0.0.1", "--setpoint", "-7000", "--quiet"], work)
    try:
        time.sleep(1.0)
        idle = proc_memory(secc.pid)
        t0 = time.perf_counter()
        car = subprocess.Popen(evcc_cmd(port, pki, loops), cwd=work, env=child_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        peak = idle["rss"]
        while car.poll() is None:
            peak = max(peak, proc_memory(secc.pid)["rss"])
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        out, err = car.communicate()
        if car.returncode != 0:
            raise SystemExit(f"the car's session failed ({car.returncode}): {out[-1000:]} {err[-2000:]}")
        time.sleep(0.5)
        after = proc_memory(secc.pid)
        peak = max(peak, after["hwm"])  # VmHWM: the peak between two samples too
    finally:
        stop(secc)
    return {"startup_ms": startup * 1e3, "idle": idle, "session_peak_rss": peak, "after_session": after,
            "session_wall_s": wall, "loops": loops}


def loaded_modules(work: Path, pki: Path, importtime: bool) -> dict:
    """sys.modules of a charger when idle and after one short session; -X importtime's top level."""
    idle_f, after_f = work / "modules-idle.json", work / "modules-after.json"
    flags = ["-X", "importtime"] if importtime else []
    secc, port, _ = start_secc([sys.executable, *flags, "-c", WRAPPER, str(idle_f), str(after_f), "secc", "--pki",
                                str(pki), "--host", "127.0.0.1", "--quiet"], work)
    try:
        for path in (idle_f, after_f):
            if path is after_f:
                subprocess.run(evcc_cmd(port, pki, 3), cwd=work, env=child_env(), check=True, capture_output=True,
                               timeout=120)
            secc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if not path.exists():
                raise SystemExit(f"the charger wrote no module list to {path}")
        time.sleep(0.2)  # the file is complete once json.dump returned
    finally:
        secc.send_signal(signal.SIGTERM)
        _out, err = secc.communicate(timeout=30)
    idle, after = json.loads(idle_f.read_text()), json.loads(after_f.read_text())
    top = []
    for line in err.splitlines():  # "import time: self [us] | cumulative | imported package"
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\S+)$", line)
        if m:
            top.append((m.group(3), int(m.group(1)) / 1e3, int(m.group(2)) / 1e3))
    return {"idle": idle, "after_session": after, "importtime_top_level": top}


def by_package(modules: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in modules:
        counts[name.split(".")[0]] = counts.get(name.split(".")[0], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=40, help="charge loops of the measured session (100 ms each)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--modules", action="store_true", help="print every module the charger loads")
    ap.add_argument("--importtime", type=int, default=0, metavar="N", help="print the N slowest top-level imports")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="v2h-mem-") as tmp:
        work = Path(tmp)
        pki = work / "pki"
        subprocess.run([sys.executable, "-m", "v2h.cli", "pki", "init", str(pki)], cwd=work, env=child_env(),
                       check=True, capture_output=True, timeout=300)
        warm = "from iso15118 import exi; import iso15118.aio.session, v2h.cli; [exi.messages(s) for s in exi.SCHEMAS]"
        subprocess.run([sys.executable, "-c", warm], cwd=work, env=child_env(), check=True, timeout=300)
        mem = measure(work, pki, args.loops)
        mods = loaded_modules(work, pki, args.importtime > 0)
    idle, after = mods["idle"], mods["after_session"]
    generated = [m.rsplit(".", 1)[1] for m in after if m.startswith("iso15118.exi.generated.")]
    result = {"python": sys.version.split()[0], "machine": os.uname().machine, **mem,
              "modules_idle": len(idle), "modules_after_session": len(after),
              "packages_idle": by_package(idle), "loaded_in_session": sorted(set(after) - set(idle)),
              "generated_after_session": generated}
    if args.json:
        if args.modules:
            result["modules"] = mods
        print(json.dumps(result, indent=1))
        return 0

    def row(what: str, m: dict) -> str:
        return f"| {what} | {m['rss']:.1f} | {m['pss']:.1f} | {m['uss']:.1f} |"

    print(f"v2h secc, Python {result['python']} on {result['machine']}: start to listening {mem['startup_ms']:.0f} ms; "
          f"a {args.loops}-loop DC_BPT session {mem['session_wall_s']:.2f} s")
    print("| charger | RSS MB | PSS MB | USS MB |\n| --- | ---: | ---: | ---: |")
    print(row("idle, listening", mem["idle"]))
    # PSS and USS are left out here: the car runs from the same installation and shares its pages meanwhile
    print(f"| during the session (peak) | {mem['session_peak_rss']:.1f} | | |")
    print(row("after the session", mem["after_session"]))
    packages = list(result["packages_idle"].items())
    print(f"modules: {len(idle)} idle, {len(after)} after a session; by package (idle): "
          + ", ".join(f"{k} {v}" for k, v in packages[:12]) + f", and {sum(v for _k, v in packages[12:])} in {len(packages) - 12} others")
    print(f"generated codec modules after a session: {', '.join(generated)}")
    print(f"loaded by the session: {', '.join(result['loaded_in_session']) or 'nothing'}")
    if args.importtime:
        top = sorted((t for t in mods["importtime_top_level"]), key=lambda t: -t[2])
        print("slowest imports (cumulative ms, self ms): " + ", ".join(
            f"{n} {c:.1f} ({s:.1f})" for n, s, c in top[:args.importtime]))
    if args.modules:
        print("idle:", " ".join(idle))
    return 0


if __name__ == "__main__":
    sys.exit(main())

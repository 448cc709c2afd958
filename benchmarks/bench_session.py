#!/usr/bin/env python3
"""ISO 15118-20 sessions over TLS 1.3 on loopback: setup time, charge-loop round trip,
concurrent sessions per core, idle charger memory; and DIN 70121 / ISO 15118-2 DC sessions
next to -20 (setup time and loop round trip per protocol).

    python benchmarks/bench_session.py                    # everything, prints a table
    python benchmarks/bench_session.py --only setup,rtt   # a subset: setup, rtt, load, idle, protocols
    python benchmarks/bench_session.py --sessions 1000 --duration 30   # the load test's size

- setup: from supportedAppProtocolReq to the first DC_ChargeLoopReq (the TLS handshake before it
  reported separately), EIM and Plug & Charge, both ends in one process; the simulated power
  stage is instant (no isolation or precharge delay) so that only the protocol is timed.
- rtt: DC_ChargeLoopReq → Res as the car sees it, back to back, one session.
- load: the charger in its own process pinned to CPU 0, the cars in another pinned to CPU 1;
  N sessions arrive at --rate per second and loop every 250 ms (each car resends one prebuilt
  charge-loop request, so that the cars' process is not the bottleneck); reports car-side
  timeouts and failures, both processes' CPU use in the steady window (all sessions looping),
  the loop round trip under load, and event-loop stalls over 50 ms on stderr.
  ``V2H_BENCH_GC=tuned`` freezes start-up objects and raises the GC thresholds in both.
- idle: resident memory of ``v2h secc`` listening with no car (target <= 40 MB).
- protocols: one charger offering everything; DC cars of each protocol and transport (-20 over
  TLS 1.3, -2 over TLS 1.2 and over TCP, DIN over TCP, EIM): setup from supportedAppProtocolReq
  to the first charge-loop request (DC_ChargeLoopReq, CurrentDemandReq), and the loop's round
  trip back to back; instant power stage as for setup.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from iso15118 import exi, pki  # noqa: E402
from iso15118.aio.session import run_evcc, start_secc  # noqa: E402
from iso15118.evcc import Battery, EVCCConfig, EVCCSession  # noqa: E402
from iso15118.secc import EVSEController, simulated_charger  # noqa: E402


def instant_stage() -> EVSEController:
    return simulated_charger(kind="DC", setpoint_w=-7000, isolation_time=0.0, voltage_ramp=1e9)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class LoopTimer:
    """Observer: charge-loop round trips and the setup span, from the car's messages."""

    def __init__(self):
        self.sent: float | None = None
        self.rtts: list[float] = []
        self.first: float | None = None
        self.setup: float | None = None

    def __call__(self, now, direction, name, message):
        if self.first is None:
            self.first = now
        if direction == "tx" and name.endswith(("ChargeLoopReq", "CurrentDemandReq")):
            if self.setup is None:
                self.setup = now - self.first
            self.sent = now
        elif direction == "rx" and name.endswith(("ChargeLoopRes", "CurrentDemandRes")) and self.sent is not None:
            self.rtts.append(now - self.sent)
            self.sent = None


async def _one_session(pki_dir, auth: str, loops: int, period: float, port: int) -> tuple[LoopTimer, float]:
    chain, key = pki.contract_credentials(pki_dir) if auth == "pnc" else ((), None)
    cfg = EVCCConfig(service="DC_BPT", control_mode="dynamic", auth=auth, loops=loops, loop_period=period,
                     poll_interval=0.0, contract_chain=chain, contract_key=key)
    timer = LoopTimer()
    t0 = time.perf_counter()
    result = await run_evcc(Battery(), cfg, pki_dir=pki_dir, secc=("::1", port), observer=timer)
    total = time.perf_counter() - t0
    if not result.ok:
        raise RuntimeError(result.reason)
    return timer, total


def bench_setup(pki_dir, runs: int) -> dict:
    async def go():
        srv = await start_secc(controller_factory=instant_stage, pki_dir=pki_dir, host="::1", port=0,
                               keep_sessions=False)
        out = {}
        for auth in ("eim", "pnc"):
            setups, handshakes = [], []
            for _ in range(runs + 2):
                timer, total = await _one_session(pki_dir, auth, 1, 0.0, srv.port)
                # the car's first message goes out right after the handshake
                setups.append(timer.setup)
                handshakes.append(total)
            setups, handshakes = setups[2:], handshakes[2:]
            out[auth] = {"setup_ms": statistics.median(setups) * 1e3, "setup_p90_ms": pct(setups, 0.9) * 1e3,
                         "session_total_ms": statistics.median(handshakes) * 1e3}
        out["tls_handshake_ms"] = await _handshake_time(pki_dir, srv.port, runs)
        await srv.close()
        return out
    return asyncio.run(go())


async def _handshake_time(pki_dir, port: int, runs: int) -> float:
    from iso15118.aio.session import connect_evcc
    times = []
    for _ in range(runs + 2):
        t0 = time.perf_counter()
        reader, writer = await connect_evcc(pki_dir=pki_dir, secc=("::1", port))
        times.append(time.perf_counter() - t0)
        writer.close()
        await writer.wait_closed()
    return statistics.median(times[2:]) * 1e3


def bench_rtt(pki_dir, loops: int) -> dict:
    async def go():
        srv = await start_secc(controller_factory=instant_stage, pki_dir=pki_dir, host="::1", port=0,
                               keep_sessions=False)
        timer, _ = await _one_session(pki_dir, "eim", loops, 0.0, srv.port)
        await srv.close()
        return timer.rtts
    rtts = asyncio.run(go())[10:]
    return {"loops": len(rtts), "p50_us": pct(rtts, 0.5) * 1e6, "p99_us": pct(rtts, 0.99) * 1e6}


# the DIN 70121 / ISO 15118-2 comparison: (label, protocol, security)
PROTOCOL_CASES = (("ISO 15118-20, TLS 1.3", "iso20", "tls"), ("ISO 15118-2, TLS 1.2", "iso2", "tls"),
                  ("ISO 15118-2, TCP", "iso2", "none"), ("DIN 70121, TCP", "din", "none"))


def bench_protocols(pki_dir, runs: int, loops: int) -> dict:
    async def go():
        srv = await start_secc(controller_factory=instant_stage, pki_dir=pki_dir, host="::1", port=0,
                               keep_sessions=False)
        out = {}
        for label, protocol, security in PROTOCOL_CASES:
            port = srv.port if security == "tls" else srv.tcp_port
            setups = []
            for _ in range(runs + 2):
                cfg = EVCCConfig(service="DC", protocols=(protocol,), loops=1, loop_period=0.0, poll_interval=0.0)
                timer = LoopTimer()
                result = await run_evcc(Battery(), cfg, pki_dir=pki_dir, secc=("::1", port), observer=timer,
                                        security=security)
                if not result.ok:
                    raise RuntimeError(f"{label}: {result.reason}")
                setups.append(timer.setup)
            cfg = EVCCConfig(service="DC", protocols=(protocol,), loops=loops, loop_period=0.0, poll_interval=0.0)
            timer = LoopTimer()
            result = await run_evcc(Battery(), cfg, pki_dir=pki_dir, secc=("::1", port), observer=timer,
                                    security=security)
            if not result.ok:
                raise RuntimeError(f"{label}: {result.reason}")
            rtts = timer.rtts[10:]
            setups = setups[2:]
            out[label] = {"setup_ms": statistics.median(setups) * 1e3, "setup_p90_ms": pct(setups, 0.9) * 1e3,
                          "loops": len(rtts), "p50_us": pct(rtts, 0.5) * 1e6, "p99_us": pct(rtts, 0.99) * 1e6}
        await srv.close()
        return out
    return asyncio.run(go())


# --- load: two processes -------------------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < os.cpu_count():
        os.sched_setaffinity(0, {cpu})
    if os.environ.get("V2H_BENCH_GC") == "tuned":
        import gc
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)


async def _lag_monitor(lags: list, start: float) -> None:
    """Event-loop lag: how late a 50 ms sleep wakes up (stalls show as large values)."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(0.05)
        lag = loop.time() - t - 0.05
        if lag > 0.05:
            lags.append((round(t - start, 1), round(lag, 3)))


def serve_main(args) -> None:
    """The charger process of the load test: one simulated stage per session."""
    _pin(0)

    async def go():
        srv = await start_secc(controller_factory=lambda: simulated_charger(kind="DC", setpoint_w=-7000,
                                                                              isolation_time=0.5),
                               pki_dir=args.pki, host="::1", port=0, keep_sessions=False,
                               max_connections=None)  # a simulation of many chargers: no per-charger cap
        print(json.dumps({"port": srv.port}), flush=True)
        lags: list = []
        asyncio.ensure_future(_lag_monitor(lags, asyncio.get_running_loop().time()))
        while True:
            await asyncio.sleep(5)
            if lags:
                print(json.dumps({"lags": lags}), file=sys.stderr, flush=True)
                lags.clear()
    asyncio.run(go())


class LoadCar(EVCCSession):
    """A car for the load test: a real session, but its charge-loop request is built once and
    resent (the charger's work per loop is unchanged; the cars' process, which shares the
    machine, spends less, so that it is not the bottleneck being measured)."""

    _loop_req = None

    def charge_loop_req(self, now: float):
        if self._loop_req is None:
            self._loop_req = super().charge_loop_req(now)
        return self._loop_req


def cars_main(args) -> None:
    """The cars' process: N sessions arriving at --rate, looping every 250 ms."""
    _pin(1)

    async def go():
        loop = asyncio.get_running_loop()
        start = loop.time()
        ramp = args.sessions / args.rate
        timers: list[LoopTimer] = []
        steady = (start + ramp + 5.0, start + ramp + 5.0 + args.duration)

        async def car(i: int):
            await asyncio.sleep(i / args.rate)
            timer = LoopTimer()
            timers.append(timer)
            # every car stays as long as the whole ramp plus the window: ends are staggered like
            # the arrivals, so the steady window sees only charge loops
            length = steady[1] + 2.0 - start
            cfg = EVCCConfig(service="DC_BPT", control_mode="dynamic", loops=int(length / 0.25),
                             loop_period=0.25, evcc_id=f"02{i:010X}")
            result = await run_evcc(Battery(), cfg, pki_dir=args.pki, secc=("::1", args.port), observer=timer,
                                    session_class=LoadCar)
            if not result.ok:
                failed_at.append(loop.time() - start)
            return result

        failed_at: list[float] = []
        lags: list = []
        monitor = asyncio.ensure_future(_lag_monitor(lags, start))
        results = await asyncio.gather(*(car(i) for i in range(args.sessions)))
        monitor.cancel()
        failures = [r.reason for r in results if not r.ok]
        if lags:
            print(json.dumps({"car_lags_worst": sorted(lags, key=lambda x: -x[1])[:10], "n": len(lags)}), file=sys.stderr, flush=True)
        rtts = [x for t in timers for x in t.rtts]
        print(json.dumps({"failures": len(failures), "timeouts": sum("timeout" in f for f in failures),
                          "reasons": sorted(set(failures))[:5], "loops": len(rtts),
                          "failed_at": [round(min(failed_at), 1), round(max(failed_at), 1)] if failed_at else None,
                          "p50_ms": pct(rtts, 0.5) * 1e3 if rtts else None,
                          "p99_ms": pct(rtts, 0.99) * 1e3 if rtts else None,
                          "steady": [steady[0] - start, steady[1] - start]}), flush=True)
    asyncio.run(go())


def bench_load(pki_dir, sessions: int, duration: float, rate: float) -> dict:
    me = [sys.executable, __file__]
    srv = subprocess.Popen(me + ["_serve", "--pki", str(pki_dir)], stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(srv.stdout.readline())["port"]
        t0 = time.monotonic()
        cars = subprocess.Popen(me + ["_cars", "--pki", str(pki_dir), "--port", str(port), "--sessions",
                                      str(sessions), "--duration", str(duration), "--rate", str(rate)],
                                stdout=subprocess.PIPE, text=True)
        ramp = sessions / rate
        time.sleep(ramp + 5.0)
        cpu0, car0, w0 = _cpu_seconds(srv.pid), _cpu_seconds(cars.pid), time.monotonic()
        rss_peak = 0
        while time.monotonic() - w0 < duration:
            time.sleep(1.0)
            rss_peak = max(rss_peak, _rss_kb(srv.pid))
        cpu1, car1, w1 = _cpu_seconds(srv.pid), _cpu_seconds(cars.pid), time.monotonic()
        out = json.loads(cars.communicate(timeout=ramp + duration + 120)[0])
        out.update(sessions=sessions, secc_cpu_pct=100.0 * (cpu1 - cpu0) / (w1 - w0),
                   cars_cpu_pct=100.0 * (car1 - car0) / (w1 - w0), secc_rss_mb=rss_peak / 1024,
                   wall_s=time.monotonic() - t0)
        return out
    finally:
        srv.kill()
        srv.wait()


def _rss_kb(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def bench_idle(pki_dir) -> dict:
    """The charger as installed: byte-compiled. Without bytecode (PYTHONDONTWRITEBYTECODE in a
    tree never compiled) every start compiles its modules, ~37 MB more (docs/aarch64.md)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", "import v2h.cli, iso15118.aio.session"], cwd=ROOT, env=env, check=True)
    proc = subprocess.Popen([sys.executable, "-m", "v2h.cli", "secc", "--pki", str(pki_dir), "--quiet"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        t0 = time.perf_counter()
        proc.stdout.readline()
        ready = time.perf_counter() - t0
        time.sleep(1.0)
        return {"rss_mb": _rss_kb(proc.pid) / 1024, "startup_ms": ready * 1e3}
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="all", choices=["all", "_serve", "_cars"])
    ap.add_argument("--only", default="setup,rtt,load,idle,protocols")
    ap.add_argument("--pki")
    ap.add_argument("--port", type=int)
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=50.0, help="new sessions per second in the load test")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--loops", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.mode == "_serve":
        return serve_main(args)
    if args.mode == "_cars":
        return cars_main(args)
    only = set(args.only.split(","))
    pki_dir = Path(args.pki) if args.pki else Path(tempfile.mkdtemp(prefix="v2h-bench-pki-"))
    if not (pki_dir / "iso20-secp521r1").is_dir() or not (pki_dir / "iso2-secp256r1").is_dir():
        pki.init_pki(pki_dir, profiles=["iso20-secp521r1", "iso2-secp256r1"])
    results: dict = {"codec": exi.IMPLEMENTATION, "cpus": os.cpu_count()}
    if "setup" in only:
        results["setup"] = bench_setup(pki_dir, args.runs)
    if "rtt" in only:
        results["rtt"] = bench_rtt(pki_dir, args.loops)
    if "protocols" in only:
        results["protocols"] = bench_protocols(pki_dir, args.runs, min(args.loops, 2000))
    if "idle" in only:
        results["idle"] = bench_idle(pki_dir)
    if "load" in only:
        results["load"] = bench_load(pki_dir, args.sessions, args.duration, args.rate)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"ISO 15118-20 sessions over TLS 1.3 on loopback (EXI codec: {results['codec']}, {results['cpus']} CPUs)\n")
    print("| measurement | value |\n| --- | ---: |")
    if "setup" in results:
        s = results["setup"]
        print(f"| TLS 1.3 handshake (mutual, secp521r1), median | {s['tls_handshake_ms']:.1f} ms |")
        for auth in ("eim", "pnc"):
            print(f"| setup SupportedAppProtocol → first DC_ChargeLoopReq, {auth.upper()}, median / p90 | "
                  f"{s[auth]['setup_ms']:.1f} / {s[auth]['setup_p90_ms']:.1f} ms |")
    if "rtt" in results:
        r = results["rtt"]
        print(f"| DC_ChargeLoop round trip, back to back ({r['loops']} loops), p50 / p99 | "
              f"{r['p50_us']:.0f} / {r['p99_us']:.0f} µs |")
    if "protocols" in results:
        for label, r in results["protocols"].items():
            print(f"| {label}, DC, EIM: setup SupportedAppProtocol → first loop request, median / p90 | "
                  f"{r['setup_ms']:.1f} / {r['setup_p90_ms']:.1f} ms |")
            print(f"| {label}, DC: loop round trip, back to back ({r['loops']} loops), p50 / p99 | "
                  f"{r['p50_us']:.0f} / {r['p99_us']:.0f} µs |")
    if "idle" in results:
        i = results["idle"]
        print(f"| idle charger process (v2h secc, listening), resident memory | {i['rss_mb']:.1f} MB |")
        print(f"| idle charger process, start to listening | {i['startup_ms']:.0f} ms |")
    if "load" in results:
        lo = results["load"]
        print(f"| {lo['sessions']} concurrent sessions at 250 ms: failures / timeouts | {lo['failures']} / "
              f"{lo['timeouts']} |")
        print(f"| … charger CPU (one core) in the steady window | {lo['secc_cpu_pct']:.0f} % |")
        print(f"| … the cars' process CPU (the other core) | {lo['cars_cpu_pct']:.0f} % |")
        print(f"| … charger resident memory, peak | {lo['secc_rss_mb']:.0f} MB |")
        if lo["p50_ms"] is not None:
            print(f"| … charge-loop round trip under load, p50 / p99 | {lo['p50_ms']:.1f} / {lo['p99_ms']:.1f} ms |")
        if lo["failed_at"]:
            print(f"\nfailures between {lo['failed_at'][0]} s and {lo['failed_at'][1]} s after the first car")
        if lo["reasons"]:
            print(f"\nfailure reasons (first {len(lo['reasons'])}): {lo['reasons']}")


if __name__ == "__main__":
    main()

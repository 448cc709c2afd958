#!/usr/bin/env python3
"""The energy manager's speed and scale (one command, prints a table):

1. ``day``: the whole chain in memory (hems.day: car ↔ charger ↔ station core ↔ CSMS core, real
   V2GTP/EXI and OCPP-J bytes, a 250 ms charge loop) for 24 simulated hours — wall and CPU time.
2. ``setpoint``: a setpoint change → the charger's new loop value, end to end over loopback: the
   house's CSMS (hems.csms behind hems.aio.csms_server) sends SetChargingProfile to a real
   `v2h charger` with a real `v2h evcc` in its charge loop; from the request to the first
   DC_ChargeLoopRes at the new power in the car's log (p50, p95, max over N changes).
3. ``building``: one manager's OCPP server holding 50 simulated chargers (our station core on real
   websockets) that each send MeterValues every second, while the server sends each of them a new
   setpoint every 5 s: meter values received per second, setpoints delivered, round trip.

    python benchmarks/bench_manager.py [--only day|setpoint|building] [--chargers 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hems.aio.csms_server import CSMSServer  # noqa: E402
from hems.csms import CSMSCore, central_setpoint  # noqa: E402

PASSWORD = "a-16-to-40-char-password"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_day() -> dict:
    from hems.day import run_day

    wall, cpu = time.perf_counter(), _cpu()
    chain, rows = run_day()
    loops = sum(e.loops_done for _, e in chain.sessions)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": _cpu() - cpu, "loops": loops,
            "ocpp_frames": len(chain.wire.ocpp) or None}


async def bench_setpoint(changes: int, pki: Path, tmp: Path) -> dict:
    core = CSMSCore()
    server = await CSMSServer(core, passwords={"CS001": PASSWORD}).start()
    cli = [sys.executable, "-m", "v2h.cli"]
    charger = subprocess.Popen([*cli, "charger", "--pki", str(pki), "--host", "::1", "--csms",
                                f"ws://127.0.0.1:{server.port}", "--id", "CS001", "--password", PASSWORD,
                                "--db", str(tmp / "cs.db"), "--setpoint", "0", "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(re.search(r"port (\d+)", charger.stdout.readline()).group(1))
    log = tmp / "ev.jsonl"
    car = subprocess.Popen([*cli, "evcc", "--secc", f"[::1]:{port}", "--pki", str(pki), "--service", "DC_BPT",
                            "--soc", "60", "--loops", str(changes * 20 + 100), "--loop-period", "0.05", "--quiet",
                            "--log", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (core.stations.get("CS001") and core.stations["CS001"].transaction):
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        sent = []
        for i in range(changes):
            watts = -3000.0 if i % 2 else 3000.0
            answered = asyncio.get_running_loop().create_future()
            t = time.time()
            server.call("CS001", "SetChargingProfile", central_setpoint(watts, discharge_limit_w=-11000.0),
                        answered.set_result)
            await answered
            sent.append((t, watts))
            await asyncio.sleep(0.5)
    finally:
        car.terminate()
        car.wait(10)
        charger.terminate()  # it hands the CSMS what it has queued first (up to 10 s)
        await asyncio.get_running_loop().run_in_executor(None, charger.wait, 30)
        await server.close()
    loops = []
    for line in log.read_text().splitlines():
        d = json.loads(line)
        if d.get("name") == "DC_ChargeLoopRes":
            m = d["message"]["DC_ChargeLoopRes"]
            i, v = m["EVSEPresentCurrent"], m["EVSEPresentVoltage"]
            loops.append((datetime.fromisoformat(d["time"].replace("Z", "+00:00")).timestamp(),
                          i["Value"] * 10.0 ** i["Exponent"] * v["Value"] * 10.0 ** v["Exponent"]))
    lat = []
    for t, watts in sent:
        hit = next((ts for ts, p in loops if ts >= t and abs(p - watts) < 100), None)
        if hit is not None:
            lat.append((hit - t) * 1000)
    return {"changes": changes, "applied": len(lat), "p50_ms": statistics.median(lat) if lat else None,
            "p95_ms": sorted(lat)[int(0.95 * (len(lat) - 1))] if lat else None, "max_ms": max(lat) if lat else None}


async def bench_building(n: int, seconds: float, tmp: Path) -> dict:
    from ocpp_bridge.core import StationConfig
    from ocpp_bridge.station import ChargingStation
    from ocpp_bridge.store import MemoryStore

    core = CSMSCore()
    meter = {"n": 0}
    core.observer = lambda st, action, p, now: meter.__setitem__("n", meter["n"] + (action == "MeterValues"))
    ids = [f"CS{i:03d}" for i in range(n)]
    server = await CSMSServer(core, passwords={i: PASSWORD for i in ids}).start()
    stations = []
    for sid in ids:
        cs = ChargingStation(StationConfig(sid, f"ws://127.0.0.1:{server.port}", password=PASSWORD,
                                           retry_backoff_min=0.1, retry_backoff_random=0.5), MemoryStore())
        cs.handlers["SetChargingProfile"] = lambda payload: {"status": "Accepted"}
        stations.append(cs)
    tasks = [asyncio.ensure_future(cs.run()) for cs in stations]
    while sum(1 for cs in stations if cs.connected.is_set()) < n:
        await asyncio.sleep(0.05)

    async def meters(cs):
        while True:
            cs.enqueue("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": "2027-01-01T00:00:00Z",
                                                                  "sampledValue": [{"value": 1.0}]}]})
            await asyncio.sleep(1.0)
    rtt, delivered, asked = [], [0], [0]

    async def setpoints():
        k = 0
        while True:
            for sid in ids:
                t = time.perf_counter()
                asked[0] += 1

                def done(answer, t=t):
                    if answer and answer.get("status") == "Accepted":
                        delivered[0] += 1
                        rtt.append((time.perf_counter() - t) * 1000)
                server.call(sid, "SetChargingProfile", central_setpoint(1000.0 + 100 * (k % 10)), done)
            k += 1
            await asyncio.sleep(5.0)
    workers = [asyncio.ensure_future(meters(cs)) for cs in stations] + [asyncio.ensure_future(setpoints())]
    cpu, t0, m0 = _cpu(), time.perf_counter(), meter["n"]
    await asyncio.sleep(seconds)
    elapsed, used, got = time.perf_counter() - t0, _cpu() - cpu, meter["n"] - m0
    await asyncio.sleep(1.0)  # the last setpoints' answers
    for t in workers + tasks:
        t.cancel()
    await asyncio.gather(*workers, *tasks, return_exceptions=True)
    await server.close()
    return {"chargers": n, "meter_values_per_s": got / elapsed, "setpoints_asked": asked[0],
            "setpoints_delivered": delivered[0], "rtt_p50_ms": statistics.median(rtt) if rtt else None,
            "rtt_max_ms": max(rtt) if rtt else None, "cpu_share": used / elapsed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["day", "setpoint", "building"])
    ap.add_argument("--chargers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--changes", type=int, default=20)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "day"):
            r = bench_day()
            rows.append(("24 h in memory (250 ms loop)", f"{r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, "
                                                          f"{r['loops']} loops (target ≤ 20 s)"))
        if args.only in (None, "setpoint"):
            from iso15118 import pki
            pki.init_pki(tmp / "pki")
            r = asyncio.run(bench_setpoint(args.changes, tmp / "pki", tmp))
            rows.append(("setpoint → charger's loop value", f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
                                                             f"max {r['max_ms']:.0f} ms; {r['applied']}/{r['changes']} "
                                                             "applied (target ≤ 100 ms; 50 ms loop)"))
        if args.only in (None, "building"):
            r = asyncio.run(bench_building(args.chargers, args.seconds, tmp))
            rows.append((f"{r['chargers']} chargers, meter values 1 Hz",
                         f"{r['meter_values_per_s']:.1f}/s received; setpoints {r['setpoints_delivered']}/"
                         f"{r['setpoints_asked']} delivered, RTT p50 {r['rtt_p50_ms']:.1f} ms max "
                         f"{r['rtt_max_ms']:.0f} ms; CPU {100 * r['cpu_share']:.0f} % of a core (stations included)"))
    width = max(len(k) for k, _ in rows)
    print(f"{'benchmark':<{width}}  result")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The OCPP 2.1 client: durable enqueue rate, flush rate of a backlog after a reconnect, the
time from a SetChargingProfile to the new setpoint in the charge loop, GetTransactionStatus on a
large backlog, the firmware signature check, and the certification harness's speed.

    python benchmarks/bench_ocpp.py                    # everything, prints a table
    python benchmarks/bench_ocpp.py --backlog 10000 --profiles 200 --image-mb 64

- enqueue: TransactionEvents written to the SQLite outbox (WAL, synchronous=FULL: each one on
  disk before the call returns), one after another.
- flush: that backlog delivered to a CSMS (the test CSMS of tests/ocpp/csms.py, on the `ocpp`
  package, in its own process) after the station connects: each message waits for its answer
  before the next (OCPP-J allows one outstanding CALL).
- setpoint: a CentralSetpoint SetChargingProfile sent by the CSMS (same process, loopback) until
  ``OCPPBridge.setpoint()`` — what the SECC reads every charge loop — returns the new value; add
  at most one loop period for the car to see it.
- transaction status: ``GetTransactionStatus`` (messagesInQueue for one transaction id) answered
  while the SQLite outbox holds the backlog (a query over the queued payloads).
- firmware signature: the signing certificate checked against the manufacturer root and the
  ECDSA P-256 / SHA-256 signature over an image of --image-mb MB (ocpp_bridge.firmware).
- certification harness: one whole transaction of the part 6 cases in memory (tests/ocpp/octt.py:
  boot, plug, ISO 15118-20 session, 10 simulated minutes of charging with meter values every
  10 s, remote stop, unplug), wall time per run and simulated seconds per wall second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from iso15118.secc import SimulatedPowerStage  # noqa: E402
from ocpp_bridge.bridge import OCPPBridge, Transaction  # noqa: E402
from ocpp_bridge.outbox import Outbox  # noqa: E402
from ocpp_bridge.station import ChargingStation, StationConfig, transaction_event  # noqa: E402
from tests.ocpp.csms import CSMS  # noqa: E402

PASSWORD = "benchmark-password-1234"


def _event(i: int) -> dict:
    meter = [{"timestamp": "2026-11-26T12:00:00Z", "sampledValue": [
        {"value": float(i), "measurand": "Energy.Active.Import.Register"},
        {"value": 0.0, "measurand": "Energy.Active.Export.Register"}]}]
    return transaction_event("Started" if i == 0 else "Updated", "MeterValuePeriodic", "tx-bench", meter_value=meter)


async def _serve_csms(port: int) -> None:
    csms = await CSMS(passwords={"BENCH": PASSWORD}).start(port=port)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    await csms.close()


async def bench_backlog(n: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        outbox = Outbox(Path(d) / "cs.db")
        port = _free_port()
        cs = ChargingStation(StationConfig("BENCH", f"ws://127.0.0.1:{port}", password=PASSWORD,
                                           retry_backoff_min=0.05, retry_backoff_random=0.0), outbox)
        t0 = time.perf_counter()
        for i in range(n):
            cs.enqueue("TransactionEvent", _event(i))
        enqueue = time.perf_counter() - t0
        proc = subprocess.Popen([sys.executable, __file__, "--serve-csms", str(port)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert proc.stdout.readline().strip() == "ready"
            task = asyncio.ensure_future(cs.run())
            t1 = time.perf_counter()
            await cs.connected.wait()
            connected = time.perf_counter() - t1
            while len(outbox):
                await asyncio.sleep(0.01)
            flush = time.perf_counter() - t1
            task.cancel()
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)
        return {"n": n, "enqueue_per_s": n / enqueue, "enqueue_ms": enqueue * 1000 / n,
                "flush_per_s": n / (flush - connected), "flush_s": flush, "connect_s": connected}


async def bench_setpoint(count: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        csms = await CSMS(passwords={"BENCH": PASSWORD}).start()
        cs = ChargingStation(StationConfig("BENCH", csms.url(), password=PASSWORD), Outbox(Path(d) / "cs.db"))
        bridge = OCPPBridge(SimulatedPowerStage(), cs, default_setpoint_w=5000.0)
        bridge.tx = Transaction("tx-bench", time.time())
        task = asyncio.ensure_future(cs.run())
        await csms.wait_for(lambda c: "BENCH" in c.connections and c.actions("BootNotification"))
        await asyncio.sleep(0.1)
        applied: list[float] = []
        handler = cs.handlers["SetChargingProfile"]

        def timed(payload: dict) -> dict:  # the moment the profile is in place
            answer = handler(payload)
            applied.append(time.perf_counter())
            return answer

        cs.handlers["SetChargingProfile"] = timed
        samples = []
        for i in range(count):
            watts = -1000.0 - i
            profile = {"evseId": 1, "chargingProfile": {
                "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": watts}]}]}}
            t0 = time.perf_counter()
            await csms.send_call("BENCH", "SetChargingProfile", profile)
            if bridge.setpoint(bridge.secc_time(time.time())) != watts:
                raise RuntimeError("the profile did not reach the setpoint")
            samples.append(applied[-1] - t0)
        task.cancel()
        await csms.close()
    samples.sort()
    return {"count": count, "p50_ms": statistics.median(samples) * 1000,
            "p99_ms": samples[int(len(samples) * 0.99) - 1] * 1000, "max_ms": samples[-1] * 1000}


def bench_status(n: int) -> dict:
    """GetTransactionStatus answered with n TransactionEvents (another transaction's) queued."""
    from ocpp_bridge.core import StationCore

    with tempfile.TemporaryDirectory() as d:
        outbox = Outbox(Path(d) / "cs.db")
        core = StationCore(StationConfig("BENCH", "ws://127.0.0.1:9", password=PASSWORD), outbox, now=0.0)
        for i in range(n):
            core.enqueue("TransactionEvent", _event(i), now=0.0)
        bridge = OCPPBridge(SimulatedPowerStage(), core)
        samples = []
        for _ in range(20):
            t0 = time.perf_counter()
            answer = bridge._transaction_status({"transactionId": "tx-other"})
            samples.append(time.perf_counter() - t0)
        assert answer["messagesInQueue"] is False
        t0 = time.perf_counter()
        assert bridge._transaction_status({})["messagesInQueue"] is True
        any_ms = (time.perf_counter() - t0) * 1000
    return {"n": n, "by_id_ms": statistics.median(samples) * 1000, "any_ms": any_ms}


def bench_signature(megabytes: int) -> dict:
    from ocpp_bridge.firmware import check_certificate, check_signature
    from tests.ocpp.firmware_pki import pki

    image = os.urandom(megabytes * 1024 * 1024)
    signature = pki().sign(image)
    t0 = time.perf_counter()
    cert, why = check_certificate(pki().signing_pem, [pki().root], time.time())
    cert_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    ok = check_signature(cert, signature, image)
    sig_s = time.perf_counter() - t0
    assert why is None and ok
    return {"mb": megabytes, "cert_ms": cert_ms, "sig_s": sig_s, "mb_per_s": megabytes / sig_s}


def bench_octt(runs: int) -> dict:
    from tests.ocpp.octt import OCTT

    walls, simulated = [], 0.0
    for _ in range(runs):
        t0 = time.perf_counter()
        o = OCTT(config={})
        o.set_variable("SampledDataCtrlr", "TxUpdatedInterval", "10")
        start = o.now
        started = o.transaction()
        o.run(600)
        o.ok("RequestStopTransaction", {"transactionId": started["transactionInfo"]["transactionId"]})
        o.run(5)
        o.unplug()
        while (m := o.expect_any("StatusNotification", "TransactionEvent")).action != "TransactionEvent" \
                or m["eventType"] != "Ended":
            pass
        walls.append(time.perf_counter() - t0)
        simulated = o.now - start
    wall = statistics.median(walls)
    return {"runs": runs, "wall_ms": wall * 1000, "speedup": simulated / wall}


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backlog", type=int, default=10000)
    ap.add_argument("--profiles", type=int, default=200)
    ap.add_argument("--image-mb", type=int, default=64)
    ap.add_argument("--octt-runs", type=int, default=5)
    ap.add_argument("--serve-csms", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_csms:
        asyncio.run(_serve_csms(args.serve_csms))
        return
    b = asyncio.run(bench_backlog(args.backlog))
    s = asyncio.run(bench_setpoint(args.profiles))
    q = bench_status(args.backlog)
    f = bench_signature(args.image_mb)
    h = bench_octt(args.octt_runs)
    print(f"{'measure':58} {'value':>14}")
    print(f"{'enqueue TransactionEvent (durable, one by one)':58} {b['enqueue_per_s']:>9.0f} /s  "
          f"({b['enqueue_ms']:.2f} ms each)")
    print(f"{'flush backlog of ' + str(b['n']) + ' after connect (CSMS in its own process)':58} "
          f"{b['flush_per_s']:>9.0f} /s  ({b['flush_s']:.1f} s incl. {b['connect_s'] * 1000:.0f} ms connect+boot)")
    print(f"{'SetChargingProfile → setpoint(), p50 / p99 / max':58} "
          f"{s['p50_ms']:>6.2f} / {s['p99_ms']:.2f} / {s['max_ms']:.2f} ms")
    print(f"{'GetTransactionStatus, ' + str(q['n']) + ' queued: by id / without id':58} "
          f"{q['by_id_ms']:>6.2f} / {q['any_ms']:.2f} ms")
    print(f"{'firmware: certificate / signature over ' + str(f['mb']) + ' MB':58} "
          f"{f['cert_ms']:>6.2f} ms / {f['sig_s'] * 1000:.0f} ms ({f['mb_per_s']:.0f} MB/s)")
    print(f"{'part 6 harness: one transaction, 10 simulated min':58} "
          f"{h['wall_ms']:>6.0f} ms  ({h['speedup']:.0f}x real time)")


if __name__ == "__main__":
    main()

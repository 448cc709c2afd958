#!/usr/bin/env python3
"""Unfinished connections against a running ``v2h secc``: memory per pending connection, and
whether a real car still gets a session while they are held open.

    python benchmarks/bench_pending.py                        # the default scenarios, prints a table
    python benchmarks/bench_pending.py --n 2000 --kind hello  # one scenario
    python benchmarks/bench_pending.py --secc-arg=--max-connections=2100 --kind tcp,hello

The charger is a real ``v2h secc`` subprocess on 127.0.0.1 (``--fd-limit`` runs it with that
RLIMIT_NOFILE). The attacker (this process) opens ``--n`` connections and holds them:

- tcp: connect and send nothing (a TLS handshake that never starts);
- hello: send a real TLS 1.3 ClientHello with the car's own certificate policy and never
  answer the charger's flight (a handshake stalled half way, the expensive kind: the server
  has done its key exchange and signature).

Then it reads the charger's resident memory (``VmRSS``), counts how many of its connections
the charger still holds open, runs one real simulated car (``run_evcc``, 2 charge loops) and
reports whether it got its session and how long it took, and how many bytes the charger
wrote to stderr meanwhile (accept-error storms). "per pending" is the memory growth divided
by the connections the charger still holds (so a cap that sheds connections is not counted
as savings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from iso15118 import pki  # noqa: E402
from iso15118.aio.session import run_evcc  # noqa: E402
from iso15118.aio.tls import credentials_from_pki, iso20_client_context  # noqa: E402
from iso15118.evcc import Battery, EVCCConfig  # noqa: E402


def _rss_kb(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def client_hello(pki_dir) -> bytes:
    """The first flight of a real -20 car (TLS 1.3 ClientHello, the -20 groups and suites)."""
    ctx = iso20_client_context(credentials_from_pki(pki_dir, "evcc"))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def start_charger(pki_dir, extra: list[str], fd_limit: int | None, stderr_path: Path) -> tuple[subprocess.Popen, int]:
    def limit():
        if fd_limit:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    err = open(stderr_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "v2h.cli", "secc", "--pki", str(pki_dir), "--host", "127.0.0.1",
                             "--quiet", *extra], stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
                            preexec_fn=limit)
    line = proc.stdout.readline()
    m = re.search(r"listening on port (\d+)", line)
    if m is None:
        proc.kill()
        raise SystemExit(f"the charger did not start: {line!r} {stderr_path.read_text()[-2000:]}")
    return proc, int(m.group(1))


def open_connections(port: int, n: int, kind: str, hello: bytes) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2.0)
        except OSError:
            break  # the listener's backlog is full or refusing: what we hold is what we got
        if kind == "hello":
            s.sendall(hello)
        s.setblocking(False)
        socks.append(s)
    return socks


def still_open(socks: list[socket.socket]) -> int:
    """Connections the charger has not closed (reads drain its flight; EOF or RST = closed)."""
    alive = 0
    for s in socks:
        try:
            while True:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    alive += 1  # nothing to read and not closed
                    break
                if not data:
                    break
        except OSError:
            pass  # reset by the charger
    return alive


async def one_car(pki_dir, port: int) -> tuple[bool, str, float]:
    t0 = time.perf_counter()
    result = await run_evcc(Battery(), EVCCConfig(loops=2, loop_period=0.05, poll_interval=0.02),
                            pki_dir=pki_dir, secc=("127.0.0.1", port))
    return result.ok, result.reason, time.perf_counter() - t0


def scenario(pki_dir, n: int, kind: str, extra: list[str], fd_limit: int | None, settle: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        err_path = Path(tmp) / "stderr"
        proc, port = start_charger(pki_dir, extra, fd_limit, err_path)
        try:
            time.sleep(0.5)
            base = _rss_kb(proc.pid)
            t0 = time.perf_counter()
            socks = open_connections(port, n, kind, client_hello(pki_dir))
            opened = time.perf_counter() - t0
            time.sleep(settle)
            rss = _rss_kb(proc.pid)
            held = still_open(socks)
            ok, reason, car_s = asyncio.run(one_car(pki_dir, port))
            held_after = still_open(socks)
            for s in socks:
                s.close()
            time.sleep(0.2)
            return {"kind": kind, "n": n, "opened": len(socks), "open_s": round(opened, 2),
                    "held_by_charger": held, "held_after_car": held_after,
                    "rss_base_mb": base / 1024, "rss_mb": rss / 1024,
                    "per_pending_kb": (rss - base) / held if held else None,
                    "car_ok": ok, "car_reason": reason, "car_s": round(car_s, 2),
                    "stderr_bytes": err_path.stat().st_size, "fd_limit": fd_limit, "secc_args": extra,
                    "alive": proc.poll() is None}
        finally:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="connections to open (default 2000)")
    ap.add_argument("--kind", default="tcp,hello", help="tcp, hello or both (default)")
    ap.add_argument("--secc-arg", action="append", default=[], help="extra argument for v2h secc (repeatable)")
    ap.add_argument("--fd-limit", type=int, help="run the charger with this RLIMIT_NOFILE")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between opening and measuring")
    ap.add_argument("--pki")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pki_dir = Path(args.pki) if args.pki else Path(tempfile.mkdtemp(prefix="v2h-bench-pki-"))
    if not (pki_dir / "iso20-secp521r1").is_dir():
        pki.init_pki(pki_dir, profiles=["iso20-secp521r1"])
    rows = [scenario(pki_dir, args.n, kind, args.secc_arg, args.fd_limit, args.settle)
            for kind in args.kind.split(",")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"v2h secc against unfinished connections{' (' + ' '.join(args.secc_arg) + ')' if args.secc_arg else ''}"
          f"{f', fd limit {args.fd_limit}' if args.fd_limit else ''}\n")
    print("| attack | opened | held by the charger | charger RSS (idle → loaded) | per pending connection "
          "| a real car | charger stderr |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in rows:
        per = f"{r['per_pending_kb']:.0f} KB" if r["per_pending_kb"] is not None else "–"
        car = f"session in {r['car_s']:.2f} s" if r["car_ok"] else f"refused: {r['car_reason'][:60]}"
        print(f"| {r['kind']} ×{r['n']} | {r['opened']} | {r['held_by_charger']} | {r['rss_base_mb']:.1f} → "
              f"{r['rss_mb']:.1f} MB | {per} | {car} | {r['stderr_bytes']:,} B |")


if __name__ == "__main__":
    main()

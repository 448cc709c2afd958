#!/usr/bin/env python3
"""µs per message, encode and decode, for the reference messages (tests/exi/vectors/reference.json).

    python benchmarks/bench_exi.py            # table on stdout
    python benchmarks/bench_exi.py --json     # machine-readable

Each figure is the median of --repeat runs of --number calls, after a warm-up, and includes
building (decode) or reading (encode) the Python message objects. References (DOMAIN.md §2,
same kind of machine): libcbv2g (C) 0.35-1.2 µs; the JVM codec of the iso15118 package
7.5-14 ms; pure-Python target <= 40 µs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from iso15118 import exi  # noqa: E402


def bench(fn, number: int, repeat: int) -> float:
    fn()
    for _ in range(max(1, number // 10)):
        fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t0) / number)
    return statistics.median(runs) * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with open(ROOT / "tests" / "exi" / "vectors" / "reference.json", encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    rows = []
    for v in vectors:
        data = bytes.fromhex(v["exi_hex"])
        schema = exi.schema_of(exi.decode(data, v["namespace"])) or v["namespace"]
        msg = exi.decode(data, schema)
        if exi.encode(msg) != data:
            raise SystemExit(f"{v['name']}: encoding differs from the vector")
        enc = bench(lambda: exi.encode(msg), args.number, args.repeat)
        dec = bench(lambda: exi.decode(data, schema), args.number, args.repeat)
        rows.append({"message": v["name"], "bytes": len(data), "encode_us": round(enc, 2), "decode_us": round(dec, 2)})
    if args.json:
        print(json.dumps({"implementation": exi.IMPLEMENTATION, "python": sys.version.split()[0], "rows": rows}, indent=1))
        return 0
    print(f"EXI codec: backend={exi.IMPLEMENTATION}, Python {sys.version.split()[0]}; median µs per message")
    print(f"{'message':38s} {'bytes':>5s} {'encode':>8s} {'decode':>8s}")
    for r in rows:
        print(f"{r['message']:38s} {r['bytes']:5d} {r['encode_us']:8.1f} {r['decode_us']:8.1f}")
    print("reference: libcbv2g (C) 0.35-1.2 µs; iso15118 JVM codec 7,500-14,000 µs; target (pure Python) <= 40 µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""atheris harness for the EXI decoder of one schema.

    python fuzz/fuzz_exi.py iso20_dc fuzz/corpus-iso20_dc -max_total_time=3600
    V2H_PURE_PYTHON=1 python fuzz/fuzz_exi.py ...     # the pure-Python decoder alone

With the C extension built, every input also goes through its decoder, which must not crash and
must give the pure-Python one's answer — the same message, or the same error (class, bit offset,
path, reason); build it with AddressSanitizer for the long run (docs/exi.md, "Fuzzing").

The oracle is the codec's contract: any input decodes to a message or raises ExiDecodeError;
a decoded message re-encodes, and that encoding decodes to the same message. Anything else
(another exception type, a hang, a crash) is a finding. The corpus directory is seeded from the
reference vectors on first use.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports():
    from iso15118 import exi
    from iso15118.exi import _pycodec, _pyrt  # noqa: F401  (instrumented)


def seed(schema: str, corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    ns = exi.SCHEMAS[schema]
    for name in ("reference.json", "public.json", "fragments.json", "regressions.json"):
        with open(ROOT / "tests" / "exi" / "vectors" / name, encoding="utf-8") as f:
            for i, v in enumerate(json.load(f)["vectors"]):
                if v.get("namespace") == ns or v.get("schema") == schema:
                    (corpus / f"{name[:-5]}-{i}").write_bytes(bytes.fromhex(v["exi_hex"]))


def make_target(schema: str):
    mod = exi.messages(schema)  # instrumented and loaded once
    from iso15118.exi import _backend, _pycodec
    cext = _backend.cext

    def outcome(fn):
        try:
            return ("ok", fn())
        except exi.ExiDecodeError as e:
            return (type(e).__name__, e.bit_offset, e.path, e.reason)

    def target(data: bytes) -> None:
        if cext is not None:
            # the C decoder must never crash, and must answer as the pure codec does
            try:
                fast = outcome(lambda: cext.decode_document(cext.universe(mod), data))
            except cext.Fallback:  # documents of simple type: the pure codec answers
                fast = None
            if fast is not None:
                pure = outcome(lambda: _pycodec.decode_document(mod, data))
                if pure != fast:
                    raise AssertionError(f"C and pure-Python decoders disagree: {fast!r} != {pure!r}")
        try:
            msg = exi.decode(data, schema)
        except exi.ExiDecodeError:
            return
        again = exi.decode(exi.encode(msg, schema), schema)
        if again != msg:
            raise AssertionError(f"re-encoding changed the message: {msg!r} -> {again!r}")
        try:
            exi.decode_fragment(data, schema)
        except exi.ExiDecodeError:
            return


    return target


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in exi.SCHEMAS:
        sys.exit(f"usage: {sys.argv[0]} SCHEMA [CORPUS_DIR] [libFuzzer options]; SCHEMA in {list(exi.SCHEMAS)}")
    schema = sys.argv[1]
    rest = sys.argv[2:]
    corpus = next((Path(a) for a in rest if not a.startswith("-")), None)
    if corpus is not None:
        seed(schema, corpus)
    with atheris.instrument_imports():
        import importlib
        importlib.import_module(f"iso15118.exi.generated.{schema}")
    atheris.Setup([sys.argv[0]] + rest, make_target(schema))
    atheris.Fuzz()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Draw the session state tables into docs/sessions.md (Mermaid state diagrams between markers).

    python -m tools.session_diagrams          # rewrite the diagrams
    python -m tools.session_diagrams --check  # fail if docs/sessions.md is not up to date

The tables are the protocol (``iso15118.secc.{iso20,iso2,din}.TABLE``, ``iso15118.evcc.…``); the
diagrams are never drawn by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "sessions.md"


def tables() -> dict[str, object]:
    from iso15118.evcc import din as evcc_din, iso2 as evcc_iso2, iso20 as evcc_iso20
    from iso15118.secc import din as secc_din, iso2 as secc_iso2, iso20 as secc_iso20

    return {"secc-iso20": secc_iso20.TABLE, "evcc-iso20": evcc_iso20.TABLE,
            "secc-iso2": secc_iso2.TABLE, "evcc-iso2": evcc_iso2.TABLE,
            "secc-din": secc_din.TABLE, "evcc-din": evcc_din.TABLE}


def render(text: str) -> str:
    """``text`` with every ``<!-- table:NAME -->`` … ``<!-- /table -->`` block redrawn."""
    found = tables()

    def block(m: re.Match) -> str:
        name = m.group(1)
        if name not in found:
            raise SystemExit(f"docs/sessions.md names an unknown table {name!r}")
        return f"<!-- table:{name} -->\n```mermaid\n{found[name].mermaid()}\n```\n<!-- /table -->"
    return re.sub(r"<!-- table:([\w-]+) -->.*?<!-- /table -->", block, text, flags=re.S)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the document differs")
    args = ap.parse_args(argv)
    old = DOC.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print("docs/sessions.md is out of date: run python -m tools.session_diagrams", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Layering rules that keep the protocol cores sans-I/O (STYLE.md principles 1, 2, 6)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "subprocess"}
ADAPTERS = {"iso15118/aio"}  # the only places that may touch I/O


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def _core_modules():
    for path in sorted((ROOT / "iso15118").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if any(rel == a or rel.startswith(a + "/") for a in ADAPTERS):
            continue
        yield rel, path


def test_protocol_cores_do_not_import_io():
    offenders = {rel: sorted(_imports(p) & IO_MODULES) for rel, p in _core_modules() if _imports(p) & IO_MODULES}
    assert not offenders, f"I/O imported outside the adapters: {offenders}"


def test_protocol_cores_do_not_read_the_clock():
    """Time is passed in: no time.time()/monotonic()/sleep in the cores."""
    bad = []
    for rel, path in _core_modules():
        text = path.read_text()
        for needle in ("time.time(", "time.monotonic(", "time.sleep(", "datetime.now("):
            if needle in text and "generated" not in rel:
                bad.append((rel, needle))
    # the PKI stamps certificates with the wall clock when asked to (v2h pki init): allowed there
    bad = [b for b in bad if not b[0].startswith("iso15118/pki/")]
    assert not bad, bad


def test_only_the_codec_knows_exi():
    """Everything outside iso15118.exi sees typed messages (STYLE.md principle 6)."""
    bad = []
    for rel, path in _core_modules():
        if rel.startswith("iso15118/exi/"):
            continue
        text = path.read_text()
        if "exi._pyrt" in text or "exi._cexi" in text or "exi._pycodec" in text:
            bad.append(rel)
    assert not bad, bad

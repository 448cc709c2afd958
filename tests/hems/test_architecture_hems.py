"""The controller cores in hems/ are sans-I/O and read no clock; I/O lives in hems/aio/ and the
pymodbus drivers hems/devices/modbus*.py only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "subprocess", "pymodbus"}
CLOCK = ("time.time(", "time.monotonic(", "time.sleep(", "datetime.now(")


def _is_adapter(rel: str) -> bool:
    return rel.startswith("hems/aio/") or (rel.startswith("hems/devices/modbus") and rel.endswith(".py"))


def _cores():
    for path in sorted((ROOT / "hems").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not _is_adapter(rel):
            yield rel, path


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_hems_cores_do_not_import_io():
    bad = {rel: sorted(_imports(p) & IO_MODULES) for rel, p in _cores() if _imports(p) & IO_MODULES}
    assert not bad, bad


def test_hems_cores_do_not_read_the_clock():
    bad = [(rel, n) for rel, p in _cores() for n in CLOCK if n in p.read_text()]
    assert not bad, bad


def test_hems_does_not_import_the_application():
    bad = [rel for rel, p in _cores() if "v2h" in _imports(p)]
    assert not bad, bad

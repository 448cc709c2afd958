"""Layering rules: the protocol and controller cores are sans-I/O and take time from their caller;
only the adapters touch sockets, TLS and the event loop; dependencies point down
(v2h → hems → ocpp_bridge → iso15118) and no library imports the application."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "subprocess", "websockets", "aiohttp", "pymodbus"}
LIBRARIES = ("iso15118", "ocpp_bridge", "hems")
# the only places in the libraries that may touch I/O: the asyncio adapters and the Modbus drivers
ADAPTERS = {"iso15118/aio", "ocpp_bridge/station.py", "hems/aio", "hems/devices/modbus"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def _is_adapter(rel: str) -> bool:
    return any(rel.startswith(a) for a in ADAPTERS)  # a folder, a module, or modules named so


def _library_modules():
    for lib in LIBRARIES:
        for path in sorted((ROOT / lib).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


def _core_modules():
    for rel, path in _library_modules():
        if not _is_adapter(rel):
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


def test_dependencies_point_down():
    """iso15118 knows neither OCPP nor the house; ocpp_bridge does not know the house; no library
    imports the application package v2h."""
    below = {"iso15118": {"ocpp_bridge", "hems", "v2h"}, "ocpp_bridge": {"hems", "v2h"}, "hems": {"v2h"}}
    bad = {rel: sorted(_imports(p) & below[rel.split("/")[0]]) for rel, p in _library_modules()
           if _imports(p) & below[rel.split("/")[0]]}
    assert not bad, bad


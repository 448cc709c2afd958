"""Layering rules: the protocol and controller cores are sans-I/O and take time from their caller;
only the adapters touch sockets, TLS and the event loop; dependencies point down
(v2h → hems → ocpp_bridge → iso15118) and no library imports the application."""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "subprocess", "websockets", "aiohttp", "pymodbus"}
LIBRARIES = ("iso15118", "ocpp_bridge", "hems")
# the only places in the libraries that may touch I/O: the asyncio adapters and the Modbus drivers
ADAPTERS = {"iso15118/aio", "ocpp_bridge/station.py", "hems/aio", "hems/devices/modbus",
            "ocpp_bridge/transfer.py"}  # firmware and log files over HTTP(S), in worker threads


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
    """Everything outside iso15118.exi sees typed messages (the codec is the only place that knows bytes)."""
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



def _module_name(rel: str) -> str:
    name = rel[:-3].replace("/", ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _top_level_imports(path: Path, module: str) -> set[str]:
    """Modules imported when ``module`` is imported: module-level statements, without the ones
    under ``if TYPE_CHECKING:`` (type hints only) and without function-level imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ([node] if not isinstance(node, (ast.If, ast.Try)) else list(ast.walk(node))):
            if isinstance(sub, ast.Import):
                out |= {a.name for a in sub.names}
            elif isinstance(sub, ast.ImportFrom):
                base = package
                for _ in range(max(0, sub.level - 1)):
                    base = base.rpartition(".")[0]
                target = f"{base}.{sub.module}" if sub.level and sub.module else (base if sub.level else sub.module)
                out.add(target)
                out |= {f"{target}.{a.name}" for a in sub.names}
    return out


def test_no_module_imports_cycle_back_to_itself():
    """Handlers never import their session (the session imports its table, the table its
    handlers, all of them the context): a cycle between the libraries' modules fails here."""
    paths = {_module_name(rel): path for rel, path in _library_modules()}
    graph = {m: {t for t in _top_level_imports(p, m) if t in paths and t != m} for m, p in paths.items()}
    for m in graph:  # importing a.b.c imports its packages a and a.b first; they are not cycles
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t] if t in stack else [m, t])
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_the_project_stands_on_its_own():
    """Code and docs state the facts they rely on (with the standard's clause); none points at the
    team's notes outside the repository, which a user of the project does not have."""
    outside = ("../" + "shared", "DOMAIN" + ".md", "STYLE" + ".md")
    kinds = {".py", ".pyx", ".md", ".toml", ".txt", ".cfg", ".c", ".h", ".html", ".js", ".css"}
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in {"build", "node_modules", "__pycache__"}
                   and not d.startswith("v2h-demo-")]
        for name in files:
            path = Path(folder, name)
            if path.suffix in kinds:
                text = path.read_text(encoding="utf-8", errors="replace")
                found += [f"{path.relative_to(ROOT)}: {w}" for w in outside if w in text]
    assert not found, found

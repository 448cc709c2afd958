"""A short run of the atheris harness per schema (the long runs are documented in docs/exi.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iso15118 import exi

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("schema", list(exi.SCHEMAS))
def test_fuzz_smoke(schema, tmp_path):
    pytest.importorskip("atheris", reason="atheris is only built for Linux")
    r = subprocess.run([sys.executable, str(ROOT / "fuzz" / "fuzz_exi.py"), schema, str(tmp_path / "corpus"),
                        "-atheris_runs=1500", "-rss_limit_mb=2048"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 1500" in r.stderr

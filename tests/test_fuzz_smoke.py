"""A short run of the atheris harness per schema (the long runs are documented in docs/exi.md).

atheris is in the test extra only where it has wheels (x86_64 Linux, by an environment marker in
pyproject.toml); elsewhere — aarch64 chargers among them, docs/aarch64.md — these tests skip with
the reason. Where the marker says the test extra installs it, a missing atheris is a failure.
"""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from iso15118 import exi

ROOT = Path(__file__).resolve().parent.parent


def atheris_requirement() -> Requirement:
    """The test extra's atheris requirement, as pyproject.toml writes it."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"]["test"]
    found = [r for r in map(Requirement, extra) if r.name == "atheris"]
    if len(found) != 1:
        raise LookupError(f"the test extra names atheris {len(found)} times, want once")
    return found[0]


def _need_atheris() -> None:
    """Skip with the reason where atheris is not installed and the test extra does not install
    it here; fail where the extra should have installed it."""
    if importlib.util.find_spec("atheris") is not None:
        return
    req = atheris_requirement()
    if req.marker is None or req.marker.evaluate():
        pytest.fail(f"atheris is missing, but the test extra installs it on this {platform.machine()} "
                    f"{platform.system()} ({req}): pip install -e '.[test]'")
    pytest.skip(f"atheris is not installed on {platform.machine()} {platform.system()}: the test extra installs it "
                f"only where `{req.marker}` (it has no wheel elsewhere; a build needs clang with libFuzzer)")


@pytest.mark.parametrize(("machine", "system", "installs"), [
    ("x86_64", "Linux", True), ("aarch64", "Linux", False), ("arm64", "Darwin", False), ("AMD64", "Windows", False)])
def test_atheris_is_in_the_test_extra_only_where_it_has_wheels(machine, system, installs):
    """The marker keeps `pip install '.[test]'` working on an aarch64 charger (no atheris wheel)
    and the fuzz tests installed where they run."""
    marker = atheris_requirement().marker
    assert isinstance(marker, Marker)
    assert marker.evaluate({"platform_machine": machine, "platform_system": system}) is installs


@pytest.mark.parametrize("schema", list(exi.SCHEMAS))
def test_fuzz_smoke(schema, tmp_path):
    _need_atheris()
    r = subprocess.run([sys.executable, str(ROOT / "fuzz" / "fuzz_exi.py"), schema, str(tmp_path / "corpus"),
                        "-atheris_runs=1500", "-rss_limit_mb=2048"],
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 1500" in r.stderr

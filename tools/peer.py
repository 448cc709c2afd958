"""The independent ISO 15118 implementation we test against: the PyPI package ``iso15118``
(0.31.2, with its JVM EXI codec), installed in its own virtual environment because its import
name collides with ours.

    python -m tools.peer            # create or reuse the environment, print its python

The environment lives in ``$V2H_PEER_VENV`` or ``.peer-venv/`` in the repository (git-ignored),
so one CI run installs it once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ["iso15118==0.31.2", "aiofile"]  # 0.31.2 imports aiofile without declaring it


class PeerUnavailable(Exception):
    """The peer cannot run here (no Java, no package index); the message says why."""


def venv_dir() -> Path:
    return Path(os.environ.get("V2H_PEER_VENV", ROOT / ".peer-venv"))


def ensure_peer() -> Path:
    """The peer environment's python, installing it on first use."""
    if shutil.which("java") is None:
        raise PeerUnavailable("java not found (Debian: apt-get install openjdk-17-jre-headless)")
    venv = venv_dir()
    py = venv / "bin" / "python"
    marker = venv / ".v2h-peer-ok"
    if marker.exists() and marker.read_text() == " ".join(REQUIREMENTS):
        return py
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(py), "-m", "pip", "install", "-q", *REQUIREMENTS]]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise PeerUnavailable(f"{' '.join(cmd[-3:])} failed: {r.stderr.strip()[-300:]}")
    marker.write_text(" ".join(REQUIREMENTS))
    return py


def site_packages(py: Path) -> Path:
    """Where the peer package is installed (its EXICodec.jar, its example configs)."""
    r = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       capture_output=True, text=True, check=True)
    return Path(r.stdout.strip())


if __name__ == "__main__":
    try:
        print(ensure_peer())
    except PeerUnavailable as e:
        print(f"peer unavailable: {e}", file=sys.stderr)
        sys.exit(1)

"""The examples run and say what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(name: str) -> str:
    r = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_decode_message():
    out = run("decode_message.py")
    assert "EVTargetCurrent:" in out and "re-encoded:" in out


def test_discharge_into_the_house():
    out = run("discharge_into_the_house.py")
    m = re.search(r"the car gave ([\d.]+) kWh; SoC 45.0 % → ([\d.]+) %", out)
    assert m and float(m.group(1)) > 5 and 30.0 <= float(m.group(2)) < 45.0, out
    meter = re.search(r"meter: ([\d.]+) kWh exported", out)
    assert meter and abs(float(meter.group(1)) - float(m.group(1))) < 0.05

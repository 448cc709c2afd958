"""Running `v2h charger` and `v2h evcc` as processes against the tests' CSMS with a pool."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from ..ocpp.test_charger import CLI, PASSWORD, _start_charger  # noqa: F401 (PASSWORD: for the tests here)

# `v2h charger ARGS` → (its process, the SECC's TLS port from its listening line)
start_charger = _start_charger


@dataclass
class CarRun:
    returncode: int
    stdout: str
    stderr: str
    log: list[dict]

    def messages(self, name: str) -> list[dict]:
        return [d["message"][name] for d in self.log if d.get("name") == name]


async def run_car(port: int, pki: Path, log: Path, *args: str) -> CarRun:
    """One `v2h evcc` session to the charger on [::1]:port with Plug & Charge."""
    car = await asyncio.create_subprocess_exec(
        *CLI, "evcc", "--secc", f"[::1]:{port}", "--pki", str(pki), "--auth", "pnc", "--soc", "60", "--loops", "3",
        "--loop-period", "0.1", "--quiet", "--log", str(log), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await car.communicate()
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return CarRun(car.returncode, out.decode(), err.decode(), entries)

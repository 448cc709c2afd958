"""The short reference day (hems.day.SHORT) over real sockets: `v2h charger` and two `v2h evcc`
sessions as processes, the house's CSMS (hems.csms behind hems.aio.csms_server) on websockets,
ISO 15118-20 over TLS 1.3 — and the same decisions as the in-memory chain."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from datetime import datetime

from hems.aio.csms_server import CSMSServer
from hems.csms import CSMSCore, central_setpoint
from hems.day import SHORT, decisions, run_day

CLI = [sys.executable, "-m", "v2h.cli"]
PASSWORD = "a-very-secret-passphrase"


def _loop_power(log_path) -> list[tuple[float, float]]:
    out = []
    for d in map(json.loads, log_path.read_text().splitlines()):
        if d.get("name") == "DC_ChargeLoopRes":
            m = d["message"]["DC_ChargeLoopRes"]
            i, v = m["EVSEPresentCurrent"], m["EVSEPresentVoltage"]
            out.append((datetime.fromisoformat(d["time"].replace("Z", "+00:00")).timestamp(),
                        i["Value"] * 10.0 ** i["Exponent"] * v["Value"] * 10.0 ** v["Exponent"]))
    return out


def test_the_short_day_over_real_sockets_decides_as_in_memory(v2g_pki, tmp_path):
    plan, m = SHORT, SHORT.marks()
    logs = [tmp_path / "car1.jsonl", tmp_path / "car2.jsonl"]

    async def run():
        core = CSMSCore()
        server = await CSMSServer(core, passwords={"CS900": PASSWORD}).start()
        port = server.port
        charger = subprocess.Popen([*CLI, "charger", "--pki", str(v2g_pki), "--host", "::1", "--csms",
                                    f"ws://127.0.0.1:{port}", "--id", "CS900", "--password", PASSWORD,
                                    "--db", str(tmp_path / "cs.db"), "--setpoint", "0", "--quiet",
                                    "--retry-backoff", str(plan.retry_backoff), "--retry-random", str(plan.retry_backoff)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, charger.stdout.readline)
        secc_port = int(re.search(r"listening on port (\d+)", line).group(1))
        while "CS900" not in core.links or core.stations["CS900"].boot is None:
            await asyncio.sleep(0.02)
        t0 = time.time()
        answers, cars = [], []

        async def at(t):
            await asyncio.sleep(max(0.0, t0 + t - time.time()))

        async def setpoints():
            for t, watts in plan.setpoint_changes():
                await at(t)
                server.call("CS900", "SetChargingProfile", central_setpoint(
                    watts, max_offline_duration=plan.max_offline, discharge_limit_w=-11000.0), answers.append)

        async def car(n, start, end):
            await at(start)
            cfg = plan.car_config(start, end)
            proc = await asyncio.create_subprocess_exec(
                *CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service", "DC_BPT",
                "--soc", "40", "--capacity", "100", "--loops", str(cfg.loops), "--loop-period", str(cfg.loop_period),
                "--quiet", "--log", str(logs[n]), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            cars.append((proc.returncode, err.decode()))

        async def outage():
            nonlocal server
            await at(m["outage"])
            await server.close()
            await at(m["late"])
            server = await CSMSServer(core, passwords={"CS900": PASSWORD}).start(port=port)

        try:
            await asyncio.gather(setpoints(), outage(), car(0, plan.settle, m["away"] - plan.settle),
                                 car(1, m["afternoon"], m["end"] + plan.settle))
            await at(m["end"] + 1.0)
        finally:
            charger.terminate()
            await loop.run_in_executor(None, charger.wait, 20)
            await server.close()
        return t0, answers, cars, core

    t0, answers, cars, core = asyncio.run(run())
    assert [rc for rc, _ in cars] == [0, 0], cars
    assert answers == [{"status": "Accepted"}] * 4
    power = sorted(_loop_power(logs[0]) + _loop_power(logs[1]))
    rows = []
    for name, start in m.items():  # the car's view: no loop message means no power
        if name == "end":
            continue
        t = t0 + start + 0.75 * getattr(plan, name)
        near = [p for ts, p in power if abs(ts - t) < 0.15]
        rows.append((name, int(round((near[0] if near else 0.0) / 1000.0))))
    _, memory = run_day(t0, plan=SHORT)
    assert rows == [(name, kw) for name, _, kw in decisions(memory, SHORT, t0)]
    txs = core.stations["CS900"].transactions
    assert len(txs) == 2 and all(t.ended for t in txs)

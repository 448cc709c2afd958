"""`v2h hems` as a real process with `v2h charger` and `v2h evcc`: the house's OCPP 2.1 server, the
site controller islanding the house on the car through the charger during an outage, the HTTP
API (status, events, settings persisted across a restart, bad values refused), and a station
made from the `ocpp` package's own ChargePoint (not ours) talking to the same server."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

CLI = [sys.executable, "-m", "v2h.cli"]
PASSWORD = "a-16-to-40-char-password"
CONFIG = """
[site]
nominal_voltage = 230
nominal_frequency = 50
inverter_max_w = 7400
reserve_soc = 20
return_stable_s = 3

[[circuits]]
name = "fridge"
priority = "critical"
power_w = 300

[[circuits]]
name = "lights"
priority = "essential"
power_w = 700

[[circuits]]
name = "dryer"
priority = "deferrable"
power_w = 3000

[ocpp]
port = 0

[ocpp.stations]
CS001 = "a-16-to-40-char-password"
CS777 = "another-16-to-40-char-pw"

[charger]
station_id = "CS001"
meter_interval_s = 1

[plan]
enabled = false

[http]
port = 0

[[events]]
at_s = 12
grid_voltage = 0
grid_frequency = 0

[[events]]
at_s = 22
grid_voltage = 230
grid_frequency = 50
"""


def _start_hems(tmp_path, db="hems.db", station="CS001"):
    cfg = tmp_path / "hems.toml"
    cfg.write_text(CONFIG.replace('station_id = "CS001"', f'station_id = "{station}"'))
    proc = subprocess.Popen([*CLI, "hems", "--config", str(cfg), "--db", str(tmp_path / db), "-q", "--status-file",
                             str(tmp_path / "final.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r":(\d+)/\{station\}, HTTP on port (\d+)", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"no listening line: {line!r} {proc.stderr.read()}")
    return proc, int(m.group(1)), int(m.group(2))


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


def _post(port: int, path: str, body) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_house_islands_on_the_car_through_real_processes(v2g_pki, tmp_path):
    hems, ocpp_port, http_port = _start_hems(tmp_path)
    charger = subprocess.Popen([*CLI, "charger", "--pki", str(v2g_pki), "--host", "::1", "--csms",
                                f"ws://127.0.0.1:{ocpp_port}", "--id", "CS001", "--password", PASSWORD,
                                "--db", str(tmp_path / "cs.db"), "--setpoint", "0", "--quiet", "--retry-backoff", "0.2",
                                "--retry-random", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        secc_port = int(re.search(r"listening on port (\d+)", charger.stdout.readline()).group(1))
        car = subprocess.Popen([*CLI, "evcc", "--secc", f"[::1]:{secc_port}", "--pki", str(v2g_pki), "--service",
                                "DC_BPT", "--soc", "70", "--loops", "400", "--loop-period", "0.1", "--quiet",
                                "--log", str(tmp_path / "ev.jsonl")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        seen, t_end = [], time.monotonic() + 45
        while time.monotonic() < t_end and car.poll() is None:
            s = _get(http_port, "/api/status")
            seen.append((s["phase"], s["islanded"], s["charger"]["measured_w"], s["house"]["load_w"]))
            if len(seen) > 5 and seen[-1][0] == "connected" and any(x[1] for x in seen):
                break
            time.sleep(0.25)
        status = _get(http_port, "/api/status")
        bad = _post(http_port, "/api/settings", {"reserve_soc": 150})
        unknown = _post(http_port, "/api/settings", {"reserve": 30})
        good = _post(http_port, "/api/settings", {"reserve_soc": 35, "priorities": {"lights": "critical"}})
        car.terminate()
        car_out = car.communicate(timeout=10)
    finally:
        charger.terminate()
        charger.wait(20)
        hems.terminate()
        hems.wait(20)
    phases = [p for p, *_ in seen]
    assert "islanded" in phases and phases[-1] == "connected", (phases, car_out)
    island = [(w, load) for p, isl, w, load in seen if p == "islanded" and isl and w < 0]
    assert island and all(abs(w + load) < 200 for w, load in island[-3:]), island  # the car carries the house
    assert status["charger"]["link_up"] and status["car"]["plugged"]
    assert bad[0] == 400 and "reserve_soc" in bad[1]["error"]
    assert unknown[0] == 400 and "reserve" in unknown[1]["error"]
    assert good == (200, {"reserve_soc": 35.0, "departure": None, "priorities": {
        "fridge": "critical", "lights": "critical", "dryer": "deferrable"}})
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["summary"]["invariants_ok"], final["summary"]["violations"]
    kinds = {d["kind"] for d in final["decisions"]}
    assert {"site", "charger", "settings"} <= kinds

    # a restart keeps the settings (SQLite) and the transactions the charger reported
    hems, ocpp_port, http_port = _start_hems(tmp_path)
    try:
        again = _get(http_port, "/api/status")["settings"]
        txs = _get(http_port, "/api/transactions")["transactions"]
    finally:
        hems.terminate()
        hems.wait(20)
    assert again["reserve_soc"] == 35.0 and again["priorities"]["lights"] == "critical"
    assert len(txs) == 1 and txs[0]["station"] == "CS001" and txs[0]["events"] >= 3


def test_a_station_built_on_the_ocpp_package_talks_to_the_house(tmp_path):
    """Not our station: the `ocpp` package's own v2.1 ChargePoint boots, reports a transaction and
    meter values, and receives the manager's charging profile; a second connection with its
    identity is refused while it is connected, and a wrong password too."""
    import websockets
    from ocpp.routing import on
    from ocpp.v21 import ChargePoint, call, call_result

    hems, ocpp_port, http_port = _start_hems(tmp_path, station="CS777")
    received = []

    class Station(ChargePoint):
        @on("SetVariables")
        def set_variables(self, set_variable_data, **_):
            received.append("SetVariables")
            return call_result.SetVariables(set_variable_result=[
                {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"]}
                for d in set_variable_data])

        @on("SetChargingProfile")
        def set_charging_profile(self, evse_id, charging_profile, **_):
            received.append(charging_profile["charging_schedule"][0]["charging_schedule_period"][0])
            return call_result.SetChargingProfile(status="Accepted")

    async def run():
        import base64
        auth = {"Authorization": "Basic " + base64.b64encode(b"CS777:another-16-to-40-char-pw").decode()}
        async with websockets.connect(f"ws://127.0.0.1:{ocpp_port}/CS777", subprotocols=["ocpp2.1"],
                                      additional_headers=auth) as ws:
            cp = Station("CS777", ws)
            reader = asyncio.ensure_future(cp.start())
            boot = await cp.call(call.BootNotification(charging_station={"vendor_name": "other", "model": "x"},
                                                       reason="PowerUp"))
            await cp.call(call.StatusNotification(timestamp="2026-11-30T10:00:00Z", connector_status="Occupied",
                                                  evse_id=1, connector_id=1))
            await cp.call(call.TransactionEvent(event_type="Started", timestamp="2026-11-30T10:00:01Z",
                                                trigger_reason="CablePluggedIn", seq_no=0,
                                                transaction_info={"transaction_id": "tx-other"},
                                                evse={"id": 1, "connector_id": 1}))
            await cp.call(call.MeterValues(evse_id=1, meter_value=[{"timestamp": "2026-11-30T10:00:02Z",
                                                                     "sampled_value": [{"value": 1234.0}]}]))
            dup_status = None
            try:
                async with websockets.connect(f"ws://127.0.0.1:{ocpp_port}/CS777", subprotocols=["ocpp2.1"],
                                              additional_headers=auth):
                    dup_status = "accepted"
            except websockets.exceptions.InvalidStatus as e:
                dup_status = e.response.status_code
            wrong = None
            try:
                bad = {"Authorization": "Basic " + base64.b64encode(b"CS777:not-the-right-password").decode()}
                async with websockets.connect(f"ws://127.0.0.1:{ocpp_port}/CS777", subprotocols=["ocpp2.1"],
                                              additional_headers=bad):
                    wrong = "accepted"
            except websockets.exceptions.InvalidStatus as e:
                wrong = e.response.status_code
            for _ in range(100):  # the manager configures the charger, then sends its (idle) profile
                if any(isinstance(r, dict) for r in received):
                    break
                await asyncio.sleep(0.05)
            reader.cancel()
            return boot, dup_status, wrong

    try:
        boot, dup_status, wrong = asyncio.run(run())
        txs = _get(http_port, "/api/transactions")["transactions"]
    finally:
        hems.terminate()
        hems.wait(20)
    assert boot.status == "Accepted"
    assert dup_status == 409 and wrong == 401
    assert [t["id"] for t in txs] == ["tx-other"] and txs[0]["station"] == "CS777"
    assert received[:2] == ["SetVariables", "SetVariables"]  # TxUpdatedInterval, then V2HSiteCtrlr.Islanded
    assert received[2]["operation_mode"] == "Idle"  # the site controller has nothing for it to do


def test_v2h_hems_says_what_it_decides_and_quiet_says_nothing(tmp_path):
    """By default each decision is a line on stdout with its simulated time and reason (an outage
    without a car: dark, then back after the stability window); -q keeps stdout to the listening
    line."""
    from hems.hems_config import DEFAULT

    cfg = tmp_path / "hems.toml"
    cfg.write_text(DEFAULT.replace("port = 9000", "port = 0").replace("port = 8080", "port = 0")
                   + "\n[[events]]\nat_s = 5\ngrid_voltage = 0\ngrid_frequency = 0\n"
                   + "\n[[events]]\nat_s = 20\ngrid_voltage = 230\ngrid_frequency = 50\n")
    start = 1_811_808_000.0  # 2027-06-01 00:00 UTC

    def run(*flags: str) -> subprocess.CompletedProcess:
        clock = f"{start!r}:200.0:{time.time() + 1.0!r}"
        return subprocess.run([*CLI, "hems", "--config", str(cfg), "--db", str(tmp_path / f"h{len(flags)}.db"),
                               "--clock", clock, "--until", repr(start + 400), *flags],
                              capture_output=True, text=True, timeout=60)

    said = run()
    assert said.returncode == 0, said.stderr
    lines = said.stdout.splitlines()
    assert "HTTP on port" in lines[0]
    assert any(re.match(r"2027-06-01 00:00:0\d site: outage", ln) for ln in lines), lines
    assert any(re.match(r"2027-06-01 00:0[5-6]:\d\d site: .*back on the grid", ln) for ln in lines), lines
    quiet = run("-q")
    assert quiet.returncode == 0, quiet.stderr
    assert len(quiet.stdout.splitlines()) == 1 and "HTTP on port" in quiet.stdout

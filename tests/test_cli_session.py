"""``v2h secc`` and ``v2h evcc`` as real processes: on loopback, and across a veth pair
between two network namespaces with SDP."""

from __future__ import annotations

import json
import re
import subprocess
import sys


CLI = [sys.executable, "-m", "iso15118.cli"]


def _start_secc(args: list[str], prefix: list[str] = ()) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([*prefix, *CLI, "secc", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on port (\d+)", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"no listening line: {line!r} {proc.stderr.read()}")
    return proc, int(m.group(1))


def test_dc_bpt_discharge_session_between_two_processes(v2g_pki, tmp_path):
    secc_log, evcc_log = tmp_path / "secc.jsonl", tmp_path / "evcc.jsonl"
    secc, port = _start_secc(["--pki", str(v2g_pki), "--host", "::1", "--setpoint", "-7000", "--once",
                              "--log", str(secc_log)])
    try:
        ev = subprocess.run([*CLI, "evcc", "--secc", f"[::1]:{port}", "--pki", str(v2g_pki), "--service", "DC_BPT",
                             "--control-mode", "dynamic", "--auth", "pnc", "--soc", "80", "--capacity", "1",
                             "--loops", "6", "--loop-period", "0.1", "--log", str(evcc_log)],
                            capture_output=True, text=True, timeout=60)
        out, err = secc.communicate(timeout=30)
    finally:
        secc.kill()
    assert ev.returncode == 0, ev.stderr
    assert secc.returncode == 0, err
    assert "DC_ChargeLoopReq" in ev.stdout and "EVCC →" in ev.stdout
    summary = ev.stdout.strip().splitlines()[-1]
    m = re.search(r"6 charge loops, charged 0.00 Wh, discharged ([\d.]+) Wh, SoC 80.000% → ([\d.]+)%", summary)
    assert m and float(m.group(1)) > 0 and float(m.group(2)) < 80.0, summary
    assert "SECC ←" in out and "ended: SessionStopRes OK" in out
    for path, first in ((evcc_log, "tx"), (secc_log, "rx")):
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        assert lines[0]["direction"] == first and lines[0]["name"] == "supportedAppProtocolReq"
        assert lines[-1]["name"] == "SessionStopRes"
        loop = next(x for x in lines if x["name"] == "DC_ChargeLoopRes")
        current = loop["message"]["DC_ChargeLoopRes"]["EVSEPresentCurrent"]
        assert current["Value"] < 0  # discharging


def test_evcc_reports_a_failed_session(v2g_pki):
    """The charger does not offer PnC without contract roots in a foreign PKI: here the car
    asks for a service the charger's handshake cannot give (wrong address → no charger)."""
    r = subprocess.run([*CLI, "evcc", "--secc", "not-an-address", "--pki", str(v2g_pki)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "HOST:PORT" in r.stderr


def test_missing_pki_is_a_clear_error(tmp_path):
    r = subprocess.run([*CLI, "secc", "--pki", str(tmp_path / "nope")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "v2h pki init" in r.stderr


def test_session_with_sdp_across_network_namespaces(veth_pair, v2g_pki):
    ns_a, dev_a, ns_b, dev_b = veth_pair
    secc, port = _start_secc(["--interface", dev_a, "--pki", str(v2g_pki), "--setpoint", "-5000", "--once",
                              "--quiet"], prefix=["ip", "netns", "exec", ns_a])
    try:
        ev = subprocess.run(["ip", "netns", "exec", ns_b, *CLI, "evcc", "--interface", dev_b, "--pki", str(v2g_pki),
                             "--service", "AC_BPT", "--loops", "3", "--loop-period", "0.1", "--quiet"],
                            capture_output=True, text=True, timeout=60)
        if ev.returncode != 0:
            secc.kill()
        secc.communicate(timeout=30)
    finally:
        secc.kill()
    assert ev.returncode == 0, ev.stderr
    assert secc.returncode == 0
    assert "3 charge loops" in ev.stdout and "discharged 0.00 Wh" not in ev.stdout

"""``v2h secc`` and ``v2h evcc`` as real processes: on loopback, and across a veth pair
between two network namespaces with SDP."""

from __future__ import annotations

import json
import re
import subprocess
import sys


CLI = [sys.executable, "-m", "v2h.cli"]


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
    assert re.search(r"over TLSv1\.3 TLS_AES_256_GCM_SHA384 secp521r1 ended", summary), summary
    secc_notes = [json.loads(x)["note"] for x in secc_log.read_text().splitlines() if '"note"' in x]
    assert re.fullmatch(r"connection from ::1: TLSv1\.3 TLS_AES_256_GCM_SHA384 secp521r1", secc_notes[0]), secc_notes
    for path, first in ((evcc_log, "tx"), (secc_log, "rx")):
        lines = [doc for doc in map(json.loads, path.read_text().splitlines()) if "note" not in doc]
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
    secc, port = _start_secc(["--interface", dev_a, "--kind", "AC", "--pki", str(v2g_pki), "--setpoint", "-5000", "--once",
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


def test_secc_flags_choose_what_the_charger_offers(v2g_pki, tmp_path):
    """--kind, --auth, --control-modes and --price-levels reach the messages on the wire."""
    log = tmp_path / "secc.jsonl"
    secc, port = _start_secc(["--pki", str(v2g_pki), "--host", "::1", "--kind", "AC", "--auth", "eim",
                              "--control-modes", "dynamic", "--price-levels", "3600:0,7200:2", "--once", "--quiet",
                              "--log", str(log)])
    try:
        ev = subprocess.run([*CLI, "evcc", "--secc", f"[::1]:{port}", "--pki", str(v2g_pki), "--service", "AC",
                             "--control-mode", "dynamic", "--loops", "2", "--loop-period", "0.05", "--quiet"],
                            capture_output=True, text=True, timeout=60)
        secc.communicate(timeout=30)
    finally:
        secc.kill()
    assert ev.returncode == 0, ev.stderr
    sent = {d["name"]: d["message"][d["name"]] for d in map(json.loads, log.read_text().splitlines())
            if d.get("direction") == "tx"}
    assert sent["AuthorizationSetupRes"]["AuthorizationServices"] == ["EIM"]
    assert [s["ServiceID"] for s in sent["ServiceDiscoveryRes"]["EnergyTransferServiceList"]["Service"]] == [1, 5]
    assert [p["ParameterSetID"] for p in sent["ServiceDetailRes"]["ServiceParameterList"]["ParameterSet"]] == [2]
    pls = sent["ScheduleExchangeRes"]["Dynamic_SEResControlMode"]["PriceLevelSchedule"]
    assert pls["NumberOfPriceLevels"] == 3
    assert [(e["Duration"], e["PriceLevel"]) for e in pls["PriceLevelScheduleEntries"]["PriceLevelScheduleEntry"]] \
        == [(3600, 0), (7200, 2)]


def test_secc_refuses_malformed_offers(v2g_pki):
    for flags, message in ((["--auth", "eim,rfid"], "comma-separated list of eim, pnc"),
                           (["--control-modes", ""], "comma-separated list"),
                           (["--price-levels", "3600"], "seconds:level pairs"),
                           (["--price-levels", "3600:300"], "out of range")):
        r = subprocess.run([*CLI, "secc", "--pki", str(v2g_pki), "--host", "::1", *flags], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode != 0 and message in r.stderr, (flags, r.stderr)

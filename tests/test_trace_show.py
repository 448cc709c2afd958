"""The readable trace (iso15118.aio.trace): per charge loop the power in kW with its direction
and the SoC with one decimal, the direction a discharge actually used, OCPP key fields, the
short mode with its progress line; and v2h trace show, which renders JSON lines filtered by
name and time."""

from __future__ import annotations

import copy
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from iso15118.aio.trace import Line, MessageLog, TraceRenderer, TraceWriter, ocpp_summary
from tests.conftest import load_vectors

VEC = {v["name"]: v for v in load_vectors("reference.json")}
CLI = [sys.executable, "-m", "v2h.cli"]


def loop_records(n: int, current_a: float = -18.5, voltage: int = 400, soc: int = 59, t0: str = "10:00:0") -> list:
    """A PowerDelivery Start (channel Charge), ``n`` DC charge loops at ``current_a``, Stop."""
    req = copy.deepcopy(VEC["DC_ChargeLoopReq_bpt_min"]["content"])
    req["DC_ChargeLoopReq"]["DisplayParameters"] = {"PresentSOC": soc}
    res = copy.deepcopy(VEC["DC_ChargeLoopRes_bpt_min"]["content"])
    res["DC_ChargeLoopRes"]["EVSEPresentCurrent"] = {"Exponent": -1, "Value": int(current_a * 10)}
    res["DC_ChargeLoopRes"]["EVSEPresentVoltage"] = {"Exponent": 0, "Value": voltage}
    pd = {"PowerDeliveryReq": {"Header": {"SessionID": "00", "TimeStamp": 0}, "EVProcessing": "Finished",
                               "ChargeProgress": "Start", "BPT_ChannelSelection": "Charge"}}
    pd_res = {"PowerDeliveryRes": {"Header": {"SessionID": "00", "TimeStamp": 0}, "ResponseCode": "OK"}}
    stop = copy.deepcopy(pd)
    stop["PowerDeliveryReq"]["ChargeProgress"] = "Stop"
    del stop["PowerDeliveryReq"]["BPT_ChannelSelection"]
    recs = [("rx", "PowerDeliveryReq", pd), ("tx", "PowerDeliveryRes", pd_res)]
    for _ in range(n):
        recs += [("rx", "DC_ChargeLoopReq", req), ("tx", "DC_ChargeLoopRes", res)]
    recs += [("rx", "PowerDeliveryReq", stop), ("tx", "PowerDeliveryRes", pd_res)]
    return [{"time": f"2026-11-30T10:00:{i:02d}.000Z", "direction": d, "name": name, "message": m}
            for i, (d, name, m) in enumerate(recs)]


def render(records, mode="full", who="SECC") -> list[Line]:
    r = TraceRenderer(who, mode)
    return [line for rec in records for line in r.record(rec)]


def test_each_charge_loop_shows_power_direction_and_soc():
    lines = [x.text for x in render(loop_records(2))]
    loops = [x for x in lines if "DC_ChargeLoopRes" in x]
    assert len(loops) == 2
    assert all("discharging 7.40 kW (400 V × -18.5 A), SoC 59.0 %" in x for x in loops), loops
    assert lines[0].startswith("10:00:00.000 SECC ← PowerDeliveryReq") and "BPT_ChannelSelection=Charge" in lines[0]
    charging = [x.text for x in render(loop_records(1, current_a=25.0)) if "DC_ChargeLoopRes" in x.text]
    assert "charging 10.00 kW" in charging[0] and "discharging" not in charging[0]


def test_a_discharge_shows_the_direction_actually_used():
    """The car selected channel Charge, the charger's target made it a discharge: the trace
    says so when the power starts flowing, and PowerDelivery Stop says what it ended."""
    lines = [x.text for x in render(loop_records(2))]
    flow = [x for x in lines if "power flows" in x]
    assert flow == ["10:00:03.000 SECC power flows out of the car (discharging); the car selected channel Charge at "
                    "PowerDelivery, the charger's target decides the direction"]
    assert any("PowerDeliveryReq" in x and "ChargeProgress=Stop (after discharging)" in x for x in lines)
    assert not any("power flows" in x.text for x in render(loop_records(2, current_a=20.0)))


def test_the_short_trace_is_a_line_per_state_change_and_a_progress_line_in_the_loop():
    lines = render(loop_records(5), mode="short")
    kinds = [(x.kind, x.text.split(" ", 2)[2].split(":")[0]) for x in lines]
    assert kinds == [("line", "PowerDelivery"), ("line", "DC_ChargeLoop #1"), ("line", "power flows out of the car "
                                                                                       "(discharging); the car "
                                                                                       "selected channel Charge at "
                                                                                       "PowerDelivery, the charger's "
                                                                                       "target decides the direction"),
                     *[("progress", f"DC_ChargeLoop #{i}") for i in range(2, 6)], ("line", "PowerDelivery")]
    assert lines[-1].text.endswith("PowerDelivery: Stop (after discharging) OK")
    assert "DC_ChargeLoop #5: discharging 7.40 kW (400 V × -18.5 A), SoC 59.0 %" in lines[-2].text


def test_a_terminal_gets_the_progress_line_rewritten_in_place():
    out = io.StringIO()
    w = TraceWriter(out, tty=True)
    w.write(render(loop_records(3), mode="short"))
    w.close()
    text = out.getvalue()
    assert "\r\x1b[KSECC DC_ChargeLoop #2" not in text  # the stamp comes first
    assert re.search(r"\r\x1b\[K10:00:\d\d\.000 SECC DC_ChargeLoop #3: discharging", text)
    assert text.count("\n") == 5  # PowerDelivery, loop 1, the flow note, the last progress line, Stop


def test_elsewhere_progress_lines_are_thinned_out():
    out = io.StringIO()
    w = TraceWriter(out, tty=False, every=5.0)
    w.write(render(loop_records(20), mode="short"))
    w.close()
    loops = [x for x in out.getvalue().splitlines() if "DC_ChargeLoop #" in x]
    # #1 is a line; then a progress line at most every 5 s of the records' time, and the last one
    assert [int(re.search(r"#(\d+)", x).group(1)) for x in loops] == [1, 2, 5, 8, 11, 14, 17, 20]


def test_iso2_and_din_loops_show_power_and_soc():
    req = VEC["ISO2_CurrentDemandReq"]["content"]
    res = {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"CurrentDemandRes": {
        "ResponseCode": "OK", "EVSEPresentVoltage": {"Multiplier": 0, "Unit": "V", "Value": 400},
        "EVSEPresentCurrent": {"Multiplier": 0, "Unit": "A", "Value": 125}}}}}
    lines = render([{"time": "2026-11-30T10:00:00Z", "direction": "tx", "name": "CurrentDemandReq", "message": req},
                    {"time": "2026-11-30T10:00:01Z", "direction": "rx", "name": "CurrentDemandRes", "message": res}],
                   who="EVCC")
    assert "SoC 42.0 %" in lines[0].text and "EVCC →" in lines[0].text
    assert "charging 50.00 kW (400 V × 125 A), SoC 42.0 %" in lines[1].text


@pytest.mark.parametrize("name,frame,expected", [
    ("SetChargingProfile", [2, "1", "SetChargingProfile", {"evseId": 1, "chargingProfile": {
        "id": 7, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
            {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -7000.0,
             "dischargeLimit": -11000.0}]}]}}],
     "evse 1 profile 7 TxProfile, from 0 s: CentralSetpoint setpoint discharging 7.00 kW discharge limit 11.00 kW"),
    ("SetChargingProfileResponse", [3, "1", {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidSchedule"}}],
     "Rejected (InvalidSchedule)"),
    ("TransactionEvent", [2, "2", "TransactionEvent", {
        "eventType": "Updated", "triggerReason": "MeterValuePeriodic", "seqNo": 3, "timestamp": "x",
        "transactionInfo": {"transactionId": "t", "chargingState": "Charging"}, "meterValue": [{
            "timestamp": "x", "sampledValue": [
                {"value": 12.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": 980.0, "measurand": "Energy.Active.Export.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": 0.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
                {"value": 6950.0, "measurand": "Power.Active.Export", "unitOfMeasure": {"unit": "W"}},
                {"value": 58, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}}]}]}],
     "Updated (MeterValuePeriodic) Charging discharging 6.95 kW, imported 0.013 kWh, exported 0.980 kWh, SoC 58.0 %"),
    ("TransactionEvent", [2, "3", "TransactionEvent", {"eventType": "Ended", "triggerReason": "StopAuthorized",
                                                       "seqNo": 9, "timestamp": "x", "offline": True,
                                                       "transactionInfo": {"transactionId": "t",
                                                                           "stoppedReason": "Local"}}],
     "Ended (StopAuthorized) stopped: Local offline"),
    ("BootNotificationResponse", [3, "4", {"status": "Accepted", "interval": 300, "currentTime": "x"}],
     "Accepted heartbeat every 300 s"),
    ("TransactionEventResponse", [4, "5", "FormationViolation", "bad payload", {}],
     "CALLERROR FormationViolation: bad payload"),
])
def test_ocpp_lines_show_their_key_fields(name, frame, expected):
    assert ocpp_summary(name, frame) == expected


def test_the_short_trace_leaves_out_periodic_ocpp_messages():
    r = TraceRenderer("", "short")
    heartbeat = r.ocpp(0.0, "tx", "Heartbeat", [2, "1", "Heartbeat", {}])
    updated = r.ocpp(0.0, "tx", "TransactionEvent", [2, "1", "TransactionEvent", {"eventType": "Updated"}])
    profile = r.ocpp(0.0, "rx", "SetChargingProfile", [2, "1", "SetChargingProfile", {}])
    assert heartbeat == [] and updated == [] and len(profile) == 1


def _write_log(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_trace_show_renders_and_filters(tmp_path):
    log = tmp_path / "secc.jsonl"
    records = loop_records(3)
    records.insert(0, {"time": "2026-11-30T09:59:59.000Z", "note": "connection from ::1: TLSv1.3"})
    records.append({"time": "2026-11-30T10:00:30.000Z", "direction": "rx", "name": "SetChargingProfile",
                    "ocpp": [2, "9", "SetChargingProfile", {"evseId": 1, "chargingProfile": {"id": 1}}]})
    _write_log(log, records)
    r = subprocess.run([*CLI, "trace", "show", str(log)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "09:59:59.000 connection from ::1: TLSv1.3"
    assert sum("discharging 7.40 kW" in x for x in lines) == 3
    assert lines[-1] == "10:00:30.000 OCPP ← SetChargingProfile evse 1 profile 1"
    only = subprocess.run([*CLI, "trace", "show", str(log), "--name", "dc_chargeloopres", "--since", "10:00:04",
                           "--until", "2026-11-30T10:00:06Z", "--who", "SECC"], capture_output=True, text=True,
                          timeout=60)
    assert only.returncode == 0, only.stderr
    assert [x.split()[0] for x in only.stdout.splitlines()] == ["10:00:05.000"]
    assert "SECC → DC_ChargeLoopRes" in only.stdout
    short = subprocess.run([*CLI, "trace", "show", str(log), "--trace", "short"], capture_output=True, text=True,
                           timeout=60)
    assert "DC_ChargeLoop #3: discharging 7.40 kW" in short.stdout and "DC_ChargeLoopReq" not in short.stdout


@pytest.mark.parametrize("content,needle", [
    ('{"time": "x"}\n{not json\n', "line 2: not JSON"),
    ('[1, 2]\n', "line 1: not a JSON object"),
])
def test_trace_show_names_a_bad_line(tmp_path, content, needle):
    log = tmp_path / "bad.jsonl"
    log.write_text(content)
    r = subprocess.run([*CLI, "trace", "show", str(log)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_trace_show_refuses_a_bad_time(tmp_path):
    log = tmp_path / "x.jsonl"
    _write_log(log, loop_records(1))
    r = subprocess.run([*CLI, "trace", "show", str(log), "--since", "yesterday"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "want a time like 10:02:35" in r.stderr


def test_unknown_records_are_shown_not_dropped():
    lines = render([{"time": "2026-11-30T10:00:00Z", "decision": "island", "load_w": 1500}])
    assert lines[0].text == '10:00:00.000 SECC {"decision": "island", "load_w": 1500}'


def test_message_log_writes_the_same_records_it_renders(tmp_path):
    from iso15118 import exi

    path = tmp_path / "log.jsonl"
    out = io.StringIO()
    log = MessageLog("EVCC", path=str(path), stream=out, clock_offset=1_790_000_000.0, mode="full")
    v = VEC["DC_ChargeLoopRes_bpt_min"]
    msg = exi.decode(bytes.fromhex(v["exi_hex"]), "iso20_dc")
    log(0.5, "rx", "DC_ChargeLoopRes", msg)
    log.note("session ended")
    log.close()
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    assert recs[0] == {"time": "2026-09-21T14:13:20.500Z", "direction": "rx", "name": "DC_ChargeLoopRes",
                       "message": v["content"]}
    assert recs[1]["note"] == "session ended"
    assert out.getvalue().splitlines()[0] == ("14:13:20.500 EVCC ← DC_ChargeLoopRes ResponseCode=OK "
                                              "EVSEPresentVoltage=400 V EVSEPresentCurrent=20 A BPT_Scheduled_DC │ "
                                              "charging 8.00 kW (400 V × 20 A)")


def test_a_terminal_gets_the_short_trace_by_default(v2g_pki, tmp_path):
    """v2h evcc on a terminal: a line per state change and the charge loop on one line
    rewritten in place; piped, the full trace (scripts and logs)."""
    from tests.test_cli_session import _start_secc

    secc, port = _start_secc(["--pki", str(v2g_pki), "--host", "::1", "--setpoint", "-7000", "--once", "--quiet"])
    master, slave = pty.openpty()
    try:
        car = subprocess.Popen([*CLI, "evcc", "--secc", f"[::1]:{port}", "--pki", str(v2g_pki), "--loops", "6",
                                "--loop-period", "0.05"], stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        chunks, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif car.poll() is not None:
                break
        car.wait(timeout=30)
        secc.communicate(timeout=30)
    finally:
        os.close(master)
        secc.kill()
    text = b"".join(chunks).decode()
    assert car.returncode == 0, text
    assert "\r\x1b[K" in text and re.search(r"DC_ChargeLoop #6: discharging 7\.00 kW", text), text
    assert "DC_ChargeLoopReq" not in text  # not the full trace
    assert re.search(r"EVCC SessionSetup: OK_NewSessionEstablished", text)


def test_a_merged_log_of_both_ends_shows_each_message_once_as_its_sender_logged_it(tmp_path):
    """v2h demo's messages.jsonl holds the charger's and the car's logs merged by time: each
    message twice, with opposite directions."""
    charger = loop_records(2)
    car = [{**r, "direction": "tx" if r["direction"] == "rx" else "rx"} for r in charger]
    merged = []
    for c, e in zip(charger, car):  # the sender logs first
        first, second = (e, c) if e["direction"] == "tx" else (c, e)
        merged += [first, {**second, "time": second["time"].replace(".000Z", ".002Z")}]
    log = tmp_path / "messages.jsonl"
    _write_log(log, merged)
    r = subprocess.run([*CLI, "trace", "show", str(log)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if "power flows" not in x]
    assert len(lines) == len(charger)
    assert all(re.search(r" (EVCC → \w+Req|SECC → \w+Res)\b", x) for x in lines), lines
    both = subprocess.run([*CLI, "trace", "show", str(log), "--both-sides"], capture_output=True, text=True,
                          timeout=60)
    assert len([x for x in both.stdout.splitlines() if "power flows" not in x]) == 2 * len(charger)
    assert "SECC ← PowerDeliveryReq" in both.stdout and "EVCC → PowerDeliveryReq" in both.stdout


def test_verbose_shows_the_whole_ocpp_payload():
    frame = [2, "1", "SetChargingProfile", {"evseId": 1, "chargingProfile": {"id": 3}}]
    plain = TraceRenderer("", "full").ocpp(0.0, "rx", "SetChargingProfile", frame)[0].text
    verbose = TraceRenderer("", "full", verbose=True).ocpp(0.0, "rx", "SetChargingProfile", frame)[0].text
    assert plain.endswith("SetChargingProfile evse 1 profile 3")
    assert verbose.endswith('SetChargingProfile evse 1 profile 3 {"evseId":1,"chargingProfile":{"id":3}}')

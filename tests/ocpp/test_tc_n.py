"""OCPP 2.0.1 part 6, charging-station test cases of block N (Diagnostics) and P (DataTransfer),
and the TriggerMessage cases for LogStatusNotification (TC_F_15, TC_F_16), scripted as the OCA
test system runs them (tests/ocpp/octt.py: the OCTT's log server on the simulated clock)."""

from __future__ import annotations

import json

from .octt import OCTT, TOKEN

LOGS = "https://files.octt.invalid/logs/"


def _get_log(o: OCTT, kind: str = "DiagnosticsLog", request_id: int = 9, **extra) -> dict:
    return o.ok("GetLog", {"logType": kind, "requestId": request_id, "log": {"remoteLocation": LOGS}, **extra})


def _log_status(o: OCTT, status: str, request_id: int | None = 9, timeout: float = 30.0):
    msg = o.expect("LogStatusNotification", timeout=timeout)
    assert (msg["status"], msg.get("requestId")) == (status, request_id), msg.payload
    return msg


def test_TC_N_25_CS():
    """Retrieve Log Information - Diagnostics Log - Success."""
    o = OCTT()
    answer = _get_log(o)                                                  # 1, 2
    assert answer["status"] == "Accepted" and answer["filename"]
    _log_status(o, "Uploading")                                           # 3, 4
    _log_status(o, "Uploaded")                                            # 5, 6
    (_, url, filename, data), = o.files.uploads
    assert url == LOGS and filename == answer["filename"]
    lines = [json.loads(x) for x in data.decode().splitlines()]
    assert lines[0]["station"] == "CS001" and any(x.get("name") == "BootNotification" for x in lines[1:])


def test_TC_N_26_CS():
    """Retrieve Log Information - Diagnostics Log - Upload failed: retries 3, retryInterval
    apart; from the first Uploading to the last UploadFailure 3 × retryInterval (and the
    upload's own time)."""
    o = OCTT()
    o.files.refuse_uploads = True
    interval = 20
    assert _get_log(o, retries=3, retryInterval=interval)["status"] == "Accepted"
    first = _log_status(o, "Uploading")
    last = None
    for attempt in range(4):
        last = _log_status(o, "UploadFailure", timeout=interval + 10)
        if attempt < 3:
            _log_status(o, "Uploading", timeout=interval + 10)
    spent = last.t - first.t
    assert 3 * interval <= spent <= 3 * interval + 4 * o.files.delay, spent
    o.quiet(interval * 2)                                                 # no fifth attempt


def test_TC_N_35_CS():
    """Retrieve Log Information - Security Log - Success: the security events of the station."""
    o = OCTT()
    assert _get_log(o, "SecurityLog")["status"] == "Accepted"
    _log_status(o, "Uploading")
    _log_status(o, "Uploaded")
    events = [json.loads(x) for x in o.files.uploads[0][3].decode().splitlines()]
    assert [e["type"] for e in events] == ["StartupOfTheDevice"]


def test_get_log_while_one_uploads_is_rejected():
    """v2h does not cancel an upload (so TC_N_36 does not apply): a second GetLog is Rejected."""
    o = OCTT()
    o.files.delay = 30
    assert _get_log(o)["status"] == "Accepted"
    _log_status(o, "Uploading")
    assert _get_log(o, request_id=10)["status"] == "Rejected"
    _log_status(o, "Uploaded", timeout=40)


def test_get_log_refuses_other_protocols():
    o = OCTT()
    answer = o.ok("GetLog", {"logType": "DiagnosticsLog", "requestId": 1, "log": {"remoteLocation": "ftp://x/y"}})
    assert answer["status"] == "Rejected"


def test_TC_F_15_CS():
    """Trigger message - LogStatusNotification - Idle."""
    o = OCTT()
    assert o.ok("TriggerMessage", {"requestedMessage": "LogStatusNotification"})["status"] == "Accepted"
    _log_status(o, "Idle", None)


def test_TC_F_16_CS():
    """Trigger message - LogStatusNotification - Uploading."""
    o = OCTT()
    o.files.delay = 60
    assert _get_log(o)["status"] == "Accepted"                            # 1, 2
    _log_status(o, "Uploading")                                           # 3, 4
    assert o.ok("TriggerMessage", {"requestedMessage": "LogStatusNotification"})["status"] == "Accepted"
    _log_status(o, "Uploading")                                           # 7, 8


def test_TC_N_32_CS():
    """Clear Customer Information - Clear and no report."""
    o = OCTT()
    answer = o.ok("CustomerInformation", {"requestId": 4, "report": False, "clear": True, "idToken": TOKEN})
    assert answer["status"] == "Accepted"                                 # 1, 2
    notify = o.expect("NotifyCustomerInformation")                        # 3, 4
    assert notify["requestId"] == 4 and notify["tbc"] is False and "Cleared" in notify["data"]


def test_customer_information_reports_and_clears_a_token():
    """What v2h holds about an idToken: the transaction it authorizes, messages set aside."""
    o = OCTT()
    o.transaction(remote=True)
    answer = o.ok("CustomerInformation", {"requestId": 5, "report": True, "clear": False, "idToken": TOKEN})
    assert answer["status"] == "Accepted"
    assert "authorizes transaction" in o.expect("NotifyCustomerInformation")["data"]
    assert o.ok("CustomerInformation", {"requestId": 6, "report": True, "clear": False,
                                        "customerIdentifier": "abc"})["status"] == "Rejected"


def test_TC_P_01_CS():
    """Data Transfer to the Charging Station - Rejected / Unknown VendorId / Unknown MessageId."""
    o = OCTT()
    answer = o.ok("DataTransfer", {"vendorId": "org.openchargealliance.octt", "messageId": "test"})
    assert answer["status"] in ("UnknownVendorId", "UnknownMessageId", "Rejected")


def test_TC_P_03_CS():
    """CustomData - Receive custom data."""
    o = OCTT()
    custom = {"vendorId": "org.openchargealliance.octt", "anything": [1, "two"]}
    res = o.ok("SetVariables", {"setVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {
        "name": "OfflineThreshold"}, "attributeValue": "200", "attributeType": "Actual"}], "customData": custom})
    assert res["setVariableResult"][0]["attributeStatus"] == "Accepted"   # 1, 2
    got = o.ok("GetVariables", {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {
        "name": "OfflineThreshold"}, "attributeType": "Actual", "customData": custom}], "customData": custom})
    r = got["getVariableResult"][0]
    assert r["attributeStatus"] == "Accepted" and r.get("attributeType", "Actual") == "Actual"
    assert r["attributeValue"] == "200"

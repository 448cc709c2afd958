"""OCPP 2.0.1 part 6, charging-station test cases of block B (Provisioning), scripted as the
OCA test system runs them against the station (tests/ocpp/octt.py: the CSMS in the test, the car
and the cable simulated, time simulated). Each test is one TC id with the steps and tool
validations of its table; "the station" is what `v2h charger` runs, minus the sockets."""

from __future__ import annotations

from .octt import OCTT, TOKEN, URL

URL2 = "ws://octt-2.invalid/ocpp"


def _var(component: str, name: str, value: str | None = None, *, instance: str | None = None,
         attribute_type: str | None = None) -> dict:
    item: dict = {"component": {"name": component}, "variable": {"name": name, **({"instance": instance}
                                                                               if instance else {})}}
    if value is not None:
        item["attributeValue"] = value
    if attribute_type is not None:
        item["attributeType"] = attribute_type
    return item


# --- Cold boot (B01–B03) ------------------------------------------------------------------------------

def test_TC_B_01_CS():
    """Cold Boot Charging Station - Accepted: Reusable State Booted; a status for every connector."""
    o = OCTT(boot=False)
    boot = o.booted(reason="PowerUp")
    assert boot["chargingStation"]["vendorName"] and boot["chargingStation"]["model"]
    assert [(s["evseId"], s["connectorId"], s["connectorStatus"]) for s in o.sent("StatusNotification")] == \
        [(1, 1, "Available")]


def test_TC_B_02_CS():
    """Cold Boot Charging Station - Pending: configurable while Pending (SetVariables,
    GetVariables, GetBaseReport with its NotifyReports), no remote start, a triggered boot."""
    o = OCTT(boot=False)
    o.boot_status = "Pending"
    o.heartbeat_interval = 600
    boot = o.expect("BootNotification")                                        # 1, 2 (Pending)
    assert boot["reason"] == "PowerUp"
    res = o.ok("SetVariables", {"setVariableData": [_var("OCPPCommCtrlr", "OfflineThreshold", "300")]})  # 3
    assert res["setVariableResult"][0]["attributeStatus"] == "Accepted"           # 4
    res = o.ok("GetVariables", {"getVariableData": [_var("OCPPCommCtrlr", "OfflineThreshold")]})        # 5
    assert res["getVariableResult"][0]["attributeStatus"] == "Accepted"           # 6
    assert res["getVariableResult"][0]["attributeValue"] == "300"
    assert o.ok("GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})["status"] == "Accepted"  # 7, 8
    reports = [o.expect("NotifyReport")]                                          # 9, 10: while Pending
    while reports[-1]["tbc"]:
        reports.append(o.expect("NotifyReport"))
    assert [r["seqNo"] for r in reports] == list(range(len(reports)))
    start = o.ok("RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 1, "evseId": 1})      # 11
    assert start["status"] == "Rejected"                                          # 12
    o.boot_status = "Accepted"                                                    # the answer to step 15
    trigger = o.ok("TriggerMessage", {"requestedMessage": "BootNotification"})    # 13
    assert trigger["status"] == "Accepted"                                        # 14
    boot = o.expect("BootNotification")                                           # 15, 16: before the interval
    assert boot["reason"] == "Triggered" and boot.t - trigger_time(o) < 600
    status = o.expect("StatusNotification")                                       # 17, 18
    assert status["connectorStatus"] == "Available"
    # nothing else went out while Pending: the boot, the reports, the boot again
    sent = [f[2] for _, d, f in o.frames if d == "cs" and f[0] == 2]
    assert sent[:len(reports) + 2] == ["BootNotification", *["NotifyReport"] * len(reports), "BootNotification"]


def trigger_time(o: OCTT) -> float:
    return next(t for t, d, f in o.frames if d == "csms" and f[0] == 2 and f[2] == "TriggerMessage")


def test_TC_B_03_CS():
    """Cold Boot Charging Station - Rejected: the boot again after the interval, nothing between."""
    o = OCTT(boot=False)
    o.boot_status = "Rejected"
    o.heartbeat_interval = 120
    first = o.expect("BootNotification")                                          # 1, 2
    o.boot_status = "Accepted"
    o.quiet(119)                                                                  # no message in the meantime
    second = o.expect("BootNotification")                                         # 3, 4
    assert second.t - first.t >= 120
    assert o.expect("StatusNotification")["connectorStatus"] == "Available"       # 5, 6


def test_TC_B_30_CS():
    """Cold Boot Charging Station - Pending/Rejected - SecurityError: a request while Rejected."""
    o = OCTT(boot=False)
    o.boot_status = "Rejected"
    o.heartbeat_interval = 300
    o.expect("BootNotification")                                                  # 1, 2
    kind, answer = o.call("GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"})  # 3
    assert (kind, answer["errorCode"]) == (4, "SecurityError")                    # 4
    o.quiet(200)  # no NotifyReport, no other request


# --- Get/SetVariables (B05, B06) ------------------------------------------------------------------------

def test_TC_B_06_CS():
    """Get Variables - single value."""
    o = OCTT()
    assert o.set_variable("OCPPCommCtrlr", "OfflineThreshold", "300") == "Accepted"  # configuration state
    res = o.ok("GetVariables", {"getVariableData": [_var("OCPPCommCtrlr", "OfflineThreshold",
                                                         attribute_type="Actual")]})["getVariableResult"][0]
    assert res["attributeStatus"] == "Accepted" and res["attributeType"] == "Actual"
    assert res["attributeValue"] == "300"
    assert res["component"]["name"] == "OCPPCommCtrlr" and res["variable"]["name"] == "OfflineThreshold"
    assert res.get("attributeStatusInfo", {"reasonCode": "NoError"})["reasonCode"] == "NoError"


def test_TC_B_07_CS():
    """Get Variables - multiple values."""
    o = OCTT()
    assert o.set_variable("OCPPCommCtrlr", "OfflineThreshold", "300") == "Accepted"
    assert o.set_variable("AuthCtrlr", "LocalAuthorizeOffline", "true") == "Accepted"
    results = o.ok("GetVariables", {"getVariableData": [
        _var("OCPPCommCtrlr", "OfflineThreshold", attribute_type="Actual"),
        _var("AuthCtrlr", "LocalAuthorizeOffline", attribute_type="Actual")]})["getVariableResult"]
    by_name = {r["variable"]["name"]: r for r in results}
    assert by_name["OfflineThreshold"]["attributeValue"] == "300"
    assert by_name["LocalAuthorizeOffline"]["attributeValue"] == "true"
    assert all(r["attributeStatus"] == "Accepted" and r["attributeType"] == "Actual" for r in results)
    assert by_name["LocalAuthorizeOffline"]["component"]["name"] == "AuthCtrlr"


def test_TC_B_32_CS():
    """Get Variables - Unknown component."""
    o = OCTT()
    res = o.ok("GetVariables", {"getVariableData": [_var("UnknownComponent", "OfflineThreshold")]})
    r = res["getVariableResult"][0]
    assert r["attributeStatus"] == "UnknownComponent"
    assert r["component"]["name"] == "UnknownComponent" and r["variable"]["name"] == "OfflineThreshold"


def test_TC_B_33_CS():
    """Get Variables - Unknown variable."""
    o = OCTT()
    r = o.ok("GetVariables", {"getVariableData": [_var("OCPPCommCtrlr", "UnknownVariable")]})["getVariableResult"][0]
    assert r["attributeStatus"] == "UnknownVariable"
    assert r["component"]["name"] == "OCPPCommCtrlr" and r["variable"]["name"] == "UnknownVariable"


def test_TC_B_34_CS():
    """Get Variables - Not supported attribute type."""
    o = OCTT()
    r = o.ok("GetVariables", {"getVariableData": [_var("OCPPCommCtrlr", "OfflineThreshold",
                                                       attribute_type="Target")]})["getVariableResult"][0]
    assert r["attributeStatus"] == "NotSupportedAttributeType" and r["attributeType"] == "Target"
    assert r["component"]["name"] == "OCPPCommCtrlr" and r["variable"]["name"] == "OfflineThreshold"


def test_TC_B_08_CS():
    """Get Variables - limit to maximum number of values: ItemsPerMessageGetVariables + 1 items."""
    o = OCTT()
    assert o.ok("GetBaseReport", {"requestId": 3, "reportBase": "FullInventory"})["status"] == "Accepted"  # 1, 2
    reports = [o.expect("NotifyReport")]                                              # 3, 4
    while reports[-1]["tbc"]:
        reports.append(o.expect("NotifyReport"))
    items = [d for r in reports for d in r["reportData"]]
    limit = int(next(d["variableAttribute"][0]["value"] for d in items
                     if d["component"]["name"] == "DeviceDataCtrlr" and d["variable"]["name"] == "ItemsPerMessage"
                     and d["variable"].get("instance") == "GetVariables"))
    readable = [d for d in items if d["variableAttribute"][0]["mutability"] != "WriteOnly"]
    assert len(readable) > limit  # the prerequisite: more variables than one message may carry
    asked = [{"component": d["component"], "variable": d["variable"]} for d in readable[:limit + 1]]
    results = o.ok("GetVariables", {"getVariableData": asked})["getVariableResult"]   # 5, 6
    assert len(results) == limit + 1
    assert [r["attributeStatus"] for r in results] == ["Accepted"] * limit + ["Rejected"]
    assert results[-1]["attributeStatusInfo"]["reasonCode"] == "TooManyElements"
    assert all(r.get("attributeStatusInfo", {"reasonCode": "NoError"})["reasonCode"] == "NoError"
               for r in results[:-1])


def test_TC_B_09_CS():
    """Set Variables - single value."""
    o = OCTT()
    r = o.ok("SetVariables", {"setVariableData": [_var("OCPPCommCtrlr", "OfflineThreshold", "300",
                                                       attribute_type="Actual")]})["setVariableResult"][0]
    assert r["attributeStatus"] == "Accepted" and r["attributeType"] == "Actual"
    assert r["component"]["name"] == "OCPPCommCtrlr" and r["variable"]["name"] == "OfflineThreshold"
    assert r.get("attributeStatusInfo", {"reasonCode": "NoError"})["reasonCode"] == "NoError"


def test_TC_B_10_CS():
    """Set Variables - multiple values."""
    o = OCTT()
    results = o.ok("SetVariables", {"setVariableData": [
        _var("OCPPCommCtrlr", "OfflineThreshold", "300", attribute_type="Actual"),
        _var("AuthCtrlr", "LocalAuthorizeOffline", "true", attribute_type="Actual")]})["setVariableResult"]
    assert {(r["component"]["name"], r["variable"]["name"], r["attributeStatus"], r["attributeType"])
            for r in results} == {("OCPPCommCtrlr", "OfflineThreshold", "Accepted", "Actual"),
                                  ("AuthCtrlr", "LocalAuthorizeOffline", "Accepted", "Actual")}


def test_TC_B_35_CS():
    """Set Variables - Unknown component."""
    o = OCTT()
    r = o.ok("SetVariables", {"setVariableData": [_var("UnknownComponent", "OfflineThreshold", "300")]})
    r = r["setVariableResult"][0]
    assert r["attributeStatus"] == "UnknownComponent"
    assert r["component"]["name"] == "UnknownComponent" and r["variable"]["name"] == "OfflineThreshold"


def test_TC_B_36_CS():
    """Set Variables - Unknown variable."""
    o = OCTT()
    r = o.ok("SetVariables", {"setVariableData": [_var("OCPPCommCtrlr", "UnknownVariable", "300")]})
    r = r["setVariableResult"][0]
    assert r["attributeStatus"] == "UnknownVariable"
    assert r["component"]["name"] == "OCPPCommCtrlr" and r["variable"]["name"] == "UnknownVariable"


def test_TC_B_37_CS():
    """Set Variables - Not supported attribute type."""
    o = OCTT()
    r = o.ok("SetVariables", {"setVariableData": [_var("OCPPCommCtrlr", "OfflineThreshold", "300",
                                                       attribute_type="Target")]})["setVariableResult"][0]
    assert r["attributeStatus"] == "NotSupportedAttributeType" and r["attributeType"] == "Target"


def test_TC_B_11_CS():
    """Set Variables - invalidly formatted values: 1, 1.1, true, currentTime, "abc" for an
    integer, a decimal, a boolean and a dateTime variable; each is Accepted only where valid."""
    o = OCTT()
    now = "2030-03-17T17:46:40.000Z"
    valid = {("OCPPCommCtrlr", "OfflineThreshold"): {"1"},
             ("SmartChargingCtrlr", "LimitChangeSignificance"): {"1", "1.1"},
             ("AuthCtrlr", "AuthorizeRemoteStart"): {"true"}}
    for value in ("1", "1.1", "true", now, "abc"):
        for (component, name), ok in valid.items():
            r = o.ok("SetVariables", {"setVariableData": [_var(component, name, value)]})["setVariableResult"][0]
            assert (r["component"]["name"], r["variable"]["name"]) == (component, name)
            if value in ok:
                assert r["attributeStatus"] == "Accepted", (component, name, value, r)
            else:
                assert r["attributeStatus"] == "Rejected", (component, name, value, r)
                assert r["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    # steps 7 and 8 only where ClockCtrlr.NextTimeOffsetTransitionDateTime exists: v2h has no time offset
    r = o.ok("SetVariables", {"setVariableData": [_var("ClockCtrlr", "NextTimeOffsetTransitionDateTime", now)]})
    assert r["setVariableResult"][0]["attributeStatus"] == "UnknownVariable"


def test_TC_B_39_CS():
    """Set Variables - Read-only: MessageTimeout comes from the network connection profile."""
    o = OCTT()
    r = o.ok("SetVariables", {"setVariableData": [_var("OCPPCommCtrlr", "MessageTimeout", "45",
                                                       instance="Default")]})["setVariableResult"][0]
    assert r["attributeStatus"] == "Rejected"
    assert r["component"]["name"] == "OCPPCommCtrlr" and r["variable"] == {"name": "MessageTimeout",
                                                                           "instance": "Default"}


# --- GetBaseReport (B07) ---------------------------------------------------------------------------------

def _report(o: OCTT, base: str, request_id: int) -> list[dict]:
    res = o.ok("GetBaseReport", {"requestId": request_id, "reportBase": base})
    assert res["status"] == "Accepted" and res.get("statusInfo", {"reasonCode": "NoError"})["reasonCode"] == "NoError"
    reports = [o.expect("NotifyReport")]
    while reports[-1]["tbc"]:
        reports.append(o.expect("NotifyReport"))
    assert all(r["requestId"] == request_id for r in reports)
    assert [r["seqNo"] for r in reports] == list(range(len(reports)))
    items = [d for r in reports for d in r.get("reportData", [])]
    for d in items:
        ch = d["variableCharacteristics"]  # present for every variable
        if ch["dataType"] in ("OptionList", "SequenceList", "MemberList"):
            assert ch.get("valuesList"), d
    return items


def test_TC_B_12_CS():
    """Get Base Report - ConfigurationInventory: the writable variables, with characteristics."""
    o = OCTT()
    items = _report(o, "ConfigurationInventory", 12)
    assert items and all(d["variableAttribute"][0]["mutability"] in ("ReadWrite", "WriteOnly") for d in items)
    names = {(d["component"]["name"], d["variable"]["name"]) for d in items}
    for required in [("OCPPCommCtrlr", "OfflineThreshold"), ("OCPPCommCtrlr", "NetworkConfigurationPriority"),
                     ("OCPPCommCtrlr", "MessageAttempts"), ("OCPPCommCtrlr", "MessageAttemptInterval"),
                     ("TxCtrlr", "EVConnectionTimeOut"), ("TxCtrlr", "StopTxOnInvalidId"),
                     ("SampledDataCtrlr", "TxUpdatedInterval"), ("AlignedDataCtrlr", "Interval"),
                     ("AuthCtrlr", "LocalAuthorizeOffline"), ("SecurityCtrlr", "BasicAuthPassword")]:
        assert required in names, required


def test_TC_B_13_CS():
    """Get Base Report - FullInventory."""
    o = OCTT()
    items = _report(o, "FullInventory", 13)
    names = {(d["component"]["name"], d["variable"]["name"]) for d in items}
    for required in [("ChargingStation", "AvailabilityState"), ("EVSE", "AvailabilityState"),
                     ("Connector", "AvailabilityState"), ("OCPPCommCtrlr", "HeartbeatInterval"),
                     ("SecurityCtrlr", "SecurityProfile"), ("ClockCtrlr", "DateTime")]:
        assert required in names, required


def test_TC_B_15_CS():
    """Get Base Report - Not Supported base report: SummaryInventory (no Advanced Device Management)."""
    o = OCTT()
    res = o.ok("GetBaseReport", {"requestId": 15, "reportBase": "SummaryInventory"})
    assert res["status"] == "NotSupported"
    assert res.get("statusInfo", {"reasonCode": "UnsupportedParam"})["reasonCode"] == "UnsupportedParam"
    o.quiet(60)  # no NotifyReport


# (component, variable, instance, allowed mutabilities, dataType, unit, valuesList ⊆, maxLimit > 0) — the
# table of TC_B_53_CS: the required Core variables, ISO15118Ctrlr and SmartChargingCtrlr (the blocks
# v2h implements; not DisplayMessageCtrlr, LocalAuthListCtrlr, MonitoringCtrlr, TariffCostCtrlr)
MEASURANDS = {"Energy.Active.Import.Register", "Energy.Active.Export.Register", "Power.Active.Import",
              "Power.Active.Export", "SoC", "Current.Import", "Current.Export", "Voltage", "Energy.Active.Net",
              "Power.Offered", "Frequency", "Temperature", "Power.Reactive.Import", "Power.Factor"}
POINTS = {"ParkingBayOccupancy", "EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer", "DataSigned"}
AVAILABILITY = {"Available", "Occupied", "Reserved", "Unavailable", "Faulted"}
B53 = [
    ("AlignedDataCtrlr", "Interval", None, {"ReadWrite"}, "integer", "s", None, False),
    ("AlignedDataCtrlr", "Measurands", None, {"ReadWrite"}, "MemberList", None, MEASURANDS, True),
    ("AlignedDataCtrlr", "TxEndedInterval", None, {"ReadWrite"}, "integer", "s", None, False),
    ("AlignedDataCtrlr", "TxEndedMeasurands", None, {"ReadWrite"}, "MemberList", None, MEASURANDS, True),
    ("AuthCtrlr", "AuthorizeRemoteStart", None, {"ReadOnly", "ReadWrite"}, "boolean", None, None, False),
    ("AuthCtrlr", "LocalAuthorizeOffline", None, {"ReadWrite"}, "boolean", None, None, False),
    ("AuthCtrlr", "LocalPreAuthorize", None, {"ReadWrite"}, "boolean", None, None, False),
    ("ChargingStation", "AvailabilityState", None, {"ReadOnly"}, "OptionList", None, AVAILABILITY, False),
    ("ChargingStation", "Available", None, {"ReadOnly"}, "boolean", None, None, False),
    ("ChargingStation", "SupplyPhases", None, {"ReadOnly"}, "integer", None, None, False),
    ("ClockCtrlr", "DateTime", None, {"ReadOnly"}, "dateTime", None, None, False),
    ("ClockCtrlr", "TimeSource", None, {"ReadWrite"}, "SequenceList", None,
     {"Heartbeat", "NTP", "GPS", "RealTimeClock", "MobileNetwork", "RadioTimeTransmitter"}, False),
    ("Connector", "AvailabilityState", None, {"ReadOnly"}, "OptionList", None, AVAILABILITY, False),
    ("Connector", "Available", None, {"ReadOnly"}, "boolean", None, None, False),
    ("Connector", "ConnectorType", None, {"ReadOnly"}, "string", None, None, False),
    ("Connector", "SupplyPhases", None, {"ReadOnly"}, "integer", None, None, False),
    ("DeviceDataCtrlr", "BytesPerMessage", "GetReport", {"ReadOnly"}, "integer", None, None, False),
    ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables", {"ReadOnly"}, "integer", None, None, False),
    ("DeviceDataCtrlr", "BytesPerMessage", "SetVariables", {"ReadOnly"}, "integer", None, None, False),
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetReport", {"ReadOnly"}, "integer", None, None, False),
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables", {"ReadOnly"}, "integer", None, None, False),
    ("DeviceDataCtrlr", "ItemsPerMessage", "SetVariables", {"ReadOnly"}, "integer", None, None, False),
    ("EVSE", "AvailabilityState", None, {"ReadOnly"}, "OptionList", None, AVAILABILITY, False),
    ("EVSE", "Available", None, {"ReadOnly"}, "boolean", None, None, False),
    ("EVSE", "Power", None, {"ReadOnly"}, "decimal", {"W", "kW"}, None, True),
    ("EVSE", "SupplyPhases", None, {"ReadOnly"}, "integer", None, None, False),
    ("OCPPCommCtrlr", "FileTransferProtocols", None, {"ReadOnly"}, "MemberList", None,
     {"FTP", "FTPS", "HTTP", "HTTPS", "SFTP"}, False),
    ("OCPPCommCtrlr", "MessageTimeout", "Default", {"ReadOnly"}, "integer", "s", None, False),
    ("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent", {"ReadWrite"}, "integer", "s", None, False),
    ("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent", {"ReadWrite"}, "integer", None, None, False),
    ("OCPPCommCtrlr", "NetworkConfigurationPriority", None, {"ReadWrite"}, "SequenceList", None,
     {"1", "2", "3", "4", "5"}, False),
    ("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", None, {"ReadWrite"}, "integer", None, None, False),
    ("OCPPCommCtrlr", "OfflineThreshold", None, {"ReadWrite"}, "integer", "s", None, False),
    ("OCPPCommCtrlr", "ResetRetries", None, {"ReadWrite"}, "integer", None, None, False),
    ("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", None, {"ReadWrite", "ReadOnly"}, "boolean", None, None, False),
    ("SampledDataCtrlr", "TxEndedInterval", None, {"ReadWrite"}, "integer", "s", None, False),
    ("SampledDataCtrlr", "TxEndedMeasurands", None, {"ReadWrite"}, "MemberList", None, MEASURANDS, True),
    ("SampledDataCtrlr", "TxStartedMeasurands", None, {"ReadWrite"}, "MemberList", None, MEASURANDS, True),
    ("SampledDataCtrlr", "TxUpdatedInterval", None, {"ReadWrite"}, "integer", "s", None, False),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", None, {"ReadWrite"}, "MemberList", None, MEASURANDS, True),
    ("SecurityCtrlr", "CertificateEntries", None, {"ReadOnly"}, "integer", None, None, True),
    ("SecurityCtrlr", "OrganizationName", None, {"ReadWrite"}, "string", None, None, False),
    ("SecurityCtrlr", "SecurityProfile", None, {"ReadOnly"}, "integer", None, None, False),
    ("TxCtrlr", "EVConnectionTimeOut", None, {"ReadWrite"}, "integer", "s", None, False),
    ("TxCtrlr", "StopTxOnEVSideDisconnect", None, {"ReadWrite", "ReadOnly"}, "boolean", None, None, False),
    ("TxCtrlr", "StopTxOnInvalidId", None, {"ReadWrite"}, "boolean", None, None, False),
    ("TxCtrlr", "TxStartPoint", None, {"ReadWrite", "ReadOnly"}, "MemberList", None, POINTS, False),
    ("TxCtrlr", "TxStopPoint", None, {"ReadWrite", "ReadOnly"}, "MemberList", None, POINTS, False),
    ("ISO15118Ctrlr", "ContractValidationOffline", None, {"ReadWrite"}, "boolean", None, None, False),
    ("SmartChargingCtrlr", "Entries", "ChargingProfiles", {"ReadOnly"}, "integer", None, None, True),
    ("SmartChargingCtrlr", "LimitChangeSignificance", None, {"ReadWrite"}, "decimal", "Percent", None, False),
    ("SmartChargingCtrlr", "PeriodsPerSchedule", None, {"ReadOnly"}, "integer", None, None, False),
    ("SmartChargingCtrlr", "ProfileStackLevel", None, {"ReadOnly"}, "integer", None, None, False),
    ("SmartChargingCtrlr", "RateUnit", None, {"ReadOnly"}, "MemberList", None, {"A", "W"}, False),
]


def test_TC_B_53_CS():
    """Get Base Report - Test mandatory DM variables via FullInventory: every variable of the
    table, with its mutability, data type, unit, valuesList and maxLimit."""
    o = OCTT()
    items = _report(o, "FullInventory", 53)
    found = {(d["component"]["name"], d["variable"]["name"], d["variable"].get("instance")): d for d in items}
    missing = []
    for component, name, instance, mutabilities, data_type, unit, values, max_limit in B53:
        d = found.get((component, name, instance))
        if d is None:
            missing.append((component, name, instance))
            continue
        attribute, ch = d["variableAttribute"][0], d["variableCharacteristics"]
        where = (component, name, instance, attribute, ch)
        assert attribute["mutability"] in mutabilities, where
        assert ch["dataType"] == data_type, where
        if unit is not None:
            assert ch.get("unit") in ({unit} if isinstance(unit, str) else unit), where
        if values is not None:
            listed = {v.strip() for v in ch["valuesList"].split(",")}
            assert listed <= values, where
            if name == "RateUnit":
                assert listed == values, where
        if max_limit:
            assert ch.get("maxLimit", 0) > 0, where
        if component in ("EVSE", "Connector"):
            assert d["component"]["evse"]["id"] == 1, where
    assert not missing, missing


# --- Reset (B11, B12) --------------------------------------------------------------------------------------

def test_TC_B_20_CS():
    """Reset Charging Station - Without ongoing transaction - OnIdle."""
    o = OCTT()
    assert o.ok("Reset", {"type": "OnIdle"})["status"] == "Accepted"               # 1, 2
    boot = o.expect("BootNotification")                                            # 3, 4
    assert boot["reason"] == "RemoteReset" and o.reboots == 1
    assert o.expect("StatusNotification")["connectorStatus"] == "Available"        # 5, 6


def test_TC_B_21_CS():
    """Reset Charging Station - With Ongoing Transaction - OnIdle: Scheduled, the transaction
    ends as usual, then the reboot with reason ScheduledReset."""
    o = OCTT()
    started = o.transaction()
    assert o.ok("Reset", {"type": "OnIdle"})["status"] == "Scheduled"              # 1, 2
    o.run(5)
    assert o.reboots == 0                                                          # nothing interrupted
    answer = o.ok("RequestStopTransaction", {"transactionId": started["transactionInfo"]["transactionId"]})
    assert answer["status"] == "Accepted"                                          # 3 StopAuthorized (remote)
    assert o.expect("TransactionEvent")["triggerReason"] == "RemoteStop"
    post = o.expect("TransactionEvent")                                            # 4 EVConnectedPostSession
    assert (post["triggerReason"], post["transactionInfo"]["chargingState"]) == ("ChargingStateChanged", "EVConnected")
    o.run(3)
    o.unplug()                                                                     # 5 EVDisconnected
    status, ended = o.expect("StatusNotification", "TransactionEvent")
    assert status["connectorStatus"] == "Available" and ended["eventType"] == "Ended"
    boot = o.expect("BootNotification")                                            # 7, 8
    assert boot["reason"] == "ScheduledReset"
    assert o.expect("StatusNotification")["connectorStatus"] == "Available"        # 9, 10
    assert o.expect("SecurityEventNotification")["type"] in ("StartupOfTheDevice", "ResetOrReboot")  # 11, 12


def test_TC_B_22_CS():
    """Reset Charging Station - With Ongoing Transaction - Immediate: Ended with ResetCommand /
    ImmediateReset, then the reboot; the car still on the cable is reported Occupied."""
    o = OCTT()
    o.transaction()
    assert o.ok("Reset", {"type": "Immediate"})["status"] == "Accepted"            # 1, 2
    ended = o.expect("TransactionEvent")                                           # 3, 4
    assert ended["eventType"] == "Ended" and ended["triggerReason"] == "ResetCommand"
    assert ended["transactionInfo"]["chargingState"] == "EVConnected"
    assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset" and "idToken" not in ended.payload
    boot = o.expect("BootNotification")                                            # 5, 6
    assert boot["reason"] == "RemoteReset" and o.reboots == 1
    status = o.expect("StatusNotification")                                        # 7, 8
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (1, 1, "Occupied")
    assert o.stage.measurements(o.now).current == 0.0                              # de-energised


def test_TC_B_23_CS():
    """Reset Charging Station - Unavailable persists reset."""
    o = OCTT()
    answer = o.ok("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1, "connectorId": 1}})
    assert answer["status"] == "Accepted"                                          # memory state Unavailable
    assert o.expect("StatusNotification")["connectorStatus"] == "Unavailable"
    assert o.ok("Reset", {"type": "OnIdle"})["status"] == "Accepted"               # 1, 2
    assert o.expect("BootNotification")["reason"] == "RemoteReset"                 # 3, 4
    status = o.expect("StatusNotification")                                        # 5, 6
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (1, 1, "Unavailable")


def test_TC_B_28_CS():
    """Reset EVSE - Not Supported (EVSE.AllowReset is false: the whole station resets)."""
    o = OCTT()
    assert o.ok("Reset", {"type": "OnIdle", "evseId": 1})["status"] == "Rejected"
    o.quiet(30)
    assert o.reboots == 0


def test_TC_B_29_CS():
    """Reset EVSE - With ongoing transaction - Not Supported."""
    o = OCTT()
    o.transaction()
    assert o.ok("Reset", {"type": "OnIdle", "evseId": 1})["status"] == "Rejected"
    o.run(10)
    assert o.reboots == 0 and o.bridge.energy


# --- Network connection profiles (B09, B10) ---------------------------------------------------------------

def _profile(slot: int, url: str, *, security_profile: int = 1, timeout: int = 30) -> dict:
    return {"configurationSlot": slot, "connectionData": {
        "messageTimeout": timeout, "ocppCsmsUrl": url, "ocppInterface": "Wired0", "ocppVersion": "OCPP20",
        "ocppTransport": "JSON", "securityProfile": security_profile}}


def test_TC_B_43_CS():
    """Set new NetworkConnectionProfile - Rejected: a slot the station does not have."""
    o = OCTT()
    assert o.ok("SetNetworkProfile", _profile(999, URL))["status"] == "Rejected"


def test_TC_B_45_CS():
    """Migrate to new ConnectionProfile - Success - Same CSMS Root."""
    o = OCTT()
    o.endpoints[URL2] = True
    assert o.ok("SetNetworkProfile", _profile(2, URL2, timeout=20))["status"] == "Accepted"     # 1, 2
    status = o.set_variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")             # 3, 4
    assert status in ("Accepted", "RebootRequired")
    if status == "RebootRequired":
        assert o.ok("Reset", {"type": "OnIdle"})["status"] == "Accepted"                        # 5, 6
    o.booted()                                                                                   # 7
    assert o.attempts[-1].url == f"{URL2}/CS001" and o.attempts[-1].accepted
    assert o.get_variable("OCPPCommCtrlr", "ActiveNetworkProfile")["attributeValue"] == "2"
    assert o.get_variable("OCPPCommCtrlr", "MessageTimeout", "Default")["attributeValue"] == "20"


def test_TC_B_46_CS():
    """Migrate to new ConnectionProfile - Fallback mechanism - Same CSMS Root: two refused
    attempts on the new slot (NetworkProfileConnectionAttempts 2), then the old one."""
    o = OCTT()
    assert o.set_variable("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "2") == "Accepted"
    o.endpoints["ws://invalid.octt.invalid/ocpp"] = False
    assert o.ok("SetNetworkProfile", _profile(2, "ws://invalid.octt.invalid/ocpp"))["status"] == "Accepted"  # 1, 2
    assert o.set_variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1") in ("Accepted", "RebootRequired")
    assert o.ok("Reset", {"type": "OnIdle"})["status"] == "Accepted"                            # 5, 6
    o.booted()                                                                                   # 7, 8, 9
    tried = [(a.slot, a.accepted) for a in o.attempts[1:]]
    assert tried == [(2, False), (2, False), (1, True)], tried


def test_TC_B_49_CS():
    """Migrate to new ConnectionProfile - Fallback after NetworkProfileConnectionAttempts per
    NetworkConfigurationPriority failed - Same CSMS Root: the new slot refused, the old one
    refused once, then the ordinary back-off (RetryBackOffWaitMinimum) until the OCTT accepts."""
    o = OCTT()
    for name, value in (("NetworkProfileConnectionAttempts", "1"), ("RetryBackOffRepeatTimes", "0"),
                        ("RetryBackOffRandomRange", "0"), ("RetryBackOffWaitMinimum", "10")):
        assert o.set_variable("OCPPCommCtrlr", name, value) == "Accepted"
    o.endpoints[URL2] = False
    assert o.ok("SetNetworkProfile", _profile(2, URL2))["status"] == "Accepted"                  # 1, 2
    assert o.set_variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "2") in ("Accepted", "RebootRequired")
    assert o.ok("Reset", {"type": "OnIdle"})["status"] == "Accepted"                            # 5, 6
    o.endpoints[URL] = False
    o.run_until(lambda: len([a for a in o.attempts if a.slot == 1]) >= 2, 120)                   # 7-10
    o.accept(URL)
    o.booted()                                                                                   # 11-13
    after = o.attempts[1:]
    assert [a.slot for a in after[:2]] == [2, 1] and not any(a.accepted for a in after[:-1])
    assert after[-1].slot == 1 and after[-1].accepted
    gaps = [b.t - a.t for a, b in zip(after, after[1:])]
    assert all(g >= 10 for g in gaps), gaps                                                      # back-off minimum


# --- Offline (B04) and reconnecting (part 4 §5.3) ------------------------------------------------------------

def _offline_status_change(threshold_gap: int) -> None:
    """After reconnecting the station reports the connector that changed (one EVSE, one
    connector: both cases are the same, as TC_B_51's prerequisite says); a reconnect is no boot."""
    o = OCTT()
    threshold = 60
    assert o.set_variable("OCPPCommCtrlr", "OfflineThreshold", str(threshold)) == "Accepted"
    assert o.set_variable("OCPPCommCtrlr", "RetryBackOffWaitMinimum", str(threshold + threshold_gap)) == "Accepted"
    assert o.set_variable("OCPPCommCtrlr", "RetryBackOffRandomRange", "0") == "Accepted"
    dropped = o.now
    o.drop(accept=False)                                                            # 1
    o.plug()                                                                        # 2
    o.run(threshold + threshold_gap - 1)
    o.accept()                                                                      # 3
    status, queued = o.expect("StatusNotification", "TransactionEvent")            # 4, 5
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (1, 1, "Occupied")
    assert (status.t - dropped > threshold) == (threshold_gap > 0)
    assert queued["eventType"] == "Started" and queued["offline"] is True
    assert not o.sent("BootNotification")[1:]


def test_TC_B_51_CS():
    """Status change during offline period - > Offline Threshold: reconnected after OfflineThreshold + 2 s."""
    _offline_status_change(2)


def test_TC_B_52_CS():
    """Status change during offline period - < Offline Threshold: reconnected after OfflineThreshold - 2 s."""
    _offline_status_change(-2)


def test_TC_B_57_CS():
    """Network Reconnection - After connection loss: RetryBackOffWaitMinimum, then after a
    refused attempt twice that (at least 3 × the first wait since the close)."""
    o = OCTT()
    wait = 20
    for name, value in (("RetryBackOffRepeatTimes", "2"), ("RetryBackOffRandomRange", "0"),
                        ("RetryBackOffWaitMinimum", str(wait))):
        assert o.set_variable("OCPPCommCtrlr", name, value) == "Accepted"
    n = len(o.attempts)
    closed = o.now
    o.drop(accept=True)                                                             # 1
    o.run_until(lambda: o.connected, 120)                                           # 2, 3
    first = o.attempts[n].t - closed
    assert first >= wait
    closed = o.now
    o.drop(accept=False)                                                            # 4
    o.run_until(lambda: len(o.attempts) == n + 2, 120)                              # 5, 6
    o.accept()
    o.run_until(lambda: o.connected, 120)                                           # 7, 8
    assert o.attempts[-1].t - closed >= 3 * first
    assert [a.accepted for a in o.attempts[n:]] == [True, False, True]
    assert not o.sent("BootNotification")[1:]                                       # a reconnect, no boot

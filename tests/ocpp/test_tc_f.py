"""OCPP 2.0.1 part 6, charging-station test cases of block F (Remote Control), scripted as the
OCA test system runs them (tests/ocpp/octt.py). TriggerMessage for LogStatusNotification and
FirmwareStatusNotification is in test_tc_l.py and test_tc_n.py, next to GetLog and UpdateFirmware."""

from __future__ import annotations

import uuid

from .octt import OCTT, TOKEN


def _tx_id(msg) -> str:
    return msg["transactionInfo"]["transactionId"]


# --- Remote start (F01, F02) -----------------------------------------------------------------------------

def test_TC_F_01_CS():
    """Remote start transaction - Cable plugin first: the car waits in its EIM authorization
    (AuthCtrlr.Enabled true: EVSEProcessing Ongoing) until the RequestStartTransaction."""
    o = OCTT()
    assert o.set_variable("AuthCtrlr", "Enabled", "true") == "Accepted"   # AuthEnabled is true
    _, started = o.ev_connected()                                          # EVConnectedPreSession
    o.quiet(5)                                                             # the car waits for an authorization
    assert not o.bridge.energy
    answer = o.ok("RequestStartTransaction", {"idToken": TOKEN, "remoteStartId": 3, "evseId": 1})  # Authorized B
    assert answer["status"] == "Accepted" and answer["transactionId"] == _tx_id(started)
    tx = o.expect("TransactionEvent")
    assert tx["triggerReason"] == "RemoteStart" and tx["idToken"] == TOKEN
    assert tx["transactionInfo"]["remoteStartId"] == 3 and tx["eventType"] == "Updated"
    o.energy_transfer_started()                                            # EnergyTransferStarted


def test_TC_F_02_CS():
    """Remote start transaction - Remote start first - AuthorizeRemoteStart is true."""
    o = OCTT()
    assert o.set_variable("AuthCtrlr", "AuthorizeRemoteStart", "true") == "Accepted"
    o.authorized_remote()                                                  # 1, 2
    auth = o.expect("Authorize")                                           # 3, 4
    assert auth["idToken"] == TOKEN
    o.plug()                                                               # EnergyTransferStarted, part 1
    status, tx = o.expect("StatusNotification", "TransactionEvent")
    assert status["connectorStatus"] == "Occupied"
    assert tx["eventType"] == "Started" and tx["triggerReason"] == "RemoteStart" and tx["idToken"] == TOKEN
    assert tx["transactionInfo"]["remoteStartId"] == 17
    o.energy_transfer_started()                                            # part 2


def test_TC_F_02_CS_refused_token_starts_nothing():
    """AuthorizeRemoteStart true and the CSMS refuses the idToken: no transaction for the car."""
    o = OCTT()
    assert o.set_variable("AuthCtrlr", "AuthorizeRemoteStart", "true") == "Accepted"
    o.authorize_status = "Invalid"
    o.authorized_remote()
    o.expect("Authorize")
    assert o.bridge.authorization is None and o.bridge.remote_start is None


def test_TC_F_03_CS():
    """Remote start transaction - Remote start first - AuthorizeRemoteStart is false."""
    o = OCTT()
    o.authorized_remote()
    o.plug()
    status, tx = o.expect("StatusNotification", "TransactionEvent")
    assert status["connectorStatus"] == "Occupied"
    assert tx["eventType"] == "Started" and tx["triggerReason"] == "RemoteStart" and tx["idToken"] == TOKEN
    o.energy_transfer_started()
    assert not o.sent("Authorize")
    assert [t["triggerReason"] for t in o.sent("TransactionEvent")].count("Authorized") == 0  # no second one


def test_TC_F_04_CS():
    """Remote start transaction - Remote start first - Cable plugin timeout (TxStartPoint
    Authorized): Ended with EVConnectTimeout, and the EVSE takes the next remote start."""
    o = OCTT()
    assert o.set_variable("TxCtrlr", "TxStartPoint", "Authorized") == "Accepted"
    assert o.set_variable("TxCtrlr", "EVConnectionTimeOut", "20") == "Accepted"
    o.authorized_remote()                                                  # State is Authorized (remote)
    started = o.expect("StatusNotification", "TransactionEvent")[1]
    assert started["triggerReason"] == "RemoteStart"
    ended = o.expect("TransactionEvent", timeout=30)                       # 1, 2
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", "EVConnectTimeout")
    assert ended.t - started.t >= 20
    assert o.expect("StatusNotification")["connectorStatus"] == "Available"  # optional, sent
    o.authorized_remote(remote_start_id=18)                                # 3: ready for the next one
    again = o.expect("StatusNotification", "TransactionEvent")[1]
    assert again["eventType"] == "Started" and again["transactionInfo"]["remoteStartId"] == 18


def test_TC_F_04_CS_default_start_point():
    """The same with TxStartPoint EVConnected: no transaction to end, the authorization lapses
    quietly and a car plugged in later is not authorized by it."""
    o = OCTT()
    assert o.set_variable("TxCtrlr", "EVConnectionTimeOut", "20") == "Accepted"
    o.authorized_remote()
    o.quiet(25)
    assert o.bridge.authorization is None
    o.plug()
    started = o.expect("StatusNotification", "TransactionEvent")[1]
    assert started["triggerReason"] == "CablePluggedIn" and "idToken" not in started.payload


# --- Remote stop (F03) -------------------------------------------------------------------------------

def test_TC_F_08_CS():
    """Remote stop transaction - Success: StopAuthorized (remote)."""
    o = OCTT()
    started = o.transaction()
    assert o.ok("RequestStopTransaction", {"transactionId": _tx_id(started)})["status"] == "Accepted"
    stop = o.expect("TransactionEvent")
    assert stop["triggerReason"] == "RemoteStop"
    o.run_until(lambda: o.stage.measurements(o.now).current == 0.0, 5)     # the energy transfer stopped


def test_TC_F_09_CS():
    """Remote stop transaction - Rejected: another transactionId."""
    o = OCTT()
    o.transaction()
    assert o.ok("RequestStopTransaction", {"transactionId": str(uuid.uuid4())})["status"] == "Rejected"
    o.run(5)
    assert o.bridge.energy


# --- Unlock connector (F05): a fixed cable -----------------------------------------------------------------

def test_unlock_connector_on_a_fixed_cable():
    """Not a part 6 case for v2h (TC_F_05/06/07/10 need a detachable cable, HFS-1): the answer
    for a charger with a fixed cable."""
    o = OCTT()
    assert o.ok("UnlockConnector", {"evseId": 1, "connectorId": 1})["status"] == "UnknownConnector"


# --- TriggerMessage (F06) ------------------------------------------------------------------------------

def _trigger_meter_values(evse):
    o = OCTT()
    answer = o.ok("TriggerMessage", {"requestedMessage": "MeterValues", **({"evse": evse} if evse else {})})
    assert answer["status"] == "Accepted"                                  # 2
    mv = o.expect("MeterValues")                                           # 3, 4
    assert mv["evseId"] == 1 and mv["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"


def test_TC_F_11_CS():
    """Trigger message - MeterValues - Specific EVSE."""
    _trigger_meter_values({"id": 1})


def test_TC_F_12_CS():
    """Trigger message - MeterValues - All EVSE."""
    _trigger_meter_values(None)


def _trigger_transaction_event(evse):
    o = OCTT()
    o.transaction()
    answer = o.ok("TriggerMessage", {"requestedMessage": "TransactionEvent", **({"evse": evse} if evse else {})})
    assert answer["status"] == "Accepted"
    tx = o.expect("TransactionEvent")
    assert tx["triggerReason"] == "Trigger" and tx["transactionInfo"]["chargingState"] == "Charging"
    assert tx.get("evse", {"id": 1})["id"] == 1 and tx["meterValue"]
    assert tx["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"


def test_TC_F_13_CS():
    """Trigger message - TransactionEvent - Specific EVSE."""
    _trigger_transaction_event({"id": 1})


def test_TC_F_14_CS():
    """Trigger message - TransactionEvent - All EVSE."""
    _trigger_transaction_event(None)


def test_TC_F_20_CS():
    """Trigger message - Heartbeat."""
    o = OCTT()
    assert o.ok("TriggerMessage", {"requestedMessage": "Heartbeat"})["status"] == "Accepted"
    o.expect("Heartbeat")


def test_TC_F_23_CS():
    """Trigger message - StatusNotification - Specific EVSE - Available."""
    o = OCTT()
    answer = o.ok("TriggerMessage", {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}})
    assert answer["status"] == "Accepted"
    status = o.expect("StatusNotification")
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (1, 1, "Available")


def test_TC_F_24_CS():
    """Trigger message - StatusNotification - Specific EVSE - Occupied."""
    o = OCTT()
    o.ev_connected(start_session=False)                                    # EVConnectedPreSession
    answer = o.ok("TriggerMessage", {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}})
    assert answer["status"] == "Accepted"
    assert o.expect("StatusNotification")["connectorStatus"] == "Occupied"


def test_TC_F_26_CS():
    """Trigger message - BootNotification - Rejected (the registration is Accepted already)."""
    o = OCTT()
    assert o.ok("TriggerMessage", {"requestedMessage": "BootNotification"})["status"] == "Rejected"
    o.quiet(30)


def test_TC_F_27_CS():
    """Trigger message - NotImplemented: SignCombinedCertificate."""
    o = OCTT()
    assert o.ok("TriggerMessage", {"requestedMessage": "SignCombinedCertificate"})["status"] == "NotImplemented"

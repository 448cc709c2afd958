"""OCPP 2.0.1 part 6, charging-station test cases of block E (Transactions), scripted as the OCA
test system runs them (tests/ocpp/octt.py). The car is an ISO 15118-20 car: its own
authorization is EIM, which at v2h (no card reader) is NoAuthorization like C02's start button
(AuthCtrlr.Enabled false); a "present idToken" before the cable is therefore the OCTT's remote
Authorized state (RequestStartTransaction)."""

from __future__ import annotations

import uuid

from .octt import OCTT, TOKEN


def _points(o: OCTT, start: str | None = None, stop: str | None = None) -> None:
    if start is not None:
        assert o.set_variable("TxCtrlr", "TxStartPoint", start) == "Accepted"
    if stop is not None:
        assert o.set_variable("TxCtrlr", "TxStopPoint", stop) == "Accepted"


def _tx_id(msg) -> str:
    return msg["transactionInfo"]["transactionId"]


def _stop_remote(o: OCTT, tx_id: str) -> None:
    assert o.ok("RequestStopTransaction", {"transactionId": tx_id})["status"] == "Accepted"


# --- Start transaction options (E01) -----------------------------------------------------------------

def test_TC_E_01_CS():
    """Start transaction options - PowerPathClosed: connected and authorized."""
    o = OCTT()
    _points(o, start="PowerPathClosed")
    o.authorized_remote()                                               # State is Authorized (remote)
    o.quiet(5)                                                          # no transaction yet
    status, tx = o.ev_connected()                                       # 1 EVConnectedPreSession
    assert tx["eventType"] == "Started" and tx["triggerReason"] == "RemoteStart"
    assert tx["idToken"] == TOKEN and tx["transactionInfo"]["remoteStartId"] == 17
    assert tx["evse"] == {"id": 1, "connectorId": 1} and tx["transactionInfo"]["chargingState"] == "EVConnected"


def test_TC_E_02_CS():
    """Start transaction options - EnergyTransfer."""
    o = OCTT()
    _points(o, start="EnergyTransfer")
    o.authorized_remote()
    o.plug()                                                            # connect the EV and EVSE
    assert o.expect("StatusNotification")["connectorStatus"] == "Occupied"  # 1, 2
    tx = o.expect("TransactionEvent")                                   # 3, 4
    assert tx["eventType"] == "Started" and tx["triggerReason"] == "RemoteStart"
    assert tx["idToken"] == TOKEN and tx["evse"] == {"id": 1, "connectorId": 1}
    assert tx["transactionInfo"]["chargingState"] == "Charging"


def test_TC_E_09_CS():
    """Start transaction options - EVConnected."""
    o = OCTT()
    _points(o, start="EVConnected")
    status, tx = o.ev_connected()                                       # 1-4
    assert tx["eventType"] == "Started" and tx["triggerReason"] in ("CablePluggedIn", "ChargingStateChanged")
    assert tx["evse"] == {"id": 1, "connectorId": 1} and tx["transactionInfo"]["chargingState"] == "EVConnected"


def test_TC_E_10_CS():
    """Start transaction options - Authorized - Local: the car's EIM authorization (a start
    button's NoAuthorization, no AuthorizeRequest) starts the transaction; the cable comes first
    because an ISO 15118 car identifies itself through its session."""
    o = OCTT()
    _points(o, start="Authorized")
    o.plug()
    assert o.expect("StatusNotification")["connectorStatus"] == "Occupied"
    tx = o.expect("TransactionEvent")                                   # 3, 4 (no Authorize: a start button)
    assert tx["eventType"] == "Started" and tx["triggerReason"] == "Authorized"
    assert tx["idToken"] == {"idToken": "", "type": "NoAuthorization"}
    assert not o.sent("Authorize")


def test_TC_E_13_CS():
    """Start transaction options - Authorized - Remote."""
    o = OCTT()
    _points(o, start="Authorized")
    o.authorized_remote()                                               # 1, 2
    status, tx = o.expect("StatusNotification", "TransactionEvent")     # 5, 6 (no Authorize: AuthorizeRemoteStart false)
    assert status["connectorStatus"] == "Occupied"
    assert tx["eventType"] == "Started" and tx["triggerReason"] == "RemoteStart"
    assert tx["idToken"] == TOKEN and "remoteStartId" in tx["transactionInfo"]


# --- Stop transaction options (E06) --------------------------------------------------------------------

def test_TC_E_39_CS():
    """Stop transaction options - Deauthorized - timeout: authorized, no cable within
    EVConnectionTimeOut (authorized remotely: a local idToken needs the car's session)."""
    o = OCTT()
    _points(o, start="Authorized", stop="Authorized")
    assert o.set_variable("TxCtrlr", "EVConnectionTimeOut", "30") == "Accepted"
    o.authorized_remote()
    started = o.expect("StatusNotification", "TransactionEvent")[1]
    ended = o.expect("TransactionEvent", timeout=40)                    # 1, 2
    assert ended.t - started.t >= 30
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", "EVConnectTimeout")
    assert ended["transactionInfo"]["stoppedReason"] == "Timeout"
    assert o.expect("StatusNotification")["connectorStatus"] == "Available"  # optional, sent


def test_TC_E_35_CS():
    """Stop transaction options - PowerPathClosed - Remote stop."""
    o = OCTT()
    _points(o, stop="PowerPathClosed")
    started = o.transaction()
    _stop_remote(o, _tx_id(started))                                    # 1, 2
    ended = o.expect("TransactionEvent")                                # 3, 4
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", "RemoteStop")
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"


def test_TC_E_08_CS():
    """Stop transaction options - EnergyTransfer stopped - StopAuthorized (remote)."""
    o = OCTT()
    _points(o, stop="EnergyTransfer")
    started = o.transaction()
    _stop_remote(o, _tx_id(started))
    ended = o.expect("TransactionEvent")                                # StopAuthorized B, step 3
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", "RemoteStop")
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    assert o.stage.measurements(o.now).current == 0.0


def test_TC_E_22_CS():
    """Stop transaction options - EnergyTransfer stopped - SuspendedEV: the EV suspends."""
    o = OCTT()
    _points(o, stop="EnergyTransfer")
    o.transaction()
    o.run(10)
    o.ev_stops(end="Pause")                                             # the EV suspends the energy transfer
    msg = o.expect("TransactionEvent")                                  # 1, 2
    assert msg["triggerReason"] == "ChargingStateChanged"
    assert (msg["eventType"], msg["transactionInfo"]["chargingState"]) == ("Ended", "EVConnected")
    assert msg["transactionInfo"]["stoppedReason"] == "StoppedByEV"


def test_TC_E_54_CS():
    """Stop transaction options - EVDisconnected - EV side (not able to charge IEC 61851-1 EV):
    EnergyTransferSuspended, then the cable goes."""
    o = OCTT()
    _points(o, stop="EVConnected")
    o.transaction()
    o.run(10)
    o.ev_stops(end="Pause")                                             # EnergyTransferSuspended
    suspended = o.expect("TransactionEvent")
    assert suspended["triggerReason"] == "ChargingStateChanged"
    assert suspended["transactionInfo"]["chargingState"] in ("EVConnected", "SuspendedEV")
    o.run(5)
    o.unplug()                                                          # the EVSE loses the EV
    ended = o.expect("StatusNotification", "TransactionEvent")[1]       # 1, 2
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", "EVCommunicationLost")
    assert ended["transactionInfo"]["chargingState"] == "Idle"
    assert ended["transactionInfo"]["stoppedReason"] in ("StoppedByEV", "EVDisconnected")


def test_TC_E_21_CS():
    """Stop transaction options - StopAuthorized - Remote."""
    o = OCTT()
    _points(o, stop="Authorized")
    started = o.transaction()
    _stop_remote(o, _tx_id(started))                                    # 1, 2
    ended = o.expect("TransactionEvent")                                # 3, 4
    assert (ended["eventType"], ended["triggerReason"]) == ("Ended", "RemoteStop")
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"


# --- Local start (E02) ---------------------------------------------------------------------------------

def test_TC_E_03_CS():
    """Local start transaction - Cable plugin first - Success: EVConnectedPreSession, Authorized
    (the car's EIM request: NoAuthorization, no AuthorizeRequest), EnergyTransferStarted."""
    o = OCTT()
    _, started = o.ev_connected()
    assert started["eventType"] == "Started"
    auth = o.expect("TransactionEvent")                                 # Authorized (local)
    assert auth["triggerReason"] == "Authorized" and auth["idToken"]["type"] == "NoAuthorization"
    charging = o.energy_transfer_started()                              # EnergyTransferStarted
    assert charging["triggerReason"] == "ChargingStateChanged"
    assert not o.sent("Authorize")


def test_TC_E_38_CS():
    """Local start transaction - EV not ready: the car is connected and authorized but takes
    none of the energy offered (its battery is full): ChargingStateChanged SuspendedEV."""
    o = OCTT()
    o.authorized_remote()                                               # State is Authorized
    _, started = o.ev_connected(soc=100.0)                              # 1 EVConnectedPreSession, EV not ready
    assert started["triggerReason"] == "RemoteStart"
    msg = o.expect("TransactionEvent")                                  # 2, 3
    assert (msg["triggerReason"], msg["transactionInfo"]["chargingState"]) == ("ChargingStateChanged", "SuspendedEV")


def test_charging_state_follows_the_flow():
    """SuspendedEVSE while a profile offers nothing, Charging again when it does."""
    o = OCTT()
    o.transaction()
    idle = {"evseId": 0, "chargingProfile": {"id": 3, "stackLevel": 5, "chargingProfilePurpose": "TxDefaultProfile",
                                             "chargingProfileKind": "Relative", "chargingSchedule": [{
                                                 "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
                                                     {"startPeriod": 0, "operationMode": "Idle"}]}]}}
    assert o.ok("SetChargingProfile", idle)["status"] == "Accepted"
    msg = o.expect("TransactionEvent")
    assert (msg["triggerReason"], msg["transactionInfo"]["chargingState"]) == ("ChargingStateChanged", "SuspendedEVSE")
    assert o.ok("ClearChargingProfile", {"chargingProfileId": 3})["status"] == "Accepted"
    msg = o.expect("TransactionEvent")
    assert (msg["triggerReason"], msg["transactionInfo"]["chargingState"]) == ("ChargingStateChanged", "Charging")


# --- Check transaction status (E14) -------------------------------------------------------------------------

def _offline_then_back(o: OCTT, wait: float) -> None:
    """The OCTT closes the connection and refuses reconnects for ``wait`` s; the queued
    TransactionEvents wait for its answers until the test gave them (``o.hold``)."""
    o.drop(accept=False)
    o.run(wait)
    o.hold.add("TransactionEvent")
    o.accept()
    o.run_until(lambda: o.connected, 120, what="the reconnect")


def _answer_held(o: OCTT) -> None:
    o.hold.discard("TransactionEvent")
    for msg in list(o.inbox):  # answering lets the station send the next one (into the inbox)
        o.answer(msg)


def _offline_config(o: OCTT, retry: int = 30, tx_interval: int = 10) -> None:
    for component, name, value in (("SampledDataCtrlr", "TxUpdatedInterval", str(tx_interval)),
                                   ("OCPPCommCtrlr", "OfflineThreshold", str(retry + 60)),
                                   ("OCPPCommCtrlr", "RetryBackOffWaitMinimum", str(retry)),
                                   ("OCPPCommCtrlr", "RetryBackOffRandomRange", "0")):
        assert o.set_variable(component, name, value) == "Accepted"


def test_TC_E_28_CS():
    """Check Transaction status - TransactionId unknown."""
    o = OCTT()
    answer = o.ok("GetTransactionStatus", {"transactionId": str(uuid.uuid4())})
    assert answer == {"ongoingIndicator": False, "messagesInQueue": False}


def test_TC_E_29_CS():
    """Check Transaction status - Transaction with id ongoing - with message in queue."""
    o = OCTT()
    _offline_config(o)
    tx_id = _tx_id(o.transaction())
    _offline_then_back(o, 30)                                           # 1, 2
    answer = o.ok("GetTransactionStatus", {"transactionId": tx_id})     # 3, 4: the moment it is back
    assert answer == {"ongoingIndicator": True, "messagesInQueue": True}
    _answer_held(o)
    queued = o.expect("TransactionEvent", triggers=("MeterValuePeriodic",))  # 5, 6
    assert queued["eventType"] == "Updated" and queued["meterValue"] and queued["offline"] is True


def test_TC_E_30_CS():
    """Check Transaction status - Transaction with id ongoing - without message in queue."""
    o = OCTT()
    tx_id = _tx_id(o.transaction())
    o.quiet(1)
    assert o.ok("GetTransactionStatus", {"transactionId": tx_id}) == {"ongoingIndicator": True,
                                                                       "messagesInQueue": False}


def test_TC_E_31_CS():
    """Check Transaction status - Transaction with id ended - with message in queue: the
    transaction ends while offline (the car ends it and leaves)."""
    o = OCTT()
    _offline_config(o)
    tx_id = _tx_id(o.transaction())
    o.drop(accept=False)
    o.ev_stops()
    o.run(10)
    o.unplug()
    o.run(20)
    o.hold.add("TransactionEvent")
    o.accept()
    o.run_until(lambda: o.connected, 120)
    assert o.ok("GetTransactionStatus", {"transactionId": tx_id}) == {"ongoingIndicator": False,  # 1, 2
                                                                       "messagesInQueue": True}
    _answer_held(o)
    assert o.expect("StatusNotification")["connectorStatus"] == "Available"  # it changed while offline
    events = []
    while not events or events[-1]["eventType"] != "Ended":             # 3, 4: all of them
        events.append(o.expect("TransactionEvent", triggers=("MeterValuePeriodic", "ChargingRateChanged")))
    assert all(e["offline"] for e in events)
    ended = events[-1]
    assert ended["triggerReason"] == "EVCommunicationLost" and ended["transactionInfo"]["chargingState"] == "Idle"


def test_TC_E_32_CS():
    """Check Transaction status - Transaction with id ended - without message in queue."""
    o = OCTT()
    tx_id = _tx_id(o.transaction())
    _stop_remote(o, tx_id)                                              # State is ParkingBayUnoccupied:
    assert o.expect("TransactionEvent")["triggerReason"] == "RemoteStop"  # StopAuthorized,
    assert o.expect("TransactionEvent")["transactionInfo"]["chargingState"] == "EVConnected"  # PostSession,
    o.run(5)
    o.unplug()                                                          # EVDisconnected
    assert o.expect("StatusNotification", "TransactionEvent")[1]["eventType"] == "Ended"
    assert o.ok("GetTransactionStatus", {"transactionId": tx_id}) == {"ongoingIndicator": False,
                                                                       "messagesInQueue": False}


def test_TC_E_33_CS():
    """Check Transaction status - Without transactionId - with message in queue."""
    o = OCTT()
    _offline_config(o)
    o.transaction()
    _offline_then_back(o, 30)
    answer = o.ok("GetTransactionStatus", {})                           # 3, 4
    assert answer == {"messagesInQueue": True}                          # ongoingIndicator omitted
    _answer_held(o)
    queued = o.expect("TransactionEvent", triggers=("MeterValuePeriodic",))
    assert queued["eventType"] == "Updated" and queued["meterValue"] and queued["offline"] is True


def test_TC_E_34_CS():
    """Check Transaction status - Without transactionId - without message in queue."""
    o = OCTT()
    assert o.ok("GetTransactionStatus", {}) == {"messagesInQueue": False}


# --- Offline behaviour (E11) ----------------------------------------------------------------------------

def test_TC_E_40_CS():
    """Offline Behaviour - Connection loss during transaction: the queued events, all Updated,
    with meter values, offline=true."""
    o = OCTT()
    _offline_config(o)
    o.transaction()
    o.quiet(1)
    _offline_then_back(o, 30)                                           # 1, 2
    _answer_held(o)
    o.run(1)
    events = []
    while o.inbox:                                                      # 3, 4: the queue emptied
        events.append(o.expect("TransactionEvent", triggers=("MeterValuePeriodic",)))
    assert len(events) >= 2
    assert all(e["eventType"] == "Updated" and e["meterValue"] and e["offline"] is True for e in events)


# --- Retries (E13) ---------------------------------------------------------------------------------------

def _unanswered_start(o: OCTT, attempts: int, interval: int):
    assert o.set_variable("OCPPCommCtrlr", "MessageAttempts", str(attempts), instance="TransactionEvent") == "Accepted"
    assert o.set_variable("OCPPCommCtrlr", "MessageAttemptInterval", str(interval),
                          instance="TransactionEvent") == "Accepted"
    o.authorized_remote()                                               # State is Authorized
    o.hold.add("TransactionEvent")                                      # the OCTT answers them itself
    o.plug(start_session=False)                                         # State is EVConnectedPreSession
    o.expect("StatusNotification")


def _never_again(o: OCTT, msg, seconds: float) -> None:
    """The OCTT waits one more interval: the message is not sent again (other ones may come)."""
    o.quiet(seconds, allow=("TransactionEvent",))
    assert sum(1 for _, d, f in o.frames if d == "cs" and f[0] == 2 and f[1] == msg.id) <= 3


def test_TC_E_41_CS():
    """Retry sending transaction message when failed - Max retry count reached: no answer,
    sent again after MessageTimeout + MessageAttemptInterval × the sends before, 3 times in all."""
    o = OCTT()
    timeout = int(o.get_variable("OCPPCommCtrlr", "MessageTimeout", "Default")["attributeValue"])
    _unanswered_start(o, 3, 5)
    sends = [o.expect("TransactionEvent", answer=False)]                 # 5 (no answer)
    for n in (1, 2):
        sends.append(o.expect("TransactionEvent", answer=False, timeout=timeout + 5 * n + 1))
        assert sends[-1].id == sends[0].id and sends[-1].payload == sends[0].payload  # the same message
        assert sends[-1].t - sends[-2].t == timeout + 5 * n
    _never_again(o, sends[0], timeout + 5 * 3 + 5)                      # no fourth send
    assert [f[1] for _, d, f in o.frames if d == "cs" and f[0] == 2].count(sends[0].id) == 3
    assert o.connected and not o.sent("BootNotification")[1:]           # the link stayed up


def test_TC_E_42_CS():
    """Retry sending transaction message when failed - Success before reaching the max retry count."""
    o = OCTT()
    timeout = int(o.get_variable("OCPPCommCtrlr", "MessageTimeout", "Default")["attributeValue"])
    _unanswered_start(o, 3, 5)
    first = o.expect("TransactionEvent", answer=False)                  # ignored
    second = o.expect("TransactionEvent", timeout=timeout + 6)          # answered
    assert second.id == first.id and second.t - first.t == timeout + 5
    o.quiet(timeout + 5 * 2 + 5)
    assert [f[1] for _, d, f in o.frames if d == "cs" and f[0] == 2].count(first.id) == 2


def test_TC_E_50_CS():
    """Retry sending transaction message when failed - Max retry count reached - CallError:
    MessageAttemptInterval × the sends before, 3 times in all."""
    o = OCTT()
    _unanswered_start(o, 3, 5)
    sends = []
    for n in range(3):
        msg = o.expect("TransactionEvent", answer=False, timeout=20)
        o.error(msg, "InternalError")                                    # 6
        sends.append(msg)
    assert [b.t - a.t for a, b in zip(sends, sends[1:])] == [5, 10]
    assert len({m.id for m in sends}) == 1
    o.quiet(5 * 3 + 5)
    assert [f[1] for _, d, f in o.frames if d == "cs" and f[0] == 2].count(sends[0].id) == 3


def test_TC_E_51_CS():
    """Retry sending transaction message when failed - Success before reaching the max retry
    count - CallError."""
    o = OCTT()
    _unanswered_start(o, 3, 5)
    first = o.expect("TransactionEvent", answer=False)
    o.error(first, "InternalError")
    second = o.expect("TransactionEvent", timeout=20)                   # answered
    assert second.id == first.id and second.t - first.t == 5
    o.quiet(5 * 2 + 5)
    assert [f[1] for _, d, f in o.frames if d == "cs" and f[0] == 2].count(first.id) == 2

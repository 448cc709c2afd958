"""OCPP 2.0.1 part 6, charging-station test cases of block G (Availability), scripted as the OCA
test system runs them (tests/ocpp/octt.py). v2h has one EVSE with one connector: "all
connectors" is connector 1 of EVSE 1. The status is reported with StatusNotification."""

from __future__ import annotations

from .octt import OCTT

STATION, EVSE, CONNECTOR = {}, {"evse": {"id": 1}}, {"evse": {"id": 1, "connectorId": 1}}


def _change(o: OCTT, status: str, where: dict) -> dict:
    return o.ok("ChangeAvailability", {"operationalStatus": status, **where})


def _unavailable(o: OCTT, where: dict) -> None:
    """Reusable State Unavailable."""
    assert _change(o, "Inoperative", where)["status"] == "Accepted"
    status = o.expect("StatusNotification")
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (1, 1, "Unavailable")


# --- Connector status notification (G01) ----------------------------------------------------------------


def test_TC_G_01_CS():
    """Connector status Notification - Available to Occupied."""
    o = OCTT()
    status, _ = o.ev_connected(start_session=False)
    assert status["connectorStatus"] == "Occupied"


def test_TC_G_02_CS():
    """Connector status Notification - Occupied to Available."""
    o = OCTT()
    o.ev_connected(start_session=False)
    o.run(5)
    o.unplug()
    status = o.expect("StatusNotification", "TransactionEvent")[0]         # the transaction ends with it
    assert status["connectorStatus"] == "Available"


# --- ChangeAvailability of the EVSE, the station, the connector (G03–G05) -------------------------------------

def _operative_to_inoperative(where):
    """Change Availability EVSE / Charging Station / Connector - Operative to inoperative."""
    o = OCTT()
    _unavailable(o, where)
    o.plug()                                                               # a car is refused: no transaction
    o.run(20)
    assert not o.sent("TransactionEvent") and not o.bridge.energy


def test_TC_G_03_CS():
    """Change Availability EVSE - Operative to inoperative."""
    _operative_to_inoperative(EVSE)


def test_TC_G_05_CS():
    """Change Availability Charging Station - Operative to inoperative."""
    _operative_to_inoperative(STATION)


def test_TC_G_07_CS():
    """Change Availability Connector - Operative to inoperative."""
    _operative_to_inoperative(CONNECTOR)


def _inoperative_to_operative(where):
    """Change Availability EVSE / Charging Station / Connector - Inoperative to operative."""
    o = OCTT()
    _unavailable(o, where)                                                 # memory state Unavailable
    assert _change(o, "Operative", where)["status"] == "Accepted"          # 1, 2
    status = o.expect("StatusNotification")                                # 3, 4
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (1, 1, "Available")
    o.transaction()                                                        # charging again


def test_TC_G_04_CS():
    """Change Availability EVSE - Inoperative to operative."""
    _inoperative_to_operative(EVSE)


def test_TC_G_06_CS():
    """Change Availability Charging Station - Inoperative to operative."""
    _inoperative_to_operative(STATION)


def test_TC_G_08_CS():
    """Change Availability Connector - Inoperative to operative."""
    _inoperative_to_operative(CONNECTOR)


def _operative_to_operative(where):
    """Change Availability EVSE / Charging Station / Connector - Operative to operative: Accepted;
    the connector's status is reported (post scenario validation)."""
    o = OCTT()
    assert _change(o, "Operative", where)["status"] == "Accepted"
    assert o.expect("StatusNotification")["connectorStatus"] == "Available"


def test_TC_G_09_CS():
    """Change Availability EVSE - Operative to operative."""
    _operative_to_operative(EVSE)


def test_TC_G_12_CS():
    """Change Availability Charging Station - Operative to operative."""
    _operative_to_operative(STATION)


def test_TC_G_15_CS():
    """Change Availability Connector - Operative to operative."""
    _operative_to_operative(CONNECTOR)


def _inoperative_to_inoperative(where):
    """Change Availability EVSE / Charging Station / Connector - Inoperative to inoperative:
    Accepted, and the status reported again (TC_G_13 step 3)."""
    o = OCTT()
    _unavailable(o, where)                                                 # state is Unavailable
    assert _change(o, "Inoperative", where)["status"] == "Accepted"        # 1, 2
    assert o.expect("StatusNotification")["connectorStatus"] == "Unavailable"  # 3, 4


def test_TC_G_10_CS():
    """Change Availability EVSE - Inoperative to inoperative."""
    _inoperative_to_inoperative(EVSE)


def test_TC_G_13_CS():
    """Change Availability Charging Station - Inoperative to inoperative."""
    _inoperative_to_inoperative(STATION)


def test_TC_G_16_CS():
    """Change Availability Connector - Inoperative to inoperative."""
    _inoperative_to_inoperative(CONNECTOR)


def _with_ongoing_transaction(where):
    """Change Availability EVSE / Charging Station / Connector - With ongoing transaction:
    Scheduled; the transaction runs on; Unavailable once it ended (here: at EVDisconnected,
    TxStopPoint EVConnected)."""
    o = OCTT()
    started = o.transaction()
    assert _change(o, "Inoperative", where)["status"] == "Scheduled"       # 1, 2
    o.run(10)                                                              # Transaction Duration
    assert o.bridge.energy
    answer = o.ok("RequestStopTransaction", {"transactionId": started["transactionInfo"]["transactionId"]})
    assert answer["status"] == "Accepted"                                  # 3 StopAuthorized
    assert o.expect("TransactionEvent")["triggerReason"] == "RemoteStop"
    post = o.expect("TransactionEvent")                                    # 6 EVConnectedPostSession
    assert post["transactionInfo"]["chargingState"] == "EVConnected"
    o.run(3)
    o.unplug()                                                             # 9 EVDisconnected
    available, ended = o.expect("StatusNotification", "TransactionEvent")
    assert available["connectorStatus"] == "Available" and ended["eventType"] == "Ended"
    status = o.expect("StatusNotification")                                # 10, 11: the transaction ended
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (1, 1, "Unavailable")


def test_TC_G_11_CS():
    """Change Availability EVSE - With ongoing transaction."""
    _with_ongoing_transaction(EVSE)


def test_TC_G_14_CS():
    """Change Availability Charging Station - With ongoing transaction."""
    _with_ongoing_transaction(STATION)


def test_TC_G_17_CS():
    """Change Availability Connector - With ongoing transaction."""
    _with_ongoing_transaction(CONNECTOR)


# --- Availability persists across a reboot --------------------------------------------------------------------


def test_TC_G_18_CS():
    """Change Availability EVSE - state persists across reboot (Booted: a Reset)."""
    o = OCTT()
    _unavailable(o, EVSE)                                                  # 1-4
    assert o.ok("Reset", {"type": "Immediate"})["status"] == "Accepted"    # 5 Booted
    o.booted()
    assert o.sent("StatusNotification")[-1]["connectorStatus"] == "Unavailable"


def _state_persists_across_reboot(where):
    """Change Availability Connector / Charging Station - state persists across reboot
    (Booting: Reset Immediate)."""
    o = OCTT()
    _unavailable(o, where)                                                 # state is Unavailable
    assert o.ok("Reset", {"type": "Immediate"})["status"] == "Accepted"    # 1 Booting
    assert o.expect("BootNotification")["reason"] == "RemoteReset"         # 2, 3
    status = o.expect("StatusNotification")                                # 4, 5
    assert (status["evseId"], status["connectorId"], status["connectorStatus"]) == (1, 1, "Unavailable")
    assert o.expect("SecurityEventNotification")["type"] in ("StartupOfTheDevice", "ResetOrReboot")  # 6, 7


def test_TC_G_19_CS():
    """Change Availability Connector - state persists across reboot."""
    _state_persists_across_reboot(CONNECTOR)


def test_TC_G_21_CS():
    """Change Availability Charging Station - state persists across reboot."""
    _state_persists_across_reboot(STATION)
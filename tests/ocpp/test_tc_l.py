"""OCPP 2.0.1 part 6, charging-station test cases of block L (Firmware Management) and the
TriggerMessage cases for FirmwareStatusNotification (TC_F_17–19), scripted as the OCA test system
runs them (tests/ocpp/octt.py: the OCTT's file server and a simulated installer on the simulated
clock; the signing PKI of tests/ocpp/firmware_pki.py)."""

from __future__ import annotations

from .firmware_pki import pki
from .octt import OCTT
from ocpp_bridge.core import iso

LOCATION = "https://files.octt.invalid/firmware/v2h-2.0.bin"
IMAGE = b"v2h firmware 2.0\n" * 1000


def _octt(**kw) -> OCTT:
    o = OCTT(firmware_roots=[pki().root], **kw)
    o.files.files[LOCATION] = IMAGE
    return o


def _update(o: OCTT, *, request_id: int = 5, retrieve: float = -7200, install: float | None = -7200,
            location: str = LOCATION, certificate: str | None = None, signature: str | None = None,
            omit: tuple[str, ...] = ()) -> dict:
    firmware = {"location": location, "retrieveDateTime": iso(o.now + retrieve),
                "signingCertificate": certificate or pki().signing_pem,
                "signature": signature or pki().sign(IMAGE)}
    if install is not None:
        firmware["installDateTime"] = iso(o.now + install)
    for key in omit:
        firmware.pop(key)
    return o.ok("UpdateFirmware", {"requestId": request_id, "firmware": firmware})


def _statuses(o: OCTT, *expected: str, request_id: int = 5, timeout: float = 60.0) -> list:
    got = []
    for status in expected:
        msg = o.expect("FirmwareStatusNotification", timeout=timeout)
        assert (msg["status"], msg.get("requestId")) == (status, request_id), (msg.payload, expected)
        got.append(msg)
    return got


def _reboot_into_new_firmware(o: OCTT, final: str = "Installed", request_id: int = 5) -> None:
    """InstallRebooting, BootNotification FirmwareUpdate, the connectors, FirmwareUpdated, the outcome."""
    boot = o.expect("BootNotification")
    assert boot["reason"] == "FirmwareUpdate" and o.reboots == 1
    status, event = o.expect("StatusNotification", "SecurityEventNotification")
    assert status["connectorStatus"] == "Available" and event["type"] == "FirmwareUpdated"
    _statuses(o, final, request_id=request_id)


def test_TC_L_01_CS():
    """Secure Firmware Update - Installation successful."""
    o = _octt()
    assert _update(o)["status"] == "Accepted"                                           # 1, 2
    _statuses(o, "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting")  # 3-12
    _reboot_into_new_firmware(o)                                                        # 13-20
    assert o.installer.installed == [(5, IMAGE)]


def test_TC_L_02_CS():
    """Secure Firmware Update - InstallScheduled: installed at installDateTime."""
    o = _octt()
    assert _update(o, install=+600)["status"] == "Accepted"
    accepted = o.now
    _statuses(o, "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled")  # 3-10
    installing = _statuses(o, "Installing", timeout=700)[0]                             # 11, 12
    assert installing.t - accepted >= 600
    _statuses(o, "InstallRebooting")
    _reboot_into_new_firmware(o)


def test_TC_L_03_CS():
    """Secure Firmware Update - DownloadScheduled: fetched at retrieveDateTime."""
    o = _octt()
    assert _update(o, retrieve=+300)["status"] == "Accepted"
    accepted = o.now
    _statuses(o, "DownloadScheduled")                                                   # 3, 4
    downloading = _statuses(o, "Downloading", timeout=400)[0]                           # 5, 6
    assert downloading.t - accepted >= 300 and o.files.downloads[0][0] - accepted >= 300
    _statuses(o, "Downloaded", "SignatureVerified", "Installing", "InstallRebooting")
    _reboot_into_new_firmware(o)


def test_TC_L_05_CS():
    """Secure Firmware Update - InvalidCertificate: a certificate the manufacturer's root did
    not issue (and one that expired)."""
    for certificate in (pki().foreign_pem, pki().expired_pem):
        o = _octt()
        answer = _update(o, certificate=certificate)
        assert answer["status"] in ("InvalidCertificate", "RevokedCertificate"), answer
        assert o.expect("SecurityEventNotification")["type"] == "InvalidFirmwareSigningCertificate"
        assert not o.files.downloads


def test_TC_L_06_CS():
    """Secure Firmware Update - InvalidSignature: a real signature, not over this image."""
    o = _octt()
    assert _update(o, signature=pki().sign(b"another image"))["status"] == "Accepted"
    _statuses(o, "Downloading", "Downloaded", "InvalidSignature")                       # 3-8
    assert o.expect("SecurityEventNotification")["type"] == "InvalidFirmwareSignature"  # 9, 10
    assert not o.installer.installed


def test_TC_L_07_CS():
    """Secure Firmware Update - DownloadFailed: the location does not exist."""
    o = _octt()
    assert _update(o, location=LOCATION + "_does_not_exist")["status"] == "Accepted"
    _statuses(o, "Downloading", "DownloadFailed")


def test_TC_L_07_CS_retries():
    """DownloadFailed after the request's retries, retryInterval apart."""
    o = _octt()
    firmware = {"location": LOCATION + "_missing", "retrieveDateTime": iso(o.now - 10),
                "signingCertificate": pki().signing_pem, "signature": pki().sign(IMAGE)}
    assert o.ok("UpdateFirmware", {"requestId": 5, "firmware": firmware, "retries": 2,
                                   "retryInterval": 30})["status"] == "Accepted"
    _statuses(o, "Downloading")
    failed = _statuses(o, "DownloadFailed", timeout=120)[0]
    starts = [t for t, _ in o.files.downloads]
    assert len(starts) == 3 and all(b - a >= 30 for a, b in zip(starts, starts[1:]))  # retryInterval apart
    assert failed.t - o.files.downloads[0][0] >= 60


def test_TC_L_08_CS():
    """Secure Firmware Update - InstallVerificationFailed or InstallationFailed (after the restart)."""
    o = _octt()
    o.installer.outcome = "InstallVerificationFailed"
    assert _update(o, retrieve=+60)["status"] == "Accepted"
    _statuses(o, "DownloadScheduled", "Downloading", "Downloaded", "SignatureVerified", "Installing",
              "InstallRebooting", timeout=120)
    _reboot_into_new_firmware(o, "InstallVerificationFailed")


def test_TC_L_11_CS():
    """Secure Firmware Update - Unable to cancel: a second UpdateFirmware while downloading is
    Rejected, the first goes on to Installed."""
    o = _octt()
    o.files.delay = 30
    assert _update(o)["status"] == "Accepted"                                           # 1, 2
    _statuses(o, "Downloading")                                                         # 3, 4
    assert _update(o, request_id=6, install=None, retrieve=0)["status"] == "Rejected"   # 5, 6
    _statuses(o, "Downloaded", "SignatureVerified", "Installing", "InstallRebooting", timeout=60)
    _reboot_into_new_firmware(o)
    assert [r for r, _ in o.installer.installed] == [5]


def test_TC_L_15_CS():
    """Secure Firmware Update - Unable to install firmware with ongoing transaction -
    AllowNewSessionsPendingFirmwareUpdate is false: downloaded and verified during the
    transaction, InstallScheduled, installed once it ended; no new session meanwhile."""
    o = _octt()
    assert o.set_variable("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate", "false") == "Accepted"
    started = o.transaction()
    assert _update(o)["status"] == "Accepted"                                           # 1, 2 (no Available connector)
    _statuses(o, "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled")   # 5-12
    o.run(30)
    assert o.bridge.energy and not o.installer.installed                                # it waits
    tx_id = started["transactionInfo"]["transactionId"]                                 # 13 ParkingBayUnoccupied
    assert o.ok("RequestStopTransaction", {"transactionId": tx_id})["status"] == "Accepted"
    assert o.expect("TransactionEvent")["triggerReason"] == "RemoteStop"
    o.run(3)
    o.unplug()
    seen = set()
    while seen != {"StatusNotification", "Ended"}:  # EVDisconnected, any order
        msg = o.expect_any("StatusNotification", "TransactionEvent")
        seen.add("Ended" if msg.action == "TransactionEvent" and msg["eventType"] == "Ended" else msg.action)
        seen.discard("TransactionEvent")
    _statuses(o, "Installing", "InstallRebooting")                                      # 14-17
    _reboot_into_new_firmware(o)                                                        # 18-25


def test_L_15_no_new_session_while_the_update_waits():
    """AllowNewSessionsPendingFirmwareUpdate false: a car arriving after the transaction,
    before the installation, is refused (the update waits for the EVSE only once)."""
    o = _octt()
    o.installer.reboot = False
    assert o.set_variable("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate", "false") == "Accepted"
    o.transaction()
    o.files.delay = 60
    assert _update(o)["status"] == "Accepted"
    _statuses(o, "Downloading", timeout=10)
    assert o.bridge.authorize("EIM", "", o.now).value == "Accepted"  # downloading: sessions still allowed
    _statuses(o, "Downloaded", "SignatureVerified", "InstallScheduled", timeout=120)
    assert o.bridge.authorize("EIM", "", o.now).value == "Rejected"  # waiting to install: no new session


def test_TC_L_18_CS():
    """Secure Firmware Update - Missing firmware signing certificate and signature."""
    o = _octt()
    answer = _update(o, omit=("signingCertificate", "signature"))
    assert answer["status"] in ("Rejected", "InvalidCertificate")
    o.quiet(30)
    assert not o.files.downloads


# --- TriggerMessage FirmwareStatusNotification (F06) ---------------------------------------------------------

def test_TC_F_17_CS():
    """Trigger message - FirmwareStatusNotification - Specific EVSE not relevant."""
    o = _octt()
    answer = o.ok("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification", "evse": {"id": 1}})
    assert answer["status"] == "Accepted"
    assert o.expect("FirmwareStatusNotification")["status"] == "Idle"


def test_TC_F_18_CS():
    """Trigger message - FirmwareStatusNotification - Idle."""
    o = _octt()
    assert o.ok("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})["status"] == "Accepted"
    assert o.expect("FirmwareStatusNotification")["status"] == "Idle"


def test_TC_F_19_CS():
    """Trigger message - FirmwareStatusNotification - Downloading."""
    o = _octt()
    o.files.delay = 60
    assert _update(o, install=None)["status"] == "Accepted"                              # 1, 2
    _statuses(o, "Downloading")                                                         # 3, 4
    assert o.ok("TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})["status"] == "Accepted"
    msg = o.expect("FirmwareStatusNotification")                                        # 7, 8
    assert (msg["status"], msg["requestId"]) == ("Downloading", 5)

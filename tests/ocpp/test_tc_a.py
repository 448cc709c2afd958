"""OCPP 2.0.1 part 6, charging-station test cases of block A (Security) of the Core profile.
What happens on the wire — the HTTP upgrade's Authorization header, TLS versions, certificates —
runs over real websockets and TLS against the test CSMS (tests/ocpp/csms.py); the profile
changes run in memory (tests/ocpp/octt.py)."""

from __future__ import annotations

import asyncio
import base64
import ssl
import warnings

import pytest

from ocpp_bridge.outbox import Outbox
from ocpp_bridge.station import ChargingStation, StationConfig, ssl_context

from .csms import CSMS
from .octt import OCTT, PASSWORD as OCTT_PASSWORD
from .test_station import _server_ctx, tls_files  # noqa: F401 (the fixture)
from .test_tc_m import certificate_installed, certificate_management, expected_hash_data, octt_pki, pem  # noqa: F401

PASSWORD = "a-very-secret-passphrase"
FAST = {"retry_backoff_min": 0.05, "retry_backoff_random": 0.0, "retry_backoff_repeat": 1}


async def _booted(csms: CSMS, station: str, n: int = 1) -> None:
    """Reusable State Booted as the CSMS sees it: boot, the connector, the start-up event."""
    await csms.wait_for(lambda c: len(c.actions("SecurityEventNotification")) >= n and c.actions("StatusNotification"),
                        timeout=20)


def _run(csms_kw: dict, station_cfg, body, tmp_path, frame_log=None):
    async def run():
        csms = await CSMS(**csms_kw).start()
        cs = ChargingStation(station_cfg(csms), Outbox(tmp_path / "cs.db"), frame_log=frame_log)
        task = asyncio.ensure_future(cs.run())
        try:
            return csms, cs, await body(csms, cs)
        finally:
            task.cancel()
            await csms.close()
    return asyncio.run(run())


def test_TC_A_01_CS(tmp_path):
    """Basic Authentication - Valid username/password combination: AUTHORIZATION: Basic
    base64(<ChargingStationId>:<BasicAuthPassword>), the id equal to the URL's last segment."""
    csms, cs, _ = _run({"passwords": {"CS001": PASSWORD}},
                       lambda c: StationConfig("CS001", c.url(), password=PASSWORD, **FAST),
                       lambda csms, cs: _booted(csms, "CS001"), tmp_path)
    header = csms.auth_headers[0]
    user, password = base64.b64decode(header.removeprefix("Basic ")).decode().split(":", 1)
    assert header.startswith("Basic ") and user == "CS001" and password == PASSWORD
    assert 16 <= len(password) <= 40
    assert [r.action for r in csms.received[:3]] == ["BootNotification", "StatusNotification",
                                                     "SecurityEventNotification"]


def test_TC_A_04_CS(tmp_path, tls_files):  # noqa: F811
    """TLS - server-side certificate - Valid certificate: TLS 1.2 or above with the required
    cipher suites, then Booted."""
    cfg = StationConfig("CS002", "wss://127.0.0.1:1", password=PASSWORD, csms_ca=tls_files["ca"], **FAST)
    ciphers = {c["name"] for c in ssl_context(cfg).get_ciphers()}
    assert {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"} <= ciphers
    assert ssl_context(cfg).minimum_version >= ssl.TLSVersion.TLSv1_2
    server = _server_ctx(tls_files, False)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    server.maximum_version = ssl.TLSVersion.TLSv1_2  # the oldest version the station must speak
    csms, cs, _ = _run({"passwords": {"CS002": PASSWORD}, "ssl_context": server},
                       lambda c: StationConfig("CS002", c.url("wss"), password=PASSWORD, csms_ca=tls_files["ca"],
                                               **FAST),
                       lambda csms, cs: _booted(csms, "CS002"), tmp_path)
    assert csms.actions("StatusNotification")[0].payload["connectorStatus"] == "Available"


def test_TC_A_05_CS(tmp_path, tls_files):  # noqa: F811
    """TLS - server-side certificate - Invalid certificate: the station refuses it, connects
    when the certificate is valid and reports InvalidCsmsCertificate."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tls_files["station"], tls_files["station_key"])  # signed by the CA, but not for 127.0.0.1

    async def body(csms, cs):
        await asyncio.sleep(0.4)                                            # 1-3: refused (one or more tries)
        assert not csms.received
        server.load_cert_chain(tls_files["server"], tls_files["server_key"])  # 4-9
        await _booted(csms, "CS002")
        await csms.wait_for(lambda c: any(e.payload["type"] == "InvalidCsmsCertificate"
                                          for e in c.actions("SecurityEventNotification")))
    csms, cs, _ = _run({"passwords": {"CS002": PASSWORD}, "ssl_context": server},
                       lambda c: StationConfig("CS002", c.url("wss"), password=PASSWORD, csms_ca=tls_files["ca"],
                                               **FAST), body, tmp_path)
    assert [e.payload["type"] for e in csms.actions("SecurityEventNotification")].count("InvalidCsmsCertificate") == 1


def test_TC_A_06_CS(tmp_path, tls_files):  # noqa: F811
    """TLS - server-side certificate - TLS version too low: the station refuses TLS < 1.2 and
    connects once the CSMS offers 1.2. Steps 16, 17 (InvalidTLSVersion) are optional: this
    OpenSSL resets a TLS 1.1-only server's connection instead of answering with a version alert,
    so the station cannot tell why (when it can, it reports InvalidTLSVersion)."""
    server = _server_ctx(tls_files, False)
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        server.minimum_version = ssl.TLSVersion.TLSv1
        server.maximum_version = ssl.TLSVersion.TLSv1_1
    server.set_ciphers("DEFAULT:@SECLEVEL=0")

    async def body(csms, cs):
        await asyncio.sleep(0.4)                                            # 1-3
        assert not csms.received
        server.maximum_version = ssl.TLSVersion.TLSv1_3                     # 4-9
        server.minimum_version = ssl.TLSVersion.TLSv1_2
        await _booted(csms, "CS002")
        await asyncio.sleep(0.3)
    csms, cs, _ = _run({"passwords": {"CS002": PASSWORD}, "ssl_context": server},
                       lambda c: StationConfig("CS002", c.url("wss"), password=PASSWORD, csms_ca=tls_files["ca"],
                                               **FAST), body, tmp_path)
    types = [e.payload["type"] for e in csms.actions("SecurityEventNotification")]
    assert types[0] == "StartupOfTheDevice" and set(types) <= {"StartupOfTheDevice", "InvalidTLSVersion"}
    assert csms.opened == 1  # never over TLS 1.1


def test_TC_A_09_CS(tmp_path):
    """Update Charging Station Password for HTTP Basic Authentication - Accepted: the station
    connects again with the new password at once (no reboot, so no BootNotification)."""
    new = "a-new-password-of-24-chars"

    sent = []

    async def body(csms, cs):
        await _booted(csms, "CS001")
        csms.passwords["CS001"] = new
        cp = csms.connections["CS001"]  # the station closes right after its answer: do not wait on it here
        await cp._send('[2, "a09", "SetVariables", {"setVariableData": [{"component": {"name": "SecurityCtrlr"}, '
                       f'"variable": {{"name": "BasicAuthPassword"}}, "attributeValue": "{new}"}}]}}]')   # 1
        for _ in range(200):                                                                   # 3, 4
            await asyncio.sleep(0.05)
            if csms.opened == 2 and "CS001" in csms.connections:
                break
    csms, cs, _ = _run({"passwords": {"CS001": PASSWORD}},
                       lambda c: StationConfig("CS001", c.url(), password=PASSWORD, **FAST), body, tmp_path,
                       frame_log=lambda direction, name, frame: sent.append(frame) if direction == "tx" else None)
    answer = next(f for f in sent if f[0] == 3 and f[1] == "a09")
    assert answer[2]["setVariableResult"][0]["attributeStatus"] in ("Accepted", "RebootRequired")  # 2
    assert csms.opened == 2 and not csms.refused
    assert csms.auth_headers[-1] == "Basic " + base64.b64encode(f"CS001:{new}".encode()).decode()
    assert len(csms.actions("BootNotification")) == 1


def test_TC_A_10_CS():
    """Update Charging Station Password for HTTP Basic Authentication - Rejected: a password of
    less than 16 characters; the station still connects with the old one."""
    o = OCTT()
    status = o.set_variable("SecurityCtrlr", "BasicAuthPassword", "too-short-15-ch")   # 1, 2
    assert status == "Rejected"
    assert o.ok("Reset", {"type": "Immediate"})["status"] == "Accepted"                # 5 Booted
    o.booted()
    assert o.attempts[-1].password == OCTT_PASSWORD                                      # 3, 4: the old one


WSS = "wss://octt.invalid/ocpp"


def _profile(slot: int, url: str, level: int) -> dict:
    return {"configurationSlot": slot, "connectionData": {"messageTimeout": 30, "ocppCsmsUrl": url,
                                                          "ocppInterface": "Wired0", "ocppVersion": "OCPP20",
                                                          "ocppTransport": "JSON", "securityProfile": level}}


def test_TC_A_19_CS(octt_pki):  # noqa: F811
    """Upgrade Charging Station Security Profile - Accepted (1 → 2). The station starts without
    a CSMS root; the memory state CertificateInstalled installs the OCTT's with InstallCertificate
    (certificate management, tests/ocpp/test_tc_m.py), which makes the upgrade possible (A05.FR.02)."""
    o = OCTT(extras=certificate_management())
    certificate_installed(o, "CSMSRootCertificate", octt_pki.csms_root)                        # memory state
    o.endpoints[WSS] = True
    o.tls_endpoints.add(WSS)
    assert o.ok("SetNetworkProfile", _profile(2, WSS, 2))["status"] == "Accepted"              # 1, 2
    status = o.set_variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")            # 3, 4
    assert status in ("Accepted", "RebootRequired")
    assert o.ok("Reset", {"type": "OnIdle"})["status"] == "Accepted"                           # 5, 6
    o.booted()                                                                                  # 7-9
    assert o.attempts[-1].url.startswith(WSS) and o.attempts[-1].security_profile == 2
    assert o.get_variable("SecurityCtrlr", "SecurityProfile")["attributeValue"] == "2"         # 10, 11
    priority = o.get_variable("OCPPCommCtrlr", "NetworkConfigurationPriority")["attributeValue"]  # 12, 13
    assert "1" not in priority.split(",")


@pytest.mark.parametrize("root", ["deleted", "expired"])
def test_TC_A_20_CS(octt_pki, root):  # noqa: F811
    """Upgrade Charging Station Security Profile - No valid CSMSRootCertificate installed: the
    station (profile 1) has none — its last CSMS root deleted with DeleteCertificate (AQ-1: it
    can be), or the one it has expired — so the profile-2 connection data is Accepted but making
    it the first in NetworkConfigurationPriority is Rejected; the station stays on slot 1."""
    start = octt_pki.station_root if root == "deleted" else octt_pki.expired_root
    o = OCTT(extras=certificate_management({"CSMSRootCertificate": [pem(start)]}))
    if root == "deleted":                                                                       # prerequisite
        deleted = o.ok("DeleteCertificate", {"certificateHashData": expected_hash_data(start, start)})
        assert deleted["status"] == "Accepted", deleted
        assert o.ok("GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}) == \
            {"status": "NotFound"}
    else:
        assert start.not_valid_after_utc.timestamp() < o.now
    o.endpoints[WSS] = True
    o.tls_endpoints.add(WSS)
    assert o.ok("SetNetworkProfile", _profile(2, WSS, 2))["status"] == "Accepted"              # 1, 2
    status = o.set_variable("OCPPCommCtrlr", "NetworkConfigurationPriority", "2,1")            # 3, 4
    assert status == "Rejected"
    assert o.get_variable("OCPPCommCtrlr", "NetworkConfigurationPriority")["attributeValue"] == "1"
    assert o.ok("Reset", {"type": "OnIdle"})["status"] == "Accepted"
    o.booted()
    assert (o.attempts[-1].slot, o.attempts[-1].security_profile) == (1, 1)


def test_TC_A_22_CS():
    """Upgrade Charging Station Security Profile - Downgrade security profile - Rejected."""
    o = OCTT(url=WSS, config={"csms_ca": "/etc/octt/csms-root.pem"})
    assert o.get_variable("SecurityCtrlr", "SecurityProfile")["attributeValue"] == "2"
    assert o.ok("SetNetworkProfile", _profile(2, "ws://octt-2.invalid/ocpp", 1))["status"] == "Rejected"


@pytest.mark.parametrize("value", ["ab", "x" * 41, "has spaces in it, 20+", "ünïcödé-password-16"])
def test_bad_passwords_are_refused(value):
    o = OCTT()
    assert o.set_variable("SecurityCtrlr", "BasicAuthPassword", value) == "Rejected"

"""DIN SPEC 70121 and ISO 15118-2 sessions against an independent implementation (PyPI
``iso15118`` 0.31.2), both ways, as separate processes with SDP across the veth pair: DIN over
TCP; -2 DC and AC over TCP and over TLS 1.2 with the -2 certificates of ``v2h pki init``; -2
Plug & Charge (contract certificate, signed AuthorizationReq) and CertificateInstallation (the
contract key encrypted with ECDH, the -2 KDF and AES-128-CBC) in both directions.

The peer needs one more correction for these protocols (tests/interop/peer_run.py):
``--precharge-waits``. Its simulated car ends pre-charge after five PreCharge exchanges whatever
the voltage (it compares the output with its 20 kV "present voltage", which never matches);
uncorrected, our charger refuses its PowerDelivery (FAILED_PowerDeliveryNotApplied), nothing
energised (``test_their_stock_car_is_refused_at_power_delivery``). Its charger side needs the
same correction as for -20 (``--evse-follows-target``: its stock power stage stays at 1 V).

The peer's JVM codec answers a CurrentDemandReq in 50-250 ms on this machine, close to the
car's 0.25 s CurrentDemand timer of both standards; when our car's timer fires on a late answer
(the peer's log shows the lateness), the session is run once more.
"""

from __future__ import annotations

import re

import pytest

from .sessions import Outcome, our_car_their_charger, their_car_our_charger

pytestmark = pytest.mark.interop

TLS12 = "TLSv1.2 ECDHE-ECDSA-AES128-SHA256 prime256v1"
THEIR_CAR = ("--precharge-waits",)
THEIR_CHARGER = ("--evse-follows-target",)
CASES = [("din", "DC", False), ("iso2", "DC", False), ("iso2", "DC", True), ("iso2", "AC", False)]
IDS = [f"{p}-{k}-{'tls' if t else 'tcp'}" for p, k, t in CASES]


def _value(pv: dict) -> float:
    return pv["Value"] * 10.0 ** pv["Multiplier"]


def _ok(responses: list[dict]) -> None:
    bad = [r for r in responses if not str(r.get("ResponseCode", "OK")).startswith("OK")]
    assert not bad, bad


def _responses(o: Outcome, direction: str) -> list[dict]:
    return [o.sent(n)[0] if direction == "tx" else o.received(n)[0] for n in dict.fromkeys(
        d["name"] for d in o.messages if d["direction"] == direction and d["name"].endswith("Res"))]


def _first_loop_name(kind: str) -> str:
    return "CurrentDemand" if kind == "DC" else "ChargingStatus"


# --- their car, our charger -------------------------------------------------------------------------

@pytest.mark.parametrize("protocol,kind,tls", CASES, ids=IDS)
def test_their_car_our_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, protocol, kind, tls):
    o = their_car_our_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, service=kind,
                              protocol=protocol, tls=tls, peer_flags=THEIR_CAR, loops=8,
                              secc_flags=["--kind", kind, "--auth", "eim", "--setpoint", "7000"])
    assert o.returncode == 0, o.stdout[-3000:] + o.peer_log[-3000:]
    assert o.notes[0].endswith(TLS12 if tls else "plain TCP"), o.notes
    sap = o.sent("supportedAppProtocolRes")[0]
    assert sap["ResponseCode"] == "OK_SuccessfulNegotiation"
    loop = _first_loop_name(kind)
    assert len(o.received(f"{loop}Req")) >= 5
    _ok([r for n in ("SessionSetupRes", "ChargeParameterDiscoveryRes", "PowerDeliveryRes", f"{loop}Res",
                     "SessionStopRes") for r in o.sent(n)])
    if kind == "DC":
        powers = [_value(r["EVSEPresentCurrent"]) * _value(r["EVSEPresentVoltage"]) for r in o.sent("CurrentDemandRes")]
        assert all(p >= 0 for p in powers) and max(powers) > 0, powers
        assert "WeldingDetectionReq" in o.names("rx")
    else:
        assert all(_value(r["EVSEMaxCurrent"]) > 0 for r in o.sent("ChargingStatusRes"))
    assert o.messages[-1]["name"] == "SessionStopRes"
    assert re.search(r"ended: SessionStopRes OK", o.stdout)


def test_their_car_plug_and_charge_over_tls12(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path):
    """Offered Contract over TLS, their car takes it: PaymentDetails with its contract chain (our
    -2 contract laid out for it), a signed AuthorizationReq (ECDSA-SHA256) that our charger
    verifies."""
    o = their_car_our_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, service="DC",
                              protocol="iso2", tls=True, peer_flags=THEIR_CAR, loops=6,
                              secc_flags=["--kind", "DC", "--auth", "eim,pnc"])
    assert o.returncode == 0, o.stdout[-3000:] + o.peer_log[-3000:]
    assert o.received("PaymentServiceSelectionReq")[0]["SelectedPaymentOption"] == "Contract"
    assert o.received("PaymentDetailsReq")[0]["eMAID"] == "DEV2HC1234567X9"
    auth = next(d for d in o.messages if d["name"] == "AuthorizationReq")["message"]["V2G_Message"]
    assert auth["Header"]["Signature"]["SignedInfo"]["SignatureMethod"]["Algorithm"].endswith("ecdsa-sha256")
    assert o.sent("AuthorizationRes")[-1]["ResponseCode"] == "OK"
    assert len(o.received("CurrentDemandReq")) >= 3


def test_their_car_installs_a_contract_from_our_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki,
                                                        tmp_path):
    """Their car asks for a contract (CertificateInstallationReq signed with its OEM provisioning
    key): our charger answers as the provisioning service, the key encrypted for it, and the
    session goes on with PaymentDetails and charging."""
    o = their_car_our_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, service="DC",
                              protocol="iso2", tls=True, peer_flags=THEIR_CAR, loops=6, cert_install=True,
                              secc_flags=["--kind", "DC", "--auth", "eim,pnc"])
    assert o.returncode == 0, o.stdout[-3000:] + o.peer_log[-3000:]
    res = o.sent("CertificateInstallationRes")[0]
    assert res["ResponseCode"] == "OK" and len(res["DHpublickey"]["value"]) > 0
    names = o.names("rx")
    assert names.index("CertificateInstallationReq") < names.index("PaymentDetailsReq") < names.index("AuthorizationReq")
    assert "CurrentDemandReq" in names and not re.search(r"DecryptionError|Exception", o.peer_log)


def test_their_stock_car_is_refused_at_power_delivery(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path):
    """Peer defect: its car ends pre-charge after five exchanges whatever the voltage. Our
    charger starts power only with the output within 20 V of the car's battery: refused
    (FAILED_PowerDeliveryNotApplied, nothing energised) when the five exchanges came before the
    output got there, accepted when the peer's slow codec gave the ramp the time."""
    o = their_car_our_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, service="DC",
                              protocol="din", tls=False, peer_flags=(), secc_flags=["--kind", "DC", "--auth", "eim"])
    assert len(o.received("PreChargeReq")) == 6  # the peer's five cycles, then one more before it goes on
    target = _value(o.received("PreChargeReq")[-1]["EVTargetVoltage"])
    code = o.sent("PowerDeliveryRes")[0]["ResponseCode"]
    if code != "OK":  # the output was not there yet: refused, nothing energised
        assert code == "FAILED_PowerDeliveryNotApplied" and o.returncode == 1
        assert re.search(r"ended: PowerDeliveryRes FAILED_PowerDeliveryNotApplied: output at \d+ V, the car at "
                         r"500 V", o.stdout), o.stdout[-1500:]
        assert "CurrentDemandReq" not in o.names("rx")
    else:  # the peer's slow codec gave the ramp the time: the battery met an output at its voltage
        first = o.sent("CurrentDemandRes")[0]
        assert abs(_value(first["EVSEPresentVoltage"]) - target) <= 20


# --- our car, their charger --------------------------------------------------------------------------

def _our_car(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, *, protocol, tls, flags,
             auth_modes="EIM") -> Outcome:
    """One session, up to three times while our car's 0.25 s CurrentDemand timer catches a late
    answer of the peer (its JVM codec), which the standard's timer is right to refuse; after
    three, the test is marked an expected failure with the peer's measured answer times."""
    latencies: list[int] = []
    for attempt in (1, 2, 3):
        o = our_car_their_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path / str(attempt),
                                  protocol=protocol, tls=tls, peer_flags=THEIR_CHARGER, auth_modes=auth_modes,
                                  evcc_flags=["--protocol", protocol, "--security", "tls" if tls else "none",
                                              "--loops", "5", "--loop-period", "0.1", *flags])
        if "timeout waiting for CurrentDemandRes" not in o.stdout:
            return o
        latencies += _answer_times(o, "CurrentDemand")
        assert o.sent("CurrentDemandReq"), "a timeout before any loop: not the peer's loop latency"
    pytest.xfail(f"the peer answers CurrentDemandReq too slowly for the standard's 0.25 s timer: answered ones took "
                 f"{sorted(latencies)} ms; one in each of three sessions took longer than 250 ms")


def _answer_times(o: Outcome, loop: str) -> list[int]:
    """Milliseconds between each of our loop requests and the peer's answer (answered ones)."""
    from datetime import datetime

    out, sent = [], None
    for d in o.messages:
        t = datetime.fromisoformat(d["time"].replace("Z", "+00:00")).timestamp()
        if d["name"] == f"{loop}Req":
            sent = t
        elif d["name"] == f"{loop}Res" and sent is not None:
            out.append(round((t - sent) * 1000))
            sent = None
    return out


@pytest.mark.parametrize("protocol,kind,tls", CASES, ids=IDS)
def test_our_car_their_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, protocol, kind, tls):
    o = _our_car(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, protocol=protocol, tls=tls,
                 flags=["--service", kind, "--auth", "eim"])
    assert o.returncode == 0, o.stdout[-3000:] + o.peer_log[-3000:]
    title = {"din": "DIN 70121", "iso2": "ISO 15118-2"}[protocol]
    assert re.search(rf"\({title}\) over {TLS12 if tls else 'plain TCP'} ended \(SessionStop Terminate\): "
                     rf"5 charge loops", o.stdout), o.stdout[-800:]
    loop = _first_loop_name(kind)
    assert len(o.sent(f"{loop}Req")) == 5
    _ok([r for n in ("SessionSetupRes", "ChargeParameterDiscoveryRes", "PowerDeliveryRes", f"{loop}Res",
                     "SessionStopRes") for r in o.received(n)])
    assert o.messages[-1]["name"] == "SessionStopRes"


def test_our_car_plug_and_charge_over_tls12(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path):
    """Our contract (the -2 profile), our ECDSA-SHA256 signature: their charger accepts both."""
    o = _our_car(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, protocol="iso2", tls=True,
                 flags=["--service", "DC", "--auth", "pnc"], auth_modes="PNC")
    assert o.returncode == 0, o.stdout[-3000:] + o.peer_log[-3000:]
    assert o.received("PaymentDetailsRes")[0]["ResponseCode"] == "OK"
    assert o.received("AuthorizationRes")[-1]["ResponseCode"] == "OK"
    assert len(o.sent("CurrentDemandReq")) == 5


def test_our_car_installs_a_contract_from_their_charger(interop_netns, peer_python, peer_pki_iso2, v2g_pki,
                                                        tmp_path):
    """Their charger's provisioning service (its CPS chain laid out from our -2 PKI) issues a
    contract; our car checks the signature over the four parts against its V2G root, decrypts
    the key with its OEM provisioning key (ECDH, the -2 KDF, AES-128-CBC) and matches it to the
    new certificate, then authorises with it."""
    o = _our_car(interop_netns, peer_python, peer_pki_iso2, v2g_pki, tmp_path, protocol="iso2", tls=True,
                 flags=["--service", "DC", "--auth", "pnc", "--install-contract"], auth_modes="PNC")
    assert o.returncode == 0, o.stdout[-3000:] + o.peer_log[-3000:]
    assert "contract installed" in o.stdout
    assert o.received("CertificateInstallationRes")[0]["ResponseCode"] == "OK"
    installed = o.received("CertificateInstallationRes")[0]["ContractSignatureCertChain"]["Certificate"]
    assert o.sent("PaymentDetailsReq")[0]["ContractSignatureCertChain"]["Certificate"] == installed
    assert o.received("AuthorizationRes")[-1]["ResponseCode"] == "OK"

"""The charger's own certificates over OCPP 2.1 (ocpp_bridge.certificates.StationCertificates), in
memory (hems.chain: the station core and the house's CSMS core with real OCPP-J frames): a CSR
on TriggerMessage and before expiry, CertificateSigned validated before it replaces what is
installed, the CSR sent again when no answer comes, and the roots (InstallCertificate,
GetInstalledCertificateIds, DeleteCertificate)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hems.chain import Chain
from hems.csms import CSMSCore
from iso15118.pki.signer import CsrSigner
from ocpp_bridge.certificates import StationCertificates, hash_data

PEM = serialization.Encoding.PEM
SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def _read(pki, *parts) -> str:
    return pki.joinpath(*parts).read_text()


@pytest.fixture
def station(v2g_pki):
    """A chain whose CSMS signs CSRs with the PKI's CPO Sub-CA 2 / CSMS root, and the station's
    certificates seeded from the PKI."""
    start = float(int(time.time()))
    signer = CsrSigner.from_pki(v2g_pki)
    chain = Chain(start=start, csms=CSMSCore(certificate_signer=signer))
    installed, roots_seen = [], []
    certs = StationCertificates(chain.core, on_installed=lambda *a: installed.append(a),
                                on_roots=lambda *a: roots_seen.append(a))
    certs.seed(roots={"V2GRootCertificate": [_read(v2g_pki, "iso20-secp521r1", "v2g_root_ca.pem"),
                                             _read(v2g_pki, "iso2-secp256r1", "v2g_root_ca.pem")],
                      "MORootCertificate": [_read(v2g_pki, "iso20-secp521r1", "mo_root_ca.pem")],
                      "CSMSRootCertificate": [_read(v2g_pki, "ocpp", "csms_root_ca.pem")]},
               own={"V2G20Certificate": (_read(v2g_pki, "iso20-secp521r1", "secc_chain.pem"),
                                         _read(v2g_pki, "iso20-secp521r1", "secc_leaf.key.pem"))})
    chain.run(start + 5)
    assert chain.core.online
    seen = []
    chain.csms.observer = lambda st, action, payload, now: seen.append((action, payload))
    return chain, certs, installed, roots_seen, seen, signer


def _leaf(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


@pytest.mark.parametrize("trigger,kind,curve", [
    ("SignV2G20Certificate", "V2G20Certificate", "secp521r1"),
    ("SignV2GCertificate", "V2GCertificate", "secp256r1"),
    ("SignChargingStationCertificate", "ChargingStationCertificate", "secp256r1"),
])
def test_a_triggered_csr_is_signed_and_installed(station, trigger, kind, curve):
    chain, certs, installed, _, seen, _ = station
    before = certs.own(kind)
    answers = []
    chain.send("TriggerMessage", {"requestedMessage": trigger}, on_answer=answers.append)
    chain.run(chain.now + 2)
    assert answers == [{"status": "Accepted"}]
    (csr_payload,) = [p for a, p in seen if a == "SignCertificate"]
    assert csr_payload["certificateType"] == kind
    csr = x509.load_pem_x509_csr(csr_payload["csr"].encode())
    assert csr.is_signature_valid and csr.public_key().curve.name == curve
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "CS001"  # SeccId for the SECC, Identity for the station: the station id here
    dcs = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)]
    assert dcs == ([] if kind == "ChargingStationCertificate" else ["CPO"])
    # CertificateSigned came and was accepted: installed, the application told, the old kept aside
    (signed,) = chain.csms.stations["CS001"].certificates
    assert [k for k, *_ in installed] == [kind]
    own = certs.own(kind)
    assert _leaf(own["chain"]).public_key().public_bytes(*SPKI) == csr.public_key().public_bytes(*SPKI)
    assert own["chain"] == signed["certificateChain"] and certs.own(kind) != before
    assert chain.core.store.get(f"certificates.{kind}.previous") == before
    assert kind not in chain.core.store.get("certificates.pending", {})


def _signed_for(certs, signer, kind, *, key=None, subject=None, issuer_kind=None):
    """A chain for the pending CSR's key (or ``key``), with the CSR's subject (or ``subject``)."""
    pending = certs.core.store.get("certificates.pending")[kind]
    own_key = key or serialization.load_pem_private_key(pending["key"].encode(), None)
    name = subject or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CS001"),
                                 x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(own_key, hashes.SHA512())
    return signer.sign(issuer_kind or kind, csr.public_bytes(PEM).decode(), dt.datetime.now(dt.timezone.utc))


@pytest.mark.parametrize("case,why", [
    ("no request", "no signing request"),
    ("not PEM", "not a PEM certificate chain"),
    ("another key", "not for the key of the signing request"),
    ("no DC=CPO", "DC=CPO"),
    ("foreign root", "trust anchor"),
    ("station CN", "identity"),
])
def test_certificate_signed_is_validated_before_it_replaces_the_installed_one(station, case, why):
    chain, certs, installed, _, seen, signer = station
    kind = "ChargingStationCertificate" if case == "station CN" else "V2G20Certificate"
    before = certs.own(kind)
    if case != "no request":
        chain.csms.certificate_signer = None  # the CSMS answers nothing: the test sends CertificateSigned
        certs.request_signing(kind, chain.now)
        chain.run(chain.now + 1)
    if case in ("no request", "not PEM"):
        text = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n" if case == "not PEM" else \
            _read_chain(certs, "V2G20Certificate")
    elif case == "another key":
        text = _signed_for(certs, signer, kind, key=ec.generate_private_key(ec.SECP521R1()))
    elif case == "no DC=CPO":
        text = _signed_for(certs, signer, kind, subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CS001")]))
    elif case == "foreign root":
        other = CsrSigner({kind: _self_issuer()})
        text = _signed_for(certs, other, kind)
    else:
        text = _signed_for(certs, signer, kind, subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CS999")]))
    answers = []
    chain.send("CertificateSigned", {"certificateChain": text, "certificateType": kind}, on_answer=answers.append)
    chain.run(chain.now + 1)
    assert answers[0]["status"] == "Rejected" and why in answers[0]["statusInfo"]["additionalInfo"]
    assert certs.own(kind) == before and installed == []
    events = [p["type"] for a, p in seen if a == "SecurityEventNotification"]
    assert ("InvalidChargingStationCertificate" in events) == (kind == "ChargingStationCertificate")


def _read_chain(certs, kind):
    return certs.own(kind)["chain"]


def _self_issuer():
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Somebody's CPO Sub-CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(5).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA512()))
    return cert, key, ""


def test_renewal_before_expiry_and_the_csr_again_without_an_answer(station, v2g_pki):
    chain, certs, installed, _, seen, signer = station
    chain.csms.certificate_signer = None  # the CSMS rejects: no CertificateSigned comes
    soon = signer.sign("V2G20Certificate", x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "CS001"), x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO")])).sign(
        key := ec.generate_private_key(ec.SECP521R1()), hashes.SHA512()).public_bytes(PEM).decode(),
        dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=360))  # 365 days: 5 left
    key_pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    chain.core.store.set("certificates.V2G20Certificate", {"chain": soon, "key": key_pem})
    chain.core.device_model.values[("SecurityCtrlr", None, None, "CertSigningWaitMinimum", None)] = "10"
    chain.core.device_model.values[("SecurityCtrlr", None, None, "CertSigningRepeatTimes", None)] = "2"
    chain.run(chain.now + 200)
    asked = [(a, p["certificateType"]) for a, p in seen if a == "SignCertificate"]
    # renewed on its own (5 days left of the 30 before expiry), again after 10 s and 20 s, then given up
    assert asked == [("SignCertificate", "V2G20Certificate")] * 3
    assert certs.own("V2G20Certificate")["chain"] == soon  # the old one stays in use
    # given up: the next renewal on its own a day later (a trigger at any time)
    assert "V2G20Certificate" not in chain.core.store.get("certificates.pending", {})
    chain.run(chain.now + 86400)
    assert len([a for a, p in seen if a == "SignCertificate"]) == 6


def test_roots_install_list_and_delete(station, v2g_pki):
    chain, certs, _, roots_seen, _, _ = station
    answers = []
    root = _read(v2g_pki, "iso2-secp256r1", "mo_root_ca.pem")
    leaf = _read(v2g_pki, "iso2-secp256r1", "contract_leaf.pem")
    for kind, pem in (("MORootCertificate", root), ("MORootCertificate", leaf), ("MORootCertificate", root)):
        chain.send("InstallCertificate", {"certificateType": kind, "certificate": pem}, on_answer=answers.append)
    chain.run(chain.now + 1)
    assert [a["status"] for a in answers] == ["Accepted", "Rejected", "Accepted"]  # a leaf is no root; twice is once
    assert roots_seen[-1][0] == "MORootCertificate" and len(roots_seen[-1][1]) == 2
    listed = []
    chain.send("GetInstalledCertificateIds", {"certificateType": ["MORootCertificate", "V2GCertificateChain"]},
               on_answer=listed.append)
    chain.send("GetInstalledCertificateIds", {"certificateType": ["OEMRootCertificate"]}, on_answer=listed.append)
    chain.run(chain.now + 1)
    types = [e["certificateType"] for e in listed[0]["certificateHashDataChain"]]
    assert types == ["MORootCertificate", "MORootCertificate", "V2GCertificateChain"]
    v2g = listed[0]["certificateHashDataChain"][2]
    assert len(v2g["childCertificateHashData"]) == 2 and listed[1] == {"status": "NotFound"}
    cert = x509.load_pem_x509_certificate(root.encode())
    own = x509.load_pem_x509_certificates(certs.own("V2G20Certificate")["chain"].encode())
    deleted = []
    for h in (hash_data(cert, cert), hash_data(cert, cert), hash_data(own[0], own[1])):
        chain.send("DeleteCertificate", {"certificateHashData": h}, on_answer=deleted.append)
    chain.run(chain.now + 1)
    assert [d["status"] for d in deleted] == ["Accepted", "NotFound", "Failed"]  # its own certificate stays
    assert len(certs.roots("MORootCertificate")) == 1

"""OCPP 2.0.1 part 6, charging-station test cases of block M (ISO 15118 certificate management)
of the Core profile, scripted as the OCA test system runs them (tests/ocpp/octt.py: the CSMS in
the test, time simulated): InstallCertificate, GetInstalledCertificateIds and DeleteCertificate
of the roots, and the station's own certificate, which the CSMS may not delete. The station is
the OCTT's station core with the certificate management `v2h charger` attaches to it
(ocpp_bridge.certificates.StationCertificates), starting with the CSMS root it was given
(`--csms-ca`) and the V2G root of its SECC, no MO root. AdditionalRootCertificateCheck is not
implemented (AS-2 no), so TC_M_09, TC_M_30 and TC_M_31 do not apply.

The hash data the OCTT expects of a certificate is computed here independently of the station's
code: SHA-256 (or -384, -512) of the issuer's DER name and of the subjectPublicKey bits taken
from the issuer's SubjectPublicKeyInfo by hand, the serial in hexadecimal without leading zeros."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from iso15118.pki.generate import build_ocpp
from iso15118.pki.signer import CsrSigner
from ocpp_bridge.certificates import StationCertificates

from .firmware_pki import pki as firmware_pki
from .octt import OCTT, T0

PEM = serialization.Encoding.PEM
CSMS_ROOT, MANUFACTURER_ROOT, MO_ROOT = "CSMSRootCertificate", "ManufacturerRootCertificate", "MORootCertificate"


# --- the OCTT's configured certificates ---------------------------------------------------------------

@dataclass(frozen=True)
class OcttPKI:
    """What the OCTT is configured with, and what the station starts with."""

    station_root: x509.Certificate     # the CSMS root the station was given at start-up
    v2g_root: x509.Certificate         # the SECC's V2G root
    signer: CsrSigner                  # signs ChargingStationCertificates with station_root
    csms_root: x509.Certificate        # <Configured new CSMS Root certificate> (EC P-256)
    csms_root_rsa: x509.Certificate    # the same, as an RSA 2048 root
    manufacturer_root: x509.Certificate
    expired_root: x509.Certificate     # <Generated Expired Certificate>
    unknown: tuple[x509.Certificate, x509.Certificate]  # a certificate the station never saw, its issuer

    def roots(self) -> dict[str, list[str]]:
        """The station's roots at start-up (type → PEMs)."""
        return {CSMS_ROOT: [pem(self.station_root)], "V2GRootCertificate": [pem(self.v2g_root)]}


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(PEM).decode()


def _load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _rsa_root(now: dt.datetime) -> x509.Certificate:
    """A CSMS root CA on an RSA 2048 key, as many CSMSs have (iso15118.pki makes EC ones only)."""
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OCTT RSA CSMS Root CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OCTT")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


@pytest.fixture(scope="session")
def octt_pki(tmp_path_factory, v2g_pki) -> OcttPKI:
    """The station's CSMS root and V2G root from the test PKI (`v2h pki init`), the OCTT's
    configured CSMS root (another `build_ocpp`, made at the simulated time) and manufacturer root
    (the firmware signing PKI's), an expired CSMS root (made 20 years before)."""
    d = tmp_path_factory.mktemp("octt-pki")
    t0 = dt.datetime.fromtimestamp(T0, dt.timezone.utc)
    build_ocpp(d / "new", t0)
    build_ocpp(d / "expired", t0 - dt.timedelta(days=20 * 365))
    expired_root = _load(d / "expired" / "csms_root_ca.pem")
    return OcttPKI(station_root=_load(v2g_pki / "ocpp" / "csms_root_ca.pem"),
                   v2g_root=_load(v2g_pki / "iso20-secp521r1" / "v2g_root_ca.pem"),
                   signer=CsrSigner.from_pki(v2g_pki), csms_root=_load(d / "new" / "csms_root_ca.pem"),
                   csms_root_rsa=_rsa_root(t0), manufacturer_root=firmware_pki().root, expired_root=expired_root,
                   unknown=(_load(d / "expired" / "csms_server.pem"), expired_root))


def certificate_management(roots: dict[str, list[str]] | None = None) -> Callable[[OCTT], StationCertificates]:
    """The OCTT station's ``extras``: StationCertificates on its core (as `v2h charger` has it),
    starting with ``roots`` (type → PEMs) unless its store holds what was installed since."""
    def attach(o: OCTT) -> StationCertificates:
        certs = StationCertificates(o.core)
        certs.seed(roots=roots)
        return certs
    return attach


def _octt(p: OcttPKI) -> OCTT:
    return OCTT(extras=certificate_management(p.roots()))


# --- the OCTT's hash data and checks ---------------------------------------------------------------------

def _subject_public_key(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's bits of ``cert``'s SubjectPublicKeyInfo (DER, read by hand)."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def tlv(i: int) -> tuple[int, int, int]:  # (tag, start of the value, end of the value)
        tag, n, i = der[i], der[i + 1], i + 2
        if n & 0x80:
            k = n & 0x7F
            n, i = int.from_bytes(der[i:i + k], "big"), i + k
        return tag, i, i + n
    tag, start, _ = tlv(0)
    assert tag == 0x30
    tag, _, end = tlv(start)              # AlgorithmIdentifier
    assert tag == 0x30
    tag, start, end = tlv(end)            # subjectPublicKey
    assert tag == 0x03 and der[start] == 0  # no unused bits
    return der[start + 1:end]


def expected_hash_data(cert: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256") -> dict:
    """<HashData from the configured certificate>: CertificateHashDataType of ``cert``."""
    name = algorithm.lower()
    return {"hashAlgorithm": algorithm,
            "issuerNameHash": hashlib.new(name, issuer.subject.public_bytes()).hexdigest(),
            "issuerKeyHash": hashlib.new(name, _subject_public_key(issuer)).hexdigest(),
            "serialNumber": format(cert.serial_number, "x")}


def _key(h: dict) -> tuple[str, str, str, str]:
    """Hash data compared as the OCTT does (hexadecimal in either case)."""
    return h["hashAlgorithm"], h["issuerNameHash"].lower(), h["issuerKeyHash"].lower(), h["serialNumber"].lower()


def _entries(answer: dict) -> list[tuple[str, tuple]]:
    return [(e["certificateType"], _key(e["certificateHashData"])) for e in answer.get("certificateHashDataChain", [])]


def _root_entry(kind: str, cert: x509.Certificate) -> tuple[str, tuple]:
    return kind, _key(expected_hash_data(cert, cert))


def certificate_installed(o: OCTT, kind: str, cert: x509.Certificate) -> None:
    """Memory State CertificateInstalled: InstallCertificate of the configured certificate, Accepted."""
    answer = o.ok("InstallCertificate", {"certificateType": kind, "certificate": pem(cert)})
    assert answer["status"] == "Accepted", answer


def get_installed_certificates(o: OCTT, kinds: list[str] | None, *present: tuple[str, x509.Certificate]) -> dict:
    """Reusable State GetInstalledCertificates for ``kinds`` (None: certificateType omitted):
    Accepted, with an entry of the type and hash data of each root in ``present``, and (when
    types are given) no entry of another type."""
    answer = o.ok("GetInstalledCertificateIds", {"certificateType": kinds} if kinds is not None else {})
    assert answer["status"] == "Accepted", answer
    entries = _entries(answer)
    for kind, cert in present:
        assert _root_entry(kind, cert) in entries, (kind, cert.subject.rfc4514_string(), entries)
    if kinds is not None:
        assert {k for k, _ in entries} <= set(kinds), entries
    return answer


def _certificate_entries(o: OCTT) -> int:
    return int(o.get_variable("SecurityCtrlr", "CertificateEntries")["attributeValue"])


# --- Install CA certificate (M05) ------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["ec-p256", "rsa-2048"])
def test_TC_M_01_CS(octt_pki, key):
    """Install CA certificate - CSMSRootCertificate: InstallCertificate Accepted, then listed
    under CSMSRootCertificate with its hash data (on an EC and on an RSA key), then removed
    again (the built-in action without AdditionalRootCertificateCheck)."""
    o = _octt(octt_pki)
    root = octt_pki.csms_root if key == "ec-p256" else octt_pki.csms_root_rsa
    before = _certificate_entries(o)
    certificate_installed(o, CSMS_ROOT, root)                                                 # 1
    answer = get_installed_certificates(o, [CSMS_ROOT], (CSMS_ROOT, root),                  # 2
                                        (CSMS_ROOT, octt_pki.station_root))
    assert len(answer["certificateHashDataChain"]) == 2
    assert _certificate_entries(o) == before + 1
    h = expected_hash_data(root, root)
    assert o.ok("DeleteCertificate", {"certificateHashData": h})["status"] == "Accepted"   # the built-in removal
    assert _root_entry(CSMS_ROOT, root) not in _entries(o.ok("GetInstalledCertificateIds",
                                                              {"certificateType": [CSMS_ROOT]}))


def test_TC_M_02_CS(octt_pki):
    """Install CA certificate - ManufacturerRootCertificate: InstallCertificate Accepted, then
    listed under ManufacturerRootCertificate with its hash data."""
    o = _octt(octt_pki)
    assert o.ok("GetInstalledCertificateIds", {"certificateType": [MANUFACTURER_ROOT]}) == {"status": "NotFound"}
    certificate_installed(o, MANUFACTURER_ROOT, octt_pki.manufacturer_root)                   # 1
    answer = get_installed_certificates(o, [MANUFACTURER_ROOT],                               # 2
                                        (MANUFACTURER_ROOT, octt_pki.manufacturer_root))
    assert len(answer["certificateHashDataChain"]) == 1


def test_TC_M_07_CS(octt_pki):
    """Install CA certificate - Rejected - Certificate invalid: an expired CSMS root is Rejected
    and not listed (the station's own CSMS root still is)."""
    o = _octt(octt_pki)
    expired = octt_pki.expired_root
    assert expired.not_valid_after_utc.timestamp() < o.now
    answer = o.ok("InstallCertificate", {"certificateType": CSMS_ROOT, "certificate": pem(expired)})    # 1
    assert answer["status"] == "Rejected", answer                                                        # 2
    answer = o.ok("GetInstalledCertificateIds", {"certificateType": [CSMS_ROOT]})                       # 3
    assert answer["status"] == "Accepted"                                                                # 4
    assert _root_entry(CSMS_ROOT, expired) not in _entries(answer)
    assert _entries(answer) == [_root_entry(CSMS_ROOT, octt_pki.station_root)]


# --- Retrieve certificates (M03) -------------------------------------------------------------------------

def test_TC_M_12_CS(octt_pki):
    """Retrieve certificates from Charging Station - CSMSRootCertificate: the hash data of every
    CSMS root (the installed one and the one the station started with), no other type."""
    o = _octt(octt_pki)
    certificate_installed(o, CSMS_ROOT, octt_pki.csms_root)                                  # memory state
    answer = get_installed_certificates(o, [CSMS_ROOT], (CSMS_ROOT, octt_pki.csms_root),    # 1
                                        (CSMS_ROOT, octt_pki.station_root))
    assert len(answer["certificateHashDataChain"]) == 2
    assert all("childCertificateHashData" not in e for e in answer["certificateHashDataChain"])


def test_TC_M_13_CS(octt_pki):
    """Retrieve certificates from Charging Station - ManufacturerRootCertificate."""
    o = _octt(octt_pki)
    certificate_installed(o, MANUFACTURER_ROOT, octt_pki.manufacturer_root)                  # memory state
    answer = get_installed_certificates(o, [MANUFACTURER_ROOT],                              # 1
                                        (MANUFACTURER_ROOT, octt_pki.manufacturer_root))
    assert _entries(answer) == [_root_entry(MANUFACTURER_ROOT, octt_pki.manufacturer_root)]


def test_TC_M_17_CS(octt_pki):
    """Retrieve certificates from Charging Station - CSMSRootCertificate &
    ManufacturerRootCertificate: both types asked in one request, both listed, nothing else."""
    o = _octt(octt_pki)
    certificate_installed(o, CSMS_ROOT, octt_pki.csms_root)                                  # memory state
    certificate_installed(o, MANUFACTURER_ROOT, octt_pki.manufacturer_root)
    answer = get_installed_certificates(o, [CSMS_ROOT, MANUFACTURER_ROOT],                   # 1
                                        (CSMS_ROOT, octt_pki.csms_root),
                                        (MANUFACTURER_ROOT, octt_pki.manufacturer_root))
    assert sorted(_entries(answer)) == sorted([_root_entry(CSMS_ROOT, octt_pki.csms_root),
                                               _root_entry(CSMS_ROOT, octt_pki.station_root),
                                               _root_entry(MANUFACTURER_ROOT, octt_pki.manufacturer_root)])


def test_TC_M_18_CS(octt_pki):
    """Retrieve certificates from Charging Station - All certificateTypes: certificateType
    omitted lists every installed root with its type (order free)."""
    o = _octt(octt_pki)
    certificate_installed(o, CSMS_ROOT, octt_pki.csms_root)                                  # memory state
    certificate_installed(o, MANUFACTURER_ROOT, octt_pki.manufacturer_root)
    answer = o.ok("GetInstalledCertificateIds", {})                                           # 1
    assert answer["status"] == "Accepted"                                                     # 2
    entries = _entries(answer)
    assert _root_entry(CSMS_ROOT, octt_pki.csms_root) in entries
    assert _root_entry(MANUFACTURER_ROOT, octt_pki.manufacturer_root) in entries
    assert sorted(entries) == sorted([_root_entry(CSMS_ROOT, octt_pki.station_root),
                                      _root_entry("V2GRootCertificate", octt_pki.v2g_root),
                                      _root_entry(CSMS_ROOT, octt_pki.csms_root),
                                      _root_entry(MANUFACTURER_ROOT, octt_pki.manufacturer_root)])


def test_TC_M_19_CS(octt_pki):
    """Retrieve certificates from Charging Station - No matching certificate found: no MO root
    installed, NotFound without certificateHashDataChain."""
    o = _octt(octt_pki)
    answer = o.ok("GetInstalledCertificateIds", {"certificateType": [MO_ROOT]})              # 1
    assert answer == {"status": "NotFound"}                                                   # 2


# --- Delete a certificate (M04) --------------------------------------------------------------------------

def test_TC_M_20_CS(octt_pki):
    """Delete a certificate from a Charging Station - Success: the CSMS root listed at step 1
    (the one the station started with: it needs no install) is deleted with the hash data the
    station gave, and is gone (the last one: AQ-1, it can be removed)."""
    o = _octt(octt_pki)
    before = _certificate_entries(o)
    answer = get_installed_certificates(o, [CSMS_ROOT], (CSMS_ROOT, octt_pki.station_root))  # before, 1
    returned = answer["certificateHashDataChain"][0]["certificateHashData"]
    assert _key(returned) == _key(expected_hash_data(octt_pki.station_root, octt_pki.station_root))
    deleted = o.ok("DeleteCertificate", {"certificateHashData": returned})                   # 2
    assert deleted["status"] == "Accepted", deleted                                          # 3
    after = o.ok("GetInstalledCertificateIds", {"certificateType": [CSMS_ROOT]})             # 4
    assert _root_entry(CSMS_ROOT, octt_pki.station_root) not in _entries(after)
    assert after == {"status": "NotFound"}
    assert _certificate_entries(o) == before - 1
    assert o.ok("DeleteCertificate", {"certificateHashData": returned})["status"] == "NotFound"  # once


def test_TC_M_22_CS(octt_pki):
    """Delete a certificate from a Charging Station - No matching certificate found: NotFound,
    and nothing was deleted."""
    o = _octt(octt_pki)
    get_installed_certificates(o, [CSMS_ROOT], (CSMS_ROOT, octt_pki.station_root))          # 1
    unknown = expected_hash_data(*octt_pki.unknown)
    assert o.ok("DeleteCertificate", {"certificateHashData": unknown})["status"] == "NotFound"  # 2, 3
    get_installed_certificates(o, [CSMS_ROOT], (CSMS_ROOT, octt_pki.station_root))


def renew_charging_station_certificate(o: OCTT, signer: CsrSigner) -> x509.Certificate:
    """Memory State RenewChargingStationCertificate: TriggerMessage SignChargingStationCertificate
    Accepted, the station's SignCertificate with a PEM PKCS#10 CSR (EC key of at least 224 bits,
    RSA of at least 2048) answered Accepted, CertificateSigned with the certificate the CSMS root
    signed for it Accepted; the certificate."""
    o.hold.add("SignCertificate")
    trigger = o.ok("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"})   # 1
    assert trigger["status"] == "Accepted", trigger                                           # 2
    sign = o.expect("SignCertificate", answer={"status": "Accepted"})                         # 3, 4
    assert sign.get("certificateType", "ChargingStationCertificate") == "ChargingStationCertificate"
    assert sign["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    csr = x509.load_pem_x509_csr(sign["csr"].encode())
    assert csr.is_signature_valid
    key = csr.public_key()
    assert key.key_size >= (224 if isinstance(key, ec.EllipticCurvePublicKey) else 2048)
    chain = signer.sign("ChargingStationCertificate", sign["csr"], dt.datetime.fromtimestamp(o.now, dt.timezone.utc))
    signed = o.ok("CertificateSigned", {"certificateChain": chain, "certificateType": "ChargingStationCertificate"})  # 5
    assert signed["status"] == "Accepted", signed                                             # 6
    return x509.load_pem_x509_certificate(chain.encode())


def test_TC_M_23_CS(octt_pki):
    """Delete a certificate from a Charging Station - Unable to delete the Charging Station
    Certificate: the certificate made at RenewChargingStationCertificate (signed by the CSMS root
    itself, so the chain is the leaf alone) is not deleted: NotFound or Failed — v2h knows it as
    its own and says Failed (NotDeletable) — and stays installed."""
    o = _octt(octt_pki)
    station_cert = renew_charging_station_certificate(o, octt_pki.signer)                     # before
    listed = o.ok("GetInstalledCertificateIds", {})                                           # 1
    assert listed["status"] == "Accepted"
    h = expected_hash_data(station_cert, octt_pki.station_root)
    deleted = o.ok("DeleteCertificate", {"certificateHashData": h})                           # 2
    assert deleted["status"] in ("NotFound", "Failed")                                        # 3
    assert deleted["status"] == "Failed" and deleted["statusInfo"]["reasonCode"] == "NotDeletable", deleted
    own = x509.load_pem_x509_certificates(o.parts.own("ChargingStationCertificate")["chain"].encode())
    assert own[0] == station_cert


# --- beyond the cases ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["SHA384", "SHA512"])
def test_delete_certificate_by_hash_data_of_another_algorithm(octt_pki, algorithm):
    """DeleteCertificate names the certificate in the hash algorithm the CSMS chose: the station
    lists in SHA-256 but finds a root by SHA-384 or SHA-512 hash data too."""
    o = _octt(octt_pki)
    certificate_installed(o, CSMS_ROOT, octt_pki.csms_root_rsa)
    h = expected_hash_data(octt_pki.csms_root_rsa, octt_pki.csms_root_rsa, algorithm)
    assert o.ok("DeleteCertificate", {"certificateHashData": h})["status"] == "Accepted"
    assert _entries(o.ok("GetInstalledCertificateIds", {"certificateType": [CSMS_ROOT]})) == \
        [_root_entry(CSMS_ROOT, octt_pki.station_root)]


def test_installed_roots_survive_a_reboot(octt_pki):
    """What InstallCertificate installed is in the station's store: listed after a Reset."""
    o = _octt(octt_pki)
    certificate_installed(o, MANUFACTURER_ROOT, octt_pki.manufacturer_root)
    assert o.ok("Reset", {"type": "Immediate"})["status"] == "Accepted"
    o.booted()
    assert o.reboots == 1
    get_installed_certificates(o, [MANUFACTURER_ROOT], (MANUFACTURER_ROOT, octt_pki.manufacturer_root))

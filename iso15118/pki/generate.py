"""``v2h pki init DIR``: a complete V2G test PKI in the three certificate profiles.

Layout (one directory per profile; every file name says what it holds)::

    DIR/iso20-secp521r1/  v2g_root_ca.pem  cpo_sub_ca_1.pem  cpo_sub_ca_2.pem  secc_leaf.pem
                          secc_chain.pem (leaf, sub-CA 2, sub-CA 1)  *.key.pem (PKCS#8, unencrypted)
                          oem_root_ca.pem  oem_sub_ca_{1,2}.pem  oem_prov_leaf.pem  oem_prov_chain.pem
                          vehicle_leaf.pem  vehicle_chain.pem  (the EV's TLS client certificate)
                          mo_root_ca.pem  mo_sub_ca_{1,2}.pem  contract_leaf.pem  contract_chain.pem
    DIR/iso20-ed448/      the same, Ed448
                          cps_sub_ca_{1,2}.pem  cps_leaf.pem  cps_chain.pem: the certificate
                          provisioning service under the V2G root, which signs
                          CertificateInstallationRes (-20 SignedInstallationData)
    DIR/iso2-secp256r1/   the same, secp256r1 (no vehicle certificate: -2 TLS is server-only); its
                          provisioning service signs -2 CertificateInstallationRes/CertificateUpdateRes
    DIR/ocpp/             csms_root_ca.pem  csms_server.pem (localhost, 127.0.0.1, ::1)
                          charging_station.pem (CN = station identity, for OCPP security profile 3)

The keys are unencrypted: this is a test PKI.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertProfile:
    """Key type and signature hash of one ISO 15118 certificate profile."""

    name: str
    standard: str  # 'iso20' | 'iso2'
    curve: type[ec.EllipticCurve] | None  # None: Ed448
    hash: type[hashes.HashAlgorithm] | None

    def new_key(self):
        if self.curve is None:
            return ed448.Ed448PrivateKey.generate()
        return ec.generate_private_key(self.curve())

    def sign_hash(self):
        return None if self.hash is None else self.hash()


PROFILES = {
    "iso20-secp521r1": CertProfile("iso20-secp521r1", "iso20", ec.SECP521R1, hashes.SHA512),
    "iso20-ed448": CertProfile("iso20-ed448", "iso20", None, None),
    "iso2-secp256r1": CertProfile("iso2-secp256r1", "iso2", ec.SECP256R1, hashes.SHA256),
}

# validity in days (test values in the spirit of ISO 15118-2 Annex F / -20 Annex)
ROOT_DAYS, SUB_CA_DAYS, LEAF_DAYS = 3650, 1460, 730


@dataclass(frozen=True)
class PkiPaths:
    """Where the files of one profile live."""

    base: Path

    def __getattr__(self, name: str) -> Path:  # secc_leaf → base/secc_leaf.pem, secc_leaf_key → .key.pem
        if name.endswith("_key"):
            return self.base / f"{name[:-4]}.key.pem"
        return self.base / f"{name}.pem"


def _name(cn: str, org: str, dc: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
             x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]
    if dc:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc))
    return x509.Name(attrs)


def short_key_identifier(public_key) -> x509.SubjectKeyIdentifier:
    """An 8-byte subject key identifier (RFC 5280 4.2.1.2, method 2: the type bits 0100, then
    the least significant 60 bits of the SHA-1 of the subjectPublicKey bit string). -20 contract
    certificates carry one: their SKI goes into the contract key's AAD as 16 hex characters."""
    full = x509.SubjectKeyIdentifier.from_public_key(public_key).digest  # SHA-1 of the bit string
    return x509.SubjectKeyIdentifier(bytes([0x40 | (full[12] & 0x0F)]) + full[13:])


def _cert(profile: CertProfile, subject: x509.Name, key, issuer: x509.Name, issuer_key, *,
          ca: bool, path_length: int | None, days: int, now: dt.datetime,
          key_agreement: bool = False, extensions: tuple = (), short_ski: bool = False) -> x509.Certificate:
    pub = key.public_key()
    ski = short_key_identifier(pub) if short_ski else x509.SubjectKeyIdentifier.from_public_key(pub)
    b = (x509.CertificateBuilder()
         .subject_name(subject).issuer_name(issuer).public_key(pub)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1))
         .not_valid_after(now + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
         .add_extension(ski, critical=False))
    if ca:
        ku = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                           crl_sign=True, encipher_only=False, decipher_only=False)
    else:
        ku = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                           data_encipherment=False, key_agreement=key_agreement and profile.curve is not None,
                           key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)
    b = b.add_extension(ku, critical=True)
    for ext in extensions:
        b = b.add_extension(ext, critical=False)
    if issuer_key is not key:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    return b.sign(issuer_key, profile.sign_hash())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    path.write_bytes(data)
    if secret:
        os.chmod(path, 0o600)


def build_hierarchy(profile: CertProfile, out: Path, now: dt.datetime, *,
                    evse_id: str = "DE*V2H*E0001", emaid: str = "DEV2HC1234567X9",
                    pcid: str = "V2HSIMULATEDCAR001") -> list[tuple[str, str]]:
    """Write one profile's hierarchies; return (file, description) rows for the listing."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    std = "ISO 15118-20" if profile.standard == "iso20" else "ISO 15118-2"

    def chain(prefix: str, sub: str, org: str, root_cn: str, leaves: list[tuple[str, str, str | None, bool, str]],
              under: tuple | None = None):
        """A root (or ``under``: an existing (name, key) root), two sub-CAs and the leaves; returns the root."""
        if under is None:
            root_key = profile.new_key()
            root_name = _name(root_cn, org)
            root = _cert(profile, root_name, root_key, root_name, root_key, ca=True, path_length=None,
                         days=ROOT_DAYS, now=now)
        else:
            root_name, root_key, root = under
        s1_key, s2_key = profile.new_key(), profile.new_key()
        s1_name = _name(f"{sub.upper()} Sub-CA 1", org)
        s2_name = _name(f"{sub.upper()} Sub-CA 2", org)
        s1 = _cert(profile, s1_name, s1_key, root_name, root_key, ca=True, path_length=1, days=SUB_CA_DAYS, now=now)
        s2 = _cert(profile, s2_name, s2_key, s1_name, s1_key, ca=True, path_length=0, days=SUB_CA_DAYS, now=now)
        certs = ((f"{prefix}_root_ca", root, root_key, f"{root_cn} (self-signed trust anchor)"),) if under is None else ()
        for stem, cert, key, what in certs + ((f"{sub}_sub_ca_1", s1, s1_key, f"{sub.upper()} Sub-CA 1, signed by the root"),
                                              (f"{sub}_sub_ca_2", s2, s2_key,
                                               f"{sub.upper()} Sub-CA 2, signed by Sub-CA 1")):
            _write(out / f"{stem}.pem", _pem(cert))
            _write(out / f"{stem}.key.pem", _key_pem(key), secret=True)
            rows.append((f"{stem}.pem", what))
        for stem, cn, dc, agree, what in leaves:
            key = profile.new_key()
            leaf = _cert(profile, _name(cn, org, dc), key, s2_name, s2_key, ca=False, path_length=None,
                         days=LEAF_DAYS, now=now, key_agreement=agree,
                         short_ski=dc == "MO" and profile.standard == "iso20")
            _write(out / f"{stem}.pem", _pem(leaf))
            _write(out / f"{stem}.key.pem", _key_pem(key), secret=True)
            _write(out / f"{stem.removesuffix('_leaf')}_chain.pem", _pem(leaf) + _pem(s2) + _pem(s1))
            rows.append((f"{stem}.pem", what))
            rows.append((f"{stem.removesuffix('_leaf')}_chain.pem", f"{what}: leaf, Sub-CA 2, Sub-CA 1"))
        return root_name, root_key, root

    v2g = chain("v2g", "cpo", "V2H Test V2G Root", "V2G Root CA",
                [("secc_leaf", evse_id, "CPO", True, f"SECC (charger) TLS certificate, CN={evse_id}, DC=CPO")])
    # contract installation: the provisioning service's signing chain under the V2G root
    chain("v2g", "cps", "V2H Test V2G Root", "V2G Root CA",
          [("cps_leaf", "V2H Test CPS", "CPS", False, "certificate provisioning service leaf (signs "
                                                     "CertificateInstallationRes), CN=V2H Test CPS, DC=CPS")],
          under=v2g)
    oem = [("oem_prov_leaf", pcid, None, True, f"OEM provisioning certificate, CN={pcid}")]
    if profile.standard == "iso20":
        oem.append(("vehicle_leaf", pcid, None, True, f"vehicle TLS client certificate, CN={pcid}"))
    chain("oem", "oem", "V2H Test OEM", "OEM Root CA", oem)
    chain("mo", "mo", "V2H Test MO", "MO Root CA",
          [("contract_leaf", emaid, "MO", True, f"contract certificate, CN=EMAID {emaid}, DC=MO")])
    return [(f"{profile.name}/{f}", f"{std}: {d}") for f, d in rows]


def issue_contract(issuer_cert: x509.Certificate, issuer_key, emaid: str, public_key, now: dt.datetime,
                   days: int = LEAF_DAYS) -> x509.Certificate:
    """A contract certificate (CN = EMAID, DC = MO) for ``public_key``, issued by the MO sub-CA
    ``issuer_cert`` in its profile: what a certificate provisioning service returns (-20: with an
    8-byte subject key identifier, see ``short_key_identifier``)."""
    profile = next(p for p in PROFILES.values() if p.curve is not None and isinstance(public_key.curve, p.curve))
    pub_holder = _PublicOnly(public_key)
    org = issuer_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    return _cert(profile, _name(emaid, org, "MO"), pub_holder, issuer_cert.subject, issuer_key, ca=False,
                 path_length=None, days=days, now=now, key_agreement=True, short_ski=profile.standard == "iso20")


class _PublicOnly:
    """A key whose public half is all a certificate builder needs."""

    def __init__(self, public_key):
        self._pub = public_key

    def public_key(self):
        return self._pub


def build_ocpp(out: Path, now: dt.datetime, *, station_id: str = "CS001") -> list[tuple[str, str]]:
    """OCPP 2.1 security profiles 2/3: a CSMS root, the CSMS's TLS server certificate for the
    loopback names, and a charging-station client certificate (secp256r1, SHA-256)."""
    import ipaddress

    p = PROFILES["iso2-secp256r1"]
    out.mkdir(parents=True, exist_ok=True)
    root_key = p.new_key()
    root_name = _name("V2H Test CSMS Root CA", "V2H Test CSO")
    root = _cert(p, root_name, root_key, root_name, root_key, ca=True, path_length=0, days=ROOT_DAYS, now=now)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       x509.IPAddress(ipaddress.ip_address("::1"))])
    server_key, station_key = p.new_key(), p.new_key()
    server = _cert(p, _name("localhost", "V2H Test CSO"), server_key, root_name, root_key, ca=False,
                   path_length=None, days=LEAF_DAYS, now=now,
                   extensions=(san, x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH])))
    station = _cert(p, _name(station_id, "V2H Test CSO"), station_key, root_name, root_key, ca=False,
                    path_length=None, days=LEAF_DAYS, now=now,
                    extensions=(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]),))
    for stem, cert, key in (("csms_root_ca", root, root_key), ("csms_server", server, server_key),
                            ("charging_station", station, station_key)):
        _write(out / f"{stem}.pem", _pem(cert))
        _write(out / f"{stem}.key.pem", _key_pem(key), secret=True)
    return [("ocpp/csms_root_ca.pem", "OCPP: CSMS root CA (trust it with v2h charger --csms-ca)"),
            ("ocpp/csms_server.pem", "OCPP: CSMS TLS server certificate for localhost, 127.0.0.1, ::1"),
            ("ocpp/charging_station.pem", f"OCPP: charging station client certificate, CN={station_id} "
                                          "(security profile 3: --station-cert/--station-key)")]


def init_pki(directory: str | Path, *, now: dt.datetime | None = None,
             profiles: list[str] | None = None) -> str:
    """Create the test PKI under ``directory``; return the README-style listing (also written
    to DIR/README.txt)."""
    base = Path(directory)
    now = now or dt.datetime.now(dt.timezone.utc)
    rows: list[tuple[str, str]] = []
    for name in profiles or list(PROFILES):
        rows += build_hierarchy(PROFILES[name], base / name, now)
    if profiles is None:
        rows += build_ocpp(base / "ocpp", now)
    width = max(len(f) for f, _ in rows)
    lines = [f"v2h test PKI in {base} (generated {now:%Y-%m-%d %H:%M} UTC; keys unencrypted: for tests only)",
             "Each *.pem has a *.key.pem beside it; *_chain.pem files run leaf first.", ""]
    lines += [f"  {f:<{width}}  {d}" for f, d in rows]
    listing = "\n".join(lines) + "\n"
    (base / "README.txt").write_text(listing)
    return listing

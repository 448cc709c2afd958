"""Loading what a session needs from a directory made by ``v2h pki init``."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

DEFAULT_PROFILE = "iso20-secp521r1"


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def _base(pki_dir: str | Path, profile: str) -> Path:
    base = Path(pki_dir) / profile
    if not base.is_dir():
        raise ValueError(f"{base} does not exist (create it with: v2h pki init {pki_dir})")
    return base


def _der_certificates(path: Path) -> tuple[bytes, ...]:
    """The certificates of a PEM file as DER (without loading the crypto library; the DER is
    parsed and checked where it is used)."""
    try:
        found = tuple(base64.b64decode(b"".join(m.group(1).split()), validate=True)
                      for m in _PEM.finditer(path.read_bytes()))
    except binascii.Error as e:
        raise ValueError(f"{path}: broken PEM ({e})") from None
    if not found:
        raise ValueError(f"{path} holds no certificate")
    return found


def contract_credentials(pki_dir: str | Path, profile: str = DEFAULT_PROFILE) -> tuple[tuple[bytes, ...], object]:
    """The car's contract chain (DER, leaf first) and its private key, for Plug & Charge."""
    from cryptography.hazmat.primitives import serialization

    base = _base(pki_dir, profile)
    key = serialization.load_pem_private_key((base / "contract_leaf.key.pem").read_bytes(), password=None)
    return _der_certificates(base / "contract_chain.pem"), key


def contract_roots(pki_dir: str | Path, profile: str = DEFAULT_PROFILE) -> tuple[bytes, ...]:
    """The MO roots the charger trusts for contract certificates (DER)."""
    return _der_certificates(_base(pki_dir, profile) / "mo_root_ca.pem")


def _key(path: Path):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def oem_credentials(pki_dir: str | Path, profile: str = "iso2-secp256r1") -> tuple[tuple[bytes, ...], object]:
    """The car's OEM provisioning certificate chain (DER, leaf first) and key: what it proves
    itself with in an ISO 15118-2 CertificateInstallationReq."""
    base = _base(pki_dir, profile)
    return _der_certificates(base / "oem_prov_chain.pem"), _key(base / "oem_prov_leaf.key.pem")


def v2g_roots(pki_dir: str | Path, profile: str = "iso2-secp256r1") -> tuple[bytes, ...]:
    """The V2G roots a car trusts (DER): the charger's TLS chain and the provisioning service's."""
    return _der_certificates(_base(pki_dir, profile) / "v2g_root_ca.pem")


def certificate_service(pki_dir: str | Path, profile: str = "iso2-secp256r1") -> dict:
    """What a test certificate provisioning service needs (CertificateInstallation, and -2
    CertificateUpdate): its signing chain (DER, leaf first) and key, the MO root, the MO sub-CA
    that issues contracts (DER, issuing sub-CA first) and its key, the OEM sub-CAs and roots that
    vouch for a car's provisioning certificate."""
    base = _base(pki_dir, profile)
    if not (base / "cps_chain.pem").exists():
        raise ValueError(f"{base} has no certificate provisioning service (re-create it with: v2h pki init)")
    return {"cps_chain": _der_certificates(base / "cps_chain.pem"), "cps_key": _key(base / "cps_leaf.key.pem"),
            "mo_roots": _der_certificates(base / "mo_root_ca.pem"),
            "mo_chain": _der_certificates(base / "mo_sub_ca_2.pem") + _der_certificates(base / "mo_sub_ca_1.pem"),
            "mo_key": _key(base / "mo_sub_ca_2.key.pem"),
            "oem_chain": _der_certificates(base / "oem_sub_ca_2.pem") + _der_certificates(base / "oem_sub_ca_1.pem"),
            "oem_roots": _der_certificates(base / "oem_root_ca.pem")}

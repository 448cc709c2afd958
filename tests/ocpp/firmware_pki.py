"""A manufacturer's firmware signing PKI for the tests: a root, a signing certificate under it,
and one under a root the station does not know; signatures are ECDSA over SHA-256."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer: str, issuer_key, *, ca: bool, days: int = 20 * 365,
          start: dt.datetime | None = None) -> x509.Certificate:
    start = start or dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


@dataclass(frozen=True)
class FirmwarePKI:
    root: x509.Certificate
    signing_pem: str           # the signing certificate, as UpdateFirmware carries it
    signing_key: object
    foreign_pem: str           # a signing certificate under another root
    expired_pem: str           # under the right root, but expired

    def sign(self, image: bytes, key=None) -> str:
        return base64.b64encode((key or self.signing_key).sign(image, ec.ECDSA(hashes.SHA256()))).decode()


@lru_cache(maxsize=1)
def pki() -> FirmwarePKI:
    root_key, key, other_key, other_signing = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    root = _cert("v2h test manufacturer root", root_key, "v2h test manufacturer root", root_key, ca=True)
    signing = _cert("v2h firmware signing", key, "v2h test manufacturer root", root_key, ca=False)
    other_root = _cert("someone else's root", other_key, "someone else's root", other_key, ca=True)
    foreign = _cert("someone else's signing", other_signing, "someone else's root", other_key, ca=False)
    expired = _cert("v2h firmware signing (old)", key, "v2h test manufacturer root", root_key, ca=False,
                    days=30)
    assert other_root is not None

    def pem(c: x509.Certificate) -> str:
        return c.public_bytes(serialization.Encoding.PEM).decode()
    return FirmwarePKI(root, pem(signing), key, pem(foreign), pem(expired))

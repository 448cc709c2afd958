"""A CSMS-side certificate authority for the charger's own certificates (OCPP SignCertificate →
CertificateSigned): the SECC's V2G certificates from the CPO Sub-CA 2 of `v2h pki init` (DC=CPO,
-20 on secp521r1 and -2 on secp256r1), the charging station's certificate from the CSMS root.
A test backend, sans-I/O: a CSR (PEM) and the time in, the chain (PEM, leaf first) out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

V2G_PROFILES = {"V2G20Certificate": "iso20-secp521r1", "V2GCertificate": "iso2-secp256r1"}


class SigningRefused(ValueError):
    """A CSR this authority does not sign (the reason is the message)."""


@dataclass
class CsrSigner:
    """``issuers``: certificate type → (issuing certificate, its key, the chain above it as PEM)."""

    issuers: dict
    days: int = 365

    @classmethod
    def from_pki(cls, pki_dir: str | Path, days: int = 365) -> CsrSigner:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        def load(path: Path):
            return (x509.load_pem_x509_certificate(path.with_suffix(".pem").read_bytes()),
                    serialization.load_pem_private_key(path.with_suffix(".key.pem").read_bytes(), None))
        issuers = {}
        for kind, profile in V2G_PROFILES.items():
            base = Path(pki_dir) / profile
            if (base / "cpo_sub_ca_2.pem").exists():
                cert, key = load(base / "cpo_sub_ca_2")
                issuers[kind] = (cert, key, (base / "cpo_sub_ca_2.pem").read_text() +
                                 (base / "cpo_sub_ca_1.pem").read_text())
        ocpp = Path(pki_dir) / "ocpp"
        if (ocpp / "csms_root_ca.pem").exists():
            cert, key = load(ocpp / "csms_root_ca")
            issuers["ChargingStationCertificate"] = (cert, key, "")
        return cls(issuers, days)

    def sign(self, kind: str, csr_pem: str, now: dt.datetime) -> str:
        """The chain (PEM, leaf first) for ``csr_pem``, or SigningRefused."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        issuer = self.issuers.get(kind)
        if issuer is None:
            raise SigningRefused(f"no issuer for a {kind}")
        cert, key, above = issuer
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as e:
            raise SigningRefused(f"not a CSR: {e}") from None
        if not csr.is_signature_valid:
            raise SigningRefused("the CSR's signature does not verify")
        pub = csr.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise SigningRefused("not an EC key")
        leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(cert.subject).public_key(pub)
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=self.days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=kind != "ChargingStationCertificate",
                                             key_cert_sign=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False))
        if kind == "ChargingStationCertificate":
            leaf = leaf.add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        digest = hashes.SHA512() if key.curve.key_size > 256 else hashes.SHA256()
        return leaf.sign(key, digest).public_bytes(serialization.Encoding.PEM).decode() + above

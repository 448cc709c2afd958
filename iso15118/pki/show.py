"""``v2h pki show FILE``: certificates in a readable form."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from .validate import load_certificates


def _key(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__.removesuffix("PublicKey")


def _ext(ext: x509.Extension) -> str:
    v = ext.value
    if isinstance(v, x509.BasicConstraints):
        s = f"CA={v.ca}" + (f", pathlen={v.path_length}" if v.path_length is not None else "")
    elif isinstance(v, x509.KeyUsage):
        names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign"]
        s = ", ".join(n for n in names if getattr(v, n))
    elif isinstance(v, x509.SubjectKeyIdentifier):
        s = v.digest.hex()
    elif isinstance(v, x509.AuthorityKeyIdentifier):
        s = (v.key_identifier or b"").hex()
    else:
        s = str(v)
    return f"{ext.oid._name}{' (critical)' if ext.critical else ''}: {s}"


def describe(data: bytes | str) -> str:
    """Every certificate in ``data`` (PEM or DER), one block each, leaf first for chains."""
    blocks = []
    certs = load_certificates(data)
    for i, c in enumerate(certs):
        algo = c.signature_hash_algorithm
        lines = [f"[{i}] {c.subject.rfc4514_string()}" + ("  (self-signed)" if c.issuer == c.subject else ""),
                 f"    issuer:     {c.issuer.rfc4514_string()}",
                 f"    serial:     {c.serial_number:x}",
                 f"    validity:   {c.not_valid_before_utc:%Y-%m-%d %H:%M} .. {c.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                 f"    key:        {_key(c)}",
                 f"    signature:  {'Ed448' if algo is None else 'ECDSA-' + algo.name.upper()}",
                 f"    sha256:     {c.fingerprint(hashes.SHA256()).hex()}"]
        lines += [f"    {_ext(e)}" for e in c.extensions]
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n"

"""The car's contract kept between sessions (`v2h evcc --contract FILE`): one PEM file holding
the contract's private key (PKCS#8, unencrypted: a simulated car) and its certificate chain,
leaf first. It is replaced whole or not at all (written beside it, flushed, renamed over it), so
an installation cut short — or a crash while writing — leaves the car's previous state."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def read_contract(path: str | Path) -> tuple[tuple[bytes, ...], object] | None:
    """(chain as DER, leaf first; private key) from ``path``; None when there is no such file.
    A file that holds no key or no certificate, or a key that is not the leaf's, is a ValueError."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        key = serialization.load_pem_private_key(data, password=None)
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ValueError(f"{path}: not a contract (a PEM private key and certificate chain): {e}") from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certs[0].public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise ValueError(f"{path}: the key is not the contract certificate's")
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certs), key


def write_contract(path: str | Path, chain: tuple[bytes, ...], key) -> None:
    """Replace ``path`` atomically with ``key`` and ``chain`` (mode 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem += b"".join(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM) for der in chain)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise

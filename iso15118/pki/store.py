"""Loading what a session needs from a directory made by ``v2h pki init``."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding

from .generate import PkiPaths
from .validate import load_certificates

DEFAULT_PROFILE = "iso20-secp521r1"


def _paths(pki_dir: str | Path, profile: str) -> PkiPaths:
    base = Path(pki_dir) / profile
    if not base.is_dir():
        raise ValueError(f"{base} does not exist (create it with: v2h pki init {pki_dir})")
    return PkiPaths(base)


def contract_credentials(pki_dir: str | Path, profile: str = DEFAULT_PROFILE) -> tuple[tuple[bytes, ...], object]:
    """The car's contract chain (DER, leaf first) and its private key, for Plug & Charge."""
    p = _paths(pki_dir, profile)
    chain = tuple(c.public_bytes(Encoding.DER) for c in load_certificates(p.contract_chain.read_bytes()))
    key = serialization.load_pem_private_key(p.contract_leaf_key.read_bytes(), password=None)
    return chain, key


def contract_roots(pki_dir: str | Path, profile: str = DEFAULT_PROFILE) -> tuple[bytes, ...]:
    """The MO roots the charger trusts for contract certificates (DER)."""
    p = _paths(pki_dir, profile)
    return tuple(c.public_bytes(Encoding.DER) for c in load_certificates(p.mo_root_ca.read_bytes()))

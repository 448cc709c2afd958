"""The V2G PKI: a complete test PKI generator, certificate display, and chain validation that
fails closed.

Three certificate profiles: ISO 15118-20 with secp521r1 (ECDSA-SHA512) or Ed448, and ISO 15118-2
with secp256r1 (ECDSA-SHA256). Hierarchies (DOMAIN.md §3): V2G root → CPO Sub-CA 1 → CPO Sub-CA 2
→ SECC leaf (DC=CPO); OEM root → OEM Sub-CAs → OEM provisioning and vehicle certificates;
MO root → MO Sub-CAs → contract certificate (CN = EMAID).
"""

from .generate import PROFILES, CertProfile, PkiPaths, init_pki
from .show import describe
from .store import contract_credentials, contract_roots
from .validate import ChainError, load_certificates, validate_chain

__all__ = ["PROFILES", "CertProfile", "PkiPaths", "init_pki", "describe", "contract_credentials", "contract_roots", "ChainError",
           "load_certificates", "validate_chain"]

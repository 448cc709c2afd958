"""The V2G PKI: a complete test PKI generator, certificate display, and chain validation that
fails closed.

Three certificate profiles: ISO 15118-20 with secp521r1 (ECDSA-SHA512) or Ed448, and ISO 15118-2
with secp256r1 (ECDSA-SHA256). Hierarchies (ISO 15118-20 annex on the PKI; docs/transport.md): V2G root → CPO Sub-CA 1 → CPO Sub-CA 2
→ SECC leaf (DC=CPO); OEM root → OEM Sub-CAs → OEM provisioning and vehicle certificates;
MO root → MO Sub-CAs → contract certificate (CN = EMAID).
"""

from importlib import import_module

from .errors import ChainError

# the rest loads on first use: a charger that never sees Plug & Charge never loads the
# crypto library (about 10 MB of resident memory)
_LAZY = {"PROFILES": "generate", "CertProfile": "generate", "PkiPaths": "generate", "init_pki": "generate",
         "describe": "show", "contract_credentials": "store", "contract_roots": "store",
         "oem_credentials": "store", "v2g_roots": "store", "certificate_service": "store",
         "issue_contract": "generate", "ContractPool": "pool", "CertificateService": "pool",
         "load_certificates": "validate", "validate_chain": "validate", "check_secc_leaf": "validate"}

__all__ = ["ChainError", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

"""A v2h test PKI (``v2h pki init``) laid out the way the peer reads certificates.

The peer reads ``PKI_PATH/iso15118_2/{certs,private_keys}/`` with fixed file names even for
ISO 15118-20, and expects every private key encrypted with the password in a ``*Password.txt``
beside it. Giving it our -20 certificates (secp521r1) rather than its own secp256r1 ones keeps our
side to the -20 profile.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

PASSWORD = b"12345"

# peer file stem -> our file stem (certificates); the peer's "OEM leaf" is the EV's TLS client
# certificate, which v2h calls the vehicle certificate
CERTS = {
    "v2gRootCA": "v2g_root_ca", "cpoSubCA1": "cpo_sub_ca_1", "cpoSubCA2": "cpo_sub_ca_2",
    "seccLeaf": "secc_leaf",
    "oemRootCA": "oem_root_ca", "oemSubCA1": "oem_sub_ca_1", "oemSubCA2": "oem_sub_ca_2",
    "oemLeaf": "vehicle_leaf",
    "moRootCA": "mo_root_ca", "moSubCA1": "mo_sub_ca_1", "moSubCA2": "mo_sub_ca_2",
    "contractLeaf": "contract_leaf",
}
CHAINS = {"cpoCertChain.pem": "secc_chain", "oemCertChain.pem": "vehicle_chain"}
KEYS = {"seccLeaf": "secc_leaf", "oemLeaf": "vehicle_leaf", "contractLeaf": "contract_leaf",
        "moSubCA2": "mo_sub_ca_2"}
PASSWORD_FILES = {"seccLeaf": "seccLeafPassword.txt", "oemLeaf": "oemLeafPassword.txt",
                  "contractLeaf": "contractLeafPassword.txt", "moSubCA2": "moSubCA2LeafPassword.txt",
                  "cpsLeaf": "cpsLeafPassword.txt"}
CPS_CERTS = {"cpsLeaf": "cps_leaf", "cpsSubCA2": "cps_sub_ca_2", "cpsSubCA1": "cps_sub_ca_1"}
CPS_KEYS = {"cpsLeaf": "cps_leaf"}


def lay_out_for_peer(v2h_pki: Path, out: Path, profile: str = "iso20-secp521r1") -> Path:
    """Write the peer's layout of ``v2h_pki/profile`` under ``out``; returns the PKI_PATH. With
    the -2 profile (secp256r1) the peer's "OEM leaf" is the OEM provisioning certificate (-2 has
    no vehicle TLS certificate)."""
    src = Path(v2h_pki) / profile
    iso2 = profile.startswith("iso2-")
    certs = out / "iso15118_2" / "certs"
    keys = out / "iso15118_2" / "private_keys"
    certs.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    for theirs, ours in CERTS.items():
        ours = "oem_prov_leaf" if iso2 and ours == "vehicle_leaf" else ours
        pem = (src / f"{ours}.pem").read_bytes()
        cert = x509.load_pem_x509_certificate(pem)
        (certs / f"{theirs}Cert.pem").write_bytes(pem)
        (certs / f"{theirs}Cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    for theirs, ours in CHAINS.items():
        ours = "oem_prov_chain" if iso2 and ours == "vehicle_chain" else ours
        (certs / theirs).write_bytes((src / f"{ours}.pem").read_bytes())
    if iso2:  # the -2 certificate provisioning service under the V2G root (CertificateInstallation)
        for theirs, ours in CPS_CERTS.items():
            cert = x509.load_pem_x509_certificate((src / f"{ours}.pem").read_bytes())
            (certs / f"{theirs}Cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    for theirs, ours in {**KEYS, **(CPS_KEYS if iso2 else {})}.items():
        ours = "oem_prov_leaf" if iso2 and ours == "vehicle_leaf" else ours
        key = serialization.load_pem_private_key((src / f"{ours}.key.pem").read_bytes(), None)
        (keys / f"{theirs}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD)))
        (keys / PASSWORD_FILES[theirs]).write_bytes(PASSWORD)
    return out

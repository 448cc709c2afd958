"""The contract key's transport in ISO 15118-2 CertificateInstallationRes and
CertificateUpdateRes: the certificate provisioning service encrypts the new contract
certificate's private key for the car, which alone can decrypt it.

[V2G2-818] and around: an ephemeral ECDH key pair on secp256r1; the shared secret with the car's
key (the OEM provisioning certificate's for an installation, the old contract certificate's for
an update); a 128-bit key from the shared secret by the NIST SP 800-56A concatenation KDF with
SHA-256 and OtherInfo = AlgorithmID 0x01 ‖ PartyUInfo 0x55 ‖ PartyVInfo 0x56; AES-128-CBC of
the private key's 32-byte big-endian value, the 16-byte IV in front (48 bytes: exactly two
blocks, no padding). The ephemeral public key travels as DHpublickey, an uncompressed point
(0x04 ‖ x ‖ y, 65 bytes).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

OTHER_INFO = bytes([0x01, 0x55, 0x56])  # AlgorithmID, PartyUInfo ('U'), PartyVInfo ('V')
KEY_BYTES = 32                          # a secp256r1 private value
ENCRYPTED_BYTES = 16 + KEY_BYTES        # IV, then two AES blocks
POINT_BYTES = 65                        # uncompressed secp256r1 point


class ContractKeyError(Exception):
    """The encrypted contract key cannot be recovered (wrong sizes, an invalid point, a key that
    does not decrypt to a valid private value)."""


def _symmetric_key(shared: bytes) -> bytes:
    return ConcatKDFHash(algorithm=SHA256(), length=16, otherinfo=OTHER_INFO).derive(shared)


def encrypt(contract_key: ec.EllipticCurvePrivateKey, recipient: ec.EllipticCurvePublicKey,
            rng: Callable[[int], bytes] = os.urandom) -> tuple[bytes, bytes]:
    """(DHpublickey, ContractSignatureEncryptedPrivateKey) of ``contract_key`` for ``recipient``."""
    if not isinstance(recipient, ec.EllipticCurvePublicKey) or not isinstance(recipient.curve, ec.SECP256R1):
        raise ContractKeyError("the recipient's key is not on secp256r1")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    key = _symmetric_key(ephemeral.exchange(ec.ECDH(), recipient))
    iv = rng(16)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    value = contract_key.private_numbers().private_value.to_bytes(KEY_BYTES, "big")
    point = ephemeral.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return point, iv + enc.update(value) + enc.finalize()


def decrypt(encrypted: bytes, dh_public: bytes, own_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePrivateKey:
    """The contract private key from ContractSignatureEncryptedPrivateKey and DHpublickey, with
    the car's own key (OEM provisioning or old contract)."""
    if len(encrypted) != ENCRYPTED_BYTES:
        raise ContractKeyError(f"the encrypted key has {len(encrypted)} bytes, not {ENCRYPTED_BYTES}")
    if len(dh_public) != POINT_BYTES or dh_public[0] != 0x04:
        raise ContractKeyError("DHpublickey is not an uncompressed secp256r1 point")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh_public)
        key = _symmetric_key(own_key.exchange(ec.ECDH(), peer))
    except ValueError as e:
        raise ContractKeyError(f"DHpublickey is not usable: {e}") from None
    dec = Cipher(algorithms.AES(key), modes.CBC(encrypted[:16])).decryptor()
    value = int.from_bytes(dec.update(encrypted[16:]) + dec.finalize(), "big")
    try:
        return ec.derive_private_key(value, ec.SECP256R1())
    except ValueError as e:  # 0 or not below the group order: a wrong key or a corrupted value
        raise ContractKeyError(f"the decrypted value is not a secp256r1 private key: {e}") from None

"""The contract key's transport in CertificateInstallationRes (and -2 CertificateUpdateRes): the
certificate provisioning service encrypts the new contract certificate's private key for the
car, which alone can decrypt it.

ISO 15118-2 (``encrypt``/``decrypt``):

[V2G2-818] and around: an ephemeral ECDH key pair on secp256r1; the shared secret with the car's
key (the OEM provisioning certificate's for an installation, the old contract certificate's for
an update); a 128-bit key from the shared secret by the NIST SP 800-56A concatenation KDF with
SHA-256 and OtherInfo = AlgorithmID 0x01 ‖ PartyUInfo 0x55 ‖ PartyVInfo 0x56; AES-128-CBC of
the private key's 32-byte big-endian value, the 16-byte IV in front (48 bytes: exactly two
blocks, no padding). The ephemeral public key travels as DHpublickey, an uncompressed point
(0x04 ‖ x ‖ y, 65 bytes).

ISO 15118-20 with secp521r1 (``encrypt_iso20``/``decrypt_iso20``, clause 7.9.2.5.2,
[V2G20-2489]..[V2G20-2507]): an ephemeral ECDH key pair on secp521r1 against the car's OEM
provisioning key (ephemeral-static, 7.9.2.5.4); DHPublicKey the uncompressed point (133 bytes);
AES-GCM-256 of the private value extended to 528 bits (66 bytes, 7 leading zero bits), a random
96-bit IV, a 128-bit tag, the AAD the car's PCID (18 characters) followed by the contract
certificate's subject key identifier in upper-case hexadecimal ([V2G20-2492]);
SECP521_EncryptedPrivateKey = IV ‖ ciphertext ‖ tag (12 + 66 + 16 = 94 bytes). The session key
is 256 bits from the concatenation KDF with SHA-512 and the -2 OtherInfo (docs/pnc.md: the
clause that fixes the KDF's parameters, 7.9.2.5.4, was not at hand; this is the assumption).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256, SHA512
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

OTHER_INFO = bytes([0x01, 0x55, 0x56])  # AlgorithmID, PartyUInfo ('U'), PartyVInfo ('V')
KEY_BYTES = 32                          # a secp256r1 private value
ENCRYPTED_BYTES = 16 + KEY_BYTES        # IV, then two AES blocks
POINT_BYTES = 65                        # uncompressed secp256r1 point


class ContractKeyError(Exception):
    """The encrypted contract key cannot be recovered (wrong sizes, an invalid point, a key that
    does not decrypt to a valid private value)."""


def _shared_secret(own_key, curve: ec.EllipticCurve, dh_public: bytes, size: int, name: str) -> bytes:
    """ECDH of the car's key with the provisioning service's ephemeral public key ``dh_public``
    (an uncompressed point of ``size`` bytes on ``curve``; ``name``: its element, for the error)."""
    if len(dh_public) != size or dh_public[0] != 0x04:
        raise ContractKeyError(f"{name} is not an uncompressed {curve.name} point")
    try:
        return own_key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(curve, dh_public))
    except ValueError as e:
        raise ContractKeyError(f"{name} is not usable: {e}") from None


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
    key = _symmetric_key(_shared_secret(own_key, ec.SECP256R1(), dh_public, POINT_BYTES, "DHpublickey"))
    dec = Cipher(algorithms.AES(key), modes.CBC(encrypted[:16])).decryptor()
    value = int.from_bytes(dec.update(encrypted[16:]) + dec.finalize(), "big")
    try:
        return ec.derive_private_key(value, ec.SECP256R1())
    except ValueError as e:  # 0 or not below the group order: a wrong key or a corrupted value
        raise ContractKeyError(f"the decrypted value is not a secp256r1 private key: {e}") from None


# --- ISO 15118-20, secp521r1 ------------------------------------------------------------------

KEY_BYTES_521 = 66                      # 521 bits in 528 (7 leading zero bits)
ENCRYPTED_BYTES_521 = 12 + KEY_BYTES_521 + 16  # IV, ciphertext, tag: SECP521_EncryptedPrivateKey
POINT_BYTES_521 = 133                   # DHPublicKey: uncompressed secp521r1 point
PCID_BYTES = 18


def aad(pcid: str, ski: bytes) -> bytes:
    """[V2G20-2492]: the PCID (capital letters and digits, 18 characters) followed by the
    contract certificate's subject key identifier as upper-case hexadecimal."""
    if len(pcid) != PCID_BYTES or not pcid.isascii() or not pcid.isalnum() or pcid.upper() != pcid:
        raise ContractKeyError(f"the PCID {pcid!r} is not 18 capital letters and digits")
    return pcid.encode("ascii") + ski.hex().upper().encode("ascii")


def _session_key_iso20(shared: bytes) -> bytes:
    return ConcatKDFHash(algorithm=SHA512(), length=32, otherinfo=OTHER_INFO).derive(shared)


def encrypt_iso20(contract_key: ec.EllipticCurvePrivateKey, recipient: ec.EllipticCurvePublicKey, pcid: str,
                  ski: bytes, rng: Callable[[int], bytes] = os.urandom) -> tuple[bytes, bytes]:
    """(DHPublicKey, SECP521_EncryptedPrivateKey) of ``contract_key`` for the car's OEM
    provisioning key ``recipient``; ``ski``: the new contract certificate's key identifier."""
    for what, key in (("recipient's", recipient), ("contract", contract_key)):
        if not isinstance(key.curve, ec.SECP521R1):
            raise ContractKeyError(f"the {what} key is not on secp521r1")
    ephemeral = ec.generate_private_key(ec.SECP521R1())
    key = _session_key_iso20(ephemeral.exchange(ec.ECDH(), recipient))
    iv = rng(12)
    value = contract_key.private_numbers().private_value.to_bytes(KEY_BYTES_521, "big")
    sealed = AESGCM(key).encrypt(iv, value, aad(pcid, ski))  # ciphertext ‖ 16-byte tag
    point = ephemeral.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return point, iv + sealed


def decrypt_iso20(encrypted: bytes, dh_public: bytes, own_key: ec.EllipticCurvePrivateKey, pcid: str,
                  ski: bytes) -> ec.EllipticCurvePrivateKey:
    """The contract private key from SECP521_EncryptedPrivateKey and DHPublicKey with the car's
    OEM provisioning key; the tag must verify, the 7 leading bits be zero and the value a
    secp521r1 private key ([V2G20-2504], [V2G20-2678], [V2G20-2507]: the caller checks that it
    belongs to the certificate)."""
    from cryptography.exceptions import InvalidTag

    if len(encrypted) != ENCRYPTED_BYTES_521:
        raise ContractKeyError(f"the encrypted key has {len(encrypted)} bytes, not {ENCRYPTED_BYTES_521}")
    if not isinstance(own_key, ec.EllipticCurvePrivateKey) or not isinstance(own_key.curve, ec.SECP521R1):
        raise ContractKeyError("the car's provisioning key is not on secp521r1")
    key = _session_key_iso20(_shared_secret(own_key, ec.SECP521R1(), dh_public, POINT_BYTES_521, "DHPublicKey"))
    try:
        value = AESGCM(key).decrypt(encrypted[:12], encrypted[12:], aad(pcid, ski))
    except InvalidTag:
        raise ContractKeyError("the encrypted key does not authenticate (another key, PCID or "
                               "certificate, or altered on the way)") from None
    if value[0] & 0xFE:
        raise ContractKeyError("the decrypted value's 7 leading bits are not zero")
    try:
        return ec.derive_private_key(int.from_bytes(value, "big"), ec.SECP521R1())
    except ValueError as e:  # 0 or not below the group order
        raise ContractKeyError(f"the decrypted value is not a secp521r1 private key: {e}") from None

"""The -2 contract key transport (iso15118.pki.contract_key): a round trip, the key derivation
checked against an independent computation of the concatenation KDF, and every malformed input
refused with its typed error."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from iso15118.pki import contract_key

RAW = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint


def test_round_trip():
    car = ec.generate_private_key(ec.SECP256R1())
    contract = ec.generate_private_key(ec.SECP256R1())
    dh, encrypted = contract_key.encrypt(contract, car.public_key())
    assert len(dh) == 65 and dh[0] == 4 and len(encrypted) == 48
    back = contract_key.decrypt(encrypted, dh, car)
    assert back.private_numbers().private_value == contract.private_numbers().private_value


def test_the_kdf_and_cipher_as_the_standard_writes_them():
    """Decrypting by hand: Z = ECDH(car, DHpublickey); key = SHA-256(00000001 ‖ Z ‖ 01 55 56),
    first 16 bytes; AES-128-CBC with the IV in front."""
    car = ec.generate_private_key(ec.SECP256R1())
    contract = ec.generate_private_key(ec.SECP256R1())
    dh, encrypted = contract_key.encrypt(contract, car.public_key(), rng=lambda n: bytes(range(n)))
    assert encrypted[:16] == bytes(range(16))
    z = car.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh))
    key = hashlib.sha256(b"\x00\x00\x00\x01" + z + b"\x01\x55\x56").digest()[:16]
    dec = Cipher(algorithms.AES(key), modes.CBC(encrypted[:16])).decryptor()
    value = dec.update(encrypted[16:]) + dec.finalize()
    assert int.from_bytes(value, "big") == contract.private_numbers().private_value


def test_another_key_does_not_decrypt_to_the_contract():
    car, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    contract = ec.generate_private_key(ec.SECP256R1())
    dh, encrypted = contract_key.encrypt(contract, car.public_key())
    try:
        got = contract_key.decrypt(encrypted, dh, other)
    except contract_key.ContractKeyError:
        return
    assert got.public_key().public_bytes(*RAW) != contract.public_key().public_bytes(*RAW)


@pytest.mark.parametrize("encrypted,dh,why", [
    (bytes(47), None, "48"),
    (bytes(64), None, "48"),
    (None, bytes(65), "uncompressed"),
    (None, b"\x04" + bytes(64), "not usable"),
    (None, b"\x02" + bytes(32), "uncompressed"),
])
def test_malformed_inputs_are_refused(encrypted, dh, why):
    car = ec.generate_private_key(ec.SECP256R1())
    good_dh, good = contract_key.encrypt(ec.generate_private_key(ec.SECP256R1()), car.public_key())
    with pytest.raises(contract_key.ContractKeyError, match=why):
        contract_key.decrypt(encrypted if encrypted is not None else good, dh if dh is not None else good_dh, car)


def test_only_a_secp256r1_recipient():
    with pytest.raises(contract_key.ContractKeyError):
        contract_key.encrypt(ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()).public_key())


def test_the_provisioning_service_and_the_contracts_it_issues(v2g_pki):
    """`v2h pki init` gives -2 a provisioning service under the V2G root, and a contract issued
    with the MO sub-CA validates as a contract (CN = EMAID, DC = MO)."""
    import datetime as dt

    from cryptography import x509

    from iso15118 import pki

    svc = pki.certificate_service(v2g_pki)
    path = pki.validate_chain(list(svc["cps_chain"]), list(pki.v2g_roots(v2g_pki)), profile="iso2")
    assert len(path) == 4
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.issue_contract(x509.load_der_x509_certificate(svc["mo_chain"][0]), svc["mo_key"], "DEV2HC0000001X1",
                              key.public_key(), dt.datetime.now(dt.timezone.utc))
    der = cert.public_bytes(serialization.Encoding.DER)
    assert len(der) <= 800  # -2 Certificate: base64Binary maxLength 800
    contract = pki.validate_chain([der, *svc["mo_chain"]], list(pki.contract_roots(v2g_pki, "iso2-secp256r1")),
                                  profile="iso2", purpose="contract")
    assert contract[0].public_key().public_bytes(*RAW) == key.public_key().public_bytes(*RAW)
    svc20 = pki.certificate_service(v2g_pki, "iso20-secp521r1")  # -20 installation has its own, on secp521r1
    assert len(pki.validate_chain(list(svc20["cps_chain"]), list(pki.v2g_roots(v2g_pki, "iso20-secp521r1")),
                                  profile="iso20")) == 4


# --- ISO 15118-20, secp521r1 ------------------------------------------------------------------

PCID = "V2HSIMULATEDCAR001"
SKI = bytes.fromhex("4a1b2c3d4e5f6071")


def _pair20():
    return ec.generate_private_key(ec.SECP521R1()), ec.generate_private_key(ec.SECP521R1())


def test_iso20_round_trip():
    car, contract = _pair20()
    dh, encrypted = contract_key.encrypt_iso20(contract, car.public_key(), PCID, SKI)
    assert len(dh) == 133 and dh[0] == 4 and len(encrypted) == 94
    back = contract_key.decrypt_iso20(encrypted, dh, car, PCID, SKI)
    assert back.private_numbers().private_value == contract.private_numbers().private_value


def test_iso20_the_kdf_cipher_and_aad_as_docs_pnc_writes_them():
    """By hand: Z = ECDH(car, DHPublicKey); key = SHA-512(00000001 ‖ Z ‖ 01 55 56), first 32
    bytes; AES-GCM-256 with the 12-byte IV in front, the tag behind, the AAD the PCID followed by
    the SKI in upper-case hex; the plain text the private value in 66 bytes."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    car, contract = _pair20()
    dh, encrypted = contract_key.encrypt_iso20(contract, car.public_key(), PCID, SKI, rng=lambda n: bytes(range(n)))
    assert encrypted[:12] == bytes(range(12))
    z = car.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), dh))
    key = hashlib.sha512(b"\x00\x00\x00\x01" + z + b"\x01\x55\x56").digest()[:32]
    aad = b"V2HSIMULATEDCAR0014A1B2C3D4E5F6071"
    value = AESGCM(key).decrypt(encrypted[:12], encrypted[12:], aad)
    assert len(value) == 66 and value[0] & 0xFE == 0
    assert int.from_bytes(value, "big") == contract.private_numbers().private_value


@pytest.mark.parametrize("change,why", [
    ("pcid", "does not authenticate"),
    ("ski", "does not authenticate"),
    ("tag", "does not authenticate"),
    ("other car", "does not authenticate"),
    ("short", "94"),
    ("point", "uncompressed"),
    ("bad point", "not usable"),
])
def test_iso20_what_is_refused(change, why):
    car, contract = _pair20()
    dh, enc = contract_key.encrypt_iso20(contract, car.public_key(), PCID, SKI)
    own, pcid, ski = car, PCID, SKI
    if change == "pcid":
        pcid = "V2HSIMULATEDCAR002"
    elif change == "ski":
        ski = bytes(8)
    elif change == "tag":
        enc = enc[:-1] + bytes([enc[-1] ^ 1])
    elif change == "other car":
        own = ec.generate_private_key(ec.SECP521R1())
    elif change == "short":
        enc = enc[:-1]
    elif change == "point":
        dh = b"\x02" + dh[1:]
    else:
        dh = b"\x04" + bytes(132)
    with pytest.raises(contract_key.ContractKeyError, match=why):
        contract_key.decrypt_iso20(enc, dh, own, pcid, ski)


def test_iso20_leading_bits_and_curves():
    """The 7 bits in front of a 521-bit value must be zero; only secp521r1 keys; an 18-character PCID."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    car, contract = _pair20()
    eph = ec.generate_private_key(ec.SECP521R1())
    key = hashlib.sha512(b"\x00\x00\x00\x01" + eph.exchange(ec.ECDH(), car.public_key()) + b"\x01\x55\x56").digest()[:32]
    sealed = AESGCM(key).encrypt(bytes(12), b"\x02" + bytes(65), contract_key.aad(PCID, SKI))
    with pytest.raises(contract_key.ContractKeyError, match="7 leading bits"):
        contract_key.decrypt_iso20(bytes(12) + sealed, eph.public_key().public_bytes(*RAW), car, PCID, SKI)
    with pytest.raises(contract_key.ContractKeyError, match="secp521r1"):
        contract_key.encrypt_iso20(contract, ec.generate_private_key(ec.SECP256R1()).public_key(), PCID, SKI)
    with pytest.raises(contract_key.ContractKeyError, match="18 capital"):
        contract_key.aad("V2HSIMULATEDCAR00", SKI)
    with pytest.raises(contract_key.ContractKeyError, match="18 capital"):
        contract_key.aad("v2hsimulatedcar001", SKI)

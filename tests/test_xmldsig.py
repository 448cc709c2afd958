"""XML signatures over EXI fragments: sign, verify, and fail closed on any change."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from iso15118 import exi, xmldsig
from iso15118.xmldsig import SignatureError, SignedElement, identified_elements

CM, ISO2 = exi.messages("iso20_cm"), exi.messages("iso2")
SID = bytes.fromhex("5A2CDE53F701D4AC")


def iso20_authorization(pnc):
    return CM.AuthorizationReq(Header=CM.MessageHeader(SessionID=SID, TimeStamp=1718607600),
                               SelectedAuthorizationService="PnC", PnC_AReqAuthorizationMode=pnc)


def pnc_mode(id_="id1"):
    return CM.PnC_AReqAuthorizationMode(
        Id=id_, GenChallenge=os.urandom(16),
        ContractCertificateChain=CM.ContractCertificateChain(Certificate=b"\x30" * 300,
                                                             SubCertificates=CM.SubCertificates(Certificate=[b"\x30" * 200])))


KEYS = {"iso20-secp521r1": lambda: ec.generate_private_key(ec.SECP521R1()),
        "iso20-ed448": lambda: ed448.Ed448PrivateKey.generate()}


@pytest.mark.parametrize("kind", list(KEYS))
def test_iso20_pnc_authorization_signature_round_trip(kind):
    key = KEYS[kind]()
    pnc = pnc_mode()
    sig = xmldsig.sign([SignedElement(pnc, "PnC_AReqAuthorizationMode", "iso20_cm")], key)
    req = iso20_authorization(pnc)
    signed = CM.AuthorizationReq(Header=CM.MessageHeader(SessionID=SID, TimeStamp=1718607600, Signature=sig),
                                 SelectedAuthorizationService="PnC", PnC_AReqAuthorizationMode=pnc)
    data = exi.encode(signed)
    got = exi.decode(data, "iso20_cm")
    xmldsig.verify(got.Header.Signature, identified_elements(got, "iso20_cm"), key.public_key())
    method = got.Header.Signature.SignedInfo.SignatureMethod.Algorithm
    assert method == (xmldsig.ECDSA_SHA512 if kind.endswith("secp521r1") else xmldsig.EDDSA_ED448)
    if kind.endswith("secp521r1"):
        assert len(got.Header.Signature.SignatureValue.value) == 132  # r‖s, 66 bytes each
    assert req.PnC_AReqAuthorizationMode == pnc


def test_iso2_authorization_signature_ecdsa_sha256():
    key = ec.generate_private_key(ec.SECP256R1())
    body = ISO2.AuthorizationReq(Id="ID1", GenChallenge=os.urandom(16))
    sig = xmldsig.sign([SignedElement(body, "AuthorizationReq", "iso2")], key)
    assert sig.SignedInfo.SignatureMethod.Algorithm == xmldsig.ECDSA_SHA256
    assert len(sig.SignatureValue.value) == 64
    msg = ISO2.V2G_Message(Header=ISO2.MessageHeader(SessionID=SID, Signature=sig), Body=ISO2.Body(AuthorizationReq=body))
    got = exi.decode(exi.encode(msg), "iso2")
    xmldsig.verify(got.Header.Signature, identified_elements(got, "iso2"), key.public_key())


def _flip_each_bit(data: bytes, start_bit: int = 8):
    for i in range(start_bit, 8 * len(data)):
        b = bytearray(data)
        b[i // 8] ^= 0x80 >> (i % 8)
        yield bytes(b)


def test_flipping_any_signed_bit_fails_verification():
    key = ec.generate_private_key(ec.SECP521R1())
    pnc = pnc_mode()
    element = SignedElement(pnc, "PnC_AReqAuthorizationMode", "iso20_cm")
    sig = xmldsig.sign([element], key)
    xmldsig.verify(sig, [element], key.public_key())
    checked = 0
    # every bit of the signed element's fragment (that still decodes to a different element)
    for mutated in _flip_each_bit(element.fragment()):
        try:
            other = exi.decode_fragment(mutated, "iso20_cm")
        except exi.ExiDecodeError:
            continue
        if other == pnc:
            continue  # a padding bit: not signed content
        with pytest.raises(SignatureError):
            xmldsig.verify(sig, [SignedElement(other, "PnC_AReqAuthorizationMode", "iso20_cm")], key.public_key())
        checked += 1
    # every bit of SignedInfo
    for mutated in _flip_each_bit(exi.encode_fragment(sig.SignedInfo, "xmldsig")):
        try:
            si = exi.decode_fragment(mutated, "xmldsig")
        except exi.ExiDecodeError:
            continue
        if si == sig.SignedInfo:
            continue
        forged = exi.messages("xmldsig").Signature(SignedInfo=si, SignatureValue=sig.SignatureValue)
        with pytest.raises(SignatureError):
            xmldsig.verify(forged, [element], key.public_key())
        checked += 1
    # every bit of the signature value
    ds = exi.messages("xmldsig")
    for mutated in _flip_each_bit(sig.SignatureValue.value, 0):
        forged = ds.Signature(SignedInfo=sig.SignedInfo, SignatureValue=ds.SignatureValue(value=mutated))
        with pytest.raises(SignatureError):
            xmldsig.verify(forged, [element], key.public_key())
        checked += 1
    assert checked > 2000


def test_reference_must_resolve_to_exactly_one_element():
    key = ec.generate_private_key(ec.SECP521R1())
    a = SignedElement(pnc_mode("dup"), "PnC_AReqAuthorizationMode", "iso20_cm")
    sig = xmldsig.sign([a], key)
    with pytest.raises(SignatureError, match="resolves to 0"):
        xmldsig.verify(sig, [], key.public_key())
    b = SignedElement(CM.SignedCertificateChain(Id="dup", Certificate=b"\x30"), "OEMProvisioningCertificateChain",
                      "iso20_cm")
    with pytest.raises(SignatureError, match="resolves to 2"):
        xmldsig.verify(sig, [a, b], key.public_key())


def test_wrong_key_and_algorithm_are_refused():
    key = ec.generate_private_key(ec.SECP521R1())
    el = SignedElement(pnc_mode(), "PnC_AReqAuthorizationMode", "iso20_cm")
    sig = xmldsig.sign([el], key)
    with pytest.raises(SignatureError, match="does not verify"):
        xmldsig.verify(sig, [el], ec.generate_private_key(ec.SECP521R1()).public_key())
    with pytest.raises(SignatureError, match="does not fit"):
        xmldsig.verify(sig, [el], ed448.Ed448PrivateKey.generate().public_key())
    with pytest.raises(SignatureError):
        xmldsig.sign([el], ec.generate_private_key(ec.SECP384R1()))


def test_relaxed_fragment_element_can_be_signed():
    """-2 CertificateInstallationRes signs eMAID, which needs the relaxed fragment grammar."""
    key = ec.generate_private_key(ec.SECP256R1())
    emaid = ISO2.EMAID(Id="id4", value="DE8AA1234567890")
    el = SignedElement(emaid, "eMAID", "iso2")
    sig = xmldsig.sign([el], key)
    xmldsig.verify(sig, [el], key.public_key())

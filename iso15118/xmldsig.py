"""XML signatures over EXI, as Plug & Charge uses them (ISO 15118-2 §7.9.2.4, -20 §8.3).

Each signed element (it carries an ``Id`` attribute) is encoded as an EXI fragment; its digest
goes into a ``Reference`` with ``URI="#Id"``; the ``SignedInfo`` holding the references is itself
encoded as an EXI fragment (xmldsig grammar) and signed. Verification fails closed: unknown
algorithms, a reference that resolves to no element or to several, a digest or signature that
does not match — all raise ``SignatureError`` with the reason.

Profiles:
- ISO 15118-2: ECDSA-SHA256 on secp256r1, digests SHA-256.
- ISO 15118-20: ECDSA-SHA512 on secp521r1, digests SHA-512; Ed448 (RFC 9231 URI), digests
  SHAKE256 with 64 bytes of output (the -20 pairing of Ed448 with SHAKE256).
ECDSA signature values are r‖s, each the curve's byte length (big-endian), as the standards say.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from iso15118 import exi

C14N_EXI = "http://www.w3.org/TR/canonical-exi/"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
EDDSA_ED448 = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
SHAKE256 = "http://www.w3.org/2021/04/xmldsig-more#shake256"


class SignatureError(Exception):
    """The signature does not verify; ``reason`` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SigningProfile:
    signature_method: str
    digest_method: str

    def digest(self, data: bytes) -> bytes:
        if self.digest_method == SHA256:
            return hashlib.sha256(data).digest()
        if self.digest_method == SHA512:
            return hashlib.sha512(data).digest()
        if self.digest_method == SHAKE256:
            return hashlib.shake_256(data).digest(64)
        raise SignatureError(f"unsupported digest method {self.digest_method}")


ISO2 = SigningProfile(ECDSA_SHA256, SHA256)
ISO20_ECDSA = SigningProfile(ECDSA_SHA512, SHA512)
ISO20_ED448 = SigningProfile(EDDSA_ED448, SHAKE256)
_BY_METHOD = {p.signature_method: p for p in (ISO2, ISO20_ECDSA, ISO20_ED448)}


def profile_for_key(key) -> SigningProfile:
    """The signing profile of a private or public key."""
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return ISO20_ED448
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if isinstance(key.curve, ec.SECP521R1):
            return ISO20_ECDSA
        if isinstance(key.curve, ec.SECP256R1):
            return ISO2
        raise SignatureError(f"curve {key.curve.name} is not used by ISO 15118")
    raise SignatureError(f"{type(key).__name__} keys are not used by ISO 15118")


def _ds():
    return exi.messages("xmldsig")


@dataclass(frozen=True)
class SignedElement:
    """An element to reference: its message object, its element name ('{ns}local' when the
    local name is ambiguous in the schema) and the schema whose fragment grammar encodes it."""

    element: object
    name: str
    schema: str

    @property
    def id(self) -> str:
        value = getattr(self.element, "Id", None)
        if not isinstance(value, str) or not value:
            raise SignatureError(f"{self.name} has no Id attribute to reference")
        return value

    def fragment(self) -> bytes:
        return exi.encode_fragment(self.element, self.schema, element=self.name)


def _curve_bytes(key) -> int:
    return (key.curve.key_size + 7) // 8


def sign(elements: Iterable[SignedElement], private_key) -> object:
    """A ``ds:Signature`` over ``elements``, signed with ``private_key``."""
    ds = _ds()
    profile = profile_for_key(private_key)
    refs = []
    for se in elements:
        refs.append(ds.Reference(
            URI="#" + se.id,
            Transforms=ds.Transforms(Transform=[ds.Transform(Algorithm=C14N_EXI)]),
            DigestMethod=ds.DigestMethod(Algorithm=profile.digest_method),
            DigestValue=profile.digest(se.fragment())))
    if not refs:
        raise SignatureError("nothing to sign")
    signed_info = ds.SignedInfo(CanonicalizationMethod=ds.CanonicalizationMethod(Algorithm=C14N_EXI),
                                SignatureMethod=ds.SignatureMethod(Algorithm=profile.signature_method),
                                Reference=refs)
    data = exi.encode_fragment(signed_info, "xmldsig")
    if isinstance(private_key, ed448.Ed448PrivateKey):
        value = private_key.sign(data)
    else:
        h = hashes.SHA512() if profile is ISO20_ECDSA else hashes.SHA256()
        r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(h)))
        n = _curve_bytes(private_key)
        value = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    return ds.Signature(SignedInfo=signed_info, SignatureValue=ds.SignatureValue(value=value))


def verify(signature, elements: Iterable[SignedElement], public_key) -> None:
    """Check every reference of ``signature`` against ``elements`` and the signature value
    against ``public_key``; raise SignatureError on the first problem."""
    try:
        _verify(signature, list(elements), public_key)
    except SignatureError:
        raise
    except (exi.ExiError, ValueError, TypeError, AttributeError) as e:  # anything else: reject
        raise SignatureError(f"signature could not be checked ({type(e).__name__}: {e})") from None


def _verify(signature, elements: list[SignedElement], public_key) -> None:
    si = signature.SignedInfo
    if si.CanonicalizationMethod.Algorithm != C14N_EXI:
        raise SignatureError(f"canonicalization {si.CanonicalizationMethod.Algorithm!r} is not EXI")
    profile = _BY_METHOD.get(si.SignatureMethod.Algorithm)
    if profile is None:
        raise SignatureError(f"signature method {si.SignatureMethod.Algorithm!r} is not allowed")
    if profile_for_key(public_key) is not profile:
        raise SignatureError(f"signature method {profile.signature_method} does not fit the signer's key")
    if not si.Reference:
        raise SignatureError("no reference")
    by_id: dict[str, list[SignedElement]] = {}
    for se in elements:
        by_id.setdefault(se.id, []).append(se)
    seen = set()
    for ref in si.Reference:
        uri = ref.URI or ""
        if not uri.startswith("#"):
            raise SignatureError(f"reference URI {uri!r} is not a same-document reference")
        if uri in seen:
            raise SignatureError(f"reference {uri} appears twice")
        seen.add(uri)
        matches = by_id.get(uri[1:], [])
        if len(matches) != 1:
            raise SignatureError(f"reference {uri} resolves to {len(matches)} elements, not exactly one")
        transforms = [t.Algorithm for t in (ref.Transforms.Transform if ref.Transforms else [])]
        if transforms != [C14N_EXI]:
            raise SignatureError(f"reference {uri}: transforms {transforms} are not the EXI canonicalization")
        if ref.DigestMethod.Algorithm != profile.digest_method:
            raise SignatureError(f"reference {uri}: digest method {ref.DigestMethod.Algorithm!r} not allowed")
        if not hmac.compare_digest(profile.digest(matches[0].fragment()), ref.DigestValue):
            raise SignatureError(f"reference {uri}: digest does not match the element")
    data = exi.encode_fragment(si, "xmldsig")
    value = signature.SignatureValue.value
    try:
        if isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(value, data)
        else:
            n = _curve_bytes(public_key)
            if len(value) != 2 * n:
                raise SignatureError(f"signature value has {len(value)} bytes, expected {2 * n}")
            r, s = int.from_bytes(value[:n], "big"), int.from_bytes(value[n:], "big")
            h = hashes.SHA512() if profile is ISO20_ECDSA else hashes.SHA256()
            public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(h))
    except InvalidSignature:
        raise SignatureError("signature value does not verify") from None


def identified_elements(message, schema: str) -> list[SignedElement]:
    """Every element with an ``Id`` inside ``message``: the candidates a Reference may name."""
    out: list[SignedElement] = []

    def walk(obj, name: str, ns: str):
        spec = getattr(type(obj), "_exi", None)
        if spec is None:
            return
        if any(f.name == "Id" for f in spec.fields) and getattr(obj, "Id", None):
            out.append(SignedElement(obj, f"{{{ns}}}{name}", schema))
        for f in spec.fields:
            if f.cls is None:
                continue
            v = getattr(obj, f.name)
            for x in (v if f.is_list else [v] if v is not None else []):
                walk(x, f.xml_name, f.ns)

    for f in type(message)._exi.fields:
        v = getattr(message, f.name)
        if f.cls is not None:
            for x in (v if f.is_list else [v] if v is not None else []):
                walk(x, f.xml_name, f.ns)
    root_spec = type(message)._exi
    if any(f.name == "Id" for f in root_spec.fields) and getattr(message, "Id", None):
        out.append(SignedElement(message, exi.element_name(message, schema), schema))
    return out

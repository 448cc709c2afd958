"""Certificate chain validation for the V2G PKI. It fails closed: every check must pass, and
any exception while checking is a rejection with a reason.

Checks, leaf first: parseable DER/PEM; at most ``max_intermediates`` sub-CAs; each certificate
issued by the next (names and signature) and the last by a trust anchor (a self-signed root we
were given, compared byte for byte); every certificate within its validity window at ``now``;
the profile's key type, curve and signature hash on every certificate (no RSA, no mixing);
CA certificates with basicConstraints CA and keyCertSign, and their path length honoured; the
leaf with CA false and digitalSignature; no unknown critical extension; and the purpose:
an SECC certificate has DC=CPO in its subject, a contract certificate DC=MO.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import ExtensionOID, NameOID

from .errors import ChainError

PURPOSE_DC = {"secc": "CPO", "contract": "MO"}
KNOWN_CRITICAL = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE,
                  ExtensionOID.EXTENDED_KEY_USAGE, ExtensionOID.NAME_CONSTRAINTS,
                  ExtensionOID.CERTIFICATE_POLICIES}
MAX_CERT_BYTES = 1600  # -20 Certificate: base64Binary maxLength 1600 (certificateType of the -20 CommonTypes XSD)


def load_certificates(data: bytes | str | Iterable) -> list[x509.Certificate]:
    """Certificates from PEM text (several allowed), one DER blob, or a list of either."""
    if isinstance(data, (list, tuple)):
        out = []
        for i, item in enumerate(data):
            try:
                out += load_certificates(item)
            except ChainError as e:
                raise ChainError(f"certificate {i}: {e.reason}") from None
        return out
    if isinstance(data, x509.Certificate):
        return [data]
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray)):
        raise ChainError(f"not certificate data: {type(data).__name__}")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            certs = x509.load_pem_x509_certificates(bytes(data))
        else:
            certs = [x509.load_der_x509_certificate(bytes(data))]
    except ValueError as e:
        raise ChainError(f"not a valid DER/PEM certificate ({e})") from None
    return certs


def _profile_of(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ed448.Ed448PublicKey):
        return "iso20-ed448"
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP521R1):
            return "iso20-secp521r1"
        if isinstance(key.curve, ec.SECP256R1):
            return "iso2-secp256r1"
        raise ChainError(f"elliptic curve {key.curve.name} is not a V2G curve")
    raise ChainError(f"{type(key).__name__.removesuffix('PublicKey') or 'unknown'} keys are not allowed "
                     "(V2G uses secp521r1, Ed448 or secp256r1)")


_EXPECTED_HASH = {"iso20-secp521r1": hashes.SHA512, "iso20-ed448": type(None), "iso2-secp256r1": hashes.SHA256}


def _check_signature(cert: x509.Certificate, issuer: x509.Certificate, label: str) -> None:
    key = issuer.public_key()
    try:
        if isinstance(key, ed448.Ed448PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algo = cert.signature_hash_algorithm
            if algo is None:
                raise ChainError(f"{label}: no hash algorithm for an ECDSA signature")
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algo))
        else:
            raise ChainError(f"{label}: issuer key type {type(key).__name__} not allowed")
    except InvalidSignature:
        raise ChainError(f"{label}: signature does not verify with the issuer's key") from None


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _dcs(cert: x509.Certificate) -> list[str]:
    return [a.value for a in cert.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)]


def check_secc_leaf(der: bytes | None) -> None:
    """The charger's TLS leaf (already verified by TLS up to the V2G root) must carry DC=CPO:
    a certificate of another V2G role must not serve as a charger. Raises ChainError."""
    if der is None:
        raise ChainError("the charger presented no certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise ChainError(f"the charger's certificate does not parse: {e}") from None
    if "CPO" not in _dcs(cert):
        raise ChainError("the charger's certificate lacks DC=CPO")


def validate_chain(chain, anchors, *, now: dt.datetime | None = None, profile: str | None = None,
                   purpose: str | None = None, max_intermediates: int = 2) -> list[x509.Certificate]:
    """Validate ``chain`` (leaf first, then sub-CAs; the root may be included) against the
    trust ``anchors``. Returns the path leaf → root; raises ChainError with the reason."""
    try:
        return _validate(chain, anchors, now or dt.datetime.now(dt.timezone.utc), profile, purpose,
                         max_intermediates)
    except ChainError:
        raise
    except (ValueError, TypeError, AttributeError, x509.DuplicateExtension,
            x509.UnsupportedGeneralNameType) as e:  # anything unexpected: reject
        raise ChainError(f"certificate could not be checked ({type(e).__name__}: {e})") from None


def _validate(chain, anchors, now, profile, purpose, max_intermediates) -> list[x509.Certificate]:
    certs = load_certificates(list(chain) if isinstance(chain, (list, tuple)) else chain)
    roots = load_certificates(list(anchors) if isinstance(anchors, (list, tuple)) else anchors)
    if not certs:
        raise ChainError("empty chain")
    if not roots:
        raise ChainError("no trust anchor configured")
    for i, c in enumerate(certs):
        if len(c.public_bytes(_der())) > MAX_CERT_BYTES:
            raise ChainError(f"certificate {i} is longer than {MAX_CERT_BYTES} bytes")
    anchor_der = {r.public_bytes(_der()) for r in roots}
    # a chain may end with the root itself; it must then be one of our anchors
    if len(certs) > 1 and certs[-1].issuer == certs[-1].subject:
        if certs[-1].public_bytes(_der()) not in anchor_der:
            raise ChainError("the chain ends in a self-signed certificate that is not a trust anchor")
        certs = certs[:-1]
    if len(certs) - 1 > max_intermediates:
        raise ChainError(f"chain too long: {len(certs) - 1} sub-CAs, at most {max_intermediates}")
    issuer_root = [r for r in roots if r.subject == certs[-1].issuer]
    if not issuer_root:
        raise ChainError(f"no trust anchor named {certs[-1].issuer.rfc4514_string()!r} (wrong root)")
    # anchors may share a name (a rollover, or one store for several profiles): the one whose key
    # signed the chain's top, else the first (whose signature check then says why it fails)
    signer = next((r for r in issuer_root if _signed_by(certs[-1], r)), issuer_root[0])
    path = certs + [signer]
    # links
    for i in range(len(path) - 1):
        child, parent = path[i], path[i + 1]
        label = _label(i, len(path))
        if child.issuer != parent.subject:
            raise ChainError(f"{label} is issued by {child.issuer.rfc4514_string()!r}, "
                             f"not by {parent.subject.rfc4514_string()!r}")
        _check_signature(child, parent, label)
    root = path[-1]
    if root.issuer != root.subject:
        raise ChainError("trust anchor is not self-signed")
    _check_signature(root, root, "root")
    # profile: key, curve and hash uniform over the path
    prof = profile or _profile_of(path[0])
    for i, c in enumerate(path):
        label = _label(i, len(path))
        p = _profile_of(c)
        if not (p == prof or p.startswith(prof + "-")):  # 'iso20' accepts either -20 profile
            raise ChainError(f"{label}: key is {p}, the chain must be {prof}")
        if p != _profile_of(path[0]):
            raise ChainError(f"{label}: key type {p} differs from the leaf's")
        algo = c.signature_hash_algorithm  # the path is uniform: the issuer's profile is p too
        if not isinstance(algo, _EXPECTED_HASH[p]):
            raise ChainError(f"{label}: signature hash {getattr(algo, 'name', None)} not allowed for {p}")
        # validity
        nb, na = c.not_valid_before_utc, c.not_valid_after_utc
        if now < nb:
            raise ChainError(f"{label}: not yet valid (from {nb:%Y-%m-%d %H:%M})")
        if now > na:
            raise ChainError(f"{label}: expired on {na:%Y-%m-%d %H:%M}")
        for ext in c.extensions:
            if ext.critical and ext.oid not in KNOWN_CRITICAL:
                raise ChainError(f"{label}: unknown critical extension {ext.oid.dotted_string}")
        bc, ku = _basic_constraints(c), _key_usage(c)
        if i == 0:
            if bc is not None and bc.ca:
                raise ChainError("leaf: is a CA certificate")
            if ku is None or not ku.digital_signature:
                raise ChainError("leaf: key usage lacks digitalSignature")
        else:
            if bc is None or not bc.ca:
                raise ChainError(f"{label}: CA bit missing (basicConstraints)")
            if ku is None or not ku.key_cert_sign:
                raise ChainError(f"{label}: key usage lacks keyCertSign")
            below = i - 1  # sub-CAs between this CA and the leaf
            if bc.path_length is not None and below > bc.path_length:
                raise ChainError(f"{label}: path length {bc.path_length} exceeded ({below} sub-CAs below)")
    if purpose is not None:
        want = PURPOSE_DC.get(purpose)
        if want is not None and want not in _dcs(path[0]):
            raise ChainError(f"leaf: subject lacks DC={want} (required for a {purpose} certificate)")
    return path


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        _check_signature(child, parent, "")
    except ChainError:
        return False
    return True


def _label(i: int, n: int) -> str:
    """Position names as the V2G PKI uses them: sub-CA 1 sits under the root."""
    if i == 0:
        return "leaf"
    return "root" if i == n - 1 else f"sub-CA {n - 1 - i}"


def _der():
    from cryptography.hazmat.primitives.serialization import Encoding
    return Encoding.DER

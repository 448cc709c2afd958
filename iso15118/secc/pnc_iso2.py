"""The charger's ISO 15118-2 Plug & Charge handlers (the table is ``iso15118.secc.iso2``):
PaymentDetails (the contract chain against the MO roots, a fresh challenge), the signature of
AuthorizationReq and of MeteringReceiptReq with the contract key (ECDSA-SHA256 on secp256r1),
and CertificateInstallation / CertificateUpdate answered as a certificate provisioning service
would: a new contract key and certificate, the key encrypted for the car ([V2G2-818]: ECDH on
secp256r1, the concatenation KDF, AES-128-CBC; ``iso15118.pki.contract_key``), the response
signed by the provisioning service's key."""

from __future__ import annotations

from .context import Reply, State
from .iso2_common import certificate_service_offered, failure, status, utc, wall


def payment_details(req, s, now) -> Reply:
    """-2 Plug & Charge: the contract certificate chain, validated against the MO roots (fail
    closed); the EMAID is the leaf's; a fresh 16-byte challenge for the signed AuthorizationReq."""
    from cryptography.x509.oid import NameOID

    from iso15118 import pki

    chain_msg = req.ContractSignatureCertChain
    chain = [chain_msg.Certificate] + (list(chain_msg.SubCertificates.Certificate)
                                       if chain_msg.SubCertificates is not None else [])
    try:
        path = pki.validate_chain(chain, list(s.config.contract_roots), now=utc(s, now), purpose="contract",
                                  profile="iso2")
    except pki.ChainError as e:
        code = "FAILED_CertificateExpired" if "expired" in e.reason else "FAILED_CertChainError"
        return failure(s, now, "PaymentDetailsReq", code, reason=f"PaymentDetailsRes {code}: {e.reason}")
    emaid = path[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    if _normal_emaid(emaid) != _normal_emaid(req.eMAID):
        return failure(s, now, "PaymentDetailsReq", "FAILED_CertChainError",
                     reason=f"PaymentDetailsRes FAILED_CertChainError: eMAID {req.eMAID} is not the contract's {emaid}")
    ctx = s.ctx
    ctx.emaid, ctx.contract_key = emaid, path[0].public_key()
    ctx.gen_challenge = s.rng(16)
    return Reply(s.msgs.PaymentDetailsRes(ResponseCode="OK", GenChallenge=ctx.gen_challenge,
                                          EVSETimeStamp=wall(s, now)), State.WAIT_AUTH)


def _normal_emaid(text: str) -> str:
    return text.replace("-", "").upper()


def authorization_signature_error(req, s) -> str | None:
    """The challenge of PaymentDetailsRes (used once) and the signature over AuthorizationReq."""
    from iso15118 import xmldsig

    ctx = s.ctx
    challenge, ctx.gen_challenge = ctx.gen_challenge, None
    if challenge is None or req.GenChallenge != challenge or not req.Id:
        return "FAILED_ChallengeInvalid"
    sig = s.request_header.Signature
    if sig is None or ctx.contract_key is None:
        return "FAILED_SignatureError"
    try:
        xmldsig.verify(sig, [xmldsig.SignedElement(req, "AuthorizationReq", "iso2")], ctx.contract_key)
    except xmldsig.SignatureError:
        return "FAILED_SignatureError"
    return None


def metering_receipt(req, s, now) -> Reply:
    """-2 Plug & Charge: the car signs the meter reading it was sent with its contract key."""
    from iso15118 import xmldsig

    ctx = s.ctx
    ctx.receipt_due = False
    if req.SessionID != ctx.session_id:
        return failure(s, now, "MeteringReceiptReq", "FAILED_UnknownSession")
    sig = s.request_header.Signature
    try:
        if sig is None or ctx.contract_key is None or not req.Id:
            raise xmldsig.SignatureError("no signature")
        xmldsig.verify(sig, [xmldsig.SignedElement(req, "MeteringReceiptReq", "iso2")], ctx.contract_key)
    except xmldsig.SignatureError:
        return failure(s, now, "MeteringReceiptReq", "FAILED_MeteringSignatureNotValid")
    return Reply(s.msgs.MeteringReceiptRes(ResponseCode="OK", **status(s)), State.CHARGE_LOOP)


def certificate_installation(req, s, now) -> Reply:
    """A car without a contract: its OEM provisioning certificate (against the OEM sub-CAs and
    roots) has signed the request; a new contract for it, the key encrypted with its
    provisioning key."""
    from iso15118 import pki

    svc = s.config.certificate_service
    if not certificate_service_offered(s):
        return failure(s, now, "CertificateInstallationReq", "FAILED_NoCertificateAvailable")
    try:
        path = pki.validate_chain([req.OEMProvisioningCert, *svc.oem_chain], list(svc.oem_roots), now=utc(s, now),
                                  profile="iso2")
    except pki.ChainError as e:
        code = "FAILED_CertificateExpired" if "expired" in e.reason else "FAILED_CertChainError"
        return failure(s, now, "CertificateInstallationReq", code, reason=f"CertificateInstallationRes {code}: "
                                                                          f"provisioning certificate: {e.reason}")
    if not _signed(req, "CertificateInstallationReq", s, path[0].public_key()):
        return failure(s, now, "CertificateInstallationReq", "FAILED_SignatureError")
    return _new_contract(s, now, "CertificateInstallationRes", _emaid_for(path[0]), path[0].public_key())


def certificate_update(req, s, now) -> Reply:
    """A car with a contract (about to expire): the contract chain against the MO roots, the
    request signed with its key; a new contract with the same EMAID, the key encrypted with the
    old contract key."""
    from cryptography.x509.oid import NameOID

    from iso15118 import pki

    if not certificate_service_offered(s):
        return failure(s, now, "CertificateUpdateReq", "FAILED_NoCertificateAvailable")
    chain_msg = req.ContractSignatureCertChain
    chain = [chain_msg.Certificate] + (list(chain_msg.SubCertificates.Certificate)
                                       if chain_msg.SubCertificates is not None else [])
    try:
        path = pki.validate_chain(chain, list(s.config.contract_roots), now=utc(s, now), purpose="contract",
                                  profile="iso2")
    except pki.ChainError as e:
        code = "FAILED_CertificateExpired" if "expired" in e.reason else "FAILED_CertChainError"
        return failure(s, now, "CertificateUpdateReq", code, reason=f"CertificateUpdateRes {code}: {e.reason}")
    emaid = path[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    if _normal_emaid(emaid) != _normal_emaid(req.eMAID):
        return failure(s, now, "CertificateUpdateReq", "FAILED_CertChainError",
                       reason=f"CertificateUpdateRes FAILED_CertChainError: eMAID {req.eMAID} is not the contract's")
    if not _signed(req, "CertificateUpdateReq", s, path[0].public_key()):
        return failure(s, now, "CertificateUpdateReq", "FAILED_SignatureError")
    return _new_contract(s, now, "CertificateUpdateRes", emaid, path[0].public_key())


def _signed(req, name: str, s, public_key) -> bool:
    from iso15118 import xmldsig

    sig = s.request_header.Signature
    if sig is None or not req.Id:
        return False
    try:
        xmldsig.verify(sig, [xmldsig.SignedElement(req, name, "iso2")], public_key)
    except xmldsig.SignatureError:
        return False
    return True


def _emaid_for(oem_leaf) -> str:
    """A test backend's contract ID for a car: DE V2H C, eight hex digits of its provisioning
    certificate's CN (the PCID), check character X (15 characters, as -2's eMAID type wants)."""
    import hashlib

    from cryptography.x509.oid import NameOID

    pcid = oem_leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return "DEV2HC" + hashlib.sha256(pcid.encode()).hexdigest()[:8].upper() + "X"


def _new_contract(s, now, name: str, emaid: str, recipient) -> Reply:
    """A new contract key pair and certificate (issued by the MO sub-CA), the key encrypted for
    ``recipient``, the four elements signed by the provisioning service (header signature)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from iso15118 import pki, xmldsig
    from iso15118.pki import contract_key

    svc, m = s.config.certificate_service, s.msgs
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.load_der_x509_certificate(svc.mo_chain[0])
    cert = pki.issue_contract(issuer, svc.mo_key, emaid, key.public_key(), utc(s, now),
                              days=svc.contract_days)
    try:
        dh, encrypted = contract_key.encrypt(key, recipient, rng=s.rng)
    except contract_key.ContractKeyError as e:
        return failure(s, now, name[:-3] + "Req", "FAILED_NoCertificateAvailable", reason=f"{name} FAILED: {e}")
    der = cert.public_bytes(serialization.Encoding.DER)
    chain = m.CertificateChain(Id="id1", Certificate=der, SubCertificates=m.SubCertificates(Certificate=list(svc.mo_chain)))
    parts = dict(ContractSignatureCertChain=chain,
                 ContractSignatureEncryptedPrivateKey=m.ContractSignatureEncryptedPrivateKey(Id="id2", value=encrypted),
                 DHpublickey=m.DiffieHellmanPublickey(Id="id3", value=dh), eMAID=m.EMAID(Id="id4", value=emaid))
    cps = m.CertificateChain(Certificate=svc.cps_chain[0],
                             SubCertificates=m.SubCertificates(Certificate=list(svc.cps_chain[1:])))
    res = getattr(m, name)(ResponseCode="OK", SAProvisioningCertificateChain=cps, **parts)
    signature = xmldsig.sign(xmldsig.identified_elements(res, "iso2"), svc.cps_key)
    return Reply(res, State.WAIT_PAYMENT_DETAILS, signature=signature)

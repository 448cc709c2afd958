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
    provisioning key (the charger's provisioning service, ``iso15118.pki.pool``)."""
    if not certificate_service_offered(s):
        return failure(s, now, "CertificateInstallationReq", "FAILED_NoCertificateAvailable")
    answer = s.config.certificate_service.install_iso2(req, s.request_header.Signature, utc(s, now))
    return _answered(s, now, "CertificateInstallationReq", answer)


def certificate_update(req, s, now) -> Reply:
    """A car with a contract (about to expire): the contract chain against the MO roots, the
    request signed with its key; a new contract with the same EMAID, the key encrypted with the
    old contract key."""
    if not certificate_service_offered(s):
        return failure(s, now, "CertificateUpdateReq", "FAILED_NoCertificateAvailable")
    answer = s.config.certificate_service.update_iso2(req, s.request_header.Signature, utc(s, now),
                                                      s.config.contract_roots)
    return _answered(s, now, "CertificateUpdateReq", answer)


def _answered(s, now, request_name: str, answer) -> Reply:
    """The provisioning service's answer as the session's reply: the response with its header
    signature, or the refusal that ends the session."""
    if answer.response is None:
        return failure(s, now, request_name, answer.code,
                       reason=f"{request_name[:-3]}Res {answer.code}: {answer.reason}")
    return Reply(answer.response, State.WAIT_PAYMENT_DETAILS, signature=answer.signature)

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
    provisioning key — from the CSMS the supervisor forwards it to, else the charger's own
    provisioning service (``iso15118.pki.pool``)."""
    if not certificate_service_offered(s, now):
        return failure(s, now, "CertificateInstallationReq", "FAILED_NoCertificateAvailable")
    return _forwarded(s, now, req, "CertificateInstallationReq") or _local(s, now, req, "CertificateInstallationReq")


def certificate_update(req, s, now) -> Reply:
    """A car with a contract (about to expire): the contract chain against the MO roots, the
    request signed with its key; a new contract with the same EMAID, the key encrypted with the
    old contract key (from the CSMS, or the charger's own provisioning service)."""
    if not certificate_service_offered(s, now):
        return failure(s, now, "CertificateUpdateReq", "FAILED_NoCertificateAvailable")
    return _forwarded(s, now, req, "CertificateUpdateReq") or _local(s, now, req, "CertificateUpdateReq")


def _local(s, now, req, name: str) -> Reply:
    """The charger's own provisioning service answers (or, without one, the refusal)."""
    pool = s.config.certificate_service
    if pool is None or not pool.offers("iso2"):
        return failure(s, now, name, "FAILED_NoCertificateAvailable",
                       reason=f"{name[:-3]}Res FAILED_NoCertificateAvailable: no answer from the CSMS")
    signature = s.request_header.Signature
    answer = pool.install_iso2(req, signature, utc(s, now)) if name == "CertificateInstallationReq" else \
        pool.update_iso2(req, signature, utc(s, now), s.config.contract_roots)
    if answer.response is None:
        return failure(s, now, name, answer.code, reason=f"{name[:-3]}Res {answer.code}: {answer.reason}")
    return Reply(answer.response, State.WAIT_PAYMENT_DETAILS, signature=answer.signature)


def _forwarded(s, now, req, name: str) -> Reply | None:
    """The request to the CSMS through the supervisor (Get15118EVCertificate); -2 has no Ongoing
    for it, so the reply waits (polled by the session) for the CSMS's answer, at most
    FORWARD_WAIT s of the car's 5 s; None when the supervisor does not forward."""
    from iso15118 import exi
    from iso15118.protocols import NS_ISO2, wrap
    from iso15118.secc.controller import EVCertificateRequest

    if not s.supervisor.forwards_certificates(now):
        return None
    sig = s.request_header.Signature
    request = EVCertificateRequest(NS_ISO2, "Install" if name == "CertificateInstallationReq" else "Update",
                                   exi.encode(wrap("iso2", req, s.ctx.session_id, sig), "iso2"),
                                   sig.SignatureValue.value if sig is not None else b"")
    started = now

    def wait(t: float) -> Reply | None:
        answer = s.supervisor.ev_certificate(request, t)
        if answer is not None and answer.ongoing:
            if t - started < FORWARD_WAIT:
                return None
            return failure(s, t, name, "FAILED_NoCertificateAvailable",
                           reason=f"{name[:-3]}Res FAILED_NoCertificateAvailable: no answer from the CSMS in "
                                  f"{FORWARD_WAIT:g} s")
        if answer is None or answer.exi is None:
            return _local(s, t, req, name)
        return _from_csms(s, t, answer.exi, name)
    return wait(now) or Reply(None, State.WAIT_PAYMENT_DETAILS, wait=wait)


FORWARD_WAIT = 4.0  # s: the car gives up on a -2 CertificateInstallation/Update after 5 s


def _from_csms(s, now, data: bytes, name: str) -> Reply:
    """The CSMS's response (a V2G_Message, EXI): its body and header signature, in this session."""
    from iso15118 import exi
    from iso15118.protocols import unwrap

    wanted = name[:-3] + "Res"
    try:
        _, body, hdr = unwrap(exi.decode(data, "iso2"))
    except exi.ExiDecodeError as e:
        return failure(s, now, name, "FAILED_NoCertificateAvailable", reason=f"{wanted}: the CSMS's answer does "
                                                                             f"not decode: {e}")
    if type(body).__name__ != wanted:
        return failure(s, now, name, "FAILED_NoCertificateAvailable",
                       reason=f"{wanted}: the CSMS answered with a {type(body).__name__}")
    code = str(body.ResponseCode)
    if not code.startswith("OK"):
        return failure(s, now, name, code, reason=f"{wanted} {code} (from the CSMS)")
    return Reply(body, State.WAIT_PAYMENT_DETAILS, signature=getattr(hdr, "Signature", None))

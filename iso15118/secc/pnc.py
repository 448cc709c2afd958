"""The charger's ISO 15118-20 Plug & Charge certificate handling (the table is
``iso15118.secc.iso20``): CertificateInstallation for a car without a contract, answered by the
CSMS through the supervisor (OCPP Get15118EVCertificate; EVSEProcessing=Ongoing while it is
awaited) or, without one, by the charger's own provisioning service (``SECCConfig.
certificate_service``, a ``iso15118.pki.pool.ContractPool``). The charger forwards what the
provisioning service signed and decides nothing about the contract itself: the car checks the
signature over SignedInstallationData and decrypts the key (docs/pnc.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from iso15118 import exi
from iso15118.messages import CM, filled

from .context import Reply, State
from .controller import EVCertificateRequest

NS_ISO20_CM = "urn:iso:std:iso:15118:-20:CommonMessages"


def installation_offered(s, now: float) -> bool:
    """AuthorizationSetupRes CertificateInstallationService: Plug & Charge is offered and a CSMS
    (through the supervisor) or the charger's own provisioning service can answer."""
    if "PnC" not in s.ctx.auth_methods:
        return False
    pool = s.config.certificate_service
    return s.supervisor.forwards_certificates(now) or (pool is not None and pool.offers("iso20"))


def certificate_installation(req, s, now) -> Reply:
    """CertificateInstallationReq: forwarded to the CSMS (Ongoing until it answers) or answered
    by the charger's provisioning service; the answer goes to the car under this session's
    header, the provisioning service's signature kept. The car may ask again (for more contracts,
    or after a refusal) before its AuthorizationReq."""
    ctx = s.ctx

    def res(code: str, processing: str = "Finished", state: State = State.WAIT_AUTH, end: bool = False,
            reason: str | None = None) -> Reply:
        return Reply(filled(CM.CertificateInstallationRes, Header=s.header(now), ResponseCode=code,
                            EVSEProcessing=processing), state, end, reason=reason)

    if not installation_offered(s, now):
        return res("WARNING_NoCertificateAvailable", reason=None)
    sig = req.Header.Signature
    request = EVCertificateRequest(NS_ISO20_CM, "Install", exi.encode(req, "iso20_cm"),
                                   sig.SignatureValue.value if sig is not None else b"")
    answer = s.supervisor.ev_certificate(request, now) if s.supervisor.forwards_certificates(now) else None
    if answer is not None and answer.ongoing:
        if ctx.ongoing_since is None:
            ctx.ongoing_since = now
        if now - ctx.ongoing_since > s.config.ongoing_timeout:
            return res("FAILED", state=State.ENDED, end=True, reason="CertificateInstallationRes FAILED: no answer "
                                                                     "from the CSMS in time")
        return res("OK", "Ongoing")
    ctx.ongoing_since = None
    if answer is not None:
        return _forwarded(s, now, answer.exi, res)
    pool = s.config.certificate_service
    if pool is None or not pool.offers("iso20"):
        return res("WARNING_NoCertificateAvailable")
    wall = dt.datetime.fromtimestamp(now + s.clock_offset, dt.timezone.utc)
    got = pool.install_iso20(req, wall)
    if got.response is None:
        failed = got.code.startswith("FAILED")
        return res(got.code, state=State.ENDED if failed else State.WAIT_AUTH, end=failed,
                   reason=f"CertificateInstallationRes {got.code}: {got.reason}")
    return Reply(_under_our_header(s, now, got.response), State.WAIT_AUTH)


def _forwarded(s, now: float, data: bytes | None, res) -> Reply:
    """The CSMS's CertificateInstallationRes (EXI), under this session's header."""
    if data is None:
        return res("WARNING_NoCertificateAvailable")
    try:
        msg = exi.decode(data, "iso20_cm")
    except exi.ExiDecodeError as e:
        return res("WARNING_NoCertificateAvailable", reason=f"the CSMS's response does not decode: {e}")
    if type(msg).__name__ != "CertificateInstallationRes":
        return res("WARNING_NoCertificateAvailable", reason=f"the CSMS answered with a {type(msg).__name__}")
    code = str(msg.ResponseCode)
    if code.startswith("FAILED"):
        return Reply(_under_our_header(s, now, msg), State.ENDED, True, reason=f"CertificateInstallationRes {code} "
                                                                               "(from the CSMS)")
    if str(msg.EVSEProcessing) != "Finished":  # the CSMS's answer is final: it has nothing more coming
        msg = replace(msg, EVSEProcessing="Finished")
    return Reply(_under_our_header(s, now, msg), State.WAIT_AUTH)


def _under_our_header(s, now: float, msg):
    """``msg`` with this session's SessionID and time, the provisioning service's signature kept."""
    return replace(msg, Header=s.header(now, msg.Header.Signature))

"""Plug & Charge certificates over OCPP 2.1, on the station's side, sans-I/O like the core it sits
on: a car's CertificateInstallation (and -2 CertificateUpdate) forwarded to the CSMS
(Get15118EVCertificate, the car's EXI request in base64; M01/M02), and the station's own
certificates and roots (``StationCertificates``: SignCertificate, CertificateSigned,
InstallCertificate, GetInstalledCertificateIds, DeleteCertificate; A02, A03, M03-M05).

``PlugAndChargeSupervision`` is the part of the SECC's supervisor (``OCPPBridge``) that answers
the SECC's certificate questions: whether requests are forwarded now (online, and
ISO15118Ctrlr.ContractCertificateInstallationEnabled true), and the CSMS's answer to one, asked
once per request (the car repeats it unaltered while it waits, EVSEProcessing=Ongoing) and
``ongoing`` until it comes. No answer (offline, CALLERROR, timeout) is ``None``: the SECC then
answers from its own provisioning service if it has one.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass

from iso15118.secc.controller import ContractStatus, EVCertificateAnswer, EVCertificateRequest

from .device_model import RW, Variable

log = logging.getLogger(__name__)
ISO20_NS = "urn:iso:std:iso:15118:-20:CommonMessages"
PENDING_KEPT = 8   # car requests remembered (their answers), the oldest forgotten first
OCSP_CACHED = 256  # OCSP answers kept (each until its nextUpdate), the oldest forgotten first
OCSP_WAIT = 5.0    # s: a car waits at most this long (Ongoing) for its contract's status
OCSP_SKEW = 60.0   # s: the clocks of the responder and the station may differ this much (OCSP times are whole s)
OCSP_SILENT = 600.0  # s: after a GetCertificateStatus without answer (CALLERROR, timeout) the CSMS is not asked


@dataclass
class _Asked:
    done: bool = False
    answer: dict | None = None
    since: float = 0.0       # station time it was asked


class PlugAndChargeSupervision:
    """Mixed into the OCPP bridge (it has ``station``, the core, and ``wall(now)``)."""

    def _init_plug_and_charge(self) -> None:
        dm = self.station.device_model
        dm.add(Variable("ISO15118Ctrlr", "ContractCertificateInstallationEnabled", "boolean", RW, "true"))
        # v2h's own: ask the CSMS for contract status (GetCertificateStatus). Off by default: a CSMS
        # that does not answer it holds the station's one outstanding CALL for MessageTimeout
        dm.add(Variable("ISO15118Ctrlr", "ContractStatusCheck", "boolean", RW, "false"))
        self._ev_cert_asked: dict[bytes, _Asked] = {}
        self._ocsp_asked: dict[tuple, _Asked] = {}
        # OCSP answers by CertID (hash algorithm, issuer name hash, issuer key hash, serial):
        # (ContractStatus, valid until (station time))
        self.ocsp_cache: dict[tuple, tuple[ContractStatus, float]] = {}
        self._ocsp_silent_until = 0.0  # a CSMS that did not answer GetCertificateStatus is not asked until then

    def check_contract_status(self, on: bool) -> None:
        """The start-up setting of ISO15118Ctrlr.ContractStatusCheck (what the CSMS set wins)."""
        key = ("ISO15118Ctrlr", None, None, "ContractStatusCheck", None)
        dm = self.station.device_model
        if key not in dm.persisted:
            dm.values[key] = "true" if on else "false"

    def contract_status(self, chain: tuple[bytes, ...], now: float) -> ContractStatus:
        """The contract certificate's revocation status from the CSMS (GetCertificateStatus with the
        OCSP request data of the leaf, built with ``cryptography``'s OCSP support; M06): cached
        until the response's nextUpdate; ONGOING while asked; UNKNOWN offline, without a usable
        answer (Failed, no ocspResult, a response that does not verify or is not for this
        certificate) or when the responder does not know it."""
        from cryptography import x509

        if len(chain) < 2 or self.station.device_model.value("ISO15118Ctrlr", "ContractStatusCheck") != "true":
            return ContractStatus.UNKNOWN  # not asked (or no issuer to name in the request)
        leaf, issuer = (x509.load_der_x509_certificate(d) for d in chain[:2])
        data = ocsp_request_data(leaf, issuer)
        cert_id = (data["hashAlgorithm"], data["issuerNameHash"], data["issuerKeyHash"], data["serialNumber"])
        wall = self.wall(now)
        cached = self.ocsp_cache.get(cert_id)
        if cached is not None and wall <= cached[1]:
            return cached[0]
        asked = self._ocsp_asked.get(cert_id)
        if asked is None:
            if not self.station.online or wall < self._ocsp_silent_until:
                return ContractStatus.UNKNOWN
            asked = self._ocsp_asked[cert_id] = _Asked(since=wall)

            def answered(result: dict | None, asked: _Asked = asked) -> None:
                asked.done, asked.answer = True, result
                if result is None:  # a CALLERROR or no answer at all: a CSMS without it, not asked for a while
                    self._ocsp_silent_until = self.station.now + OCSP_SILENT
            self.station.request("GetCertificateStatus", {"ocspRequestData": data}, now=wall, on_answer=answered)
        if not asked.done:
            if wall - asked.since < OCSP_WAIT:
                return ContractStatus.ONGOING
            log.info("GetCertificateStatus: no answer in %g s, the status is unknown", OCSP_WAIT)
            return ContractStatus.UNKNOWN  # the request stays out: its answer, if it comes, is cached
        del self._ocsp_asked[cert_id]
        status, until = read_ocsp_answer(asked.answer, leaf, issuer, wall)
        if until is not None:
            self.ocsp_cache[cert_id] = (status, until)
            while len(self.ocsp_cache) > OCSP_CACHED:
                self.ocsp_cache.pop(next(iter(self.ocsp_cache)))
        log.info("contract %x: OCSP says %s", leaf.serial_number, status.value)
        return status

    def forwards_certificates(self, now: float) -> bool:
        """A CSMS to ask: online and ContractCertificateInstallationEnabled."""
        return self.station.online and \
            self.station.device_model.value("ISO15118Ctrlr", "ContractCertificateInstallationEnabled") == "true"

    def ev_certificate(self, request: EVCertificateRequest, now: float) -> EVCertificateAnswer | None:
        """Get15118EVCertificate for ``request`` (once per request key); ongoing until answered;
        the exiResponse (Accepted or Failed: it holds the response code for the car), or None
        when the CSMS gave none (offline, CALLERROR, timeout, a response that is no base64)."""
        asked = self._ev_cert_asked.get(request.key)
        if asked is None:
            asked = self._ev_cert_asked[request.key] = _Asked()
            while len(self._ev_cert_asked) > PENDING_KEPT:
                self._ev_cert_asked.pop(next(iter(self._ev_cert_asked)))
            payload: dict = {"iso15118SchemaVersion": request.namespace, "action": request.action,
                             "exiRequest": base64.b64encode(request.exi).decode()}
            if request.namespace == ISO20_NS:
                payload["maximumContractCertificateChains"] = 1

            def answered(result: dict | None, asked: _Asked = asked) -> None:
                asked.done, asked.answer = True, result
            self.station.request("Get15118EVCertificate", payload, now=self.wall(now), on_answer=answered)
        if not asked.done:
            return EVCertificateAnswer(ongoing=True)
        self._ev_cert_asked.pop(request.key, None)
        if asked.answer is None:
            return None
        try:
            data = base64.b64decode(asked.answer["exiResponse"], validate=True)
        except (binascii.Error, ValueError):
            log.warning("Get15118EVCertificate: the CSMS's exiResponse is not base64")
            return None
        if asked.answer["status"] != "Accepted":
            log.info("Get15118EVCertificate: the CSMS says %s (%s)", asked.answer["status"],
                     asked.answer.get("statusInfo", {}).get("reasonCode", "no reason given"))
        return EVCertificateAnswer(exi=data or None)


def ocsp_request_data(cert, issuer) -> dict:
    """OCPP OCSPRequestDataType for ``cert`` issued by ``issuer``: the CertID of an RFC 6960 OCSP
    request (``cryptography``'s OCSPRequestBuilder, SHA-256) and the responder URL of the
    certificate's authority information access ('' when it names none)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    url = ""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        url = next((str(d.access_location.value) for d in aia
                    if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP), "")
    except x509.ExtensionNotFound:
        pass  # no AIA extension: no responder named
    return {"hashAlgorithm": "SHA256", "issuerNameHash": req.issuer_name_hash.hex(),
            "issuerKeyHash": req.issuer_key_hash.hex(), "serialNumber": format(req.serial_number, "x"),
            "responderURL": url[:2000]}


def read_ocsp_answer(answer: dict | None, cert, issuer, now: float) -> tuple[ContractStatus, float | None]:
    """(status, cached until) from a GetCertificateStatusResponse: the OCSP response must be
    successful, for ``cert``'s CertID, signed by the issuer (or a responder certificate the issuer
    gave OCSPSigning), current at ``now``; anything else is UNKNOWN and not cached."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp

    if answer is None or answer.get("status") != "Accepted" or not answer.get("ocspResult"):
        return ContractStatus.UNKNOWN, None
    try:
        res = ocsp.load_der_ocsp_response(base64.b64decode(answer["ocspResult"], validate=True))
    except (binascii.Error, ValueError) as e:
        log.warning("GetCertificateStatus: the ocspResult is no OCSP response: %s", e)
        return ContractStatus.UNKNOWN, None
    if res.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        log.info("GetCertificateStatus: the responder says %s", res.response_status.name)
        return ContractStatus.UNKNOWN, None
    mine = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, res.hash_algorithm).build()
    if (res.serial_number, res.issuer_name_hash, res.issuer_key_hash) != \
            (mine.serial_number, mine.issuer_name_hash, mine.issuer_key_hash):
        log.warning("GetCertificateStatus: the OCSP response is for another certificate")
        return ContractStatus.UNKNOWN, None
    signer = issuer
    if res.certificates:  # a delegated responder: issued by the issuer, with OCSPSigning
        signer = res.certificates[0]
        try:
            signer.verify_directly_issued_by(issuer)
            eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            log.warning("GetCertificateStatus: the OCSP responder is not the issuer's")
            return ContractStatus.UNKNOWN, None
        if x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            log.warning("GetCertificateStatus: the OCSP responder lacks OCSPSigning")
            return ContractStatus.UNKNOWN, None
    try:
        key = signer.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(res.signature, res.tbs_response_bytes, ec.ECDSA(res.signature_hash_algorithm))
        else:
            key.verify(res.signature, res.tbs_response_bytes)
    except (InvalidSignature, TypeError, ValueError):
        log.warning("GetCertificateStatus: the OCSP response's signature does not verify")
        return ContractStatus.UNKNOWN, None
    this, nxt = res.this_update_utc.timestamp(), res.next_update_utc
    until = nxt.timestamp() if nxt is not None else now  # no nextUpdate: good for this check only
    if this > now + OCSP_SKEW or until < now - OCSP_SKEW:
        log.warning("GetCertificateStatus: the OCSP response is not current")
        return ContractStatus.UNKNOWN, None
    status = {ocsp.OCSPCertStatus.GOOD: ContractStatus.GOOD, ocsp.OCSPCertStatus.REVOKED: ContractStatus.REVOKED,
              ocsp.OCSPCertStatus.UNKNOWN: ContractStatus.UNKNOWN}[res.certificate_status]
    return status, until


# --- the charging station's own certificates (A02, A03, M03-M05) ------------------------------------

# OCPP certificate types → (key curve, signature hash) of the CSR the station makes for them
OWN = {"V2G20Certificate": ("secp521r1", "SHA512"), "V2GCertificate": ("secp256r1", "SHA256"),
       "ChargingStationCertificate": ("secp256r1", "SHA256")}
ROOT_TYPES = ("V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate", "ManufacturerRootCertificate",
              "OEMRootCertificate")
TRIGGERS = {"SignV2GCertificate": "V2GCertificate", "SignV2G20Certificate": "V2G20Certificate",
            "SignChargingStationCertificate": "ChargingStationCertificate"}
MAX_ROOTS = 24
DAY_S = 86400.0
RENEW_RETRY = DAY_S  # s: a renewal that got no CertificateSigned is tried again this much later


HASH_ALGORITHMS = ("SHA256", "SHA384", "SHA512")  # HashAlgorithmEnumType (cryptography's hashes by these names)


class CertificateRejected(ValueError):
    """A certificate the station does not take (the reason is the message)."""


class StationCertificates:
    """The station's own certificates and trust anchors over OCPP 2.1, sans-I/O, on a station
    core: SignCertificate with a CSR for the SECC's certificates (V2GCertificate: -2, secp256r1;
    V2G20Certificate: -20, secp521r1) and the charging station's (ChargingStationCertificate,
    secp256r1), sent when the CSMS triggers it (TriggerMessage SignV2GCertificate,
    SignV2G20Certificate, SignChargingStationCertificate) and on its own ``renew_before`` s before
    the installed one expires, again after SecurityCtrlr.CertSigningWaitMinimum (doubling,
    CertSigningRepeatTimes) until CertificateSigned comes; CertificateSigned validated (the chain,
    the key of the CSR, DC=CPO for an SECC leaf, the identity for the station's) before it
    replaces the installed one, which stays in use otherwise; InstallCertificate,
    GetInstalledCertificateIds and DeleteCertificate for the roots. Everything is kept in the
    core's store; ``on_installed(type, chain_pem, key_pem)`` and ``on_roots(type, pems)`` tell the
    application (the SECC's TLS context, its contract roots, the firmware check)."""

    def __init__(self, core, *, renew_before: float = 30 * DAY_S,
                 on_installed: Callable[[str, str, str], None] | None = None,
                 on_roots: Callable[[str, list[str]], None] | None = None):
        self.core = core
        self.renew_before = renew_before
        self.on_installed = on_installed
        self.on_roots = on_roots
        dm = core.device_model
        for name, default in (("CertSigningWaitMinimum", "60"), ("CertSigningRepeatTimes", "3")):
            if ("SecurityCtrlr", None, None, name, None) not in dm.variables:
                dm.add(Variable("SecurityCtrlr", name, "integer", RW, default, "s" if "Wait" in name else None,
                                min=0 if "Repeat" in name else 1, max=DAY_S))
        dm.add(Variable("SecurityCtrlr", "CertificateEntries", "integer", "ReadOnly", "0", max_limit=MAX_ROOTS,
                        persistent=False))
        dm.get("SecurityCtrlr", "CertificateEntries", lambda: str(len(self.roots())))
        key = ("ISO15118Ctrlr", None, None, "V2GCertificateInstallationEnabled", None)
        dm.add(Variable("ISO15118Ctrlr", "V2GCertificateInstallationEnabled", "boolean", "ReadOnly", "true"))
        if key not in dm.persisted:
            dm.values[key] = "true"
        core.handlers.update({"CertificateSigned": self._certificate_signed, "InstallCertificate": self._install,
                              "GetInstalledCertificateIds": self._installed_ids, "DeleteCertificate": self._delete})
        for trigger, kind in TRIGGERS.items():
            core.triggers[trigger] = lambda evse, now, kind=kind: self._trigger(kind)
        core.timers.append(self)
        core.has_csms_root = self.has_csms_root  # the installed roots, not the start-up --csms-ca, decide

    # --- what is installed -----------------------------------------------------------------------
    def roots(self, kind: str | None = None) -> list[dict]:
        return [r for r in self.core.store.get("certificates.roots", []) if kind is None or r["type"] == kind]

    def own(self, kind: str) -> dict | None:
        """The installed chain of ``kind`` ({'chain': PEM, 'key': PEM}), or None."""
        return self.core.store.get(f"certificates.{kind}")

    def seed(self, *, roots: dict[str, list[str]] | None = None, own: dict[str, tuple[str, str]] | None = None) -> None:
        """What the station starts with (from its PKI), kept only where nothing is installed yet:
        ``roots`` type → PEMs, ``own`` type → (chain PEM, key PEM)."""
        store = self.core.store
        if store.get("certificates.roots") is None and roots:
            store.set("certificates.roots", [{"type": t, "pem": p} for t, pems in roots.items() for p in pems])
        for kind, (chain, key) in (own or {}).items():
            if store.get(f"certificates.{kind}") is None:
                store.set(f"certificates.{kind}", {"chain": chain, "key": key})

    # --- signing requests ------------------------------------------------------------------------
    def request_signing(self, kind: str, now: float) -> None:
        """A new key and its CSR for ``kind``, sent as SignCertificate (the key kept until the
        CSMS's CertificateSigned, the attempts counted)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        curve = ec.SECP521R1() if OWN[kind][0] == "secp521r1" else ec.SECP256R1()
        key = ec.generate_private_key(curve)
        pending = self.core.store.get("certificates.pending", {})
        pending[kind] = {"key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()).decode(),
                         "attempt": 0, "next": now + self._wait(0)}
        self.core.store.set("certificates.pending", pending)
        self._send(kind, key, now)

    def _send(self, kind: str, key, now: float) -> None:
        csr = self._csr(kind, key)
        log.info("SignCertificate %s", kind)
        self.core.request("SignCertificate", {"csr": csr, "certificateType": kind}, now=now,
                          on_answer=lambda answer, kind=kind: self._signing_answered(kind, answer))

    def _signing_answered(self, kind: str, answer: dict | None) -> None:
        if answer is not None and answer["status"] != "Accepted":
            log.warning("the CSMS rejected SignCertificate %s (%s)", kind,
                        answer.get("statusInfo", {}).get("reasonCode", "no reason given"))

    def _csr(self, kind: str, key) -> str:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import NameOID

        dm = self.core.device_model
        org = dm.value("SecurityCtrlr", "OrganizationName")
        if kind == "ChargingStationCertificate":
            cn, extra = dm.value("SecurityCtrlr", "Identity"), []
        else:  # the SECC: its SeccId, DC=CPO (ISO 15118's CPO sub-CA issues it)
            cn, extra = dm.value("ISO15118Ctrlr", "SeccId"), [x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO")]
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), *extra])
        digest = hashes.SHA512() if OWN[kind][1] == "SHA512" else hashes.SHA256()
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, digest)
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def _wait(self, attempt: int) -> float:
        return float(self.core.device_model.value("SecurityCtrlr", "CertSigningWaitMinimum")) * 2 ** attempt

    def _trigger(self, kind: str) -> str:
        self.core.after_response(lambda: self.request_signing(kind, self.core.now))
        return "Accepted"

    # --- timers: the CSR again, renewals ---------------------------------------------------------------
    def next_deadline(self) -> float | None:
        times = [p["next"] for p in self.core.store.get("certificates.pending", {}).values() if p["next"] is not None]
        times += [t for t in (self._renew_at(kind) for kind in OWN) if t is not None]
        return min(times) if times else None

    def _renew_at(self, kind: str) -> float | None:
        """When ``kind`` is renewed on its own: ``renew_before`` before it expires (None: not
        installed, or a signing request is out)."""
        from cryptography import x509

        own = self.own(kind)
        if own is None or kind in self.core.store.get("certificates.pending", {}):
            return None
        leaf = x509.load_pem_x509_certificates(own["chain"].encode())[0]
        not_before = self.core.store.get("certificates.renew_after", {}).get(kind, 0.0)  # after giving up
        return max(leaf.not_valid_after_utc.timestamp() - self.renew_before, not_before)

    def handle_timer(self, now: float) -> None:
        from cryptography.hazmat.primitives import serialization

        if not self.core.online:
            return
        pending = self.core.store.get("certificates.pending", {})
        for kind, p in list(pending.items()):
            if p["next"] is None or p["next"] > now:
                continue
            repeat = int(self.core.device_model.value("SecurityCtrlr", "CertSigningRepeatTimes"))
            if p["attempt"] >= repeat:  # given up: a trigger, or the renewal a day later, starts again
                log.warning("no CertificateSigned for %s after %d attempts", kind, p["attempt"] + 1)
                del pending[kind]
                later = self.core.store.get("certificates.renew_after", {})
                later[kind] = now + RENEW_RETRY
                self.core.store.set("certificates.renew_after", later)
                continue
            p["attempt"] += 1
            p["next"] = now + self._wait(p["attempt"])
            self._send(kind, serialization.load_pem_private_key(p["key"].encode(), None), now)
        self.core.store.set("certificates.pending", pending)
        for kind in OWN:
            at = self._renew_at(kind)
            if at is not None and at <= now:
                log.info("%s expires within %.0f days: renewing it", kind, self.renew_before / DAY_S)
                self.request_signing(kind, now)

    # --- CertificateSigned ---------------------------------------------------------------------------
    def _certificate_signed(self, payload: dict) -> dict:
        kind = payload.get("certificateType", "ChargingStationCertificate")
        try:
            chain_pem, key_pem = self._check_signed(kind, payload["certificateChain"])
        except CertificateRejected as e:
            log.warning("CertificateSigned %s rejected: %s", kind, e)
            if kind == "ChargingStationCertificate":  # A02.FR.?: reported as a security event
                self.core.security_event("InvalidChargingStationCertificate", str(e)[:255], now=self.core.now)
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCertificate",
                                                           "additionalInfo": str(e)[:1024]}}
        store = self.core.store
        previous = store.get(f"certificates.{kind}")
        if previous is not None:
            store.set(f"certificates.{kind}.previous", previous)
        store.set(f"certificates.{kind}", {"chain": chain_pem, "key": key_pem})
        pending = store.get("certificates.pending", {})
        pending.pop(kind, None)
        store.set("certificates.pending", pending)
        log.info("CertificateSigned: a new %s installed", kind)
        if self.on_installed is not None:
            self.core.after_response(lambda: self.on_installed(kind, chain_pem, key_pem))
        return {"status": "Accepted"}

    def _check_signed(self, kind: str, chain_text: str) -> tuple[str, str]:
        """The chain (PEM) and the pending key, or CertificateRejected: no CSR outstanding, not a
        chain, another key, a chain that does not validate."""
        import datetime as dt

        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from iso15118 import pki

        pending = self.core.store.get("certificates.pending", {}).get(kind)
        if kind not in OWN or pending is None:
            raise CertificateRejected(f"no signing request for a {kind} is outstanding")
        try:
            certs = x509.load_pem_x509_certificates(chain_text.encode())
        except ValueError as e:
            raise CertificateRejected(f"not a PEM certificate chain: {e}") from None
        key = serialization.load_pem_private_key(pending["key"].encode(), None)
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if certs[0].public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            raise CertificateRejected("the certificate is not for the key of the signing request")
        now = dt.datetime.fromtimestamp(self.core.now, dt.timezone.utc)
        ders = [c.public_bytes(serialization.Encoding.DER) for c in certs]
        if kind == "ChargingStationCertificate":
            _check_station_chain(certs, [r["pem"] for r in self.roots("CSMSRootCertificate")], now,
                                 self.core.device_model.value("SecurityCtrlr", "Identity"))
        else:
            anchors = [x509.load_pem_x509_certificate(r["pem"].encode()).public_bytes(serialization.Encoding.DER)
                       for r in self.roots("V2GRootCertificate")]
            try:
                pki.validate_chain(ders, anchors, now=now, purpose="secc",
                                   profile="iso20" if kind == "V2G20Certificate" else "iso2")
            except pki.ChainError as e:
                raise CertificateRejected(e.reason) from None
        chain_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
        return chain_pem, pending["key"]

    # --- roots: InstallCertificate, GetInstalledCertificateIds, DeleteCertificate ------------------------
    def _install(self, payload: dict) -> dict:
        from cryptography import x509

        kind, text = payload["certificateType"], payload["certificate"]
        try:
            cert = x509.load_pem_x509_certificate(text.encode())
            _check_root(cert, self.core.now)
        except (ValueError, CertificateRejected) as e:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCertificate",
                                                           "additionalInfo": str(e)[:1024]}}
        roots = self.roots()
        pem = cert.public_bytes(_pem()).decode()
        if any(r["type"] == kind and r["pem"] == pem for r in roots):
            return {"status": "Accepted"}
        if len(roots) >= MAX_ROOTS:
            return {"status": "Failed", "statusInfo": {"reasonCode": "OutOfStorage"}}
        self.core.store.set("certificates.roots", [*roots, {"type": kind, "pem": pem}])
        self._roots_changed(kind)
        return {"status": "Accepted"}

    def _installed_ids(self, payload: dict) -> dict:
        from cryptography import x509

        wanted = set(payload.get("certificateType") or (*ROOT_TYPES, "V2GCertificateChain"))
        out = []
        for r in self.roots():
            if r["type"] in wanted:
                cert = x509.load_pem_x509_certificate(r["pem"].encode())
                out.append({"certificateType": r["type"], "certificateHashData": hash_data(cert, cert)})
        if "V2GCertificateChain" in wanted:
            for kind in ("V2G20Certificate", "V2GCertificate"):
                hashes = self._own_hash_data(kind)
                if not hashes:
                    continue
                entry = {"certificateType": "V2GCertificateChain", "certificateHashData": hashes[0]}
                if hashes[1:]:
                    entry["childCertificateHashData"] = hashes[1:]
                out.append(entry)
        if not out:
            return {"status": "NotFound"}
        return {"status": "Accepted", "certificateHashDataChain": out}

    def _own_hash_data(self, kind: str, algorithm: str = "SHA256") -> list[dict]:
        """The hash data of each certificate of the installed ``kind`` chain, leaf first, each
        with its issuer: the next certificate of the chain, or the installed root that signed it
        (a chain that stops below the root, like a ChargingStationCertificate signed by the CSMS
        root itself, carries no issuer for its last certificate)."""
        from cryptography import x509

        own = self.own(kind)
        if own is None:
            return []
        certs = x509.load_pem_x509_certificates(own["chain"].encode())
        anchor = "CSMSRootCertificate" if kind == "ChargingStationCertificate" else "V2GRootCertificate"
        roots = [x509.load_pem_x509_certificate(r["pem"].encode()) for r in self.roots(anchor)]
        return [hash_data(c, _issuer(c, [*certs[i + 1:], *roots]), algorithm) for i, c in enumerate(certs)]

    def _delete(self, payload: dict) -> dict:
        from cryptography import x509

        wanted = _normal(payload["certificateHashData"])
        algorithm = wanted[0]
        if algorithm not in HASH_ALGORITHMS:
            return {"status": "NotFound"}
        for kind in OWN:  # the station's own certificates are not deleted (M04.FR.06)
            hashes = self._own_hash_data(kind, algorithm)
            if hashes and _normal(hashes[0]) == wanted:
                return {"status": "Failed", "statusInfo": {"reasonCode": "NotDeletable"}}
        roots = self.roots()
        for r in roots:
            cert = x509.load_pem_x509_certificate(r["pem"].encode())
            if _normal(hash_data(cert, cert, algorithm)) == wanted:
                self.core.store.set("certificates.roots", [x for x in roots if x is not r])
                self._roots_changed(r["type"])
                return {"status": "Accepted"}
        return {"status": "NotFound"}

    def has_csms_root(self) -> bool:
        """A CSMSRootCertificate is installed and valid now (A05.FR.02: the condition for a
        higher security profile)."""
        from cryptography import x509

        for r in self.roots("CSMSRootCertificate"):
            cert = x509.load_pem_x509_certificate(r["pem"].encode())
            if cert.not_valid_before_utc.timestamp() <= self.core.now <= cert.not_valid_after_utc.timestamp():
                return True
        return False

    def _roots_changed(self, kind: str) -> None:
        if self.on_roots is not None:
            pems = [r["pem"] for r in self.roots(kind)]
            self.core.after_response(lambda: self.on_roots(kind, pems))


def hash_data(cert, issuer, algorithm: str = "SHA256") -> dict:
    """OCPP CertificateHashDataType of ``cert`` issued by ``issuer``: the hashes of the issuer's
    name (DER) and of its public key (the subjectPublicKey bits, whatever the key type: EC, RSA,
    EdDSA) and the serial number in hexadecimal, as an OCSP CertID has them (``cryptography``'s
    OCSPRequestBuilder); ``algorithm`` one of HashAlgorithmEnumType (SHA256, SHA384, SHA512)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    if algorithm not in HASH_ALGORITHMS:
        raise CertificateRejected(f"hashAlgorithm {algorithm!r} is not one of {', '.join(HASH_ALGORITHMS)}")
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, getattr(hashes, algorithm)()).build()
    return {"hashAlgorithm": algorithm, "issuerNameHash": req.issuer_name_hash.hex(),
            "issuerKeyHash": req.issuer_key_hash.hex(), "serialNumber": format(cert.serial_number, "x")}


def _issuer(cert, candidates: list):
    """The certificate among ``candidates`` that issued ``cert`` (name and signature), or
    ``cert`` itself when none did (a root, or a chain whose issuer the station does not have)."""
    from cryptography.exceptions import InvalidSignature

    for c in candidates:
        if c.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(c)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return c
    return cert


def _normal(h: dict) -> tuple:
    return (h["hashAlgorithm"], h["issuerNameHash"].lower(), h["issuerKeyHash"].lower(),
            h["serialNumber"].lower().lstrip("0"))


def _pem():
    from cryptography.hazmat.primitives import serialization

    return serialization.Encoding.PEM


def _check_root(cert, now: float) -> None:
    """A root to install: a self-signed CA certificate, valid now."""
    from cryptography import x509

    if cert.issuer != cert.subject:
        raise CertificateRejected("not self-signed: not a root")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise CertificateRejected("no basicConstraints: not a CA") from None
    if not bc.ca:
        raise CertificateRejected("basicConstraints CA is false: not a CA")
    if not cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp():
        raise CertificateRejected("not valid now")
    from cryptography.exceptions import InvalidSignature
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise CertificateRejected(f"its self-signature does not verify: {e or type(e).__name__}") from None


def _check_station_chain(certs: list, root_pems: list[str], now, identity: str) -> None:
    """The charging station's certificate: each certificate issued by the next, the last by a
    CSMS root, all valid now, CN = the station's identity (A02.FR.07)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import NameOID

    roots = [x509.load_pem_x509_certificate(p.encode()) for p in root_pems]
    cn = certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or cn[0].value != identity:
        raise CertificateRejected(f"the certificate's CN is not the station's identity {identity}")
    for c in certs:
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            raise CertificateRejected(f"{c.subject.rfc4514_string()} is not valid now")
    try:
        for child, parent in zip(certs, certs[1:]):
            child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateRejected("the chain is broken (a certificate not issued by the next)") from None
    for root in roots:
        try:
            certs[-1].verify_directly_issued_by(root)
            return
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise CertificateRejected("the chain does not end at an installed CSMS root")

"""The contract-certificate pool: the service behind CertificateInstallation (ISO 15118-20 and
-2) and -2 CertificateUpdate, as a CSMS or a mobility operator's backend runs it. Sans-I/O:
typed requests (or the EXI a charger forwards over OCPP Get15118EVCertificate) and the time in,
typed responses (or EXI) out.

For each request it checks the car's OEM provisioning chain against the OEM sub-CAs and roots
it trusts and the car's signature over the request, issues a new contract key pair and
certificate from its MO sub-CA (CN = EMAID, DC = MO), encrypts the key for the car
(``contract_key``: -2 ECDH secp256r1 + AES-128-CBC, -20 ECDH secp521r1 + AES-GCM-256) and signs
the result with its certificate provisioning service (CPS) key. It remembers what it issued, so
that a contract can be revoked and its status answered as an OCSP responder would (RFC 6960,
the response signed by the issuing MO sub-CA).

The failure codes of -20 CertificateInstallationRes: the provisioning chain expired
(WARNING_CertificateExpired), not yet valid (WARNING_CertificateNotYetValid) or otherwise
invalid (WARNING_CertificateValidationError); the request's signature (FAILED_SignatureError);
no provisioning service under a root the car lists, or a curve this pool does not serve
(WARNING_NoCertificateAvailable); a car the pool holds no contract for
(WARNING_NoContractMatchingPCIDFound).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from iso15118 import exi
from iso15118.units import header

from .errors import ChainError

NS_ISO20_CM = "urn:iso:std:iso:15118:-20:CommonMessages"
NS_ISO2 = "urn:iso:15118:2:2013:MsgDef"
SCHEMA_OF_NAMESPACE = {NS_ISO20_CM: "iso20_cm", NS_ISO2: "iso2"}
PROFILE_OF_STANDARD = {"iso20": "iso20-secp521r1", "iso2": "iso2-secp256r1"}


@dataclass(frozen=True)
class CertificateService:
    """One profile's provisioning materials: the CPS signing chain (DER, leaf first) and key, the
    MO sub-CA that issues contracts (DER, issuing sub-CA first) and its key, the OEM sub-CAs and
    roots that vouch for a car's provisioning certificate, the MO roots (-2 CertificateUpdate)
    and the V2G roots the CPS chain ends in (``CertificateService(**pki.certificate_service(DIR))``)."""

    cps_chain: tuple[bytes, ...]
    cps_key: object
    mo_chain: tuple[bytes, ...]
    mo_key: object
    oem_chain: tuple[bytes, ...]
    oem_roots: tuple[bytes, ...]
    contract_days: int = 730
    mo_roots: tuple[bytes, ...] = ()
    v2g_roots: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Answer:
    """The pool's answer to one request: ``code`` (the response code), the typed ``response``
    (None when refused: the caller fills one with the code), -2's header ``signature``, and why."""

    code: str
    response: object = None
    signature: object = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.response is not None and self.code.startswith("OK")


@dataclass
class Issued:
    """A contract certificate the pool issued."""

    emaid: str
    certificate: object          # x509.Certificate
    issuer: object               # the issuing MO sub-CA (x509.Certificate)
    revoked_at: dt.datetime | None = None


@dataclass
class ContractPool:
    """The CSMS-side contract service over one ``CertificateService`` per standard ('iso20',
    'iso2'). ``contracts``: PCID → EMAID of the cars it holds a contract for (None: it issues to
    every car whose provisioning certificate it trusts, the EMAID derived from the PCID)."""

    services: Mapping[str, CertificateService]
    contracts: Mapping[str, str] | None = None
    rng: Callable[[int], bytes] = os.urandom
    ocsp_validity: float = 3600.0          # s: how long an OCSP response of this pool may be relied on
    issued: dict[int, Issued] = field(default_factory=dict)   # serial number → what was issued

    @classmethod
    def from_pki(cls, pki_dir: str | Path, standards: Iterable[str] = ("iso20", "iso2"), **kw) -> ContractPool:
        """A pool over the provisioning chains of ``v2h pki init DIR`` (the profiles present)."""
        from .store import certificate_service, v2g_roots

        services = {}
        for std in standards:
            profile = PROFILE_OF_STANDARD[std]
            if (Path(pki_dir) / profile / "cps_chain.pem").exists():
                services[std] = CertificateService(**certificate_service(pki_dir, profile),
                                                   v2g_roots=v2g_roots(pki_dir, profile))
        if not services:
            raise ValueError(f"{pki_dir} has no certificate provisioning service (re-create it with: v2h pki init)")
        return cls(services, **kw)

    @classmethod
    def of(cls, *services: CertificateService, **kw) -> ContractPool:
        """A pool over these services, each under the standard its CPS key's curve belongs to."""
        return cls({("iso2" if getattr(getattr(s.cps_key, "curve", None), "name", "") == "secp256r1" else "iso20"): s
                    for s in services}, **kw)

    def offers(self, standard: str) -> bool:
        return standard in self.services

    # --- ISO 15118-20 --------------------------------------------------------------------------
    def install_iso20(self, req, now: dt.datetime) -> Answer:
        """CertificateInstallationReq (with its header signature) → CertificateInstallationRes
        with the header signature over SignedInstallationData, or a refusal code."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        from iso15118 import xmldsig

        from . import contract_key
        from .validate import validate_chain

        svc = self.services.get("iso20")
        if svc is None:
            return Answer("WARNING_NoCertificateAvailable", reason="no -20 provisioning service")
        prov = req.OEMProvisioningCertificateChain
        chain = [prov.Certificate, *(prov.SubCertificates.Certificate if prov.SubCertificates is not None else ())]
        try:  # the car's sub-CAs, or the ones the pool knows when it sent its leaf alone
            path = validate_chain(chain if len(chain) > 1 else chain + list(svc.oem_chain), list(svc.oem_roots),
                                  now=now, profile="iso20")
        except ChainError as e:
            return Answer(_warning_for(e), reason=f"provisioning certificate: {e.reason}")
        leaf = path[0]
        sig = req.Header.Signature
        try:
            if sig is None:
                raise xmldsig.SignatureError("the request is not signed")
            xmldsig.verify(sig, [xmldsig.SignedElement(prov, "OEMProvisioningCertificateChain", "iso20_cm")],
                           leaf.public_key())
            if [r.URI for r in sig.SignedInfo.Reference] != ["#" + prov.Id]:
                raise xmldsig.SignatureError("the signature covers more than the provisioning chain")
        except xmldsig.SignatureError as e:
            return Answer("FAILED_SignatureError", reason=f"CertificateInstallationReq: {e.reason}")
        if not isinstance(leaf.public_key(), ec.EllipticCurvePublicKey):
            return Answer("WARNING_NoCertificateAvailable", reason="X448 contract key transport is not served "
                                                                    "(docs/pnc.md)")
        if not self._lists_our_root(req.ListOfRootCertificateIDs, svc):
            return Answer("WARNING_NoCertificateAvailable", reason="no provisioning service under a root the car lists")
        pcid = _common_name(leaf)
        emaid = self._emaid(pcid)
        if emaid is None:
            return Answer("WARNING_NoContractMatchingPCIDFound", reason=f"no contract for PCID {pcid}")
        cert, key = self._issue(svc, emaid, ec.SECP521R1(), now)
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        try:
            dh, encrypted = contract_key.encrypt_iso20(key, leaf.public_key(), pcid, ski, rng=self.rng)
        except contract_key.ContractKeyError as e:
            return Answer("WARNING_NoCertificateAvailable", reason=str(e))
        cm = exi.messages("iso20_cm")
        data = cm.SignedInstallationData(
            Id="id1", ContractCertificateChain=cm.ContractCertificateChain(
                Certificate=_der(cert), SubCertificates=cm.SubCertificates(Certificate=list(svc.mo_chain))),
            ECDHCurve="SECP521", DHPublicKey=dh, SECP521_EncryptedPrivateKey=encrypted)
        signature = xmldsig.sign([xmldsig.SignedElement(data, "SignedInstallationData", "iso20_cm")], svc.cps_key)
        res = cm.CertificateInstallationRes(
            Header=header(bytes(8), now.timestamp(), signature), ResponseCode="OK", EVSEProcessing="Finished",
            CPSCertificateChain=cm.CertificateChain(Certificate=svc.cps_chain[0], SubCertificates=cm.SubCertificates(
                Certificate=list(svc.cps_chain[1:])) if svc.cps_chain[1:] else None),
            SignedInstallationData=data, RemainingContractCertificateChains=0)
        return Answer("OK", res, reason=f"contract {emaid} issued for PCID {pcid}")

    # --- ISO 15118-2 ---------------------------------------------------------------------------
    def install_iso2(self, req, signature, now: dt.datetime) -> Answer:
        """-2 CertificateInstallationReq (the body element) and its header signature."""
        from .validate import validate_chain

        svc = self.services.get("iso2")
        if svc is None:
            return Answer("FAILED_NoCertificateAvailable", reason="no -2 provisioning service")
        try:
            path = validate_chain([req.OEMProvisioningCert, *svc.oem_chain], list(svc.oem_roots), now=now,
                                  profile="iso2")
        except ChainError as e:
            code = "FAILED_CertificateExpired" if "expired" in e.reason else "FAILED_CertChainError"
            return Answer(code, reason=f"provisioning certificate: {e.reason}")
        if not _signed_iso2(req, "CertificateInstallationReq", signature, path[0].public_key()):
            return Answer("FAILED_SignatureError", reason="the request's signature does not verify")
        pcid = _common_name(path[0])
        emaid = self._emaid(pcid)
        if emaid is None:
            return Answer("FAILED_NoCertificateAvailable", reason=f"no contract for PCID {pcid}")
        return self._new_contract_iso2(svc, now, "CertificateInstallationRes", emaid, path[0].public_key())

    def update_iso2(self, req, signature, now: dt.datetime, contract_roots: Iterable[bytes] = ()) -> Answer:
        """-2 CertificateUpdateReq: the old contract (against ``contract_roots``, else the pool's
        MO roots) signed the request; a new contract with the same EMAID, encrypted with its key."""
        from .validate import validate_chain

        svc = self.services.get("iso2")
        if svc is None:
            return Answer("FAILED_NoCertificateAvailable", reason="no -2 provisioning service")
        chain_msg = req.ContractSignatureCertChain
        chain = [chain_msg.Certificate] + (list(chain_msg.SubCertificates.Certificate)
                                           if chain_msg.SubCertificates is not None else [])
        try:
            path = validate_chain(chain, list(contract_roots) or list(svc.mo_roots), now=now, purpose="contract",
                                  profile="iso2")
        except ChainError as e:
            code = "FAILED_CertificateExpired" if "expired" in e.reason else "FAILED_CertChainError"
            return Answer(code, reason=e.reason)
        emaid = _common_name(path[0])
        if _normal_emaid(emaid) != _normal_emaid(req.eMAID):
            return Answer("FAILED_CertChainError", reason=f"eMAID {req.eMAID} is not the contract's")
        if not _signed_iso2(req, "CertificateUpdateReq", signature, path[0].public_key()):
            return Answer("FAILED_SignatureError", reason="the request's signature does not verify")
        return self._new_contract_iso2(svc, now, "CertificateUpdateRes", emaid, path[0].public_key())

    def _new_contract_iso2(self, svc: CertificateService, now: dt.datetime, name: str, emaid: str,
                           recipient) -> Answer:
        """A new secp256r1 contract, the key encrypted for ``recipient`` ([V2G2-818]), the four
        elements signed by the provisioning service (the header signature)."""
        from cryptography.hazmat.primitives.asymmetric import ec

        from iso15118 import xmldsig

        from . import contract_key

        m = exi.messages("iso2")
        cert, key = self._issue(svc, emaid, ec.SECP256R1(), now)
        try:
            dh, encrypted = contract_key.encrypt(key, recipient, rng=self.rng)
        except contract_key.ContractKeyError as e:
            return Answer("FAILED_NoCertificateAvailable", reason=str(e))
        chain = m.CertificateChain(Id="id1", Certificate=_der(cert),
                                   SubCertificates=m.SubCertificates(Certificate=list(svc.mo_chain)))
        parts = dict(ContractSignatureCertChain=chain,
                     ContractSignatureEncryptedPrivateKey=m.ContractSignatureEncryptedPrivateKey(Id="id2",
                                                                                                 value=encrypted),
                     DHpublickey=m.DiffieHellmanPublickey(Id="id3", value=dh), eMAID=m.EMAID(Id="id4", value=emaid))
        cps = m.CertificateChain(Certificate=svc.cps_chain[0],
                                 SubCertificates=m.SubCertificates(Certificate=list(svc.cps_chain[1:])))
        res = getattr(m, name)(ResponseCode="OK", SAProvisioningCertificateChain=cps, **parts)
        signature = xmldsig.sign(xmldsig.identified_elements(res, "iso2"), svc.cps_key)
        return Answer("OK", res, signature, reason=f"contract {emaid} issued")

    # --- EXI in, EXI out: what a CSMS answers to Get15118EVCertificate -------------------------------
    def respond(self, exi_request: bytes, namespace: str, action: str, now: dt.datetime) -> tuple[bool, bytes, str]:
        """(accepted, the response's EXI, why) for a forwarded request: ``namespace`` is OCPP's
        iso15118SchemaVersion, ``action`` Install or Update. The response is a whole message
        (-20: with its header; -2: a V2G_Message) with SessionID zero: the charger puts its own."""
        from iso15118.messages import filled
        from iso15118.protocols import unwrap, wrap

        schema = SCHEMA_OF_NAMESPACE.get(namespace)
        if schema is None or action not in ("Install", "Update"):
            raise PoolRequestError(f"unknown iso15118SchemaVersion {namespace!r} or action {action!r}")
        try:
            msg = exi.decode(exi_request, schema)
        except exi.ExiDecodeError as e:
            raise PoolRequestError(f"the EXI request does not decode: {e}") from None
        if schema == "iso20_cm":
            if type(msg).__name__ != "CertificateInstallationReq" or action != "Install":
                raise PoolRequestError(f"a -20 {type(msg).__name__} is not a CertificateInstallation to answer")
            answer = self.install_iso20(msg, now)
            res = answer.response if answer.response is not None else filled(
                exi.messages("iso20_cm").CertificateInstallationRes, Header=header(bytes(8), now.timestamp()),
                ResponseCode=answer.code, EVSEProcessing="Finished")
            return answer.ok, exi.encode(res, schema), answer.reason
        _, body, hdr = unwrap(msg)
        name = type(body).__name__
        wanted = {"Install": "CertificateInstallationReq", "Update": "CertificateUpdateReq"}[action]
        if name != wanted:
            raise PoolRequestError(f"a -2 {name} does not fit action {action}")
        signature = getattr(hdr, "Signature", None)
        answer = self.install_iso2(body, signature, now) if action == "Install" else \
            self.update_iso2(body, signature, now)
        m = exi.messages("iso2")
        res = answer.response if answer.response is not None else \
            filled(getattr(m, wanted[:-3] + "Res"), ResponseCode=answer.code)
        return answer.ok, exi.encode(wrap("iso2", res, bytes(8), answer.signature), "iso2"), answer.reason

    # --- contracts: issue, revoke, status --------------------------------------------------------
    def _emaid(self, pcid: str) -> str | None:
        """The car's contract ID: the configured one, or DE V2H C, eight hex digits of its PCID,
        check character X (15 characters, as -2's eMAID type wants)."""
        if self.contracts is not None:
            return self.contracts.get(pcid)
        return "DEV2HC" + hashlib.sha256(pcid.encode()).hexdigest()[:8].upper() + "X"

    def _issue(self, svc: CertificateService, emaid: str, curve, now: dt.datetime):
        """A new key pair on ``curve`` and its contract certificate from the MO sub-CA, remembered."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        from .generate import issue_contract

        key = ec.generate_private_key(curve)
        issuer = x509.load_der_x509_certificate(svc.mo_chain[0])
        cert = issue_contract(issuer, svc.mo_key, emaid, key.public_key(), now, days=svc.contract_days)
        self.issued[cert.serial_number] = Issued(emaid, cert, issuer)
        return cert, key

    def revoke(self, emaid: str, now: dt.datetime) -> int:
        """Revoke every contract certificate issued with ``emaid``; how many there were."""
        hits = [i for i in self.issued.values() if i.emaid == emaid and i.revoked_at is None]
        for i in hits:
            i.revoked_at = now
        return len(hits)

    def status(self, serial: int) -> str:
        """'good', 'revoked', or 'unknown' (not issued here)."""
        i = self.issued.get(serial)
        return "unknown" if i is None else "revoked" if i.revoked_at is not None else "good"

    def ocsp_response(self, request: Mapping[str, str], now: dt.datetime) -> bytes:
        """The DER OCSP response (RFC 6960) for OCPP's OCSPRequestDataType ``request``
        (hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber as hex): signed by the issuing
        MO sub-CA, nextUpdate ``ocsp_validity`` s after ``now``; a certificate this pool did not
        issue gets the unsuccessful status 'unauthorized' (RFC 6960 2.3: not authoritative)."""
        validity = dt.timedelta(seconds=self.ocsp_validity)
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ReasonFlags, ocsp

        try:
            serial = int(request["serialNumber"], 16)
        except (KeyError, TypeError, ValueError):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(
                serialization.Encoding.DER)
        issued = self.issued.get(serial)
        algorithm = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}.get(
            str(request.get("hashAlgorithm")))
        if issued is None or algorithm is None or not _same_issuer(issued.issuer, request, algorithm):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER)
        svc = next(s for s in self.services.values() if s.mo_chain and s.mo_chain[0] == _der(issued.issuer))
        status = ocsp.OCSPCertStatus.REVOKED if issued.revoked_at is not None else ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=issued.certificate, issuer=issued.issuer, algorithm=algorithm, cert_status=status,
            this_update=now, next_update=now + validity,
            revocation_time=issued.revoked_at if issued.revoked_at is not None else None,
            revocation_reason=ReasonFlags.cessation_of_operation if issued.revoked_at is not None else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, issued.issuer)
        sign_hash = hashes.SHA512() if svc.mo_key.curve.key_size > 256 else hashes.SHA256()
        return builder.sign(svc.mo_key, sign_hash).public_bytes(serialization.Encoding.DER)

    def _lists_our_root(self, ids, svc: CertificateService) -> bool:
        """The car trusts the root our CPS chain ends in (by issuer name and serial number)."""
        from cryptography import x509

        if not svc.v2g_roots:
            return True
        ours = set()
        for der in svc.v2g_roots:
            root = x509.load_der_x509_certificate(der)
            ours.add((root.issuer.rfc4514_string(), root.serial_number))
        return any((i.X509IssuerName, i.X509SerialNumber) in ours for i in ids.RootCertificateID)


class PoolRequestError(ValueError):
    """A forwarded request the pool cannot read (answered with status Failed)."""


def _same_issuer(issuer, request: Mapping[str, str], algorithm) -> bool:
    """The request's issuer hashes are those of ``issuer`` (RFC 6960 CertID)."""
    from cryptography.hazmat.primitives import hashes, serialization

    name = hashes.Hash(algorithm)
    name.update(issuer.subject.public_bytes())
    key_bits = issuer.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
    key = hashes.Hash(algorithm)
    key.update(key_bits)
    return (str(request.get("issuerNameHash", "")).lower() == name.finalize().hex() and
            str(request.get("issuerKeyHash", "")).lower() == key.finalize().hex())


def _warning_for(e: ChainError) -> str:
    if "expired" in e.reason:
        return "WARNING_CertificateExpired"
    if "not yet valid" in e.reason:
        return "WARNING_CertificateNotYetValid"
    return "WARNING_CertificateValidationError"


def _signed_iso2(req, name: str, signature, public_key) -> bool:
    from iso15118 import xmldsig

    if signature is None or not req.Id:
        return False
    try:
        xmldsig.verify(signature, [xmldsig.SignedElement(req, name, "iso2")], public_key)
    except xmldsig.SignatureError:
        return False
    return True


def _common_name(cert) -> str:
    from cryptography.x509.oid import NameOID

    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def _normal_emaid(text: str) -> str:
    return text.replace("-", "").upper()


def _der(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.DER)

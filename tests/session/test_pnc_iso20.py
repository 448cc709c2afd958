"""ISO 15118-20 CertificateInstallation in memory: a car without a contract sends its OEM
provisioning chain and its trusted roots, the charger's provisioning service (or the CSMS behind
the supervisor, Ongoing meanwhile) answers, the car checks the CPS signature over
SignedInstallationData, decrypts the key (ECDH secp521r1, AES-GCM-256) and authorizes with the
new contract in the same session. Every refusal has its response code, and a response the car
cannot trust leaves it with what it had."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iso15118 import exi, pki
from iso15118.messages import CM
from iso15118.pair import CUT
from iso15118.pki.pool import CertificateService, ContractPool
from iso15118.secc import SECCConfig, simulated_charger
from iso15118.secc.controller import ContractStatus, EVSEController
from iso15118.secc.supervisor import LocalSupervisor

from .helpers import EPOCH, ForwardingSupervisor, make_pair, names

PROFILE = "iso20-secp521r1"
DER = serialization.Encoding.DER
RAW = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint


@pytest.fixture(scope="module")
def creds(v2g_pki):
    return {"roots": pki.contract_roots(v2g_pki, PROFILE), "oem": pki.oem_credentials(v2g_pki, PROFILE),
            "v2g": pki.v2g_roots(v2g_pki, PROFILE), "service": pki.certificate_service(v2g_pki, PROFILE),
            "dir": v2g_pki}


def pool_of(creds, **kw) -> ContractPool:
    return ContractPool({"iso20": CertificateService(**{**creds["service"], **kw}, v2g_roots=creds["v2g"])})


def pair(creds, *, pool=None, config=None, charger=None, oem=None, **kw):
    cfg = config or SECCConfig(contract_roots=creds["roots"], certificate_service=pool or pool_of(creds))
    chain, key = oem or creds["oem"]
    kw.setdefault("loops", 3)
    return make_pair("DC_BPT", auth="pnc", secc_config=cfg, charger=charger, transport="tls1.3", contract_chain=(),
                     contract_key=None, oem_chain=chain, oem_key=key, v2g_roots=creds["v2g"], **kw)


def _response(p, name: str = "CertificateInstallationRes"):
    return next(m for _, d, n, m in reversed(p.secc_log) if n == name)


def _unpowered(p) -> bool:
    return not any(e.kind == "target" and (e.value.current or e.value.power) for e in p.stage.history.events)


def test_a_car_without_a_contract_installs_one_and_is_authorized_by_it(creds):
    p = pair(creds)
    p.run()
    r = p.ev.result
    assert r.ok, r.reason
    assert names(p.secc_log, "rx")[2:5] == ["AuthorizationSetupReq", "CertificateInstallationReq", "AuthorizationReq"]
    setup = _response(p, "AuthorizationSetupRes")
    assert setup.CertificateInstallationService is True
    req = next(m for _, d, n, m in p.secc_log if n == "CertificateInstallationReq")
    assert [ref.URI for ref in req.Header.Signature.SignedInfo.Reference] == ["#" + req.OEMProvisioningCertificateChain.Id]
    assert req.ListOfRootCertificateIDs.RootCertificateID[0].X509SerialNumber == \
        x509.load_der_x509_certificate(creds["v2g"][0]).serial_number
    res = _response(p)
    data = res.SignedInstallationData
    assert str(res.ResponseCode) == "OK" and str(data.ECDHCurve) == "SECP521"
    assert len(data.DHPublicKey) == 133 and data.DHPublicKey[0] == 4 and len(data.SECP521_EncryptedPrivateKey) == 94
    assert [ref.URI for ref in res.Header.Signature.SignedInfo.Reference] == ["#" + data.Id]
    assert res.Header.SessionID == p.secc.ctx.session_id  # the charger's header, the CPS's signature
    # the same session authorized with the new contract: its EMAID, its chain, its key
    leaf = x509.load_der_x509_certificate(data.ContractCertificateChain.Certificate)
    emaid = leaf.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert p.secc.ctx.auth_method == "PnC" and p.secc.ctx.emaid == emaid and emaid.startswith("DEV2HC")
    auth = next(m for _, d, n, m in p.secc_log if n == "AuthorizationReq")
    assert auth.PnC_AReqAuthorizationMode.ContractCertificateChain.Certificate == data.ContractCertificateChain.Certificate
    assert r.contract == "installed" and r.contract_chain[0] == data.ContractCertificateChain.Certificate
    assert r.contract_key.public_key().public_bytes(*RAW) == leaf.public_key().public_bytes(*RAW)
    path = pki.validate_chain(list(r.contract_chain), list(creds["roots"]), profile="iso20", purpose="contract")
    assert len(path[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest) == 8
    # kept by the car, the contract authorizes the next session without an installation
    again = make_pair("DC_BPT", auth="pnc", transport="tls1.3", loops=2,
                      secc_config=SECCConfig(contract_roots=creds["roots"]),
                      contract_chain=r.contract_chain, contract_key=r.contract_key)
    again.run()
    assert again.ev.result.ok and "CertificateInstallationReq" not in names(again.secc_log, "rx")
    assert again.secc.ctx.emaid == emaid


def test_without_a_provisioning_service_the_charger_offers_no_installation(creds):
    p = pair(creds, config=SECCConfig(contract_roots=creds["roots"]))
    p.run()
    assert _response(p, "AuthorizationSetupRes").CertificateInstallationService is False
    assert not p.ev.result.ok and "offers no CertificateInstallation" in p.ev.result.reason
    assert _unpowered(p) and not p.ev.result.contract_chain


def test_a_car_asking_anyway_gets_no_certificate(creds):
    p = pair(creds, config=SECCConfig(contract_roots=creds["roots"]))
    p.ev.responses["AuthorizationSetupRes"] = lambda s, res, now: (
        setattr(s, "gen_challenge", res.PnC_ASResAuthorizationMode.GenChallenge), s.certificate_installation_req(now))[1]
    p.run()
    assert str(_response(p).ResponseCode) == "WARNING_NoCertificateAvailable"
    assert "WARNING_NoCertificateAvailable" in p.ev.result.reason and _unpowered(p)


def _oem_leaf(creds, *, start: dt.datetime, days: int, signer=None):
    """An OEM provisioning certificate under the PKI's OEM Sub-CA 2 (or ``signer``: (name, key))."""
    base = creds["dir"] / PROFILE
    sub = x509.load_pem_x509_certificate((base / "oem_sub_ca_2.pem").read_bytes())
    sub_key = serialization.load_pem_private_key((base / "oem_sub_ca_2.key.pem").read_bytes(), None)
    issuer_name, issuer_key = signer or (sub.subject, sub_key)
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "V2HSIMULATEDCAR002")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(issuer_key, hashes.SHA512()))
    return (cert.public_bytes(DER), *creds["oem"][0][1:]), key


NOW = dt.datetime.fromtimestamp(EPOCH, dt.timezone.utc)


@pytest.mark.parametrize("case,code", [
    ("expired", "WARNING_CertificateExpired"),
    ("not yet valid", "WARNING_CertificateNotYetValid"),
    ("foreign OEM", "WARNING_CertificateValidationError"),
    ("mis-signed", "FAILED_SignatureError"),
    ("unknown roots", "WARNING_NoCertificateAvailable"),
    ("no contract", "WARNING_NoContractMatchingPCIDFound"),
])
def test_refused_installations_have_their_response_code(creds, case, code):
    kw: dict = {}
    if case == "expired":
        kw["oem"] = _oem_leaf(creds, start=NOW - dt.timedelta(days=30), days=10)
    elif case == "not yet valid":
        kw["oem"] = _oem_leaf(creds, start=NOW + dt.timedelta(days=10), days=10)
    elif case == "foreign OEM":
        stranger = ec.generate_private_key(ec.SECP521R1())
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "OEM Sub-CA 2")])
        kw["oem"] = _oem_leaf(creds, start=NOW - dt.timedelta(days=1), days=10, signer=(name, stranger))
    elif case == "mis-signed":
        kw["oem"] = (creds["oem"][0], ec.generate_private_key(ec.SECP521R1()))  # not the certificate's key
    elif case == "unknown roots":
        other = ec.generate_private_key(ec.SECP521R1())
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Another V2G Root")])
        root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(other.public_key())
                .serial_number(7).not_valid_before(NOW - dt.timedelta(days=1))
                .not_valid_after(NOW + dt.timedelta(days=10))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(other, hashes.SHA512()))
        kw["v2g_roots"] = (root.public_bytes(DER),)
    elif case == "no contract":
        kw["pool"] = ContractPool({"iso20": CertificateService(**creds["service"], v2g_roots=creds["v2g"])},
                                  contracts={"SOMEBODYELSE000001": "DEV2HC0000000X0"})
    v2g = kw.pop("v2g_roots", None)
    p = pair(creds, **kw)
    if v2g is not None:
        p.ev.config = replace(p.ev.config, v2g_roots=v2g)
    p.run()
    res = _response(p)
    assert str(res.ResponseCode) == code
    assert not p.ev.result.ok and not p.ev.result.contract_chain and _unpowered(p)
    assert "AuthorizationReq" not in names(p.secc_log, "rx")
    if code.startswith("FAILED"):
        assert p.secc.closed and p.secc.end_reason.startswith(f"CertificateInstallationRes {code}")


class WrongKeyPool(ContractPool):
    """Encrypts a key that is not the certificate's."""

    def _issue(self, svc, emaid, curve, now):
        cert, _ = super()._issue(svc, emaid, curve, now)
        return cert, ec.generate_private_key(curve)


def _expired_cps(creds):
    base = creds["dir"] / PROFILE
    sub = x509.load_pem_x509_certificate((base / "cps_sub_ca_2.pem").read_bytes())
    sub_key = serialization.load_pem_private_key((base / "cps_sub_ca_2.key.pem").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "V2H Test CPS"),
                      x509.NameAttribute(x509.oid.NameOID.DOMAIN_COMPONENT, "CPS")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(sub.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=30))
            .not_valid_after(NOW - dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(sub_key, hashes.SHA512()))
    return (cert.public_bytes(DER), *creds["service"]["cps_chain"][1:]), key


@pytest.mark.parametrize("case,why", [
    ("expired CPS", "provisioning service's certificate is refused"),
    ("mis-signed", "signature does not verify"),
    ("wrong key", "does not belong to the new contract certificate"),
    ("altered key", "does not authenticate"),
])
def test_responses_the_car_cannot_trust_are_refused(creds, case, why):
    if case == "expired CPS":
        chain, key = _expired_cps(creds)
        pool = pool_of(creds, cps_chain=chain, cps_key=key)
    elif case == "mis-signed":
        pool = pool_of(creds, cps_key=ec.generate_private_key(ec.SECP521R1()))  # not the CPS certificate's key
    elif case == "wrong key":
        pool = WrongKeyPool({"iso20": CertificateService(**creds["service"], v2g_roots=creds["v2g"])})
    else:
        pool = pool_of(creds)
    p = pair(creds, pool=pool)

    def alter(direction, frame, now):
        if case != "altered key" or direction != "evse→ev" or frame.payload_type != 0x8002:
            return None
        msg = exi.decode(frame.payload, "iso20_cm")
        if type(msg).__name__ != "CertificateInstallationRes":
            return None
        data = msg.SignedInstallationData
        enc = bytearray(data.SECP521_EncryptedPrivateKey)
        enc[20] ^= 1
        # re-signed by the CPS as the service would: only the encryption's own tag can catch it
        data = replace(data, SECP521_EncryptedPrivateKey=bytes(enc))
        from iso15118 import xmldsig
        sig = xmldsig.sign([xmldsig.SignedElement(data, "SignedInstallationData", "iso20_cm")],
                           creds["service"]["cps_key"])
        msg = replace(msg, SignedInstallationData=data, Header=replace(msg.Header, Signature=sig))
        return [type(frame)(frame.payload_type, exi.encode(msg, "iso20_cm"))]
    p.run(tamper=alter)
    r = p.ev.result
    assert not r.ok and why in r.reason, r.reason
    assert r.contract == "" and not r.contract_chain and p.ev.contract_chain == () and _unpowered(p)
    assert "AuthorizationReq" not in names(p.secc_log, "rx")


def test_an_interrupted_installation_leaves_the_car_as_it_was(creds):
    p = pair(creds)

    def cut(direction, frame, now):
        if direction == "evse→ev" and frame.payload_type == 0x8002 and \
                type(exi.decode(frame.payload, "iso20_cm")).__name__ == "CertificateInstallationRes":
            return CUT
        return None
    p.run(tamper=cut)
    r = p.ev.result
    assert not r.ok and r.reason == "connection lost"
    assert r.contract == "" and not r.contract_chain and r.contract_key is None and p.ev.contract_chain == ()
    assert _unpowered(p)


def test_a_forwarded_installation_waits_with_ongoing(creds):
    sup = ForwardingSupervisor(setpoint_w=-5000.0, pool=pool_of(creds), delay=0.5)
    charger = EVSEController(simulated_charger(kind="DC").stage, sup)
    p = pair(creds, config=SECCConfig(contract_roots=creds["roots"]), charger=charger)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    assert len(sup.asked) == 1  # the repetitions are the same request: asked once
    rx = names(p.secc_log, "rx")
    assert rx.count("CertificateInstallationReq") >= 3 and rx[-1] == "SessionStopReq"
    processing = [str(m.EVSEProcessing) for _, d, n, m in p.secc_log if n == "CertificateInstallationRes"]
    assert processing[0] == "Ongoing" and processing[-1] == "Finished" and set(processing[:-1]) == {"Ongoing"}
    reqs = [m for _, d, n, m in p.secc_log if n == "CertificateInstallationReq"]
    assert all(m == reqs[0] for m in reqs)  # resent unaltered
    assert p.ev.result.contract == "installed" and p.secc.ctx.emaid.startswith("DEV2HC")


def test_a_csms_that_never_answers_ends_the_wait(creds):
    sup = ForwardingSupervisor(setpoint_w=-5000.0, pool=pool_of(creds), delay=1e9)
    charger = EVSEController(simulated_charger(kind="DC").stage, sup)
    cfg = SECCConfig(contract_roots=creds["roots"], ongoing_timeout=2.0)
    p = pair(creds, config=cfg, charger=charger)
    p.run()
    assert str(_response(p).ResponseCode) == "FAILED" and not p.ev.result.ok and _unpowered(p)
    assert not p.ev.result.contract_chain


def test_the_pool_answers_forwarded_exi_and_refuses_what_it_cannot_read(creds):
    pool = pool_of(creds)
    p = pair(creds)
    p.run()
    req = next(m for _, d, n, m in p.secc_log if n == "CertificateInstallationReq")
    ok, data, why = pool.respond(exi.encode(req, "iso20_cm"), "urn:iso:std:iso:15118:-20:CommonMessages",
                                 "Install", NOW)
    res = exi.decode(data, "iso20_cm")
    assert ok and type(res) is CM.CertificateInstallationRes and res.Header.SessionID == bytes(8)
    assert res.Header.Signature is not None and "issued" in why
    from iso15118.pki.pool import PoolRequestError
    with pytest.raises(PoolRequestError):
        pool.respond(b"\x80\x00junk", "urn:iso:std:iso:15118:-20:CommonMessages", "Install", NOW)
    with pytest.raises(PoolRequestError):
        pool.respond(exi.encode(req, "iso20_cm"), "urn:iso:std:iso:15118:-20:CommonMessages", "Update", NOW)


@dataclass
class StatusSupervisor(LocalSupervisor):
    """Answers the contract's revocation status after ``delay`` s."""

    status: ContractStatus = ContractStatus.GOOD
    delay: float = 0.0
    asked: list = field(default_factory=list)

    def contract_status(self, chain, now):
        self.asked.append((now, chain))
        return ContractStatus.ONGOING if now - self.asked[0][0] < self.delay else self.status


@pytest.mark.parametrize("status,policy,code", [
    (ContractStatus.GOOD, "reject", "OK"),
    (ContractStatus.REVOKED, "accept", "WARNING_CertificateRevoked"),
    (ContractStatus.UNKNOWN, "accept", "OK"),
    (ContractStatus.UNKNOWN, "reject", "WARNING_CertificateValidationError"),
])
def test_the_authorization_follows_the_contracts_revocation_status(creds, v2g_pki, status, policy, code):
    sup = StatusSupervisor(setpoint_w=-5000.0, status=status, delay=0.5)
    charger = EVSEController(simulated_charger(kind="DC").stage, sup)
    p = make_pair("DC_BPT", auth="pnc", pki_dir=v2g_pki, charger=charger, transport="tls1.3", loops=2,
                  secc_config=SECCConfig(contract_roots=creds["roots"], contract_status_unknown=policy))
    p.run()
    results = [(str(m.ResponseCode), str(m.EVSEProcessing)) for _, d, n, m in p.secc_log if n == "AuthorizationRes"]
    assert results[0] == ("OK", "Ongoing") and results[-1] == (code, "Finished")
    assert sup.asked[0][1] == pki.contract_credentials(v2g_pki, PROFILE)[0]  # the chain the car presented
    assert p.ev.result.ok == (code == "OK"), p.ev.result.reason
    if code != "OK":
        assert _unpowered(p) and p.secc.ctx.authorized is False

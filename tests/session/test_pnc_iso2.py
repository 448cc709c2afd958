"""ISO 15118-2 Plug & Charge in memory: PaymentDetails, the signed AuthorizationReq, signed
MeteringReceipts, and CertificateInstallation / CertificateUpdate with the contract key
encrypted for the car (ECDH on secp256r1, the concatenation KDF, AES-128-CBC); and every way
each of them can be wrong, refused with its response code before any power flows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iso15118 import exi, pki
from iso15118.protocols import unwrap, wrap
from iso15118.secc import SECCConfig, simulated_charger
from iso15118.secc.context import CertificateService
from iso15118.v2gtp import PayloadType, V2GTPFrame

from .helpers import make_pair, names

PROFILE = "iso2-secp256r1"


@pytest.fixture(scope="module")
def creds(v2g_pki):
    return {"roots": pki.contract_roots(v2g_pki, PROFILE), "contract": pki.contract_credentials(v2g_pki, PROFILE),
            "oem": pki.oem_credentials(v2g_pki, PROFILE), "v2g": pki.v2g_roots(v2g_pki, PROFILE),
            "service": CertificateService(**pki.certificate_service(v2g_pki, PROFILE))}


def pnc_pair(creds, kind="DC", *, config=None, contract=True, transport="tls1.2", **kw):
    cfg = config or SECCConfig(contract_roots=creds["roots"], certificate_service=creds["service"])
    chain, key = creds["contract"] if contract else ((), None)
    chain, key = kw.pop("contract_chain", chain), kw.pop("contract_key", key)
    kw.setdefault("loops", 6)
    kw.setdefault("setpoint", 5000.0)
    return make_pair(kind, auth="pnc", protocols=("iso2",), transport=transport, secc_config=cfg,
                     contract_chain=chain, contract_key=key, oem_chain=creds["oem"][0], oem_key=creds["oem"][1],
                     v2g_roots=creds["v2g"], **kw)


def _unpowered(p) -> bool:
    return not any(e.kind == "target" and (e.value.current or e.value.power) for e in p.stage.history.events)


def _code(p, name: str) -> str:
    msg = next(m for _, d, n, m in reversed(p.secc_log) if n == name)
    return str(unwrap(msg)[1].ResponseCode)


@pytest.mark.parametrize("kind", ["DC", "AC"])
def test_plug_and_charge_with_receipts(creds, kind):
    p = pnc_pair(creds, kind, loops=45)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    assert p.secc.ctx.auth_method == "PnC" and p.secc.ctx.emaid == "DEV2HC1234567X9"
    rx = names(p.secc_log, "rx")
    assert rx[3:6] == ["PaymentServiceSelectionReq", "PaymentDetailsReq", "AuthorizationReq"]
    assert rx.count("MeteringReceiptReq") == 2  # every 20 loop responses
    auth = next(m for _, d, n, m in p.secc_log if n == "AuthorizationReq")
    assert auth.Header.Signature is not None and unwrap(auth)[1].GenChallenge is not None
    receipts = [m for _, d, n, m in p.secc_log if n == "MeteringReceiptReq"]
    assert all(m.Header.Signature is not None and m.Body.MeteringReceiptReq.SessionID == p.secc.ctx.session_id
               for m in receipts)
    assert ("Authorized", "PnC") in [(type(e).__name__, getattr(e, "method", None)) for _, e in p.supervisor.events]


def test_contract_roots_of_several_profiles_in_one_store(creds, v2g_pki):
    """One trust store for -20 and -2 contracts: the MO roots share a name; the one that signed
    the chain is found."""
    roots = pki.contract_roots(v2g_pki, "iso20-secp521r1") + creds["roots"]
    p = pnc_pair(creds, config=SECCConfig(contract_roots=roots))
    p.run()
    assert p.ev.result.ok, p.ev.result.reason


def test_certificate_installation(creds):
    p = pnc_pair(creds, contract=False)
    p.run()
    r = p.ev.result
    assert r.ok, r.reason
    assert r.contract == "installed"
    rx = names(p.secc_log, "rx")
    assert rx[3:7] == ["PaymentServiceSelectionReq", "CertificateInstallationReq", "PaymentDetailsReq",
                       "AuthorizationReq"]
    sel = next(m for _, d, n, m in p.secc_log if n == "PaymentServiceSelectionReq").Body.PaymentServiceSelectionReq
    assert [(x.ServiceID, x.ParameterSetID) for x in sel.SelectedServiceList.SelectedService] == [(1, None), (2, 1)]
    res = next(m for _, d, n, m in p.secc_log if n == "CertificateInstallationRes")
    body = res.Body.CertificateInstallationRes
    assert len(body.ContractSignatureEncryptedPrivateKey.value) == 48 and len(body.DHpublickey.value) == 65
    assert res.Header.Signature is not None and len(res.Header.Signature.SignedInfo.Reference) == 4
    # the car authorised with the contract it was given, whose EMAID the charger saw
    assert p.secc.ctx.emaid == body.eMAID.value and p.ev.contract_chain[0] == body.ContractSignatureCertChain.Certificate
    chain = pki.validate_chain(list(p.ev.contract_chain), list(creds["roots"]), profile="iso2", purpose="contract")
    from cryptography.hazmat.primitives import serialization
    raw = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    assert chain[0].public_key().public_bytes(*raw) == p.ev.contract_key.public_key().public_bytes(*raw)
    # the installed contract is used again next time without installation
    again = pnc_pair(creds, contract_chain=p.ev.contract_chain, contract_key=p.ev.contract_key)
    again.run()
    assert again.ev.result.ok and "CertificateInstallationReq" not in names(again.secc_log, "rx")


def test_certificate_update(creds):
    p = pnc_pair(creds, "AC", contract_update=True)
    p.run()
    r = p.ev.result
    assert r.ok, r.reason
    assert r.contract == "updated" and p.ev.contract_chain[0] != creds["contract"][0][0]
    assert "CertificateUpdateReq" in names(p.secc_log, "rx") and p.secc.ctx.emaid == "DEV2HC1234567X9"


def test_pnc_is_not_offered_without_tls(creds):
    p = pnc_pair(creds, transport="tcp")
    p.run()
    assert not p.ev.result.ok and "does not offer Contract" in p.ev.result.reason
    res = next(m for _, d, n, m in p.secc_log if n == "ServiceDiscoveryRes").Body.ServiceDiscoveryRes
    assert [str(o) for o in res.PaymentOptionList.PaymentOption] == ["ExternalPayment"] and res.ServiceList is None


def test_no_certificate_service_no_installation(creds):
    p = pnc_pair(creds, contract=False, config=SECCConfig(contract_roots=creds["roots"]))
    p.run()
    assert not p.ev.result.ok and "no certificate service" in p.ev.result.reason
    assert _unpowered(p)


def _tamper_request(p, name: str, change):
    """Replace the car's first ``name`` on the wire by change(V2G_Message)."""
    done = {}

    def tamper(direction, frame, now):
        if direction != "ev→evse" or done or p.ev.protocol is None:
            return None
        msg = exi.decode(frame.payload, "iso2")
        if unwrap(msg)[0] != name:
            return None
        done["yes"] = True
        return [V2GTPFrame(PayloadType.EXI, exi.encode(change(msg), "iso2"))]
    return tamper


def _with_body(msg, name, **fields):
    element = replace(getattr(msg.Body, name), **fields)
    return wrap("iso2", element, msg.Header.SessionID, msg.Header.Signature)


@pytest.mark.parametrize("case,code", [
    ("challenge", "FAILED_ChallengeInvalid"),
    ("signature", "FAILED_SignatureError"),
    ("unsigned", "FAILED_SignatureError"),
])
def test_authorization_refusals(creds, case, code):
    p = pnc_pair(creds)

    def change(msg):
        if case == "challenge":
            return _with_body(msg, "AuthorizationReq", GenChallenge=bytes(16))
        if case == "unsigned":
            return wrap("iso2", msg.Body.AuthorizationReq, msg.Header.SessionID)
        value = msg.Header.Signature.SignatureValue
        bad = replace(value, value=bytes([value.value[0] ^ 1]) + value.value[1:])
        return replace(msg, Header=replace(msg.Header, Signature=replace(msg.Header.Signature, SignatureValue=bad)))
    p.run(tamper=_tamper_request(p, "AuthorizationReq", change))
    assert _code(p, "AuthorizationRes") == code and not p.ev.result.ok and _unpowered(p)


def test_a_contract_of_another_mobility_operator_is_refused(creds, v2g_pki):
    other = pki.contract_credentials(v2g_pki, "iso20-secp521r1")  # a chain the -2 roots do not vouch for
    p = pnc_pair(creds)

    def change(msg):
        chain = msg.Body.PaymentDetailsReq.ContractSignatureCertChain
        return _with_body(msg, "PaymentDetailsReq", ContractSignatureCertChain=replace(chain, Certificate=other[0][0]))
    p.run(tamper=_tamper_request(p, "PaymentDetailsReq", change))
    assert _code(p, "PaymentDetailsRes") == "FAILED_CertChainError" and _unpowered(p)


def test_an_emaid_that_is_not_the_contracts_is_refused(creds):
    p = pnc_pair(creds)
    p.run(tamper=_tamper_request(p, "PaymentDetailsReq",
                                 lambda m: _with_body(m, "PaymentDetailsReq", eMAID="DEV2HC9999999X9")))
    assert _code(p, "PaymentDetailsRes") == "FAILED_CertChainError" and _unpowered(p)


def test_a_metering_receipt_with_a_wrong_signature_ends_the_session(creds):
    p = pnc_pair(creds, loops=30)

    def change(msg):
        meter = msg.Body.MeteringReceiptReq.MeterInfo
        return _with_body(msg, "MeteringReceiptReq", MeterInfo=replace(meter, MeterReading=(meter.MeterReading or 0) + 1))
    p.run(tamper=_tamper_request(p, "MeteringReceiptReq", change))
    assert _code(p, "MeteringReceiptRes") == "FAILED_MeteringSignatureNotValid"
    m = p.stage.measurements(1e6)
    assert not m.contactors_closed and m.current == 0 and p.secc.closed


@pytest.mark.parametrize("case,code", [("foreign", "FAILED_CertChainError"), ("signature", "FAILED_SignatureError")])
def test_certificate_installation_refusals(creds, v2g_pki, case, code):
    p = pnc_pair(creds, contract=False)
    other = pki.contract_credentials(v2g_pki, PROFILE)[0][0]  # a certificate, but no OEM provisioning one

    def change(msg):
        if case == "foreign":
            return _with_body(msg, "CertificateInstallationReq", OEMProvisioningCert=other)
        return _with_body(msg, "CertificateInstallationReq", Id="ID2")  # the signature no longer resolves
    p.run(tamper=_tamper_request(p, "CertificateInstallationReq", change))
    assert _code(p, "CertificateInstallationRes") == code and not p.ev.result.ok and _unpowered(p)


def test_the_car_refuses_a_contract_the_provisioning_service_did_not_sign(creds):
    p = pnc_pair(creds, contract=False)

    def tamper(direction, frame, now):
        if direction == "evse→ev" and p.ev.protocol is not None:
            msg = exi.decode(frame.payload, "iso2")
            if unwrap(msg)[0] == "CertificateInstallationRes":
                body = msg.Body.CertificateInstallationRes
                enc = body.ContractSignatureEncryptedPrivateKey
                changed = replace(body, ContractSignatureEncryptedPrivateKey=replace(
                    enc, value=enc.value[:-1] + bytes([enc.value[-1] ^ 1])))
                out = wrap("iso2", changed, msg.Header.SessionID, msg.Header.Signature)
                return [V2GTPFrame(PayloadType.EXI, exi.encode(out, "iso2"))]
        return None
    p.run(tamper=tamper)
    assert not p.ev.result.ok and "signature does not verify" in p.ev.result.reason
    assert p.ev.result.contract == "" and _unpowered(p)


def test_an_unknown_charge_and_certificate_selection(creds):
    """A car selecting the certificate service where none is offered is refused at selection."""
    p = pnc_pair(creds, config=SECCConfig(contract_roots=creds["roots"]))

    def change(msg):
        sel = msg.Body.PaymentServiceSelectionReq
        services = sel.SelectedServiceList
        extra = replace(services.SelectedService[0], ServiceID=2, ParameterSetID=1)
        return _with_body(msg, "PaymentServiceSelectionReq",
                          SelectedServiceList=replace(services, SelectedService=[*services.SelectedService, extra]))
    p.run(tamper=_tamper_request(p, "PaymentServiceSelectionReq", change))
    assert _code(p, "PaymentServiceSelectionRes") == "FAILED_ServiceSelectionInvalid" and _unpowered(p)


def test_a_rejected_contract_never_energises(creds):
    charger = simulated_charger(kind="DC", setpoint_w=5000.0, accepted_identities={"DEOTHERC000001X"})
    p = pnc_pair(creds, charger=charger)
    p.run()
    assert _code(p, "AuthorizationRes") == "FAILED" and _unpowered(p)


@pytest.mark.parametrize("update", [False, True])
def test_forwarded_to_the_csms_the_answer_waits_for_it(creds, v2g_pki, update):
    """-2 has no Ongoing for CertificateInstallation/Update: the charger holds its answer until the
    CSMS's comes (polled every 50 ms), within the car's 5 s, and sends it as the CSMS signed it."""
    from iso15118.pki.pool import ContractPool
    from iso15118.secc.controller import EVSEController

    from .helpers import ForwardingSupervisor

    sup = ForwardingSupervisor(setpoint_w=5000.0, pool=ContractPool.from_pki(v2g_pki), delay=1.2)
    charger = EVSEController(simulated_charger(kind="DC").stage, sup)
    p = pnc_pair(creds, contract=update, contract_update=update, charger=charger,
                 config=SECCConfig(contract_roots=creds["roots"]))
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    assert p.ev.result.contract == ("updated" if update else "installed") and len(sup.asked) == 1
    name = "CertificateUpdate" if update else "CertificateInstallation"
    (t_req,) = [t for t, d, n, _ in p.secc_log if n == f"{name}Req"]
    (t_res,) = [t for t, d, n, _ in p.secc_log if n == f"{name}Res"]
    assert 1.2 <= t_res - t_req < 1.3
    res = next(m for _, d, n, m in p.secc_log if n == f"{name}Res")
    assert res.Header.SessionID == p.secc.ctx.session_id and len(res.Header.Signature.SignedInfo.Reference) == 4


def test_a_csms_that_does_not_answer_in_time_is_no_contract(creds, v2g_pki):
    from iso15118.pki.pool import ContractPool
    from iso15118.secc.controller import EVSEController

    from .helpers import ForwardingSupervisor

    sup = ForwardingSupervisor(setpoint_w=5000.0, pool=ContractPool.from_pki(v2g_pki), delay=1e9)
    charger = EVSEController(simulated_charger(kind="DC").stage, sup)
    p = pnc_pair(creds, contract=False, charger=charger, config=SECCConfig(contract_roots=creds["roots"]))
    p.run()
    assert _code(p, "CertificateInstallationRes") == "FAILED_NoCertificateAvailable"
    (t_req,) = [t for t, d, n, _ in p.secc_log if n == "CertificateInstallationReq"]
    (t_res,) = [t for t, d, n, _ in p.secc_log if n == "CertificateInstallationRes"]
    assert 4.0 <= t_res - t_req < 4.1 and not p.ev.result.ok and _unpowered(p)

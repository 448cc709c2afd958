"""The house's CSMS with a contract-certificate pool ([ocpp] contract_pool): a car without a
contract installs one through the charger (Get15118EVCertificate, the whole chain in memory with
real bytes on every link) and is authorized by it; without a pool the CSMS says Failed."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from hems import hems_config
from hems.chain import Chain
from hems.csms import CSMSCore
from iso15118 import exi, pki, xmldsig
from iso15118.evcc import Battery, EVCCConfig
from iso15118.messages import CM
from iso15118.pki.pool import ContractPool
from iso15118.secc import SECCConfig
from iso15118.units import header

PROFILE = "iso20-secp521r1"


def _chain(v2g_pki, pool):
    start = float(int(time.time()))
    chain = Chain(start=start, csms=CSMSCore(contract_pool=pool),
                  secc_config=SECCConfig(contract_roots=pki.contract_roots(v2g_pki, PROFILE)), default_setpoint_w=3000.0,
                  v2g_latency=0.001)  # frames queued: the session is made TLS before the first arrives
    chain.run(start + 5)  # the station boots
    assert chain.core.online
    return chain


def _plug(chain, v2g_pki):
    oem, key = pki.oem_credentials(v2g_pki, PROFILE)
    ev = chain.plug(Battery(soc=50.0), EVCCConfig(service="DC_BPT", auth="pnc", loops=3, oem_chain=oem, oem_key=key,
                                                  v2g_roots=pki.v2g_roots(v2g_pki, PROFILE)))
    chain.secc.tls = True  # the chain's link is plain bytes; Plug & Charge is offered over TLS only
    chain.run(chain.now + 60)
    return ev


def test_the_house_csms_issues_a_contract_the_car_is_authorized_by(v2g_pki):
    seen = []
    pool = ContractPool.from_pki(v2g_pki)
    chain = _chain(v2g_pki, pool)
    chain.csms.observer = lambda station, action, payload, now: seen.append((action, payload))
    ev = _plug(chain, v2g_pki)
    assert ev.result.ok, ev.result.reason
    assert ev.result.contract == "installed"
    (asked,) = [p for a, p in seen if a == "Get15118EVCertificate"]
    assert asked["action"] == "Install" and asked["maximumContractCertificateChains"] == 1
    leaf = x509.load_der_x509_certificate(ev.result.contract_chain[0])
    emaid = pool.issued[leaf.serial_number].emaid
    assert [p["idToken"]["idToken"] for a, p in seen if a == "Authorize"] == [emaid]
    assert chain.secc.ctx.emaid == emaid


def test_without_a_pool_the_csms_has_no_certificate_for_the_car(v2g_pki):
    chain = _chain(v2g_pki, None)
    ev = _plug(chain, v2g_pki)
    assert not ev.result.ok and not ev.result.contract_chain
    res = next(m for _, d, n, m in reversed(chain.secc.trace) if n == "CertificateInstallationRes")
    assert str(res.ResponseCode) == "WARNING_NoCertificateAvailable"
    answer = CSMSCore().handle(chain.csms.stations["CS001"], "GetCertificateStatus", {"ocspRequestData": {
        "hashAlgorithm": "SHA256", "issuerNameHash": "00", "issuerKeyHash": "00", "serialNumber": "01",
        "responderURL": ""}}, chain.now)
    assert answer["status"] == "Failed"


def test_a_request_the_pool_cannot_read_is_failed(v2g_pki):
    core = CSMSCore(contract_pool=ContractPool.from_pki(v2g_pki))
    st = core.open("CS009", 0.0).state
    bad = core.handle(st, "Get15118EVCertificate", {"iso15118SchemaVersion": "urn:iso:std:iso:15118:-20:CommonMessages",
                                                   "action": "Install", "exiRequest": base64.b64encode(b"junk").decode()},
                      time.time())
    assert bad["status"] == "Failed" and bad["statusInfo"]["reasonCode"] == "InvalidRequest"
    # a request the pool refuses is Failed too, with the car's response code inside the EXI
    oem, _ = pki.oem_credentials(v2g_pki, PROFILE)
    prov = CM.SignedCertificateChain(Id="id1", Certificate=oem[0], SubCertificates=CM.SubCertificates(
        Certificate=list(oem[1:])))
    sig = xmldsig.sign([xmldsig.SignedElement(prov, "OEMProvisioningCertificateChain", "iso20_cm")],
                       ec.generate_private_key(ec.SECP521R1()))  # not the provisioning key
    req = CM.CertificateInstallationReq(Header=header(bytes(8), time.time(), sig), OEMProvisioningCertificateChain=prov,
                                        ListOfRootCertificateIDs=CM.ListOfRootCertificateIDs(RootCertificateID=[
                                            CM.X509IssuerSerial(X509IssuerName="CN=x", X509SerialNumber=1)]),
                                        MaximumContractCertificateChains=1)
    refused = core.handle(st, "Get15118EVCertificate", {
        "iso15118SchemaVersion": "urn:iso:std:iso:15118:-20:CommonMessages", "action": "Install",
        "exiRequest": base64.b64encode(exi.encode(req, "iso20_cm")).decode()}, time.time())
    assert refused["status"] == "Failed"
    res = exi.decode(base64.b64decode(refused["exiResponse"]), "iso20_cm")
    assert str(res.ResponseCode) == "FAILED_SignatureError"


def test_the_contract_pool_is_an_option_of_the_config(v2g_pki, tmp_path):
    text = hems_config.DEFAULT.replace('[ocpp]\n', f'[ocpp]\ncontract_pool = "{v2g_pki}"\n', 1)
    cfg = hems_config.load(text)
    assert cfg.contract_pool == str(v2g_pki)
    assert hems_config.load(hems_config.DEFAULT).contract_pool is None
    with pytest.raises(hems_config.ConfigError):
        hems_config.load(hems_config.DEFAULT.replace('[ocpp]\n', '[ocpp]\ncontract_pool = 7\n', 1))
    with pytest.raises(ValueError, match="no certificate provisioning service"):
        ContractPool.from_pki(tmp_path)

"""Contract installation through the CSMS over real sockets: `v2h evcc --contract FILE` (a car
without a contract), `v2h charger` forwarding its CertificateInstallationReq over OCPP 2.1
(Get15118EVCertificate, the EXI in base64; the SECC answers Ongoing meanwhile for -20 and holds
its answer for -2), the tests' CSMS answering from its contract pool; the car keeps the contract
and the next session is authorized by it without an installation."""

from __future__ import annotations

import asyncio
import base64

import pytest
from cryptography import x509

from iso15118 import exi
from iso15118.messages import name_of
from iso15118.pki.pool import ContractPool

from .csms import PoolCSMS
from .helpers import PASSWORD, run_car, start_charger

NAMESPACES = {"iso20": "urn:iso:std:iso:15118:-20:CommonMessages", "iso2": "urn:iso:15118:2:2013:MsgDef"}


@pytest.mark.parametrize("protocol", ["iso20", "iso2"])
def test_a_car_installs_its_contract_through_the_csms_and_keeps_it(v2g_pki, tmp_path, protocol):
    contract = tmp_path / "contract.pem"
    log = tmp_path / "car.jsonl"

    async def run():
        csms = await PoolCSMS(passwords={"CS201": PASSWORD}, pool=ContractPool.from_pki(v2g_pki),
                              ev_certificate_delay=0.4).start()
        charger, port = await start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(), "--id", "CS201", "--password", PASSWORD,
             "--db", str(tmp_path / "cs.db"), "--setpoint", "3000", "--quiet"])
        try:
            await csms.wait_for(lambda c: "CS201" in c.connections and c.actions("BootNotification"))
            first = await run_car(port, v2g_pki, log, "--protocol", protocol, "--contract", str(contract))
            stored = contract.read_bytes() if contract.exists() else b""
            second = await run_car(port, v2g_pki, log, "--protocol", protocol, "--contract", str(contract))
        finally:
            charger.kill()
            await csms.close()
        return csms, first, stored, second

    csms, first, stored, second = asyncio.run(run())
    assert first.returncode == 0, first.stderr
    assert "contract installed" in first.stdout
    (asked,) = csms.actions("Get15118EVCertificate")
    assert asked.payload["iso15118SchemaVersion"] == NAMESPACES[protocol] and asked.payload["action"] == "Install"
    assert ("maximumContractCertificateChains" in asked.payload) == (protocol == "iso20")
    request = exi.decode(base64.b64decode(asked.payload["exiRequest"]), "iso20_cm" if protocol == "iso20" else "iso2")
    assert name_of(request) == "CertificateInstallationReq" and request.Header.Signature is not None
    if protocol == "iso20":  # the car waited with Ongoing while the CSMS took its 0.4 s
        processing = [m["EVSEProcessing"] for m in first.messages("CertificateInstallationRes")]
        assert processing[0] == "Ongoing" and processing[-1] == "Finished"
    # the car kept the contract the CSMS issued, and was authorized by its EMAID
    leaf = x509.load_pem_x509_certificates(stored)[0]
    emaid = leaf.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert leaf.serial_number in csms.pool.issued and csms.pool.issued[leaf.serial_number].emaid == emaid
    tokens = [a.payload["idToken"]["idToken"] for a in csms.actions("Authorize")]
    assert tokens == [emaid, emaid]
    assert oct(contract.stat().st_mode)[-3:] == "600"
    # the next session: the stored contract, no installation
    assert second.returncode == 0, second.stderr
    assert "contract installed" not in second.stdout and len(csms.actions("Get15118EVCertificate")) == 1
    assert contract.read_bytes() == stored

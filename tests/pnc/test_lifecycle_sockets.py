"""Plug & Charge for a contract's whole life over real sockets: `v2h charger` (TLS 1.3 to the car,
OCPP 2.1 websocket to the tests' CSMS with its contract pool) and `v2h evcc --contract FILE`
processes. A car without a contract installs one and is authorized by it; the CSMS revokes it and
the next session is refused (WARNING_CertificateRevoked); responses the car cannot trust are
refused and leave it without one; an installation cut short leaves the car's old contract."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from iso15118.pki.pool import CertificateService, ContractPool

from .csms import PoolCSMS
from .helpers import PASSWORD, run_car, start_charger


def _charger_args(pki, csms, station, tmp_path, *extra):
    return ["--pki", str(pki), "--host", "::1", "--csms", csms.url(), "--id", station, "--password", PASSWORD,
            "--db", str(tmp_path / f"{station}.db"), "--setpoint", "3000", "--quiet", "--log", str(tmp_path / "cs.jsonl"), *extra]


def test_install_authorize_revoke_refuse(v2g_pki, tmp_path):
    contract = tmp_path / "contract.pem"
    pool = ContractPool.from_pki(v2g_pki, ocsp_validity=1.0)

    async def run():
        csms = await PoolCSMS(passwords={"CS501": PASSWORD}, pool=pool).start()
        charger, port = await start_charger(_charger_args(v2g_pki, csms, "CS501", tmp_path, "--contract-status-check",
                                                          "--contract-status-unknown", "reject"))
        try:
            await csms.wait_for(lambda c: "CS501" in c.connections and c.actions("BootNotification"))
            first = await run_car(port, v2g_pki, tmp_path / "car.jsonl", "--contract", str(contract))
            kept = contract.read_bytes()
            emaid = pool.issued[x509.load_pem_x509_certificates(kept)[0].serial_number].emaid
            assert pool.revoke(emaid, dt.datetime.now(dt.timezone.utc)) == 1
            await asyncio.sleep(1.2)  # the charger's cached OCSP answer (nextUpdate 1 s) expires
            second = await run_car(port, v2g_pki, tmp_path / "car.jsonl", "--contract", str(contract))
        finally:
            charger.kill()
            await csms.close()
        return csms, first, kept, emaid, second

    csms, first, kept, emaid, second = asyncio.run(run())
    assert first.returncode == 0, first.stderr
    assert "contract installed" in first.stdout
    assert [m["ResponseCode"] for m in first.messages("AuthorizationRes")][-1] == "OK"
    assert [a.payload["idToken"]["idToken"] for a in csms.actions("Authorize")] == [emaid]
    statuses = csms.actions("GetCertificateStatus")
    assert len(statuses) == 2  # once per session: the first answer expired before the second
    # revoked: refused before any power, no Authorize, the car keeps its (revoked) contract file
    assert second.returncode == 1 and "WARNING_CertificateRevoked" in second.stderr
    assert [m["ResponseCode"] for m in second.messages("AuthorizationRes")][-1] == "WARNING_CertificateRevoked"
    assert not second.messages("DC_ChargeLoopRes") and len(csms.actions("Authorize")) == 1
    assert contract.read_bytes() == kept


class WrongKeyPool(ContractPool):
    """Encrypts a key that is not the certificate's."""

    def _issue(self, svc, emaid, curve, now):
        cert, _ = super()._issue(svc, emaid, curve, now)
        return cert, ec.generate_private_key(curve)


@pytest.mark.parametrize("case,why", [
    ("mis-signed", "signature does not verify"),
    ("wrong key", "does not belong to the new contract certificate"),
    ("expired provisioning", "WARNING_CertificateExpired"),
])
def test_responses_and_requests_that_fail_leave_the_car_without_a_contract(v2g_pki, tmp_path, case, why):
    from iso15118 import pki

    service = pki.certificate_service(v2g_pki, "iso20-secp521r1")
    roots = pki.v2g_roots(v2g_pki, "iso20-secp521r1")
    if case == "mis-signed":
        pool = ContractPool({"iso20": CertificateService(**{**service, "cps_key": ec.generate_private_key(
            ec.SECP521R1())}, v2g_roots=roots)})
    elif case == "wrong key":
        pool = WrongKeyPool({"iso20": CertificateService(**service, v2g_roots=roots)})
    else:  # a CSMS whose clock is past the car's provisioning certificate
        pool = _LatePool({"iso20": CertificateService(**service, v2g_roots=roots)})
    contract = tmp_path / "contract.pem"

    async def run():
        csms = await PoolCSMS(passwords={"CS502": PASSWORD}, pool=pool).start()
        charger, port = await start_charger(_charger_args(v2g_pki, csms, "CS502", tmp_path))
        try:
            await csms.wait_for(lambda c: "CS502" in c.connections and c.actions("BootNotification"))
            return await run_car(port, v2g_pki, tmp_path / "car.jsonl", "--contract", str(contract))
        finally:
            charger.kill()
            await csms.close()

    car = asyncio.run(run())
    assert car.returncode == 1 and why in car.stderr, car.stderr
    assert not contract.exists() and not car.messages("AuthorizationRes")
    if case == "expired provisioning":
        assert car.messages("CertificateInstallationRes")[-1]["ResponseCode"] == "WARNING_CertificateExpired"


class _LatePool(ContractPool):
    """Judges the provisioning certificate 3 years from now (it is valid for 2)."""

    def install_iso20(self, req, now):
        return super().install_iso20(req, now + dt.timedelta(days=3 * 365))


def test_an_installation_cut_short_leaves_the_old_contract(v2g_pki, tmp_path):
    """The car holds a contract and asks for a new one (--install-contract); the charger dies
    while the CSMS takes its time: the car's file is the old one, byte for byte."""
    from iso15118 import pki
    from v2h.contract_file import write_contract

    contract = tmp_path / "contract.pem"
    write_contract(contract, *pki.contract_credentials(v2g_pki, "iso20-secp521r1"))
    old = contract.read_bytes()

    async def run():
        csms = await PoolCSMS(passwords={"CS503": PASSWORD}, pool=ContractPool.from_pki(v2g_pki),
                              ev_certificate_delay=5.0).start()
        charger, port = await start_charger(_charger_args(v2g_pki, csms, "CS503", tmp_path))
        try:
            await csms.wait_for(lambda c: "CS503" in c.connections and c.actions("BootNotification"))
            car = asyncio.ensure_future(run_car(port, v2g_pki, tmp_path / "car.jsonl", "--contract", str(contract),
                                                "--install-contract"))
            await csms.wait_for(lambda c: c.actions("Get15118EVCertificate"))
            await asyncio.sleep(0.3)  # the car waits with Ongoing
            charger.kill()
            return await car
        finally:
            charger.kill()
            await csms.close()

    car = asyncio.run(run())
    assert car.returncode == 1 and "connection lost" in car.stderr
    assert [m["EVSEProcessing"] for m in car.messages("CertificateInstallationRes")][-1] == "Ongoing"
    assert contract.read_bytes() == old

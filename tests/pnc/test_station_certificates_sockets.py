"""The charger's SECC certificate renewed over OCPP 2.1 on a running `v2h charger`: the CSMS
triggers SignV2G20Certificate, signs the CSR, sends CertificateSigned; the next TLS handshake
presents the new certificate without a restart, and a car charges on it; a CertificateSigned
that does not validate leaves the old one in use."""

from __future__ import annotations

import asyncio
import subprocess

from cryptography import x509

from iso15118.aio.tls import credentials_from_pki, iso20_client_context
from iso15118.pki.signer import CsrSigner
from ocpp_bridge.certificates import hash_data

from ..ocpp.test_station import _server_ctx, tls_files  # noqa: F401 (the fixture)

from .csms import PoolCSMS
from .helpers import PASSWORD, run_car, start_charger


async def _presented(port: int, pki) -> x509.Certificate:
    """The certificate the charger presents in a -20 TLS handshake."""
    ctx = iso20_client_context(credentials_from_pki(pki, "evcc"))
    reader, writer = await asyncio.open_connection("::1", port, ssl=ctx)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der)


def test_a_new_secc_certificate_is_used_by_the_next_handshake(v2g_pki, tmp_path):
    async def run():
        csms = await PoolCSMS(passwords={"CS301": PASSWORD}, signer=CsrSigner.from_pki(v2g_pki)).start()
        charger, port = await start_charger(
            ["--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(), "--id", "CS301", "--password", PASSWORD,
             "--db", str(tmp_path / "cs.db"), "--quiet"])
        try:
            await csms.wait_for(lambda c: "CS301" in c.connections and c.actions("BootNotification"))
            before = await _presented(port, v2g_pki)
            bad = await csms.send_call("CS301", "CertificateSigned", {  # no CSR outstanding: refused
                "certificateChain": (v2g_pki / "iso20-secp521r1" / "secc_chain.pem").read_text(),
                "certificateType": "V2G20Certificate"})
            answer = await csms.send_call("CS301", "TriggerMessage", {"requestedMessage": "SignV2G20Certificate"})
            await csms.wait_for(lambda c: c.signed)
            after = await _presented(port, v2g_pki)
            car = await run_car(port, v2g_pki, tmp_path / "car.jsonl")
        finally:
            charger.kill()
            await csms.close()
        return csms, before, bad, answer, after, car

    csms, before, bad, answer, after, car = asyncio.run(run())
    assert bad == (3, {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCertificate", "additionalInfo":
                                                          "no signing request for a V2G20Certificate is outstanding"}})
    assert answer == (3, {"status": "Accepted"})
    (_, kind, csr), = csms.csrs
    assert kind == "V2G20Certificate"
    (_, chain, signed_answer), = csms.signed
    assert signed_answer == (3, {"status": "Accepted"})
    new_leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    assert after.serial_number == new_leaf.serial_number != before.serial_number
    assert after.public_key().public_numbers() == x509.load_pem_x509_csr(csr.encode()).public_key().public_numbers()
    assert car.returncode == 0, car.stderr
    assert (tmp_path / "cs.db.certs" / "V2G20Certificate.pem").read_text() == chain


def test_the_last_csms_root_deleted_trusts_no_csms_even_after_a_restart(v2g_pki, tmp_path, tls_files):  # noqa: F811
    """DeleteCertificate of the only CSMSRootCertificate on a running `v2h charger` (wss, profile 2):
    Accepted, and the next connection trusts no CSMS — not the deleted root, not the system's —
    also after a restart with the same --csms-ca; installing a root over OCPP is what brings it back."""
    ca = x509.load_pem_x509_certificate(tls_files["ca"].read_bytes())
    args = ["--pki", str(v2g_pki), "--host", "::1", "--csms-ca", str(tls_files["ca"]), "--id", "CS302",
            "--password", PASSWORD, "--db", str(tmp_path / "cs.db"), "--retry-backoff", "0.2", "--retry-random", "0"]

    async def run():
        csms = await PoolCSMS(passwords={"CS302": PASSWORD}, ssl_context=_server_ctx(tls_files, False)).start()
        charger, _ = await start_charger([*args, "--csms", csms.url("wss")])
        try:
            await csms.wait_for(lambda c: "CS302" in c.connections and c.actions("BootNotification"))
            deleted = await csms.send_call("CS302", "DeleteCertificate", {"certificateHashData": hash_data(ca, ca)})
            await asyncio.sleep(0.3)
            await csms.connections["CS302"]._connection.close()  # the CSMS drops the link: the charger reconnects
            await asyncio.sleep(2.0)
            opened_after_delete = csms.opened
        finally:
            charger.kill()
        charger, _ = await start_charger([*args, "--csms", csms.url("wss")])  # the same --csms-ca
        try:
            await asyncio.sleep(2.0)
            opened_after_restart = csms.opened
        finally:
            charger.terminate()  # (not kill: what it printed to the pipe is flushed at exit)
            try:
                said = charger.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                charger.kill()
                said = charger.communicate()
            stderr = "".join(said)  # what it said, on either stream
            await csms.close()
        return deleted, opened_after_delete, opened_after_restart, stderr

    deleted, after_delete, after_restart, stderr = asyncio.run(run())
    assert deleted == (3, {"status": "Accepted"})
    assert after_delete == 1 and after_restart == 1  # TLS refused: no websocket opened again
    assert "not trusted" in stderr

"""Revocation in memory (hems.chain, real OCPP-J frames): the charger asks the CSMS for the
contract's status (GetCertificateStatus with the OCSP request data of the leaf), keeps the
answer until its nextUpdate, and the -20 AuthorizationRes follows it — revoked is refused with
WARNING_CertificateRevoked, unknown is the configured policy; an OCSP response that is not for
the certificate, not signed by its issuer or not current counts as no answer."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from hems.chain import Chain
from hems.csms import CSMSCore
from iso15118 import pki
from iso15118.evcc import Battery, EVCCConfig
from iso15118.pki.pool import ContractPool
from iso15118.secc import SECCConfig
from iso15118.secc.controller import ContractStatus
from ocpp_bridge.certificates import ocsp_request_data, read_ocsp_answer

PROFILE = "iso20-secp521r1"


def _chain(v2g_pki, pool, policy="accept"):
    start = float(int(time.time()))
    chain = Chain(start=start, csms=CSMSCore(contract_pool=pool), default_setpoint_w=3000.0, v2g_latency=0.001,
                  secc_config=SECCConfig(contract_roots=pki.contract_roots(v2g_pki, PROFILE),
                                         contract_status_unknown=policy))
    chain.bridge.check_contract_status(True)
    chain.run(start + 5)
    seen = []
    chain.csms.observer = lambda st, action, payload, now: seen.append((now, action, payload))
    return chain, seen


def _plug(chain, v2g_pki, contract=None):
    oem, key = pki.oem_credentials(v2g_pki, PROFILE)
    chain_ders, contract_key = contract or ((), None)
    ev = chain.plug(Battery(soc=50.0), EVCCConfig(service="DC_BPT", auth="pnc", loops=2, oem_chain=oem, oem_key=key,
                                                  v2g_roots=pki.v2g_roots(v2g_pki, PROFILE),
                                                  contract_chain=chain_ders, contract_key=contract_key))
    chain.secc.tls = True
    chain.run(chain.now + 30)
    return ev, chain.secc


def _auth_codes(secc):
    return [str(m.ResponseCode) for _, d, n, m in secc.trace if n == "AuthorizationRes"]


def test_install_authorize_revoke_refuse(v2g_pki):
    pool = ContractPool.from_pki(v2g_pki, ocsp_validity=60.0)
    chain, seen = _chain(v2g_pki, pool)
    ev, secc = _plug(chain, v2g_pki)
    assert ev.result.ok and ev.result.contract == "installed", ev.result.reason
    asked = [p for _, a, p in seen if a == "GetCertificateStatus"]
    assert len(asked) == 1
    leaf = x509.load_der_x509_certificate(ev.result.contract_chain[0])
    assert asked[0]["ocspRequestData"]["serialNumber"] == format(leaf.serial_number, "x")
    contract = (ev.result.contract_chain, ev.result.contract_key)
    # within the response's validity: the cached answer, no second request
    ev2, secc2 = _plug(chain, v2g_pki, contract)
    assert ev2.result.ok and len([1 for _, a, _ in seen if a == "GetCertificateStatus"]) == 1
    # the CSMS revokes it; once the cached answer has expired the next session asks and is refused
    assert pool.revoke(secc.ctx.emaid, dt.datetime.now(dt.timezone.utc)) == 1
    chain.run(chain.now + 61)
    ev3, secc3 = _plug(chain, v2g_pki, contract)
    assert not ev3.result.ok and "WARNING_CertificateRevoked" in ev3.result.reason
    assert _auth_codes(secc3)[-1] == "WARNING_CertificateRevoked"
    assert len([1 for _, a, _ in seen if a == "GetCertificateStatus"]) == 2
    assert not any(e.kind == "target" and e.value.current for e in chain.stage.history.events
                   if e.time > chain.now - 30)
    assert chain.bridge.ocsp_cache  # the revoked answer is kept too, until its nextUpdate


@pytest.mark.parametrize("policy,code", [("accept", "OK"), ("reject", "WARNING_CertificateValidationError")])
def test_a_contract_the_responder_does_not_know_follows_the_policy(v2g_pki, policy, code):
    pool = ContractPool.from_pki(v2g_pki)
    chain, seen = _chain(v2g_pki, pool, policy)
    ev, secc = _plug(chain, v2g_pki, pki.contract_credentials(v2g_pki, PROFILE))  # not issued by this pool
    assert _auth_codes(secc)[-1] == code
    assert ev.result.ok == (code == "OK")
    assert [a for _, a, _ in seen].count("GetCertificateStatus") == 1


def test_not_asked_unless_enabled(v2g_pki):
    """ISO15118Ctrlr.ContractStatusCheck false (the default): no GetCertificateStatus, the policy."""
    chain, seen = _chain(v2g_pki, ContractPool.from_pki(v2g_pki), "reject")
    chain.bridge.check_contract_status(False)
    ev, secc = _plug(chain, v2g_pki, pki.contract_credentials(v2g_pki, PROFILE))
    assert _auth_codes(secc) == ["WARNING_CertificateValidationError"]
    assert "GetCertificateStatus" not in [a for _, a, _ in seen]


def test_a_csms_that_does_not_answer_is_waited_for_once(v2g_pki):
    """GetCertificateStatus answered with a CALLERROR: unknown (the policy), and not asked again
    for 10 minutes."""
    chain, seen = _chain(v2g_pki, ContractPool.from_pki(v2g_pki))
    chain.csms.HANDLED = tuple(a for a in CSMSCore.HANDLED if a != "GetCertificateStatus")
    contract = pki.contract_credentials(v2g_pki, PROFILE)
    ev, secc = _plug(chain, v2g_pki, contract)
    assert ev.result.ok and _auth_codes(secc)[-1] == "OK"
    ev2, secc2 = _plug(chain, v2g_pki, contract)
    assert ev2.result.ok and _auth_codes(secc2)[-1] == "OK"
    sent = [name for _, direction, name in chain.core.recent if name == "GetCertificateStatus"]
    assert len(sent) == 1 and "GetCertificateStatus" not in [a for _, a, _ in seen]


def test_offline_the_status_is_unknown_at_once(v2g_pki):
    chain, seen = _chain(v2g_pki, ContractPool.from_pki(v2g_pki), "reject")
    chain.csms_down()
    chain.run(chain.now + 1)
    ev, secc = _plug(chain, v2g_pki, pki.contract_credentials(v2g_pki, PROFILE))
    assert _auth_codes(secc) == ["WARNING_CertificateValidationError"]


# --- the OCSP request and response themselves ---------------------------------------------------------

@pytest.fixture(scope="module")
def issued(v2g_pki):
    """A pool and one contract it issued: (pool, leaf, issuer)."""
    pool = ContractPool.from_pki(v2g_pki)
    leaf, _ = pool._issue(pool.services["iso20"], "DEV2HC0000042X0", ec.SECP521R1(), dt.datetime.now(dt.timezone.utc))
    return pool, leaf, pool.issued[leaf.serial_number].issuer


def test_the_request_data_is_the_ocsp_cert_id(issued):
    """SHA-256 of the issuer's DER name and of its public key bits, the serial in hexadecimal."""
    _, leaf, issuer = issued
    data = ocsp_request_data(leaf, issuer)
    key_bits = issuer.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
    assert data == {"hashAlgorithm": "SHA256", "issuerNameHash": hashlib.sha256(issuer.subject.public_bytes()).hexdigest(),
                    "issuerKeyHash": hashlib.sha256(key_bits).hexdigest(),
                    "serialNumber": format(leaf.serial_number, "x"), "responderURL": ""}


def _answer(der: bytes) -> dict:
    return {"status": "Accepted", "ocspResult": base64.b64encode(der).decode()}


def test_what_an_ocsp_answer_must_be(issued):
    pool, leaf, issuer = issued
    now = dt.datetime.now(dt.timezone.utc)
    good = pool.ocsp_response(ocsp_request_data(leaf, issuer), now)
    status, until = read_ocsp_answer(_answer(good), leaf, issuer, now.timestamp())
    assert status is ContractStatus.GOOD and abs(until - now.timestamp() - pool.ocsp_validity) < 2
    # a flipped bit of the signature, another certificate's response, a stale one, Failed, junk
    bad_sig = bytearray(good)
    bad_sig[-5] ^= 1
    other, _ = pool._issue(pool.services["iso20"], "DEV2HC0000043X0", ec.SECP521R1(), now)
    for_other = pool.ocsp_response(ocsp_request_data(other, issuer), now)
    stale = pool.ocsp_response(ocsp_request_data(leaf, issuer), now - dt.timedelta(hours=2))
    for answer in (_answer(bytes(bad_sig)), _answer(for_other), _answer(stale), {"status": "Failed"},
                   {"status": "Accepted", "ocspResult": "bm90IGRlcg=="}, None):
        assert read_ocsp_answer(answer, leaf, issuer, now.timestamp()) == (ContractStatus.UNKNOWN, None)
    # signed by a responder the issuer never named (its own certificate attached)
    stranger = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Some OCSP responder")])
    responder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(stranger.public_key())
                 .serial_number(9).not_valid_before(now - dt.timedelta(days=1))
                 .not_valid_after(now + dt.timedelta(days=1))
                 .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
                 .sign(stranger, hashes.SHA512()))
    forged = (ocsp.OCSPResponseBuilder()
              .add_response(cert=leaf, issuer=issuer, algorithm=hashes.SHA256(), cert_status=ocsp.OCSPCertStatus.GOOD,
                            this_update=now, next_update=now + dt.timedelta(hours=1), revocation_time=None,
                            revocation_reason=None)
              .responder_id(ocsp.OCSPResponderEncoding.HASH, responder).certificates([responder])
              .sign(stranger, hashes.SHA512()))
    assert read_ocsp_answer(_answer(forged.public_bytes(serialization.Encoding.DER)), leaf, issuer,
                            now.timestamp()) == (ContractStatus.UNKNOWN, None)
    pool.revoke("DEV2HC0000042X0", now)
    revoked = pool.ocsp_response(ocsp_request_data(leaf, issuer), now)
    assert read_ocsp_answer(_answer(revoked), leaf, issuer, now.timestamp())[0] is ContractStatus.REVOKED

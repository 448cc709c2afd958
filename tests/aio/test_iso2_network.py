"""One charger on the network for every protocol (real sockets on loopback): ISO 15118-20 over
TLS 1.3 and ISO 15118-2 over TLS 1.2 on one port (the context chosen from the car's
ClientHello: each gets its own standard's certificate and policy), DIN 70121 and -2 without TLS
on a plain TCP port; Plug & Charge with a contract installed over TLS 1.2; and the pure
ClientHello reader."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from iso15118 import pki
from iso15118.aio.client_hello import MAX_HELLO, TLS12, TLS13, offered_versions
from iso15118.aio.session import run_evcc, start_secc
from iso15118.evcc import Battery, EVCCConfig
from iso15118.secc import SECCConfig, simulated_charger

HOST = "127.0.0.1"


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def _charger(kind="DC"):
    return simulated_charger(kind=kind, setpoint_w=5000.0, isolation_time=0.05)


def _car(protocols, kind="DC", **kw):
    return EVCCConfig(service=kind, protocols=protocols, loops=3, loop_period=0.05, **kw)


@pytest.mark.parametrize("protocols,security,connection", [
    (("iso20",), None, "TLSv1.3 TLS_AES_256_GCM_SHA384 secp521r1"),
    (("iso2",), None, "TLSv1.2 ECDHE-ECDSA-AES128-SHA256 prime256v1"),
    (("iso2",), "none", "plain TCP"),
    (("din",), None, "plain TCP"),
    (("iso2", "din"), "none", "plain TCP"),
])
def test_every_protocol_on_one_charger(v2g_pki, protocols, security, connection):
    async def go():
        srv = await start_secc(_charger(), pki_dir=v2g_pki, host=HOST)
        port = srv.tcp_port if protocols[0] == "din" or security == "none" else srv.port
        r = await run_evcc(Battery(), _car(protocols), pki_dir=v2g_pki, secc=(HOST, port), security=security)
        sessions = list(srv.sessions)
        await srv.close()
        return r, sessions

    r, sessions = _run(go())
    assert r.ok, r.reason
    assert r.protocol == protocols[0] and r.connection == connection and r.loops == 3 and r.charged_wh > 0
    assert sessions[-1].transport == {"TLSv1.3": "tls1.3", "TLSv1.2": "tls1.2"}.get(connection.split()[0], "tcp")


@pytest.mark.parametrize("versions,curve,key_bits", [
    ((ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3), ec.SECP521R1, 521),
    ((ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2), ec.SECP256R1, 256),
])
def test_the_client_hello_chooses_the_certificate(v2g_pki, versions, curve, key_bits):
    """A TLS 1.3 car gets the -20 (secp521r1) charger certificate, a TLS 1.2 car the -2
    (secp256r1) one, on the same port."""
    async def go():
        srv = await start_secc(_charger(), pki_dir=v2g_pki, host=HOST)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.minimum_version, ctx.maximum_version = versions
        _, writer = await asyncio.open_connection(HOST, srv.port, ssl=ctx)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await srv.close()
        return x509.load_der_x509_certificate(der)

    cert = _run(go())
    assert isinstance(cert.public_key().curve, curve) and cert.public_key().curve.key_size == key_bits


def test_an_iso20_charger_refuses_tls_12_and_offers_no_tcp(v2g_pki):
    async def go():
        srv = await start_secc(_charger(), pki_dir=v2g_pki, host=HOST, config=SECCConfig(protocols=("iso20",)))
        r = await run_evcc(Battery(), _car(("iso2",)), pki_dir=v2g_pki, secc=(HOST, srv.port))
        tcp = srv.tcp_port
        await srv.close()
        return r, tcp, srv.stats

    r, tcp, stats = _run(go())
    assert not r.ok and "could not connect" in r.reason and tcp is None
    assert stats.failures["version"] == 1


def test_a_din_charger_has_no_tls_listener(v2g_pki):
    async def go():
        srv = await start_secc(_charger(), pki_dir=None, host=HOST, config=SECCConfig(protocols=("din",)))
        r = await run_evcc(Battery(), _car(("din",)), pki_dir=None, secc=(HOST, srv.tcp_port))
        port = srv.port
        await srv.close()
        return r, port

    r, port = _run(go())
    assert r.ok, r.reason
    assert port is None


def test_din_over_tls_is_refused_at_the_handshake(v2g_pki):
    """DIN 70121 has no TLS: a car that asks for it over TLS 1.2 gets Failed_NoNegotiation."""
    async def go():
        srv = await start_secc(_charger(), pki_dir=v2g_pki, host=HOST)
        r = await run_evcc(Battery(), _car(("din",)), pki_dir=v2g_pki, secc=(HOST, srv.port), security="tls",
                           iso2_profile="iso2-secp256r1")
        sessions = list(srv.sessions)
        await srv.close()
        return r, sessions

    r, sessions = _run(go())
    assert not r.ok and "Failed_NoNegotiation" in r.reason
    assert not any(e.kind == "contactors" and e.value for e in sessions[-1].connector.controller.stage.history.events)


def test_plug_and_charge_with_contract_installation_over_tls_12(v2g_pki):
    profile = "iso2-secp256r1"
    oem, oem_key = pki.oem_credentials(v2g_pki, profile)

    async def go():
        srv = await start_secc(_charger("AC"), pki_dir=v2g_pki, host=HOST)
        cfg = _car(("iso2",), kind="AC", auth="pnc", oem_chain=oem, oem_key=oem_key,
                   v2g_roots=pki.v2g_roots(v2g_pki, profile))
        r = await run_evcc(Battery(), cfg, pki_dir=v2g_pki, secc=(HOST, srv.port))
        sessions = list(srv.sessions)
        await srv.close()
        return r, sessions

    r, sessions = _run(go())
    assert r.ok, r.reason
    assert r.contract == "installed" and sessions[-1].ctx.auth_method == "PnC"
    assert sessions[-1].ctx.emaid.startswith("DEV2HC")


# --- the ClientHello reader -------------------------------------------------------------------------

def _hello(minimum, maximum) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version, ctx.maximum_version = minimum, maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("minimum,maximum,expected", [
    (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2, {TLS12}),
    (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3, {TLS13}),
    (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3, {TLS12, TLS13}),
])
def test_offered_versions(minimum, maximum, expected):
    hello = _hello(minimum, maximum)
    assert offered_versions(hello) == expected
    for cut in (0, 3, 5, 9, len(hello) - 1):  # byte by byte: more is needed
        assert offered_versions(hello[:cut]) is None
    # a ClientHello split over two records
    body = hello[5:]
    split = hello[:1] + hello[1:3] + (40).to_bytes(2, "big") + body[:40] + \
        hello[:3] + (len(body) - 40).to_bytes(2, "big") + body[40:]
    assert offered_versions(split) == expected


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n\r\n",
    bytes.fromhex("01fe8001000000100000"),             # V2GTP on the TLS port
    b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",        # a handshake, but not a ClientHello
    b"\x16\x03\x01\x00\x00",                            # an empty record
    b"\x16\x03\x01\x00\x06\x01\xff\xff\xff\x00\x00",    # a ClientHello longer than the cap
])
def test_not_a_client_hello(data):
    assert offered_versions(data) == frozenset()


def test_a_truncated_client_hello_body_is_not_believed():
    hello = _hello(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    body_len = int.from_bytes(hello[6:9], "big")
    short = bytearray(hello)
    short[3:5] = (50).to_bytes(2, "big")  # the record ends inside the ClientHello, which claims more
    short = bytes(short[:55])
    assert offered_versions(short) is None and body_len > 50 and MAX_HELLO > body_len

"""Real TLS handshakes on loopback carrying V2GTP frames (ISO 15118-20 TLS 1.3 mutual, -2 TLS 1.2)."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from iso15118 import pki
from iso15118.aio import tls
from iso15118.aio.v2gtp_stream import V2GTPClient, serve
from iso15118.v2gtp import PayloadType, V2GTPFrame, encode_frame

SAP_REQ = bytes.fromhex("8000dbab9371d3234b71d1b981899189d191818991d1bc8a63c9a58000000000000010000400")


class Echo:
    """A stand-in SECC: answers each frame with its payload reversed."""

    def __init__(self, info):
        self.info = info
        self.closed = False

    def on_frame(self, frame, now):
        return [V2GTPFrame(frame.payload_type, frame.payload[::-1])]


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    pki.init_pki(d)
    return d


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("other")
    pki.init_pki(d, profiles=["iso20-secp521r1"])
    return d


async def _run(server_ctx, client_ctx, standard, *, payload=SAP_REQ):
    infos = []

    def factory(info):
        infos.append(info)
        return Echo(info)

    server = await serve(factory, "127.0.0.1", 0, ssl=server_ctx, standard=standard)
    port = server.sockets[0].getsockname()[1]
    try:
        client = await V2GTPClient.connect("127.0.0.1", port, ssl=client_ctx, standard=standard)
        answer = await client.request(V2GTPFrame(PayloadType.EXI, payload), timeout=5)
        obj = client._writer.get_extra_info("ssl_object")
        result = (obj.version(), obj.cipher()[0], tls.negotiated_group(obj), answer, infos[0])
        await client.close()
        return result
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("profile,groups", [("iso20-secp521r1", {"secp521r1", "X448"}), ("iso20-ed448", {"secp521r1", "X448"})])
def test_iso20_tls13_mutual_authentication(pki_dir, profile, groups):
    sctx = tls.iso20_server_context(tls.credentials_from_pki(pki_dir, "secc", profile))
    cctx = tls.iso20_client_context(tls.credentials_from_pki(pki_dir, "evcc", profile))
    version, cipher, group, answer, info = asyncio.run(_run(sctx, cctx, "iso20"))
    assert version == "TLSv1.3"
    assert cipher == "TLS_AES_256_GCM_SHA384"
    assert group in groups
    assert answer.payload == SAP_REQ[::-1]
    assert info.peer_certificate is not None  # the SECC saw the vehicle certificate


def test_iso20_chacha_is_the_second_choice(pki_dir):
    sctx = tls.iso20_server_context(tls.credentials_from_pki(pki_dir, "secc"))
    cctx = tls.iso20_client_context(tls.credentials_from_pki(pki_dir, "evcc"))
    lib, p = tls._libssl(), tls._ssl_ctx_ptr(cctx)
    assert lib.SSL_CTX_set_ciphersuites(p, b"TLS_CHACHA20_POLY1305_SHA256") == 1
    _v, cipher, _g, _a, _i = asyncio.run(_run(sctx, cctx, "iso20"))
    assert cipher == "TLS_CHACHA20_POLY1305_SHA256"


def _expect_refusal(server_ctx, client_ctx, standard="iso20"):
    with pytest.raises((ssl.SSLError, ConnectionError, tls.TLSPolicyError, TimeoutError, OSError)):
        asyncio.run(_run(server_ctx, client_ctx, standard))


def test_iso20_refuses_tls12(pki_dir):
    sctx = tls.iso20_server_context(tls.credentials_from_pki(pki_dir, "secc"))
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
    cctx.maximum_version = ssl.TLSVersion.TLSv1_2
    creds = tls.credentials_from_pki(pki_dir, "evcc")
    cctx.load_cert_chain(str(creds.chain), str(creds.key))
    _expect_refusal(sctx, cctx)


def test_iso20_refuses_a_cipher_suite_outside_the_standard(pki_dir):
    sctx = tls.iso20_server_context(tls.credentials_from_pki(pki_dir, "secc"))
    cctx = tls.iso20_client_context(tls.credentials_from_pki(pki_dir, "evcc"))
    assert tls._libssl().SSL_CTX_set_ciphersuites(tls._ssl_ctx_ptr(cctx), b"TLS_AES_128_GCM_SHA256") == 1
    _expect_refusal(sctx, cctx)


def test_iso20_requires_the_vehicle_certificate(pki_dir):
    sctx = tls.iso20_server_context(tls.credentials_from_pki(pki_dir, "secc"))
    creds = tls.credentials_from_pki(pki_dir, "evcc")
    cctx = tls.iso20_client_context(tls.Credentials(None, None, creds.trust))
    _expect_refusal(sctx, cctx)


def test_iso20_client_refuses_an_untrusted_charger(pki_dir, other_pki):
    sctx = tls.iso20_server_context(tls.credentials_from_pki(other_pki, "secc"))
    cctx = tls.iso20_client_context(tls.credentials_from_pki(pki_dir, "evcc"))
    _expect_refusal(sctx, cctx)


def test_iso20_tls_port_refuses_plain_tcp(pki_dir):
    sctx = tls.iso20_server_context(tls.credentials_from_pki(pki_dir, "secc"))

    async def go():
        server = await serve(Echo, "127.0.0.1", 0, ssl=sctx, standard="iso20")
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(encode_frame(PayloadType.EXI, SAP_REQ))  # a -20 offer without TLS
            await writer.drain()
            data = await asyncio.wait_for(reader.read(1000), 5)
            writer.close()
            return data
        finally:
            server.close()
            await server.wait_closed()

    data = asyncio.run(go())
    assert not data.startswith(b"\x01\xfe")  # never a V2GTP answer: TLS alert or nothing, then close


def test_iso2_tls12_server_authentication(pki_dir):
    sctx = tls.iso2_server_context(tls.credentials_from_pki(pki_dir, "secc", "iso2-secp256r1"))
    cctx = tls.iso2_client_context(tls.credentials_from_pki(pki_dir, "evcc", "iso2-secp256r1"))
    version, cipher, group, answer, info = asyncio.run(_run(sctx, cctx, "iso2"))
    assert (version, cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-SHA256")
    assert group == "prime256v1"
    assert info.peer_certificate is None  # -2: the EV is not authenticated by TLS


def test_malformed_v2gtp_closes_the_connection(pki_dir):
    async def go():
        server = await serve(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(bytes.fromhex("02fd800100000001ff"))
            await writer.drain()
            data = await asyncio.wait_for(reader.read(100), 5)
            writer.close()
            return data
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(go()) == b""

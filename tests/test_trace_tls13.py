"""TLS 1.3 decryption of a capture with a key log (v2h.trace.tls13), against OpenSSL: a real
-20 handshake between the charger's and the car's TLS contexts over memory BIOs, the bytes each
side wrote fed to the decoder with the key log OpenSSL wrote."""

from __future__ import annotations

import ctypes
import ssl

import pytest
from cryptography.hazmat.primitives import hashes

from iso15118.aio import tls
from v2h.trace.tls13 import (
    KeyLogError,
    TLSConnection,
    TLSStreamError,
    hkdf_expand_label,
    parse_keylog,
    records,
)

SSL_OP_NO_ENCRYPT_THEN_MAC = 1 << 19  # OpenSSL's option; Python's ssl has no name for it
CAR = [b"\x01\xfe\x80\x01\x00\x00\x00\x03abc", b"a second message from the car", b"x" * 40000]
CHARGER = [b"\x01\xfe\x80\x01\x00\x00\x00\x02ok", b"and one more from the charger"]


def test_hkdf_expand_label_matches_rfc_8448():
    """RFC 8448 §3, the server's handshake traffic key and IV (TLS_AES_128_GCM_SHA256)."""
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label(secret, "key", b"", 16, hashes.SHA256).hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert hkdf_expand_label(secret, "iv", b"", 12, hashes.SHA256).hex() == "5d313eb2671276ee13000b30"


def _ssl_ptr(obj: ssl.SSLObject) -> int:
    sslsock = obj._sslobj  # the SSL* follows PyObject_HEAD and the socket (as tls.negotiated_group reads it)
    return ctypes.c_void_p.from_address(id(sslsock) + 3 * ctypes.sizeof(ctypes.c_void_p)).value


def _session(v2g_pki, tmp_path, suite: str | None = None, key_update: bool = False, iso2: bool = False,
             etm: bool = True):
    """A -20 TLS 1.3 session (``iso2``: a -2 TLS 1.2 session; ``etm``: encrypt-then-MAC
    allowed) over memory BIOs: [(side, bytes written)], and the key log text."""
    keylog = tmp_path / "keys.log"
    if iso2:
        server_ctx = tls.iso2_server_context(tls.credentials_from_pki(v2g_pki, "secc", "iso2-secp256r1"))
        client_ctx = tls.iso2_client_context(tls.credentials_from_pki(v2g_pki, "evcc", "iso2-secp256r1"))
        if not etm:
            client_ctx.options |= SSL_OP_NO_ENCRYPT_THEN_MAC
    else:
        server_ctx = tls.iso20_server_context(tls.credentials_from_pki(v2g_pki, "secc"))
        client_ctx = tls.iso20_client_context(tls.credentials_from_pki(v2g_pki, "evcc"))
    for ctx in (server_ctx, client_ctx):
        tls.enable_keylog(ctx, keylog)
    if suite is not None:
        lib = tls._libssl()
        assert lib.SSL_CTX_set_ciphersuites(tls._ssl_ctx_ptr(client_ctx), suite.encode()) == 1
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    wire: list[tuple[str, bytes]] = []

    def pump() -> None:
        for side, src, dst in (("client", c_out, s_in), ("server", s_out, c_in)):
            data = src.read()
            if data:
                wire.append((side, data))
                dst.write(data)

    def step(obj) -> bool:
        try:
            obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False
    done = [False, False]
    for _ in range(20):
        done = [step(client), step(server)]
        pump()
        if all(done):
            break
    assert all(done)
    assert client.cipher()[0] == (suite or ("ECDHE-ECDSA-AES128-SHA256" if iso2 else "TLS_AES_256_GCM_SHA384"))
    got_server, got_client = [], []
    for i, msg in enumerate(CAR):
        if key_update and i == 1:
            lib = tls._libssl()
            lib.SSL_key_update.argtypes = [ctypes.c_void_p, ctypes.c_int]
            assert lib.SSL_key_update(_ssl_ptr(client), 0) == 1  # SSL_KEY_UPDATE_NOT_REQUESTED
        client.write(msg)
        pump()
        while True:
            try:
                got_server.append(server.read(65536))
            except ssl.SSLWantReadError:
                break
    for msg in CHARGER:
        server.write(msg)
        pump()
        got_client.append(client.read(65536))
    assert b"".join(got_server) == b"".join(CAR) and got_client == CHARGER
    return wire, keylog.read_text()


def _decrypt(wire, keylog, *, chunk: int | None = None):
    conn = TLSConnection(keylog)
    out = {"client": b"", "server": b""}
    for side, data in wire:
        pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
        for piece in pieces:
            out[side] += b"".join(conn.feed(side, piece))
    return conn, out


@pytest.mark.parametrize("suite", [None, "TLS_CHACHA20_POLY1305_SHA256"])
def test_a_real_iso20_session_decrypts_with_its_key_log(v2g_pki, tmp_path, suite):
    wire, keylog = _session(v2g_pki, tmp_path, suite)
    conn, out = _decrypt(wire, parse_keylog(keylog))
    assert out == {"client": b"".join(CAR), "server": b"".join(CHARGER)}, conn.problems
    assert conn.version == "TLSv1.3" and conn.suite.name == (suite or "TLS_AES_256_GCM_SHA384")
    assert conn.problems == []


@pytest.mark.parametrize("etm", [True, False], ids=["encrypt-then-mac", "mac-then-encrypt"])
def test_a_real_iso2_tls12_session_decrypts_with_its_key_log(v2g_pki, tmp_path, etm):
    """ISO 15118-2's TLS 1.2 (ECDHE-ECDSA-AES128-SHA256): the master secret of the key log's
    CLIENT_RANDOM line, CBC records with their HMAC checked either way round."""
    wire, keylog = _session(v2g_pki, tmp_path, iso2=True, etm=etm)
    assert "CLIENT_RANDOM " in keylog
    conn, out = _decrypt(wire, parse_keylog(keylog))
    assert out == {"client": b"".join(CAR), "server": b"".join(CHARGER)}, conn.problems
    assert conn.version == "TLSv1.2" and conn.suite_name == "ECDHE-ECDSA-AES128-SHA256"
    assert (0x0016 in conn.hello.extensions) == etm
    _, chunked = _decrypt(wire, parse_keylog(keylog), chunk=5)
    assert chunked == out
    side, data = wire[-1]
    wire[-1] = (side, data[:-40] + bytes([data[-40] ^ 1]) + data[-39:])
    conn, out = _decrypt(wire, parse_keylog(keylog))
    assert out["server"] == b"".join(CHARGER[:-1])
    assert any("did not decrypt" in p for p in conn.problems), conn.problems


def test_records_split_anywhere_decrypt_the_same(v2g_pki, tmp_path):
    wire, keylog = _session(v2g_pki, tmp_path)
    _, out = _decrypt(wire, parse_keylog(keylog), chunk=7)
    assert out == {"client": b"".join(CAR), "server": b"".join(CHARGER)}


def test_the_application_secrets_alone_are_enough(v2g_pki, tmp_path):
    """Without the handshake secrets the encrypted handshake is skipped: the first record that
    opens under the application key at sequence 0 starts the application data."""
    wire, keylog = _session(v2g_pki, tmp_path)
    only_app = "\n".join(line for line in keylog.splitlines() if "_TRAFFIC_SECRET_0" in line)
    conn, out = _decrypt(wire, parse_keylog(only_app))
    assert out == {"client": b"".join(CAR), "server": b"".join(CHARGER)}, conn.problems


def test_a_key_update_is_followed(v2g_pki, tmp_path):
    wire, keylog = _session(v2g_pki, tmp_path, key_update=True)
    conn, out = _decrypt(wire, parse_keylog(keylog))
    assert out["client"] == b"".join(CAR), conn.problems


def test_without_the_secrets_nothing_is_decrypted_and_it_says_why(v2g_pki, tmp_path):
    wire, _ = _session(v2g_pki, tmp_path)
    conn, out = _decrypt(wire, None)
    assert out == {"client": b"", "server": b""}
    assert conn.problems == ["no key log given (--keylog FILE)"]
    assert conn.skipped_handshake_records("client") >= len(CAR) and conn.suite.name == "TLS_AES_256_GCM_SHA384"
    (tmp_path / "other").mkdir()
    _, another_sessions_keylog = _session(v2g_pki, tmp_path / "other")
    conn, out = _decrypt(wire, parse_keylog(another_sessions_keylog))
    assert out == {"client": b"", "server": b""}
    assert "the key log has no secrets for this connection" in conn.problems[0]


def test_a_tampered_record_is_reported_never_passed_on(v2g_pki, tmp_path):
    wire, keylog = _session(v2g_pki, tmp_path)
    side, data = wire[-1]  # the charger's last application record
    wire[-1] = (side, data[:-1] + bytes([data[-1] ^ 1]))
    conn, out = _decrypt(wire, parse_keylog(keylog))
    assert out["server"] == b"".join(CHARGER[:-1])
    assert any("did not decrypt" in p for p in conn.problems), conn.problems


def test_a_stream_that_is_not_tls_is_refused():
    with pytest.raises(TLSStreamError):
        records(b"GET / HTTP/1.1\r\n\r\n")
    conn = TLSConnection(None)
    assert conn.feed("client", b"\x01\xfe\x80\x01\x00\x00\x00\x00") == [] and conn.broken


@pytest.mark.parametrize("text,needle", [
    ("CLIENT_TRAFFIC_SECRET_0 abcd", "want LABEL CLIENT_RANDOM SECRET"),
    ("CLIENT_TRAFFIC_SECRET_0 zz 00", "must be hex"),
    ("CLIENT_TRAFFIC_SECRET_0 00 00", "not 32"),
])
def test_a_malformed_key_log_names_the_line(text, needle):
    with pytest.raises(KeyLogError, match=needle):
        parse_keylog("# comment\n\n" + text)

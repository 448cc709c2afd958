"""TLS record streams out of a capture, and TLS 1.3 decryption with a key log (pure: bytes in,
bytes out; no sockets, no clock).

RFC 8446 §7: each direction of a connection has its own traffic secrets; the key log
(SSLKEYLOGFILE, what ``v2h secc/evcc/charger --keylog`` and browsers write) names them per
ClientHello random: ``CLIENT_HANDSHAKE_TRAFFIC_SECRET``, ``SERVER_HANDSHAKE_TRAFFIC_SECRET``
(the encrypted handshake) and ``CLIENT_TRAFFIC_SECRET_0``, ``SERVER_TRAFFIC_SECRET_0`` (the
application data). From a secret:

    key = HKDF-Expand-Label(secret, "key", "", key_length)
    iv  = HKDF-Expand-Label(secret, "iv",  "", 12)
    HKDF-Expand-Label(S, L, C, n) = HKDF-Expand(S, uint16 n ‖ uint8 len ‖ "tls13 " L ‖ uint8 len ‖ C, n)

and each record is sealed with the AEAD of the cipher suite, nonce = iv XOR the record's
sequence number (64 bits, left-padded), additional data = the 5-byte record header. The
plaintext is TLSInnerPlaintext: content ‖ content type ‖ zero padding. A KeyUpdate moves a
direction to ``HKDF-Expand-Label(secret, "traffic upd", "", hash_length)``, sequence 0.

The records sealed with the handshake keys are told from the application's by the Finished
message inside them; without the handshake secrets, the application key is tried on each
record until one opens (sequence 0) — a record that does not open under it cannot be one of
its records.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET, FINISHED, KEY_UPDATE = 1, 2, 4, 20, 24
MAX_RECORD = 2**14 + 256  # TLSCiphertext.length limit
# ServerHello.random of a HelloRetryRequest (RFC 8446 §4.1.3)
HELLO_RETRY_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


@dataclass(frozen=True)
class CipherSuite:
    name: str
    key_length: int
    hash: type
    aead: type


CIPHER_SUITES = {
    0x1301: CipherSuite("TLS_AES_128_GCM_SHA256", 16, hashes.SHA256, AESGCM),
    0x1302: CipherSuite("TLS_AES_256_GCM_SHA384", 32, hashes.SHA384, AESGCM),
    0x1303: CipherSuite("TLS_CHACHA20_POLY1305_SHA256", 32, hashes.SHA256, ChaCha20Poly1305),
}


class TLSStreamError(Exception):
    """Bytes that are not a TLS record stream."""


class KeyLogError(ValueError):
    """A key log line that cannot be read."""


def parse_keylog(text: str) -> dict[bytes, dict[str, bytes]]:
    """NSS key log text → {client random: {label: secret}}. Comments and blank lines are
    skipped; a malformed line raises KeyLogError naming it."""
    out: dict[bytes, dict[str, bytes]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise KeyLogError(f"key log line {n}: want LABEL CLIENT_RANDOM SECRET, got {len(parts)} fields")
        label, random_hex, secret_hex = parts
        try:
            random, secret = bytes.fromhex(random_hex), bytes.fromhex(secret_hex)
        except ValueError:
            raise KeyLogError(f"key log line {n}: the client random and the secret must be hex") from None
        if len(random) != 32:
            raise KeyLogError(f"key log line {n}: the client random is {len(random)} bytes, not 32")
        out.setdefault(random, {})[label] = secret
    return out


def hkdf_expand_label(secret: bytes, label: str, context: bytes, length: int, hash_cls: type) -> bytes:
    full = b"tls13 " + label.encode()
    info = struct.pack(">HB", length, len(full)) + full + struct.pack(">B", len(context)) + context
    return HKDFExpand(algorithm=hash_cls(), length=length, info=info).derive(secret)


class TrafficKeys:
    """One direction's keys from one traffic secret, with its record sequence number."""

    def __init__(self, secret: bytes, suite: CipherSuite):
        self.secret = secret
        self.suite = suite
        self.key = hkdf_expand_label(secret, "key", b"", suite.key_length, suite.hash)
        self.iv = hkdf_expand_label(secret, "iv", b"", 12, suite.hash)
        self.aead = suite.aead(self.key)
        self.seq = 0

    def open(self, header: bytes, ciphertext: bytes, seq: int | None = None) -> tuple[int, bytes]:
        """(inner content type, content) of a record; InvalidTag when it is not ours."""
        n = self.seq if seq is None else seq
        nonce = bytes(a ^ b for a, b in zip(self.iv, n.to_bytes(12, "big")))
        inner = self.aead.decrypt(nonce, ciphertext, header)
        end = len(inner)
        while end and inner[end - 1] == 0:
            end -= 1
        if not end:
            raise TLSStreamError("a TLS 1.3 record with no content type")
        self.seq = n + 1
        return inner[end - 1], inner[:end - 1]

    def updated(self) -> TrafficKeys:
        """The next generation after a KeyUpdate."""
        nxt = hkdf_expand_label(self.secret, "traffic upd", b"", self.suite.hash.digest_size, self.suite.hash)
        return TrafficKeys(nxt, self.suite)


def records(data: bytes) -> tuple[list[tuple[int, bytes, bytes]], int]:
    """Complete TLS records at the start of ``data``: ([(type, header, fragment)], bytes used).
    TLSStreamError when the bytes are no record stream."""
    out, pos = [], 0
    while len(data) - pos >= 5:
        ctype, major, minor, length = data[pos], data[pos + 1], data[pos + 2], int.from_bytes(data[pos + 3:pos + 5],
                                                                                              "big")
        if ctype not in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA) or major != 3 or minor > 4 \
                or length > MAX_RECORD:
            raise TLSStreamError(f"not a TLS record at byte {pos}: {data[pos:pos + 5].hex()}")
        if len(data) - pos - 5 < length:
            break
        out.append((ctype, data[pos:pos + 5], data[pos + 5:pos + 5 + length]))
        pos += 5 + length
    return out, pos


def handshake_messages(buf: bytearray) -> list[tuple[int, bytes]]:
    """Complete handshake messages at the start of ``buf`` (consumed): [(type, body)]."""
    out = []
    while len(buf) >= 4:
        length = int.from_bytes(buf[1:4], "big")
        if len(buf) < 4 + length:
            break
        out.append((buf[0], bytes(buf[4:4 + length])))
        del buf[:4 + length]
    return out


def client_random(client_hello: bytes) -> bytes:
    """The 32-byte random of a ClientHello body."""
    if len(client_hello) < 34:
        raise TLSStreamError("ClientHello too short")
    return client_hello[2:34]


@dataclass(frozen=True)
class ServerHello:
    random: bytes
    cipher_suite: int
    version: int  # 0x0304 for TLS 1.3 (supported_versions), else the legacy version

    @property
    def retry(self) -> bool:
        return self.random == HELLO_RETRY_RANDOM


def server_hello(body: bytes) -> ServerHello:
    """The fields of a ServerHello body that decryption needs."""
    try:
        legacy = int.from_bytes(body[0:2], "big")
        random = body[2:34]
        sid_len = body[34]
        pos = 35 + sid_len
        suite = int.from_bytes(body[pos:pos + 2], "big")
        pos += 3  # cipher suite, legacy compression method
        version = legacy
        if pos + 2 <= len(body):
            end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
            pos += 2
            while pos + 4 <= end:
                ext, n = int.from_bytes(body[pos:pos + 2], "big"), int.from_bytes(body[pos + 2:pos + 4], "big")
                if ext == 0x002B and n == 2:  # supported_versions
                    version = int.from_bytes(body[pos + 4:pos + 6], "big")
                pos += 4 + n
    except IndexError:
        raise TLSStreamError("ServerHello too short") from None
    if len(random) != 32:
        raise TLSStreamError("ServerHello too short")
    return ServerHello(random, suite, version)


@dataclass
class Direction:
    """One direction of a TLS connection being decrypted."""

    handshake_keys: TrafficKeys | None = None
    app_keys: TrafficKeys | None = None
    application: bool = False        # past this side's Finished (or an application record opened)
    handshake_buf: bytearray = field(default_factory=bytearray)
    undecrypted: int = 0             # encrypted records that could not be opened
    alerts: list[str] = field(default_factory=list)


class TLSConnection:
    """Follows both directions of one TLS connection: ``feed(side, data)`` with side 'client'
    or 'server' returns the application data that this piece completes, decrypted when the
    key log holds the connection's secrets. What could not be decrypted is counted and said in
    ``problems``."""

    def __init__(self, keylog: dict[bytes, dict[str, bytes]] | None):
        self.keylog = keylog
        self.buf = {"client": bytearray(), "server": bytearray()}
        self.dir = {"client": Direction(), "server": Direction()}
        self.client_random: bytes | None = None
        self.hello: ServerHello | None = None
        self.suite: CipherSuite | None = None
        self.problems: list[str] = []
        self.broken = False
        self.app_records = {"client": 0, "server": 0}

    @property
    def version(self) -> str:
        if self.hello is None:
            return "TLS"
        return "TLSv1.3" if self.hello.version == 0x0304 else f"TLS {self.hello.version:#06x}"

    @property
    def decryptable(self) -> bool:
        return self.suite is not None and any(d.app_keys is not None for d in self.dir.values())

    def feed(self, side: str, data: bytes) -> list[bytes]:
        if self.broken:
            return []
        buf = self.buf[side]
        buf += data
        try:
            recs, used = records(bytes(buf))
        except TLSStreamError as e:
            self.broken = True
            self.problems.append(f"{side}: {e}")
            return []
        del buf[:used]
        out = []
        for ctype, header, fragment in recs:
            out += self._record(side, ctype, header, fragment)
        return out

    def _record(self, side: str, ctype: int, header: bytes, fragment: bytes) -> list[bytes]:
        d = self.dir[side]
        if ctype == CHANGE_CIPHER_SPEC:
            return []  # middlebox compatibility: not encrypted, not counted
        if ctype == HANDSHAKE and self.suite is None:
            d.handshake_buf += fragment
            for mtype, body in handshake_messages(d.handshake_buf):
                self._plain_handshake(side, mtype, body)
            return []
        if ctype == ALERT and self.suite is None:
            d.alerts.append(fragment.hex())
            return []
        if ctype != APPLICATION_DATA:
            if self.hello is not None and self.hello.version != 0x0304:
                return []
            d.undecrypted += 1
            return []
        if self.hello is not None and self.hello.version != 0x0304:
            self.app_records[side] += 1
            d.undecrypted += 1
            return []
        if self.suite is None or (d.handshake_keys is None and d.app_keys is None):
            d.undecrypted += 1
            return []
        return self._encrypted(side, d, header, fragment)

    def _plain_handshake(self, side: str, mtype: int, body: bytes) -> None:
        if side == "client" and mtype == CLIENT_HELLO and self.client_random is None:
            self.client_random = client_random(body)
        elif side == "server" and mtype == SERVER_HELLO:
            hello = server_hello(body)
            if hello.retry:
                return  # a HelloRetryRequest: the next ServerHello counts
            self.hello = hello
            if hello.version != 0x0304:
                self.problems.append(f"{self.version}: only TLS 1.3 is decrypted")
                return
            suite = CIPHER_SUITES.get(hello.cipher_suite)
            if suite is None:
                self.problems.append(f"cipher suite {hello.cipher_suite:#06x} is not one this decoder knows")
                return
            self.suite = suite
            self._keys()

    def _keys(self) -> None:
        if self.keylog is None:
            self.problems.append("no key log given (--keylog FILE)")
            return
        secrets = self.keylog.get(self.client_random or b"")
        if secrets is None:
            rnd = self.client_random.hex()[:16] + "…" if self.client_random else "(no ClientHello captured)"
            self.problems.append(f"the key log has no secrets for this connection (client random {rnd})")
            return
        for side, prefix in (("client", "CLIENT"), ("server", "SERVER")):
            hs, app = secrets.get(f"{prefix}_HANDSHAKE_TRAFFIC_SECRET"), secrets.get(f"{prefix}_TRAFFIC_SECRET_0")
            if hs is not None:
                self.dir[side].handshake_keys = TrafficKeys(hs, self.suite)
            if app is not None:
                self.dir[side].app_keys = TrafficKeys(app, self.suite)
        if not any(d.app_keys for d in self.dir.values()):
            self.problems.append("the key log has this connection's handshake secrets but no *_TRAFFIC_SECRET_0")

    def _encrypted(self, side: str, d: Direction, header: bytes, fragment: bytes) -> list[bytes]:
        if not d.application:
            if d.handshake_keys is not None:
                try:
                    ctype, content = d.handshake_keys.open(header, fragment)
                except InvalidTag:
                    ctype = None
                if ctype is not None:
                    if ctype == HANDSHAKE:
                        d.handshake_buf += content
                        if any(m == FINISHED for m, _ in handshake_messages(d.handshake_buf)):
                            d.application = True
                    return []
            if d.app_keys is None:
                d.undecrypted += 1
                return []
            try:  # no handshake key, or it did not open: is this the first application record?
                ctype, content = d.app_keys.open(header, fragment, seq=0)
            except InvalidTag:
                d.undecrypted += 1 if d.handshake_keys is not None else 0
                return []
            d.application = True
            d.handshake_buf.clear()
            return self._application(side, d, ctype, content)
        if d.app_keys is None:
            d.undecrypted += 1
            return []
        try:
            ctype, content = d.app_keys.open(header, fragment)
        except InvalidTag:
            d.undecrypted += 1
            self.problems.append(f"{side}: a record did not decrypt (sequence {d.app_keys.seq}); the rest of this "
                                 "direction is lost")
            d.app_keys = None
            return []
        return self._application(side, d, ctype, content)

    def _application(self, side: str, d: Direction, ctype: int, content: bytes) -> list[bytes]:
        if ctype == APPLICATION_DATA:
            self.app_records[side] += 1
            return [content]
        if ctype == HANDSHAKE:
            d.handshake_buf += content
            for mtype, _ in handshake_messages(d.handshake_buf):
                if mtype == KEY_UPDATE and d.app_keys is not None:
                    d.app_keys = d.app_keys.updated()
        elif ctype == ALERT:
            d.alerts.append(content.hex())
        return []

    def skipped_handshake_records(self, side: str) -> int:
        return self.dir[side].undecrypted

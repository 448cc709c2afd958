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

TLS 1.2 (ISO 15118-2: TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256) is decrypted too, from the key
log's ``CLIENT_RANDOM`` line (the master secret), RFC 5246 §6.3: key_block = P_SHA256(master,
"key expansion" ‖ server random ‖ client random) → client MAC key, server MAC key, client key,
server key; after each side's ChangeCipherSpec its records are IV ‖ AES-CBC(content ‖ MAC ‖
padding), or with encrypt-then-MAC (RFC 7366, when the ServerHello carries it) IV ‖
AES-CBC(content ‖ padding) ‖ MAC, the MAC an HMAC-SHA256 over sequence ‖ type ‖ version ‖
length ‖ data, checked before anything is passed on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
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
# TLS 1.2 CBC suites with HMAC-SHA256 (ISO 15118-2 mandates the first): name, key length
TLS12_CBC_SUITES = {
    0xC023: ("ECDHE-ECDSA-AES128-SHA256", 16),
    0xC027: ("ECDHE-RSA-AES128-SHA256", 16),
}
ENCRYPT_THEN_MAC = 0x0016


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


def prf_sha256(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """The TLS 1.2 PRF with SHA-256 (RFC 5246 §5): P_SHA256(secret, label ‖ seed)."""
    def mac(data: bytes) -> bytes:
        h = hmac.HMAC(secret, hashes.SHA256())
        h.update(data)
        return h.finalize()
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = mac(a)
        out += mac(a + seed)
    return out[:length]


class TLS12Keys:
    """One direction of a TLS 1.2 CBC-HMAC-SHA256 connection after its ChangeCipherSpec."""

    def __init__(self, mac_key: bytes, key: bytes, etm: bool):
        self.mac_key, self.key, self.etm = mac_key, key, etm
        self.seq = 0

    def _mac(self, ctype: int, data: bytes) -> bytes:
        h = hmac.HMAC(self.mac_key, hashes.SHA256())
        h.update(self.seq.to_bytes(8, "big") + bytes([ctype, 3, 3]) + len(data).to_bytes(2, "big") + data)
        return h.finalize()

    def _cbc(self, iv: bytes, data: bytes) -> bytes:
        if not data or len(data) % 16:
            raise InvalidTag
        d = Cipher(algorithms.AES(self.key), modes.CBC(iv)).decryptor()
        return d.update(data) + d.finalize()

    @staticmethod
    def _unpad(plain: bytes) -> bytes:
        pad = plain[-1]
        if pad + 1 > len(plain) or plain[-1 - pad:] != bytes([pad]) * (pad + 1):
            raise InvalidTag
        return plain[:-1 - pad]

    def open(self, ctype: int, fragment: bytes) -> bytes:
        """The content of a record; InvalidTag when its padding or MAC is wrong."""
        if len(fragment) < 16 + 32:
            raise InvalidTag
        if self.etm:
            body, tag = fragment[:-32], fragment[-32:]
            if not _equal(self._mac(ctype, body), tag):
                raise InvalidTag
            content = self._unpad(self._cbc(body[:16], body[16:]))
        else:
            plain = self._unpad(self._cbc(fragment[:16], fragment[16:]))
            if len(plain) < 32:
                raise InvalidTag
            content, tag = plain[:-32], plain[-32:]
            if not _equal(self._mac(ctype, content), tag):
                raise InvalidTag
        self.seq += 1
        return content


def _equal(a: bytes, b: bytes) -> bool:
    import hmac as std_hmac

    return std_hmac.compare_digest(a, b)


@dataclass(frozen=True)
class ServerHello:
    random: bytes
    cipher_suite: int
    version: int  # 0x0304 for TLS 1.3 (supported_versions), else the legacy version
    extensions: frozenset = frozenset()

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
        extensions = set()
        if pos + 2 <= len(body):
            end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
            pos += 2
            while pos + 4 <= end:
                ext, n = int.from_bytes(body[pos:pos + 2], "big"), int.from_bytes(body[pos + 2:pos + 4], "big")
                extensions.add(ext)
                if ext == 0x002B and n == 2:  # supported_versions
                    version = int.from_bytes(body[pos + 4:pos + 6], "big")
                pos += 4 + n
    except IndexError:
        raise TLSStreamError("ServerHello too short") from None
    if len(random) != 32:
        raise TLSStreamError("ServerHello too short")
    return ServerHello(random, suite, version, frozenset(extensions))


@dataclass
class Direction:
    """One direction of a TLS connection being decrypted."""

    handshake_keys: TrafficKeys | None = None
    app_keys: TrafficKeys | None = None
    tls12_keys: TLS12Keys | None = None
    changed_cipher: bool = False     # TLS 1.2: past this side's ChangeCipherSpec
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
        self.tls12_suite: str | None = None     # the TLS 1.2 CBC suite being decrypted
        self.problems: list[str] = []
        self.broken = False
        self.app_records = {"client": 0, "server": 0}

    @property
    def version(self) -> str:
        if self.hello is None:
            return "TLS"
        return {0x0304: "TLSv1.3", 0x0303: "TLSv1.2"}.get(self.hello.version, f"TLS {self.hello.version:#06x}")

    @property
    def suite_name(self) -> str:
        if self.suite is not None:
            return self.suite.name
        if self.tls12_suite is not None:
            return self.tls12_suite
        return f"cipher suite {self.hello.cipher_suite:#06x}" if self.hello is not None else ""

    @property
    def decryptable(self) -> bool:
        return any(d.app_keys is not None or d.tls12_keys is not None for d in self.dir.values())

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
        if self.hello is not None and self.hello.version == 0x0303:
            return self._record12(side, d, ctype, fragment)
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
            if hello.version == 0x0303:
                self._keys12()
                return
            if hello.version != 0x0304:
                self.problems.append(f"{self.version}: only TLS 1.3 and 1.2 are decrypted")
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

    def _keys12(self) -> None:
        hello = self.hello
        suite = TLS12_CBC_SUITES.get(hello.cipher_suite)
        if suite is None:
            self.problems.append(f"TLS 1.2 cipher suite {hello.cipher_suite:#06x} is not one this decoder knows "
                                 "(the CBC-SHA256 suites of ISO 15118-2 are)")
            return
        self.tls12_suite = suite[0]
        if self.keylog is None:
            self.problems.append("no key log given (--keylog FILE)")
            return
        master = self.keylog.get(self.client_random or b"", {}).get("CLIENT_RANDOM")
        if master is None:
            rnd = self.client_random.hex()[:16] + "…" if self.client_random else "(no ClientHello captured)"
            self.problems.append(f"the key log has no secrets for this connection (client random {rnd})")
            return
        n = suite[1]
        block = prf_sha256(master, b"key expansion", hello.random + self.client_random, 2 * 32 + 2 * n)
        etm = ENCRYPT_THEN_MAC in hello.extensions
        self.dir["client"].tls12_keys = TLS12Keys(block[:32], block[64:64 + n], etm)
        self.dir["server"].tls12_keys = TLS12Keys(block[32:64], block[64 + n:64 + 2 * n], etm)

    def _record12(self, side: str, d: Direction, ctype: int, fragment: bytes) -> list[bytes]:
        if ctype == CHANGE_CIPHER_SPEC:
            d.changed_cipher = True
            return []
        if not d.changed_cipher:
            if ctype == HANDSHAKE:  # the rest of the plain handshake (certificates, key exchange)
                d.handshake_buf += fragment
                handshake_messages(d.handshake_buf)
            return []
        if d.tls12_keys is None:
            d.undecrypted += 1
            if ctype == APPLICATION_DATA:
                self.app_records[side] += 1
            return []
        try:
            content = d.tls12_keys.open(ctype, fragment)
        except InvalidTag:
            d.undecrypted += 1
            self.problems.append(f"{side}: a record did not decrypt (sequence {d.tls12_keys.seq}); the rest of this "
                                 "direction is lost")
            d.tls12_keys = None
            return []
        if ctype == APPLICATION_DATA:
            self.app_records[side] += 1
            return [content]
        if ctype == ALERT:
            d.alerts.append(content.hex())
        return []

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

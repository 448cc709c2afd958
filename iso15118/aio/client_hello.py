"""Which TLS versions a car's ClientHello offers, read before the handshake starts.

One charger port serves ISO 15118-20 (TLS 1.3, mutual authentication, the -20 certificates) and
ISO 15118-2 (TLS 1.2, server authentication, the -2 certificates). OpenSSL holds one ECDSA
certificate per context, and Python's ``ssl`` shows nothing of the ClientHello before it picks
one, so the listener reads the first handshake message itself and chooses the context: a car
offering TLS 1.3 (the supported_versions extension, RFC 8446 4.2.1) speaks -20, one offering
TLS 1.2 at most speaks -2. Pure parsing, no I/O; the size read is capped.
"""

from __future__ import annotations

HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
SUPPORTED_VERSIONS = 0x002B
TLS12, TLS13 = 0x0303, 0x0304
MAX_HELLO = 16384   # bytes of ClientHello read at most
MAX_RECORD = 16384 + 2048  # a TLS record's length at most (RFC 8446 5.2)
MAX_BUFFER = MAX_HELLO + 64 * 5  # what a caller buffers at most while the answer is None


def offered_versions(data: bytes) -> frozenset[int] | None:
    """The versions offered by the ClientHello at the start of ``data``: None while more bytes
    are needed (the caller caps how many it buffers, ``MAX_BUFFER``); an empty set when ``data``
    is not a ClientHello (not TLS, malformed, longer than ``MAX_HELLO``)."""
    body = bytearray()
    pos = 0
    while True:
        if len(body) >= 4:
            if body[0] != CLIENT_HELLO:
                return frozenset()
            need = 4 + int.from_bytes(body[1:4], "big")
            if need > MAX_HELLO:
                return frozenset()
            if len(body) >= need:
                return _versions(bytes(body[4:need]))
        if len(data) - pos < 5:
            return None
        if data[pos] != HANDSHAKE or data[pos + 1] != 0x03:
            return frozenset()
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        if length == 0 or length > MAX_RECORD:
            return frozenset()
        if len(data) < pos + 5 + length:  # a partial record: a wrong handshake type fails early
            return frozenset() if len(body) == 0 and data[pos + 5:pos + 6] not in (b"", bytes([CLIENT_HELLO])) \
                else None
        body += data[pos + 5:pos + 5 + length]
        pos += 5 + length


def _versions(hello: bytes) -> frozenset[int]:
    try:
        legacy = int.from_bytes(hello[0:2], "big")
        p = 34                                       # legacy_version, random
        p += 1 + hello[p]                            # session id
        p += 2 + int.from_bytes(hello[p:p + 2], "big")  # cipher suites
        p += 1 + hello[p]                            # compression methods
        if p + 2 > len(hello):
            return frozenset({legacy})               # no extensions: TLS 1.2 or older
        end = p + 2 + int.from_bytes(hello[p:p + 2], "big")
        p += 2
        while p + 4 <= min(end, len(hello)):
            kind, size = int.from_bytes(hello[p:p + 2], "big"), int.from_bytes(hello[p + 2:p + 4], "big")
            if kind == SUPPORTED_VERSIONS and size >= 1:
                n = hello[p + 4]
                raw = hello[p + 5:p + 5 + n]
                return frozenset(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw) - 1, 2))
            p += 4 + size
        return frozenset({legacy})
    except IndexError:
        return frozenset()

"""V2G Transfer Protocol framing, sans-I/O (ISO 15118-2 §7.8.3, ISO 15118-20 §7.8).

Header, 8 bytes: version 0x01, inverse version 0xFE, payload type (u16, big-endian), payload
length (u32, big-endian). ``V2GTPDecoder`` takes bytes as they arrive and hands out complete
frames; the header is validated before anything is buffered for the payload, and the length is
capped, so a peer cannot make us allocate by announcing a huge payload. Any header error is
fatal: the decoder closes and the adapter must close the connection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

HEADER = struct.Struct(">BBHI")
HEADER_LEN = HEADER.size
VERSION = 0x01
INVERSE_VERSION = 0xFE
DEFAULT_MAX_PAYLOAD = 64 * 1024


class PayloadType(IntEnum):
    """V2GTP payload types (the payload type table of ISO 15118-20 V2GTP, which also lists -2's 0x8001; docs/transport.md)."""

    EXI = 0x8001                      # SupportedAppProtocol, ISO 15118-2, DIN 70121
    ISO20_COMMON = 0x8002             # ISO 15118-20 CommonMessages
    ISO20_AC = 0x8003
    ISO20_DC = 0x8004
    ISO20_ACDP = 0x8005
    ISO20_WPT = 0x8006
    SCHEDULE_RENEGOTIATION = 0x8101   # -20 side channels
    METERING_CONFIRMATION = 0x8102
    ACDP_SYSTEM_STATUS = 0x8103
    PARKING_STATUS = 0x8104
    SDP_REQUEST = 0x9000
    SDP_RESPONSE = 0x9001


#: the EXI schema of each message payload type
SCHEMA_OF = {
    PayloadType.ISO20_COMMON: "iso20_cm",
    PayloadType.ISO20_AC: "iso20_ac",
    PayloadType.ISO20_DC: "iso20_dc",
    PayloadType.ISO20_ACDP: "iso20_acdp",
    PayloadType.ISO20_WPT: "iso20_wpt",
}
PAYLOAD_TYPE_OF_SCHEMA = {v: k for k, v in SCHEMA_OF.items()}
_PAYLOAD_TYPES = {int(p): p for p in PayloadType}  # the header's u16 → its member (no Enum call per frame)


class V2GTPError(Exception):
    """A malformed V2GTP stream; the connection must be closed."""


class BadVersionError(V2GTPError):
    """Protocol version or inverse version byte wrong."""


class UnknownPayloadTypeError(V2GTPError):
    """A payload type this implementation does not know."""


class PayloadTooLongError(V2GTPError):
    """The announced payload length exceeds the configured cap."""


class DecoderClosedError(V2GTPError):
    """Data arrived after a fatal error closed the decoder."""


@dataclass(frozen=True, slots=True)
class V2GTPFrame:
    payload_type: PayloadType
    payload: bytes

    def to_bytes(self) -> bytes:
        return encode_frame(self.payload_type, self.payload)


def encode_frame(payload_type: int, payload: bytes) -> bytes:
    """Header + payload."""
    pt = payload_type if payload_type.__class__ is PayloadType else PayloadType(payload_type)
    if len(payload) > 0xFFFFFFFF:
        raise PayloadTooLongError(f"payload of {len(payload)} bytes does not fit V2GTP")
    return HEADER.pack(VERSION, INVERSE_VERSION, pt, len(payload)) + bytes(payload)


def parse_header(header: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> tuple[PayloadType, int]:
    """Validate an 8-byte header; return (payload type, payload length)."""
    version, inverse, ptype, length = HEADER.unpack(header)
    if version != VERSION or inverse != INVERSE_VERSION:
        raise BadVersionError(f"V2GTP version {version:#04x}/{inverse:#04x}, expected 0x01/0xfe")
    pt = _PAYLOAD_TYPES.get(ptype)
    if pt is None:
        raise UnknownPayloadTypeError(f"unknown V2GTP payload type {ptype:#06x}")
    if length > max_payload:
        raise PayloadTooLongError(f"payload length {length} exceeds the limit of {max_payload} bytes")
    return pt, length


class V2GTPDecoder:
    """Bytes in, frames out. ``receive_data`` buffers; ``next_frame`` returns a complete frame or
    None (a partial frame waits for more data). Errors are raised once and close the decoder."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD):
        if max_payload < 0:
            raise ValueError("max_payload must not be negative")
        self.max_payload = max_payload
        self._buf = bytearray()
        self._pending: tuple[PayloadType, int] | None = None  # parsed header awaiting its payload
        self.closed = False

    def receive_data(self, data: bytes) -> None:
        if self.closed:
            raise DecoderClosedError("the V2GTP stream was closed after an error")
        self._buf += data

    def next_frame(self) -> V2GTPFrame | None:
        if self.closed:
            raise DecoderClosedError("the V2GTP stream was closed after an error")
        if self._pending is None:
            if len(self._buf) < HEADER_LEN:
                return None
            try:
                self._pending = parse_header(bytes(self._buf[:HEADER_LEN]), self.max_payload)
            except V2GTPError:
                self.closed = True
                self._buf.clear()
                raise
            del self._buf[:HEADER_LEN]
        ptype, length = self._pending
        if len(self._buf) < length:
            return None
        payload = bytes(self._buf[:length])
        del self._buf[:length]
        self._pending = None
        return V2GTPFrame(ptype, payload)

    def frames(self) -> list[V2GTPFrame]:
        """Every complete frame buffered so far."""
        out = []
        while (f := self.next_frame()) is not None:
            out.append(f)
        return out

    @property
    def buffered(self) -> int:
        """Bytes held (a partial payload never exceeds the cap)."""
        return len(self._buf)

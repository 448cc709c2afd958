"""SECC Discovery Protocol, sans-I/O (ISO 15118-2 §7.10.1, ISO 15118-20 §7.10.1).

The EV multicasts an SDP request (2 bytes: security, transport) in a V2GTP frame to ff02::1 on
UDP port 15118 and repeats it every 250 ms, up to 50 times; the charger answers with its IPv6
address and TCP port (20 bytes). These classes only turn datagrams into decisions and back;
``iso15118.aio.sdp`` moves them over UDP. Time is passed in.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum

from iso15118.v2gtp import HEADER_LEN, PayloadType, V2GTPError, encode_frame, parse_header

SDP_PORT = 15118
MULTICAST_ADDRESS = "ff02::1"
RETRY_INTERVAL = 0.25
MAX_REQUESTS = 50
SECC_PORT_MIN, SECC_PORT_MAX = 49152, 65535


class Security(IntEnum):
    TLS = 0x00
    NONE = 0x10


class Transport(IntEnum):
    TCP = 0x00
    UDP = 0x10


class SDPError(Exception):
    """A datagram that is not a valid SDP message."""


@dataclass(frozen=True)
class SDPRequest:
    security: Security
    transport: Transport = Transport.TCP

    def to_datagram(self) -> bytes:
        return encode_frame(PayloadType.SDP_REQUEST, bytes([self.security, self.transport]))

    @classmethod
    def from_datagram(cls, data: bytes) -> SDPRequest:
        payload = _payload(data, PayloadType.SDP_REQUEST, 2)
        try:
            return cls(Security(payload[0]), Transport(payload[1]))
        except ValueError:
            raise SDPError(f"unknown security/transport {payload.hex()}") from None


@dataclass(frozen=True)
class SDPResponse:
    address: ipaddress.IPv6Address
    port: int
    security: Security
    transport: Transport = Transport.TCP

    def to_datagram(self) -> bytes:
        return encode_frame(PayloadType.SDP_RESPONSE, self.address.packed + self.port.to_bytes(2, "big")
                            + bytes([self.security, self.transport]))

    @classmethod
    def from_datagram(cls, data: bytes) -> SDPResponse:
        payload = _payload(data, PayloadType.SDP_RESPONSE, 20)
        port = int.from_bytes(payload[16:18], "big")
        if not SECC_PORT_MIN <= port <= SECC_PORT_MAX:
            raise SDPError(f"SECC port {port} outside {SECC_PORT_MIN}-{SECC_PORT_MAX}")
        try:
            return cls(ipaddress.IPv6Address(payload[:16]), port, Security(payload[18]), Transport(payload[19]))
        except ValueError:
            raise SDPError(f"unknown security/transport {payload[18:].hex()}") from None


def _payload(data: bytes, expected: PayloadType, length: int) -> bytes:
    if len(data) != HEADER_LEN + length:
        raise SDPError(f"SDP datagram of {len(data)} bytes, expected {HEADER_LEN + length}")
    try:
        ptype, n = parse_header(data[:HEADER_LEN])
    except V2GTPError as e:
        raise SDPError(str(e)) from None
    if ptype != expected or n != length:
        raise SDPError(f"payload type {ptype:#06x} length {n}, expected {expected:#06x} length {length}")
    return data[HEADER_LEN:]


class SDPServer:
    """The charger: answers requests with the listeners that are up. TLS is advertised only
    while the TLS listener is listening (``tls_port`` set); an EV asking for TLS when only plain
    TCP is up gets the TCP port with security NONE; with no listener there is no answer."""

    def __init__(self, address: ipaddress.IPv6Address | str):
        self.address = ipaddress.IPv6Address(address)
        self.tls_port: int | None = None
        self.tcp_port: int | None = None
        self.requests = 0
        self.rejected = 0

    def on_datagram(self, data: bytes) -> bytes | None:
        try:
            req = SDPRequest.from_datagram(data)
        except SDPError:
            self.rejected += 1
            return None
        self.requests += 1
        if req.transport != Transport.TCP:
            return None
        if self.tls_port is not None and (req.security == Security.TLS or self.tcp_port is None):
            return SDPResponse(self.address, self.tls_port, Security.TLS).to_datagram()
        if self.tcp_port is not None:
            return SDPResponse(self.address, self.tcp_port, Security.NONE).to_datagram()
        return None


class SDPClient:
    """The EV: sends a request now and every 250 ms until a valid response or 50 requests."""

    def __init__(self, security: Security = Security.TLS, *, interval: float = RETRY_INTERVAL,
                 max_requests: int = MAX_REQUESTS, accept_without_tls: bool = False):
        self.request = SDPRequest(security)
        self.interval = interval
        self.max_requests = max_requests
        self.accept_without_tls = accept_without_tls
        self.sent = 0
        self._next: float | None = None
        self.response: SDPResponse | None = None
        self.failed = False

    def start(self, now: float) -> bytes:
        self._next = now
        return self.poll(now)

    def next_deadline(self) -> float | None:
        return None if self.done else self._next

    @property
    def done(self) -> bool:
        return self.response is not None or self.failed

    def poll(self, now: float) -> bytes | None:
        """The request to send if one is due; gives up after the last retry's interval."""
        if self.done or self._next is None or now < self._next:
            return None
        if self.sent >= self.max_requests:
            self.failed = True
            return None
        self.sent += 1
        self._next = now + self.interval
        return self.request.to_datagram()

    def on_datagram(self, data: bytes, now: float) -> SDPResponse | None:
        try:
            resp = SDPResponse.from_datagram(data)
        except SDPError:
            return None
        if self.request.security == Security.TLS and resp.security != Security.TLS and not self.accept_without_tls:
            return None  # we asked for TLS: a plain offer is not acceptable (Plug & Charge needs TLS)
        self.response = resp
        return resp

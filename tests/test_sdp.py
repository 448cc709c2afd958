"""SDP messages and the retry logic, sans-I/O (time is passed in)."""

from __future__ import annotations

import ipaddress

import pytest

from iso15118.sdp import (MAX_REQUESTS, SDPClient, SDPError, SDPRequest, SDPResponse, SDPServer, Security,
                          Transport)
from iso15118.v2gtp import PayloadType, encode_frame

LL = ipaddress.IPv6Address("fe80::1")


def test_request_and_response_layout():
    assert SDPRequest(Security.TLS).to_datagram() == bytes.fromhex("01fe9000000000020000")
    resp = SDPResponse(LL, 50000, Security.TLS)
    data = resp.to_datagram()
    assert data[:8] == bytes.fromhex("01fe900100000014") and len(data) == 28
    assert data[8:24] == LL.packed and data[24:26] == (50000).to_bytes(2, "big") and data[26:] == b"\x00\x00"
    assert SDPResponse.from_datagram(data) == resp


@pytest.mark.parametrize("data", [
    b"", b"\x01\xfe", encode_frame(PayloadType.SDP_REQUEST, b"\x00"), encode_frame(PayloadType.SDP_REQUEST, b"\x20\x00"),
    encode_frame(PayloadType.EXI, b"\x00\x00"), bytes.fromhex("02fd9000000000020000"),
    encode_frame(PayloadType.SDP_RESPONSE, bytes(20)),  # port 0 outside the dynamic range
])
def test_invalid_datagrams_are_refused(data):
    with pytest.raises(SDPError):
        (SDPResponse if len(data) > 20 else SDPRequest).from_datagram(data)
    server = SDPServer(LL)
    server.tls_port = 50000
    assert server.on_datagram(data) is None


def test_tls_is_advertised_only_once_the_tls_listener_is_up():
    server = SDPServer(LL)
    req = SDPRequest(Security.TLS).to_datagram()
    assert server.on_datagram(req) is None  # nothing listening yet
    server.tcp_port = 50001
    assert SDPResponse.from_datagram(server.on_datagram(req)) == SDPResponse(LL, 50001, Security.NONE)
    server.tls_port = 50000
    assert SDPResponse.from_datagram(server.on_datagram(req)) == SDPResponse(LL, 50000, Security.TLS)
    plain = SDPRequest(Security.NONE).to_datagram()
    assert SDPResponse.from_datagram(server.on_datagram(plain)).security == Security.NONE
    assert server.on_datagram(SDPRequest(Security.TLS, Transport.UDP).to_datagram()) is None


def test_client_retries_every_250_ms_up_to_50_times():
    client = SDPClient(Security.TLS)
    t = 100.0
    sent = [client.start(t)]
    while not client.done:
        t = client.next_deadline()
        out = client.poll(t)
        if out is not None:
            sent.append(out)
    assert len(sent) == MAX_REQUESTS and client.failed
    assert t == pytest.approx(100.0 + 0.25 * MAX_REQUESTS)
    assert client.poll(t + 10) is None


def test_client_takes_the_first_acceptable_answer():
    client = SDPClient(Security.TLS)
    client.start(0.0)
    assert client.on_datagram(b"junk", 0.1) is None
    assert client.on_datagram(SDPResponse(LL, 50001, Security.NONE).to_datagram(), 0.1) is None  # asked for TLS
    resp = client.on_datagram(SDPResponse(LL, 50000, Security.TLS).to_datagram(), 0.2)
    assert resp.port == 50000 and client.done and client.next_deadline() is None

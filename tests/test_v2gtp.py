"""V2GTP framing: header validation before allocation, capped lengths, partial frames."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iso15118.v2gtp import (BadVersionError, DecoderClosedError, PayloadTooLongError, PayloadType,
                            UnknownPayloadTypeError, V2GTPDecoder, V2GTPFrame, encode_frame)

SAP_REQ = bytes.fromhex("8000dbab9371d3234b71d1b981899189d191818991d1bc8a63c9a58000000000000010000400")


def test_header_layout():
    data = encode_frame(PayloadType.ISO20_DC, b"\x80\x01")
    assert data == bytes.fromhex("01fe8004000000028001")


@pytest.mark.parametrize("ptype", list(PayloadType))
def test_every_payload_type_round_trips(ptype):
    d = V2GTPDecoder()
    d.receive_data(encode_frame(ptype, b"abc"))
    assert d.next_frame() == V2GTPFrame(ptype, b"abc")
    assert d.next_frame() is None


@given(payloads=st.lists(st.tuples(st.sampled_from(list(PayloadType)), st.binary(max_size=300)), max_size=6),
       cuts=st.lists(st.integers(0, 4000), max_size=10))
def test_any_split_of_a_stream_gives_the_same_frames(payloads, cuts):
    stream = b"".join(encode_frame(t, p) for t, p in payloads)
    d = V2GTPDecoder()
    got = []
    prev = 0
    for c in sorted(set(min(c, len(stream)) for c in cuts)) + [len(stream)]:
        d.receive_data(stream[prev:c])
        prev = c
        got += d.frames()
    assert got == [V2GTPFrame(t, p) for t, p in payloads]
    assert d.buffered == 0


@pytest.mark.parametrize("header,error", [
    (bytes.fromhex("02fd800100000001"), BadVersionError),
    (bytes.fromhex("01fd800100000001"), BadVersionError),
    (bytes.fromhex("01fe700000000001"), UnknownPayloadTypeError),
    (bytes.fromhex("01fe8001ffffffff"), PayloadTooLongError),
    (bytes.fromhex("01fe800100010001"), PayloadTooLongError),  # 65,537 > 64 KiB
])
def test_bad_headers_close_the_decoder(header, error):
    d = V2GTPDecoder()
    d.receive_data(header)
    with pytest.raises(error):
        d.next_frame()
    assert d.closed and d.buffered == 0
    with pytest.raises(DecoderClosedError):
        d.receive_data(b"\x00")


def test_partial_header_and_partial_payload_wait():
    frame = encode_frame(PayloadType.EXI, SAP_REQ)
    d = V2GTPDecoder()
    d.receive_data(frame[:5])
    assert d.next_frame() is None
    d.receive_data(frame[5:12])
    assert d.next_frame() is None
    d.receive_data(frame[12:])
    assert d.next_frame().payload == SAP_REQ


def test_length_cap_is_configurable_and_checked_before_buffering():
    d = V2GTPDecoder(max_payload=16)
    d.receive_data(encode_frame(PayloadType.EXI, b"x" * 16))
    assert d.next_frame().payload == b"x" * 16
    d.receive_data(bytes.fromhex("01fe800100000011"))  # 17 bytes announced, nothing sent yet
    with pytest.raises(PayloadTooLongError):
        d.next_frame()

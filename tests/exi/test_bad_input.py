"""Decoding is total: any byte string gives a valid message or an ExiDecodeError, nothing else."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iso15118 import exi
from tests.conftest import ALL_VECTORS

SCHEMAS = list(exi.SCHEMAS)


def decode_or_typed_error(data: bytes, schema: str):
    try:
        msg = exi.decode(data, schema)
    except exi.ExiDecodeError as e:
        assert str(e)  # says where and why
        assert e.bit_offset is None or 0 <= e.bit_offset <= max(8 * len(data), 8) + 64
        return None
    # a successful decode is a valid message: it re-encodes without error
    exi.encode(msg, schema)
    return msg


@pytest.mark.parametrize("schema", SCHEMAS)
def test_empty_and_one_byte_inputs(schema):
    with pytest.raises(exi.ExiTruncatedError):
        exi.decode(b"", schema)
    for b in range(256):
        with pytest.raises(exi.ExiDecodeError):
            exi.decode(bytes([b]), schema)


def test_wrong_header_is_a_header_error():
    with pytest.raises(exi.ExiHeaderError):
        exi.decode(b"$EXI\x80\x00", "iso20_cm")
    with pytest.raises(exi.ExiHeaderError):
        exi.decode(b"\xa0\x00\x00", "iso20_cm")


def test_non_bytes_input_is_a_decode_error():
    with pytest.raises(exi.ExiDecodeError):
        exi.decode("80", "iso20_cm")  # type: ignore[arg-type]


@pytest.mark.parametrize("vector", ALL_VECTORS[:9] + ALL_VECTORS[9::7], ids=lambda v: v["name"])
def test_every_truncation_fails_cleanly(vector):
    """A stream cut anywhere is a truncation — it used to be an ExiValueError ('negative shift
    count', at a stale offset) when the cut fell inside an unsigned integer."""
    data = bytes.fromhex(vector["exi_hex"])
    for n in range(len(data)):
        with pytest.raises(exi.ExiTruncatedError):
            exi.decode(data[:n], vector["namespace"])


def test_trailing_bytes_are_rejected():
    v = ALL_VECTORS[0]
    with pytest.raises(exi.ExiValueError, match="trailing"):
        exi.decode(bytes.fromhex(v["exi_hex"]) + b"\x00", v["namespace"])


@pytest.mark.parametrize("vector", ALL_VECTORS[::5], ids=lambda v: v["name"])
def test_bit_flips_never_escape(vector):
    data = bytearray.fromhex(vector["exi_hex"])
    rnd = random.Random(vector["name"])
    for _ in range(40):
        mutated = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(8, 8 * len(mutated))
            mutated[i // 8] ^= 0x80 >> (i % 8)
        decode_or_typed_error(bytes(mutated), vector["namespace"])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(schema=st.sampled_from(SCHEMAS), tail=st.binary(max_size=200))
def test_random_bytes_after_a_valid_header(schema, tail):
    decode_or_typed_error(b"\x80" + tail, schema)


def test_declared_length_beyond_input_fails_before_allocating():
    # supportedAppProtocolReq, AppProtocol, ProtocolNamespace claiming 2**40 characters
    # header | DocContent SE(Req)=0 (2 bits) | SE(AppProtocol)=0 | SE(ProtocolNamespace)=0 | CH=0
    bits = "10000000" + "00" + "0" + "0" + "0"
    n = 2**40 + 2
    groups = []
    while True:
        g = n & 0x7F
        n >>= 7
        groups.append(g | (0x80 if n else 0))
        if not n:
            break
    bits += "".join(f"{g:08b}" for g in groups)
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    with pytest.raises(exi.ExiDecodeError, match="maxLength|past the end"):
        exi.decode(data, "apphand")


def test_overlong_unsigned_integer_is_rejected():
    # AppProtocol VersionNumberMajor (xs:unsignedInt) with 6 continuation groups
    from iso15118.exi._pyrt import r_uint
    data = b"\xff" * 6 + b"\x01"
    with pytest.raises(exi.ExiValueError):
        r_uint(int.from_bytes(data, "big"), 8 * len(data), 0, 32)

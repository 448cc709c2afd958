"""Long inputs cost time in proportion to their size, on both backends, and fail the same way.

The pure-Python codec holds the stream as one int (decoding) and accumulates into one int
(encoding); done naively every event costs time in proportion to what came before, so 60,000
empty xmldsig KeyName elements (61 KB) took 0.9 s to decode — and the same bytes cut by one byte
too, with the C extension active, because the C decoder handed every bad stream back to the pure
codec. These tests pin the fix without timing anything: the work per event is bounded (counted),
the long-input forms give the same results as the plain ones, and the C decoder answers a bad
long stream itself, with the pure codec's error.
"""

from __future__ import annotations

import random
import sys

import pytest

from iso15118 import exi
from iso15118.exi import _backend, _pycodec, _pyrt
from tests.conftest import ALL_VECTORS, load_vectors

SINGLE_BACKEND = True  # these tests call the backends directly
cext = _backend._built
needs_cext = pytest.mark.skipif(cext is None, reason="the C extension is not built")

CM = "iso20_cm"
FLOOD = 60_000


def keyname_flood(n: int):
    """A -20 SessionSetupReq whose header signature carries ``n`` empty KeyName elements
    (a repeated choice of xmldsig KeyInfo, one byte each)."""
    m = exi.messages(CM)
    v = next(v for v in ALL_VECTORS if v["name"] == "SessionSetupReq")
    base = _pycodec.decode_document(m, bytes.fromhex(v["exi_hex"]))
    sig = m.Signature(
        SignedInfo=m.SignedInfo(CanonicalizationMethod=m.CanonicalizationMethod(Algorithm="c"),
                                SignatureMethod=m.SignatureMethod(Algorithm="s"),
                                Reference=[m.Reference(DigestMethod=m.DigestMethod(Algorithm="d"),
                                                       DigestValue=b"\x00" * 64)]),
        SignatureValue=m.SignatureValue(value=b"\x00" * 132), KeyInfo=m.KeyInfo(KeyName=[""] * n))
    header = type(base.Header)(SessionID=base.Header.SessionID, TimeStamp=base.Header.TimeStamp,
                               Signature=sig)
    return type(base)(Header=header, EVCCID=base.EVCCID)


@pytest.fixture(scope="module")
def flood():
    msg = keyname_flood(FLOOD)
    data = _pycodec.encode_document(exi.messages(CM), msg)
    assert len(data) > FLOOD
    return msg, data


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except exi.ExiDecodeError as e:
        return (type(e).__name__, e.bit_offset, e.path, e.reason)


def pure_document(schema, raw):
    return outcome(_pycodec.decode_document, exi.messages(schema), raw)


def pure_fragment(schema, raw):
    return outcome(_pycodec.decode_fragment, exi.messages(schema), raw)


# --- the security finding: both backends, the flood and the flood cut short ----------------------

def test_the_flood_round_trips_on_the_pure_codec(flood):
    msg, data = flood
    assert _pycodec.decode_document(exi.messages(CM), data) == msg


@needs_cext
def test_the_c_decoder_reads_the_flood_and_answers_the_cut_flood_itself(flood):
    msg, data = flood
    u = cext.universe(exi.messages(CM))
    assert cext.decode_document(u, data) == msg
    assert cext.encode_document(u, msg, None) == data
    cut = data[:-1]
    pure = outcome(lambda: _pycodec.decode_document(exi.messages(CM), cut))
    assert pure[0] == "ExiTruncatedError"
    # the C decoder raises the typed error itself (no Fallback, no second decode in Python) ...
    fast = outcome(lambda: cext.decode_document(u, cut))
    # ... and it is the pure codec's: class, bit offset, path and reason
    assert fast == pure


@needs_cext
@pytest.mark.parametrize("where", [0.25, 0.5, 0.999])
def test_a_bad_event_deep_in_the_flood_is_answered_by_the_c_decoder(flood, where):
    _msg, data = flood
    raw = bytearray(data)
    i = int(len(raw) * where)
    raw[i] ^= 0xFF  # KeyName event codes become escapes or invalid codes
    raw = bytes(raw)
    pure = outcome(lambda: _pycodec.decode_document(exi.messages(CM), raw))
    assert pure[0] != "ok"
    assert outcome(lambda: cext.decode_document(cext.universe(exi.messages(CM)), raw)) == pure


# --- work counted, not timed ------------------------------------------------------------------------

class CountingStream(_pyrt.LongStream):
    """Counts the reads and the size of every int a read builds (the cost of a read)."""

    reads = 0
    widest = 0

    def __rshift__(self, k):
        v = super().__rshift__(k)
        CountingStream.reads += 1
        CountingStream.widest = max(CountingStream.widest, v.bit_length(), self.hi - self.lo)
        return v


def decode_work(monkeypatch, n: int) -> tuple[int, int]:
    data = _pycodec.encode_document(exi.messages(CM), keyname_flood(n))
    CountingStream.reads = CountingStream.widest = 0
    monkeypatch.setattr(_pycodec, "stream", lambda d: (CountingStream(d), 8 * len(d)))
    _pycodec.decode_document(exi.messages(CM), data)
    with pytest.raises(exi.ExiTruncatedError):
        _pycodec.decode_document(exi.messages(CM), data[:-1])
    return CountingStream.reads, CountingStream.widest


def test_pure_decoder_work_grows_linearly(monkeypatch):
    """Each read builds an int of bounded size, and the number of reads is proportional to the
    input: 4x the elements, 4x the reads, and no read wider than the window."""
    reads1, widest1 = decode_work(monkeypatch, 2_000)
    reads4, widest4 = decode_work(monkeypatch, 8_000)
    assert 3.5 * reads1 < reads4 < 4.5 * reads1
    bound = 8 * _pyrt.LongStream.WINDOW + _pyrt.MAX_READ_BITS
    assert widest1 <= bound and widest4 <= bound


class CountingAccumulator(_pyrt.LongAccumulator):
    """Counts the writes and the widest int a write touches (the cost of a write)."""

    writes = 0
    widest = 0

    def __lshift__(self, n):
        CountingAccumulator.writes += 1
        out = super().__lshift__(n)
        CountingAccumulator.widest = max(CountingAccumulator.widest, self.tail.bit_length())
        return out


def encode_work(monkeypatch, n: int) -> tuple[int, int]:
    msg = keyname_flood(n)
    CountingAccumulator.writes = CountingAccumulator.widest = 0
    for name, mod in list(sys.modules.items()):
        if name.startswith("iso15118.exi.generated.") and hasattr(mod, "_LongAccumulator"):
            monkeypatch.setattr(mod, "_LongAccumulator", CountingAccumulator)
            monkeypatch.setattr(mod, "_LONG_OUTPUT_BITS", 0)  # count every write of the flood
    data = _pycodec.encode_document(exi.messages(CM), msg)
    assert _pycodec.decode_document(exi.messages(CM), data) == msg
    return CountingAccumulator.writes, CountingAccumulator.widest


def test_pure_encoder_work_grows_linearly(monkeypatch):
    writes1, widest1 = encode_work(monkeypatch, 2_000)
    writes4, widest4 = encode_work(monkeypatch, 8_000)
    assert 3.5 * writes1 < writes4 < 4.5 * writes1
    assert widest1 <= 1024 + 64 and widest4 <= 1024 + 64


# --- the long-input forms behave exactly like the plain ones -----------------------------------

SAMPLE = ALL_VECTORS[:9] + ALL_VECTORS[9::5]  # the reference vectors and a fifth of the public ones


def _mutations(data: bytes, rnd: random.Random, k: int) -> list[bytes]:
    cuts = range(len(data) + 1) if len(data) <= 60 else sorted(rnd.sample(range(len(data) + 1), 60))
    out = [data[:n] for n in cuts] + [data + b"\x00"]
    for _ in range(k):
        m = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(8, 8 * len(m))
            m[i // 8] ^= 0x80 >> (i % 8)
        out.append(bytes(m))
    return out


def test_long_stream_decodes_like_the_plain_int(monkeypatch):
    """Every vector, truncation and a few bit flips: decoded through a LongStream (forced for
    every size) and through the plain int, the same messages and the same errors."""
    rnd = random.Random(1)
    cases = []
    for v in SAMPLE:
        for raw in _mutations(bytes.fromhex(v["exi_hex"]), rnd, 10):
            cases.append((v["namespace"], raw))
    plain = [pure_document(s, raw) for s, raw in cases]
    monkeypatch.setattr(_pyrt, "LONG_INPUT_BYTES", 0)
    assert _pycodec.stream(b"\x80")[0].__class__ is _pyrt.LongStream
    long_ = [pure_document(s, raw) for s, raw in cases]
    assert long_ == plain


def test_long_stream_decodes_fragments_like_the_plain_int(monkeypatch):
    frags = [(v["schema"], bytes.fromhex(v["exi_hex"])) for v in load_vectors("fragments.json")]
    plain = [pure_fragment(s, raw) for s, raw in frags]
    monkeypatch.setattr(_pyrt, "LONG_INPUT_BYTES", 0)
    assert [pure_fragment(s, raw) for s, raw in frags] == plain


def test_long_accumulator_encodes_like_the_plain_int(monkeypatch):
    """Every vector's message, encoded with the accumulator switched to its long form at the
    first opportunity: the vector's bytes."""
    msgs = [(v, _pycodec.decode_document(exi.messages(v["namespace"]), bytes.fromhex(v["exi_hex"])))
            for v in ALL_VECTORS]
    monkeypatch.setattr(_pyrt, "LONG_OUTPUT_BITS", 0)
    for name, mod in list(sys.modules.items()):
        if name.startswith("iso15118.exi.generated.") and hasattr(mod, "_LONG_OUTPUT_BITS"):
            monkeypatch.setattr(mod, "_LONG_OUTPUT_BITS", 0)
    for v, msg in msgs:
        assert _pycodec.encode_document(exi.messages(v["namespace"]), msg).hex() == v["exi_hex"], v["name"]


def test_long_accumulator_keeps_every_bit():
    a = 1
    for i in range(3000):  # odd widths, so whole bytes and a tail move at every flush
        a = (a << (i % 13 + 1)) | (i % (1 << (i % 13 + 1)))
    expected = _pyrt.finish(a)
    b = 1
    for i in range(40):
        b = (b << (i % 13 + 1)) | (i % (1 << (i % 13 + 1)))
    b = _pyrt.LongAccumulator(b)
    for i in range(40, 3000):
        b = (b << (i % 13 + 1)) | (i % (1 << (i % 13 + 1)))
    assert _pyrt.finish(b) == expected
    assert _pyrt.as_int(b) == a


# --- the same class of bug, elsewhere ------------------------------------------------------------

@pytest.mark.parametrize("backend_name", ["python", "cython"])
def test_unbounded_integers_encode_only_what_decodes(backend_name, monkeypatch):
    """xs:integer without bounds is read up to 1024 bits (whole 7-bit groups: magnitudes below
    2**1029); the encoder used to write bigger ones that no decoder would read back."""
    if backend_name == "cython" and cext is None:
        pytest.skip("the C extension is not built")
    monkeypatch.setattr(_backend, "cext", cext if backend_name == "cython" else None)
    m = exi.messages("xmldsig")

    def key_info(serial):
        return m.KeyInfo(X509Data=[m.X509Data(X509IssuerSerial=[
            m.X509IssuerSerial(X509IssuerName="CN=x", X509SerialNumber=serial)])])

    for serial in (2**64, -(2**64), 2**1029 - 1, -(2**1029)):
        msg = key_info(serial)
        assert exi.decode(exi.encode(msg, "xmldsig"), "xmldsig") == msg
    for serial in (2**1029, -(2**1029) - 1):
        with pytest.raises(exi.ExiEncodeError, match="X509SerialNumber"):
            exi.encode(key_info(serial), "xmldsig")

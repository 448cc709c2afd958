"""The C extension and the pure-Python codec behave identically.

The C decoder answers every stream of a complex-typed document element itself — the message or
the typed error — and the encoder answers for valid messages, handing everything else to the
pure-Python codec. These tests drive the C path directly and check that wherever it answers, it
answers exactly like the pure-Python codec (errors: same class, bit offset, path and reason) —
on random messages of every schema, on every truncation and random mutation of the vectors, on
random bytes — and that it does answer for the messages a charger exchanges.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iso15118 import exi
from iso15118.exi import _backend, _pycodec
from tests.conftest import ALL_VECTORS
from tests.exi.strategies import SKIP_CLASSES, document_classes, messages

SINGLE_BACKEND = True  # these tests call both backends directly
cext = _backend._built
needs_cext = pytest.mark.skipif(cext is None, reason="the C extension is not built")


def test_the_extension_is_built_where_required():
    """CI sets V2H_REQUIRE_CEXT=1: a build that silently fell back to pure Python fails here."""
    if os.environ.get("V2H_REQUIRE_CEXT") == "1":
        assert cext is not None, "iso15118.exi._cexi did not build"
        assert exi.IMPLEMENTATION == "cython"


@needs_cext
def test_the_extension_is_built_from_the_current_source():
    """setup.py records the sha256 of ext/_cexi.pyx in the module: a build from another version
    of the source (edited since, not rebuilt) would test old code."""
    import hashlib
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "ext" / "_cexi.pyx"
    assert cext.SOURCE_SHA256 == hashlib.sha256(source.read_bytes()).hexdigest(), (
        "iso15118.exi._cexi is stale: rebuild it (pip install -e .)")


def test_pure_python_can_be_forced(tmp_path):
    import subprocess
    import sys
    env = dict(os.environ, V2H_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", "from iso15118 import exi; print(exi.IMPLEMENTATION)"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "python"


ROOTS = [(s, n, c) for s in exi.SCHEMAS for n, c in document_classes(exi.messages(s))
         if c.__name__ not in SKIP_CLASSES]


def fast_encode(schema, msg, name):
    mod = exi.messages(schema)
    try:
        return cext.encode_document(cext.universe(mod), msg, None)
    except (cext.Fallback, TypeError):
        return None


def fast_decode(schema, data):
    try:
        return cext.decode_document(cext.universe(exi.messages(schema)), data)
    except cext.Fallback:
        return None


def _outcome(fn):
    """A decode's answer in comparable form: ('ok', message) or the error's every part."""
    try:
        return ("ok", fn())
    except exi.ExiDecodeError as e:
        return (type(e).__name__, e.bit_offset, e.path, e.reason)


def fast_outcome(schema, data):
    """The C decoder's answer, or None where it hands over (documents of simple type)."""
    try:
        return _outcome(lambda: cext.decode_document(cext.universe(exi.messages(schema)), data))
    except cext.Fallback:
        mod = exi.messages(schema)
        code = (int.from_bytes(data[:2], "big") >> (8 - mod.DOC_NBITS)) & ((1 << mod.DOC_NBITS) - 1)
        assert len(data) >= 2 and data[0] == 0x80 and mod.GLOBAL_ELEMENTS[code][2] is exi.SimpleElement, (
            "the C decoder handed over a stream it should answer")
        return None


def pure_outcome(schema, data):
    return _outcome(lambda: _pycodec.decode_document(exi.messages(schema), data))


@needs_cext
@pytest.mark.parametrize("vector", ALL_VECTORS, ids=[v["name"] for v in ALL_VECTORS])
def test_fast_path_on_the_vectors(vector):
    data = bytes.fromhex(vector["exi_hex"])
    schema = vector["namespace"]
    py = _pycodec.decode_document(exi.messages(schema), data)
    fast = fast_decode(schema, data)
    if not isinstance(py, exi.SimpleElement):
        assert fast is not None, vector["name"]  # the C decoder reads every complex type
    if fast is not None:
        assert fast == py
    enc = fast_encode(schema, py, None)
    if enc is not None:
        assert enc == data
    if not _outside_fast_path(py):
        # everything without >64-bit integers or general-grammar xmldsig types takes the fast
        # path both ways (that is what the benchmarks measure)
        assert fast is not None and enc is not None, vector["name"]


def _outside_fast_path(msg) -> bool:
    """Values the C encoder hands over: integers beyond 64 bits, xmldsig general grammars."""
    spec = type(msg)._exi
    if type(msg).__name__ in ("PGPData", "SPKIData", "DSAKeyValue"):
        return True
    for f in spec.fields:
        v = getattr(msg, f.name)
        for x in (v if f.is_list else [v]) if v is not None else []:
            if f.cls is not None:
                if _outside_fast_path(x):
                    return True
            elif isinstance(x, int) and not isinstance(x, bool) and not -(2**63) <= x < 2**64:
                return True
    return False


@needs_cext
@pytest.mark.parametrize("schema,name,cls", ROOTS, ids=[f"{s}.{n}" for s, n, _ in ROOTS])
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_messages_same_bytes_and_objects(schema, name, cls, data):
    msg = data.draw(messages(cls))
    mod = exi.messages(schema)
    try:
        expected = _pycodec.encode_document(mod, msg, name)
    except Exception:  # the pure codec refuses it: the fast path must not accept it
        assert fast_encode(schema, msg, name) is None
        return
    enc = fast_encode(schema, msg, name)
    if enc is not None:
        assert enc == expected
    dec = fast_decode(schema, expected)
    if dec is not None:
        assert dec == _pycodec.decode_document(mod, expected) == msg


@needs_cext
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(schema=st.sampled_from(list(exi.SCHEMAS)), tail=st.binary(max_size=120))
def test_random_bytes_same_answer(schema, tail):
    data = b"\x80" + tail
    fast = fast_outcome(schema, data)
    if fast is not None:
        assert fast == pure_outcome(schema, data)


@needs_cext
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_vectors_same_answer(data):
    v = data.draw(st.sampled_from(ALL_VECTORS))
    raw = bytearray.fromhex(v["exi_hex"])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(8, 8 * len(raw) - 1))
        raw[i // 8] ^= 0x80 >> (i % 8)
    raw = bytes(raw)
    fast = fast_outcome(v["namespace"], raw)
    if fast is not None:
        assert fast == pure_outcome(v["namespace"], raw)


@needs_cext
@pytest.mark.parametrize("vector", ALL_VECTORS, ids=[v["name"] for v in ALL_VECTORS])
def test_every_truncation_and_extension_same_answer(vector):
    data = bytes.fromhex(vector["exi_hex"])
    cases = [data[:n] for n in range(len(data))] + [data + b"\x00", data + b"\xff" * 9]
    for raw in cases:
        fast = fast_outcome(vector["namespace"], raw)
        if fast is not None:
            assert fast == pure_outcome(vector["namespace"], raw), raw.hex()


@needs_cext
def test_the_c_decoder_answers_errors_itself():
    """A bad stream is not decoded a second time in Python: the C decoder raises the error."""
    v = next(v for v in ALL_VECTORS if v["name"] == "DC_ChargeLoopReq_scheduled_full")
    data = bytes.fromhex(v["exi_hex"])
    u = cext.universe(exi.messages(v["namespace"]))
    for raw in (b"", b"\x81", b"\x80\xff", data[:-3], data + b"\x00"):
        with pytest.raises(exi.ExiDecodeError):
            cext.decode_document(u, raw)


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 // 1024


@needs_cext
def test_fast_path_does_not_leak():
    """Encoding and decoding, valid and invalid input, many times: resident memory stays flat
    (the C path frees its buffers on every exit, errors included)."""
    v = next(v for v in ALL_VECTORS if v["name"] == "DC_ChargeLoopReq_scheduled_full")
    data = bytes.fromhex(v["exi_hex"])
    u = cext.universe(exi.messages(v["namespace"]))
    msg = cext.decode_document(u, data)
    bad = [data[:n] for n in range(1, len(data))] + [data[:-1] + b"\xff\xff"]

    def churn(n):
        for _ in range(n):
            cext.encode_document(u, msg, None)
            cext.decode_document(u, data)
            for b in bad:
                try:
                    cext.decode_document(u, b)
                except exi.ExiDecodeError:
                    pass

    churn(2000)  # warm-up: caches, free lists
    before = _rss_kb()
    churn(20000)
    assert _rss_kb() - before < 2048, "resident memory grew by more than 2 MB"

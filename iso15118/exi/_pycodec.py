"""Documents and fragments for the pure-Python backend (EXI 1.0 §8.5.1, §8.5.2).

A V2G stream is the one-byte header 0x80, a DocContent event code choosing the global element,
the element, and zero padding to the byte boundary. Fragments (for signatures) are a
sequence of elements from every declaration in the universe, closed by ED.
"""

from __future__ import annotations

from types import ModuleType

from ._meta import SimpleElement
from ._pyrt import Invalid, finish
from .errors import (ExiDecodeError, ExiEncodeError, ExiHeaderError, ExiInvalidEventError,
                     ExiTruncatedError, ExiUnsupportedError, ExiValueError)

EXI_HEADER = 0x80  # '10' distinguishing bits, no options, final version 1
_roots: dict[tuple[str, str], dict] = {}


def _index(mod: ModuleType, table: str) -> dict:
    key = (mod.__name__, table)
    idx = _roots.get(key)
    if idx is None:
        idx = {}
        for i, (name, ns, cls, enc, _dec, _spec) in enumerate(getattr(mod, table)):
            if cls is SimpleElement:
                idx.setdefault(("simple", name), []).append((i, name, ns, enc))
            elif cls is not None and cls != "relaxed":
                idx.setdefault(cls, []).append((i, name, ns, enc))
        _roots[key] = idx
    return idx


def _pick(mod: ModuleType, table: str, obj, element: str | None):
    simple = isinstance(obj, SimpleElement)
    cands = _index(mod, table).get(("simple", obj.name) if simple else type(obj))
    if not cands:
        if simple:
            raise ExiEncodeError(f"{obj.name!r} is not a simple-typed element of schema {mod.UNIVERSE}")
        raise ExiEncodeError(f"{type(obj).__name__} is not a {'global element' if table == 'GLOBAL_ELEMENTS' else 'fragment element'} "
                             f"of schema {mod.UNIVERSE}")
    if element is not None:
        cands = [c for c in cands if c[1] == element]
        if not cands:
            raise ExiEncodeError(f"no element {element!r} of type {type(obj).__name__} in {mod.UNIVERSE}")
    if len(cands) > 1:
        names = ", ".join(c[1] for c in cands)
        raise ExiEncodeError(f"{type(obj).__name__} is the type of several elements ({names}): "
                             "pass element=")
    return cands[0]


def _header(data: bytes) -> tuple[int, int]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ExiDecodeError(f"expected bytes, got {type(data).__name__}", 0)
    L = len(data) * 8
    if L == 0:
        raise ExiTruncatedError("empty input: no EXI header", 0)
    D = int.from_bytes(data, "big")
    h = D >> (L - 8)
    if h != EXI_HEADER:
        raise ExiHeaderError(f"EXI header {h:#04x}: expected 0x80 (no cookie, no options, version 1)", 0)
    return D, L


def _check_end(L: int, p: int) -> None:
    if L - p >= 8:
        raise ExiValueError(f"{(L - p) // 8} bytes of trailing data after the document", p)


def decode_document(mod: ModuleType, data: bytes):
    D, L = _header(data)
    table = mod.GLOBAL_ELEMENTS
    nb = mod.DOC_NBITS
    p = 8 + nb
    if p > L:
        raise ExiTruncatedError("stream ends before the document element", L)
    c = (D >> (L - p)) & ((1 << nb) - 1)
    if c >= len(table):
        if c == len(table):
            raise ExiUnsupportedError("SE(*): a document element outside the schema", p)
        raise ExiInvalidEventError(f"document element code {c} out of range", p)
    name, _ns, cls, _enc, dec, _spec = table[c]
    obj, p = dec(D, L, p)
    if cls is SimpleElement:
        obj = SimpleElement(name, obj)
    _check_end(L, p)  # DocEnd: ED has a 0-bit code
    return obj


def encode_document(mod: ModuleType, obj, element: str | None = None) -> bytes:
    i, _name, _ns, enc = _pick(mod, "GLOBAL_ELEMENTS", obj, element)
    a = (((1 << 8) | EXI_HEADER) << mod.DOC_NBITS) | i
    return finish(enc(obj.value if isinstance(obj, SimpleElement) else obj, a))


def encode_fragment(mod: ModuleType, objs, element: str | None = None) -> bytes:
    """Encode one or more elements as an EXI fragment (SD, SE…, ED)."""
    if not isinstance(objs, (list, tuple)):
        objs = [objs]
    nb = mod.FRAGMENT_NBITS
    a = (1 << 8) | EXI_HEADER
    for obj in objs:
        i, _name, _ns, enc = _pick(mod, "FRAGMENT_ELEMENTS", obj, element)
        a = enc(obj.value if isinstance(obj, SimpleElement) else obj, (a << nb) | i)
    a = (a << nb) | (len(mod.FRAGMENT_ELEMENTS) + 1)  # ED
    return finish(a)


def decode_fragment(mod: ModuleType, data: bytes) -> list:
    D, L = _header(data)
    table = mod.FRAGMENT_ELEMENTS
    nb = mod.FRAGMENT_NBITS
    n = len(table)
    p = 8
    out = []
    while True:
        p += nb
        if p > L:
            raise ExiTruncatedError("stream ends inside the fragment", L)
        c = (D >> (L - p)) & ((1 << nb) - 1)
        if c == n + 1:
            break
        if c == n:
            raise ExiUnsupportedError("SE(*) in a fragment: element outside the schema", p)
        if c > n + 1:
            raise ExiInvalidEventError(f"fragment event code {c} out of range", p)
        name, _ns, cls, _enc, dec, _spec = table[c]
        if dec is None:
            raise ExiUnsupportedError(f"fragment element {name} is declared with several types: "
                                      "the relaxed element fragment grammar is not supported", p)
        obj, p = dec(D, L, p)
        if cls is SimpleElement:
            obj = SimpleElement(name, obj)
        out.append(obj)
    _check_end(L, p)
    return out


__all__ = ["decode_document", "encode_document", "encode_fragment", "decode_fragment", "Invalid"]

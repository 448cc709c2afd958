"""Documents and fragments for the pure-Python backend (EXI 1.0 §8.5.1, §8.5.2).

A V2G stream is the one-byte header 0x80, a DocContent event code choosing the global element,
the element, and zero padding to the byte boundary. Fragments (for signatures) are a
sequence of elements from every declaration in the universe, closed by ED.
"""

from __future__ import annotations

from types import ModuleType

from ._meta import SimpleElement, SimpleSpec
from ._pyrt import BOOL, Invalid, finish, r_int, r_str, r_uint, stream, w_bin, w_int, w_str, w_uint
from .errors import (ExiDecodeError, ExiEncodeError, ExiHeaderError, ExiInvalidEventError,
                     ExiTruncatedError, ExiUnsupportedError, ExiValueError)

EXI_HEADER = 0x80  # '10' distinguishing bits, no options, final version 1
_roots: dict[tuple[str, str], dict] = {}


def _index(mod: ModuleType, table: str) -> dict:
    key = (mod.__name__, table)
    idx = _roots.get(key)
    if idx is None:
        idx = {}
        for i, (name, ns, cls, enc, _dec, extra) in enumerate(getattr(mod, table)):
            if cls == "relaxed":  # several declarations: any of their forms may be encoded
                for ccls, _spec in extra:
                    key = ("simple", name) if ccls is SimpleElement else ccls
                    idx.setdefault(key, []).append((i, name, ns, _relaxed_encoder(mod, getattr(mod, table)[i])))
            elif cls is SimpleElement:
                idx.setdefault(("simple", name), []).append((i, name, ns, enc))
            elif cls is not None:
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
    if element is not None:  # a local name, or '{namespace}local' where the name is ambiguous
        if element.startswith("{"):
            ns, local = element[1:].split("}", 1)
            cands = [c for c in cands if c[1] == local and c[2] == ns]
        else:
            cands = [c for c in cands if c[1] == element]
        if not cands:
            raise ExiEncodeError(f"no element {element!r} of type {type(obj).__name__} in {mod.UNIVERSE}")
    if len(cands) > 1:
        names = ", ".join(f"{{{c[2]}}}{c[1]}" for c in cands)
        raise ExiEncodeError(f"{type(obj).__name__} is the type of several elements ({names}): "
                             "pass element=")
    return cands[0]


# document-level errors, shared with the C backend
def empty_input() -> ExiDecodeError:
    return ExiTruncatedError("empty input: no EXI header", 0)


def bad_header(h: int) -> ExiDecodeError:
    return ExiHeaderError(f"EXI header {h:#04x}: expected 0x80 (no cookie, no options, version 1)", 0)


def no_document_element(L: int) -> ExiDecodeError:
    return ExiTruncatedError("stream ends before the document element", L)


def bad_document_code(c: int, n: int, p: int) -> ExiDecodeError:
    if c == n:
        return ExiUnsupportedError("SE(*): a document element outside the schema", p)
    return ExiInvalidEventError(f"document element code {c} out of range", p)


def trailing_data(L: int, p: int) -> ExiDecodeError:
    return ExiValueError(f"{(L - p) // 8} bytes of trailing data after the document", p)


def _header(data: bytes) -> tuple[int, int]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ExiDecodeError(f"expected bytes, got {type(data).__name__}", 0)
    if len(data) == 0:
        raise empty_input()
    D, L = stream(data)
    h = D >> (L - 8)
    if h != EXI_HEADER:
        raise bad_header(h)
    return D, L


def _check_end(L: int, p: int) -> None:
    if L - p >= 8:
        raise trailing_data(L, p)


def decode_document(mod: ModuleType, data: bytes):
    D, L = _header(data)
    table = mod.GLOBAL_ELEMENTS
    nb = mod.DOC_NBITS
    p = 8 + nb
    if p > L:
        raise no_document_element(L)
    c = (D >> (L - p)) & ((1 << nb) - 1)
    if c >= len(table):
        raise bad_document_code(c, len(table), p)
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
        relaxed = mod.FRAGMENT_ELEMENTS[i][2] == "relaxed"
        a = enc(obj.value if isinstance(obj, SimpleElement) and not relaxed else obj, (a << nb) | i)
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
        if cls == "relaxed":
            obj, p = _dec_relaxed(mod, table[c], D, L, p, 0)
        else:
            obj, p = dec(D, L, p)
            if cls is SimpleElement:
                obj = SimpleElement(name, obj)
        out.append(obj)
    _check_end(L, p)
    return out


# --- relaxed element fragment grammar (§8.5.3) ------------------------------------------------
# A qname declared with several types (ISO 15118-2 eMAID: EMAIDType and eMAIDType) is coded in a
# fragment with a grammar that accepts any attribute of the universe (schema-typed), any element
# (each by its own fragment rule), untyped character data, and EE:
#   state 0: AT(A_0..A_n-1) AT(*) SE(F_0..F_m-1) SE(*) EE CH   (n + m + 4 codes)
#   state 2: SE(F_0..F_m-1) SE(*) EE CH                        (m + 3 codes)
# The bit layout was checked against the EXIficient codec of the public vectors (tests/exi).

MAX_RELAXED_DEPTH = 16


def _int_coding(s: SimpleSpec):
    lo, hi = s.min, s.max
    if lo is not None and hi is not None and hi - lo + 1 <= 4096:
        return "nbit", (hi - lo).bit_length()
    return ("uint" if lo is not None and lo >= 0 else "int"), 0


def _w_simple(a: int, v, s: SimpleSpec) -> int:
    """Write a schema-typed value from its description (the slow, generic path)."""
    if s.enum is not None:
        values = list(s.enum)
        return (a << (len(values) - 1).bit_length()) | values.index(s.enum(v))
    if s.kind == "boolean":
        return (a << 1) | BOOL[v]
    if s.kind == "integer":
        if (s.min is not None and v < s.min) or (s.max is not None and v > s.max):
            raise Invalid(f"{v} outside [{s.min}, {s.max}]")
        mode, nb = _int_coding(s)
        if mode == "nbit":
            return (a << nb) | (v - s.min)
        return w_uint(a, v) if mode == "uint" else w_int(a, v)
    lo = s.length if s.length is not None else (s.min_length or 0)
    hi = s.length if s.length is not None else s.max_length
    if s.kind == "string":
        return w_str(a, v, lo, hi)
    return w_bin(a, v, lo, hi)


def _r_simple(D: int, L: int, p: int, s: SimpleSpec):
    if s.enum is not None:
        values = list(s.enum)
        nb = (len(values) - 1).bit_length()
        p += nb
        i = (D >> (L - p)) & ((1 << nb) - 1)
        if i >= len(values):
            raise ExiValueError(f"enumeration index {i} beyond the {len(values)} values", p)
        return values[i], p
    if s.kind == "boolean":
        p += 1
        return ((D >> (L - p)) & 1) == 1, p
    if s.kind == "integer":
        mode, nb = _int_coding(s)
        if mode == "nbit":
            p += nb
            v = ((D >> (L - p)) & ((1 << nb) - 1)) + s.min
        elif mode == "uint":
            v, p = r_uint(D, L, p, s.max.bit_length() if s.max is not None else 1024)
        else:
            v, p = r_int(D, L, p, 1024)
        if (s.min is not None and v < s.min) or (s.max is not None and v > s.max):
            raise ExiValueError(f"value {v} outside [{s.min}, {s.max}]", p)
        return v, p
    lo = s.length if s.length is not None else (s.min_length or 0)
    hi = s.length if s.length is not None else s.max_length
    if s.kind == "string":
        return r_str(D, L, p, lo, hi)
    from ._pyrt import r_bin
    return r_bin(D, L, p, lo, hi)


def _relaxed_encoder(mod: ModuleType, entry):
    return lambda obj, a: _enc_relaxed(mod, entry, obj, a)


def _frag_index(mod: ModuleType, name: str, ns: str) -> int:
    for j, e in enumerate(mod.FRAGMENT_ELEMENTS):
        if e[0] == name and e[1] == ns:
            return j
    raise Invalid(f"no fragment element {name}")


def _enc_relaxed(mod: ModuleType, entry, obj, a: int) -> int:
    from ._xml import _lexical

    A, F = mod.FRAGMENT_ATTRIBUTES, mod.FRAGMENT_ELEMENTS
    n, m = len(A), len(F)
    nb0, nb2 = (n + m + 3).bit_length(), (m + 2).bit_length()
    state0 = True

    def code(c0: int, c2: int, a: int) -> int:
        return (a << nb0) | c0 if state0 else (a << nb2) | c2

    if isinstance(obj, SimpleElement):
        spec = next(sp for c, sp in entry[5] if c is SimpleElement)
        text = _lexical(obj.value, spec)
        if text:
            a = w_str(code(n + m + 3, m + 2, a), text, 0, None)
            state0 = False
        return code(n + m + 2, m + 1, a)
    spec = type(obj)._exi
    for f in spec.fields:
        v = getattr(obj, f.name)
        if f.kind != "attr" or v is None:
            continue
        i = next(i for i, (an, ans, _s) in enumerate(A) if an == f.xml_name and ans == f.ns)
        a = _w_simple((a << nb0) | i, v, A[i][2])
    for f in spec.fields:
        v = getattr(obj, f.name)
        if f.kind == "elem" and v is not None:
            for item in (v if f.is_list else [v]):
                j = _frag_index(mod, f.xml_name, f.ns)
                child = F[j]
                a = code(n + 1 + j, j, a)
                state0 = False
                if child[2] == "relaxed":
                    item = item if f.cls is not None else SimpleElement(f.xml_name, item)
                    a = _enc_relaxed(mod, child, item, a)
                else:
                    a = child[3](item, a)
        elif f.kind == "value":
            a = w_str(code(n + m + 3, m + 2, a), _lexical(v, f.simple), 0, None)
            state0 = False
    return code(n + m + 2, m + 1, a)


def _dec_relaxed(mod: ModuleType, entry, D: int, L: int, p: int, depth: int):
    from ._xml import _from_lexical

    if depth > MAX_RELAXED_DEPTH:
        raise ExiValueError("relaxed fragment content nested too deeply", p)
    A, F = mod.FRAGMENT_ATTRIBUTES, mod.FRAGMENT_ELEMENTS
    n, m = len(A), len(F)
    nb0, nb2 = (n + m + 3).bit_length(), (m + 2).bit_length()
    attrs: dict = {}
    children: list = []
    text: list[str] = []
    state0 = True
    while True:
        nb = nb0 if state0 else nb2
        p += nb
        c = (D >> (L - p)) & ((1 << nb) - 1)
        if state0 and c < n:
            v, p = _r_simple(D, L, p, A[c][2])
            attrs[(A[c][0], A[c][1])] = v
            continue
        j = c - (n + 1) if state0 else c
        if 0 <= j < m:
            child = F[j]
            if child[2] == "relaxed":
                v, p = _dec_relaxed(mod, child, D, L, p, depth + 1)
            else:
                v, p = child[4](D, L, p)
            children.append((child[0], child[1], v))
            state0 = False
            continue
        if j == m + 1:  # EE
            break
        if j == m + 2:  # CH [untyped value]
            s, p = r_str(D, L, p, 0, None)
            text.append(s)
            state0 = False
            continue
        if j == m or (state0 and c == n):
            raise ExiUnsupportedError("wildcard content in a relaxed fragment element", p)
        raise ExiInvalidEventError(f"event code {c} out of range", p)
    name = entry[0]
    try:
        for cls, spec in entry[5]:
            if cls is SimpleElement:
                if not attrs and not children:
                    return SimpleElement(name, _from_lexical("".join(text), spec, name)), p
                continue
            fields = {(f.kind, f.xml_name, f.ns): f for f in cls._exi.fields}
            kwargs: dict = {}
            ok = True
            for (an, ans), v in attrs.items():
                f = fields.get(("attr", an, ans))
                if f is None:
                    ok = False
                    break
                kwargs[f.name] = v
            for cn, cns, v in children:
                f = fields.get(("elem", cn, cns))
                if f is None:
                    ok = False
                    break
                if f.is_list:
                    kwargs.setdefault(f.name, []).append(v)
                else:
                    kwargs[f.name] = v
            vf = next((f for f in cls._exi.fields if f.kind == "value"), None)
            if vf is not None:
                kwargs[vf.name] = _from_lexical("".join(text), vf.simple, name)
            elif "".join(text).strip():
                ok = False
            if ok and all(f.name in kwargs for f in cls._exi.fields if f.min > 0 and not f.is_list):
                return cls(**kwargs), p
    except ExiEncodeError as e:
        raise ExiValueError(f"relaxed fragment element {name}: {e}", p) from None
    raise ExiUnsupportedError(f"relaxed fragment element {name}: content matches none of its declarations", p)


__all__ = ["decode_document", "encode_document", "encode_fragment", "decode_fragment", "Invalid"]

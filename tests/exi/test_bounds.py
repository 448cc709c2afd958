"""Every facet of every type, at its bound and one past it, on both sides of the codec.

For each field with a facet (maxLength/minLength/length on strings and binaries, maxOccurs,
integer ranges, enumerations), a minimal valid instance of the owning type gets the field set to
the bound (must round-trip) and to one past it (the encoder must refuse with ExiEncodeError
naming the field; the decoder must refuse a stream carrying it, made by an encoder generated
without facet checks).
"""

from __future__ import annotations

import sys
import types

import pytest

from iso15118 import exi
from iso15118.exi._meta import FieldSpec, SimpleSpec
from iso15118.exi._pyrt import as_int, finish

GENERAL = {"PGPData", "SPKIData", "DSAKeyValue", "SignatureProperties", "SignatureProperty"}


def minimal_simple(s: SimpleSpec):
    if s.enum is not None:
        return list(s.enum)[0]
    if s.kind == "boolean":
        return False
    if s.kind == "integer":
        lo = s.min if s.min is not None else 0
        return max(lo, min(0, s.max if s.max is not None else 0))
    n = s.length if s.length is not None else (s.min_length or 0)
    return "a" * n if s.kind == "string" else b"\x00" * n


def minimal(cls):
    spec = cls._exi
    kwargs = {}
    grouped = {n: g for g in spec.groups for n in g.fields}
    first_of_group = {g.fields[0] for g in spec.groups if g.min > 0}
    for f in spec.fields:
        g = grouped.get(f.name)
        required = (f.name in first_of_group) if g is not None else f.min > 0
        if not required:
            continue
        item = minimal(f.cls) if f.cls is not None else minimal_simple(f.simple)
        kwargs[f.name] = [item] * max(f.min, 1) if f.is_list else item
    return cls(**kwargs)


def with_field(obj, f: FieldSpec, value):
    spec = type(obj)._exi
    kwargs = {x.name: getattr(obj, x.name) for x in spec.fields}
    for g in spec.groups:  # a choice: the field under test replaces the other alternatives
        if f.name in g.fields:
            for other in g.fields:
                o = next(x for x in spec.fields if x.name == other)
                kwargs[other] = [] if o.is_list else None
    kwargs[f.name] = value
    return type(obj)(**kwargs)


def cases_for(f: FieldSpec):
    """(label, valid value, invalid value or None) for each facet of field ``f``."""
    item_ok = minimal(f.cls) if f.cls is not None else minimal_simple(f.simple)
    if f.is_list and f.max is not None:
        yield "maxOccurs", [item_ok] * f.max, [item_ok] * (f.max + 1)
    if f.is_list and f.min > 1:
        yield "minOccurs", [item_ok] * f.min, [item_ok] * (f.min - 1)
    s = f.simple
    if s is None:
        return
    wrap = (lambda v: [v]) if f.is_list else (lambda v: v)
    if s.enum is not None:
        values = list(s.enum)
        n = len(values)
        yield "enumeration", wrap(values[-1]), wrap("NotAnEnumerationValue")
        if n & (n - 1):  # spare codes in the n-bit index: index n must be refused when decoding
            yield "enumeration-index", wrap(values[-1]), wrap(n)
        return
    if s.kind == "integer":
        if s.max is not None:
            yield "maxInclusive", wrap(s.max), wrap(s.max + 1)
        if s.min is not None:
            yield "minInclusive", wrap(s.min), wrap(s.min - 1)
        return
    if s.kind == "boolean":
        return
    fill = "Z" if s.kind == "string" else b"\xab"
    hi = s.length if s.length is not None else s.max_length
    lo = s.length if s.length is not None else (s.min_length or 0)
    if hi is not None:
        yield "maxLength", wrap(fill * hi), wrap(fill * (hi + 1))
    if lo > 0:
        yield "minLength", wrap(fill * lo), wrap(fill * (lo - 1))


def nbit_range_is_full(s: SimpleSpec) -> bool:
    """An n-bit integer (range <= 4096, §7.1.5) whose range fills all 2**n codes."""
    if s.min is None or s.max is None or s.max - s.min + 1 > 4096:
        return False
    m = s.max - s.min + 1
    return m & (m - 1) == 0


def load_unchecked(schema_dir):
    """Import the whole generated package again, made with checked=False, under another name."""
    from tools.generate import generate

    pkg = "iso15118.exi._unchecked"
    if pkg in sys.modules:
        return sys.modules[pkg]
    files = generate(schema_dir, checked=False)
    package = types.ModuleType(pkg)
    package.__path__ = []
    package.__package__ = pkg
    sys.modules[pkg] = package
    order = sorted(files, key=lambda n: (not n.startswith("_"), n != "_xmldsig.py", n))
    for name in order:
        if name == "__init__.py":
            continue
        mod = types.ModuleType(f"{pkg}.{name[:-3]}")
        mod.__package__ = pkg
        sys.modules[mod.__name__] = mod
        exec(compile(files[name], f"<unchecked {name}>", "exec"), mod.__dict__)
        setattr(package, name[:-3], mod)
    return package


def _classes(mod):
    seen = {}
    for name in dir(mod):
        obj = getattr(mod, name)
        if isinstance(obj, type) and hasattr(obj, "_exi") and obj.__module__ == mod.__name__ or (
                isinstance(obj, type) and hasattr(obj, "_exi") and name not in seen):
            seen[name] = obj
    return {n: c for n, c in seen.items() if n not in GENERAL and hasattr(c, "_exi")}


def type_roundtrip(mod, cls, obj):
    a = as_int(getattr(mod, f"_e_{cls.__name__}")(obj, 1))
    nbits = a.bit_length() - 1
    D, L = a ^ (1 << nbits), nbits
    back, p = getattr(mod, f"_d_{cls.__name__}")(D, L, 0)
    assert p == L
    return back


@pytest.mark.parametrize("schema", list(exi.SCHEMAS))
def test_every_facet_at_its_bound_and_past_it(schema, schema_dir):
    mod = exi.messages(schema)
    unchecked = getattr(load_unchecked(schema_dir), schema)
    counted = {"ok": 0, "encode_refused": 0, "decode_refused": 0, "unrepresentable": 0}
    for cname, cls in sorted(_classes(mod).items()):
        base = minimal(cls)
        assert type_roundtrip(mod, cls, base) == base, cname
        ucls = getattr(unchecked, cname)
        for f in cls._exi.fields:
            for label, good, bad in cases_for(f):
                obj = with_field(base, f, good)
                assert type_roundtrip(mod, cls, obj) == obj, (cname, f.name, label)
                counted["ok"] += 1
                if bad is None:
                    continue
                if label != "enumeration-index":
                    invalid = with_field(base, f, bad)
                    with pytest.raises(exi.ExiEncodeError) as err:
                        exi._convert.validate(invalid)
                    assert f.name in str(err.value), (cname, f.name, label, str(err.value))
                    with pytest.raises(Exception):
                        getattr(mod, f"_e_{cname}")(invalid, 1)
                    counted["encode_refused"] += 1
                if label == "enumeration":
                    continue  # a name that is not a value has no stream form
                # decoder side: a stream with the bad value, from the encoder without checks
                if f.simple is not None and f.simple.kind == "integer" and nbit_range_is_full(f.simple):
                    counted["unrepresentable"] += 1  # n-bit field with no spare code (§7.1.9)
                    continue
                uobj = _convert_to(unchecked, ucls, with_field(base, f, bad))
                try:
                    a = as_int(getattr(unchecked, f"_e_{cname}")(uobj, 1))
                except Exception:
                    counted["unrepresentable"] += 1  # the grammar itself cannot express it
                    continue
                nbits = a.bit_length() - 1
                try:
                    getattr(mod, f"_d_{cname}")(a ^ (1 << nbits), nbits, 0)
                except exi.ExiDecodeError:
                    pass
                else:
                    raise AssertionError(f"{schema} {cname}.{f.name} {label}: decoded a stream past the bound")
                counted["decode_refused"] += 1
    assert counted["ok"] > 0
    print(schema, counted)


def _convert_to(target_mod, target_cls, obj):
    """Rebuild ``obj`` (a message of the checked module) with the unchecked module's classes."""
    kwargs = {}
    for f in type(obj)._exi.fields:
        v = getattr(obj, f.name)
        if f.cls is not None and v is not None:
            tcls = getattr(target_mod, f.cls.__name__)
            v = [_convert_to(target_mod, tcls, x) for x in v] if f.is_list else _convert_to(target_mod, tcls, v)
        kwargs[f.name] = v
    return target_cls(**kwargs)


def test_the_counts_cover_each_facet_kind(schema_dir):
    mod = exi.messages("iso2")
    kinds = set()
    for cls in _classes(mod).values():
        for f in cls._exi.fields:
            kinds.update(label for label, _g, _b in cases_for(f))
    assert {"maxOccurs", "enumeration", "maxInclusive", "minInclusive", "maxLength", "minLength"} <= kinds

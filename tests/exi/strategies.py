"""Hypothesis strategies that build random, schema-valid messages from the generated field
descriptions (``cls._exi``) — so every type of every schema is covered, WPT and ACDP included."""

from __future__ import annotations

from hypothesis import strategies as st

from iso15118.exi._meta import FieldSpec, SimpleSpec

# characters XML allows, biased to ASCII but with BMP and supplementary-plane characters
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff",
                       min_codepoint=0x20) | st.sampled_from("\t\n\r")
MAX_LIST = 4  # keep nested lists small; bounds tests cover maxOccurs separately
MAX_TEXT = 40
MAX_BYTES = 64

# xmldsig types whose content the field descriptions cannot express (wildcards, or element
# combinations only a general grammar captures): generated messages leave them out
SKIP_CLASSES = {"SignatureProperties", "SignatureProperty"}


def simple_values(s: SimpleSpec) -> st.SearchStrategy:
    if s.enum is not None:
        return st.sampled_from(list(s.enum))
    if s.kind == "boolean":
        return st.booleans()
    if s.kind == "integer":
        lo = s.min if s.min is not None else -(2**100)
        hi = s.max if s.max is not None else 2**100
        edges = [x for x in (lo, hi, 0, 1, -1, lo + 1, hi - 1) if lo <= x <= hi]
        return st.sampled_from(edges) | st.integers(lo, hi)
    lo = s.length if s.length is not None else (s.min_length or 0)
    hi = s.length if s.length is not None else s.max_length
    if s.kind == "string":
        hi = MAX_TEXT if hi is None else min(hi, max(lo, MAX_TEXT))
        return st.text(_CHARS, min_size=lo, max_size=hi)
    hi = MAX_BYTES if hi is None else min(hi, max(lo, MAX_BYTES))
    return st.binary(min_size=lo, max_size=hi)


@st.composite
def messages(draw, cls, depth: int = 0):
    spec = cls._exi
    kwargs = {}
    grouped = {n: g for g in spec.groups for n in g.fields}
    chosen: dict[int, set] = {}
    for g in spec.groups:
        names = [n for n in g.fields if _usable(spec, n)]
        if not names:
            continue
        if g.max == 1:
            k = 1 if g.min > 0 else draw(st.integers(0, 1))
            chosen[id(g)] = set(draw(st.permutations(names))[:k])
        else:
            chosen[id(g)] = set(draw(st.lists(st.sampled_from(names), max_size=2, unique=True)))
            if g.min > 0 and not chosen[id(g)]:
                chosen[id(g)] = {names[0]}
    for f in spec.fields:
        g = grouped.get(f.name)
        if g is not None and f.name not in chosen.get(id(g), ()):
            continue
        if f.cls is not None and f.cls.__name__ in SKIP_CLASSES:
            continue
        if f.is_list:
            lo = max(f.min, 1 if g is not None else 0)
            hi = min(f.max if f.max is not None else MAX_LIST, max(lo, MAX_LIST if depth < 3 else 1))
            if g is not None and g.max is not None:
                hi = min(hi, 1)
            kwargs[f.name] = draw(st.lists(_value(f, depth), min_size=lo, max_size=max(lo, hi)))
        elif f.min == 0 and g is None and (depth > 4 or draw(st.booleans())):
            continue
        else:
            kwargs[f.name] = draw(_value(f, depth))
    return cls(**kwargs)


def _usable(spec, name: str) -> bool:
    f = next(f for f in spec.fields if f.name == name)
    return not (f.cls is not None and f.cls.__name__ in SKIP_CLASSES)


def _value(f: FieldSpec, depth: int) -> st.SearchStrategy:
    if f.cls is not None:
        return messages(f.cls, depth + 1)
    return simple_values(f.simple)


def document_classes(mod) -> list[tuple[str, type]]:
    """(element name, class) of every global element that is a message class."""
    return [(e[0], e[2]) for e in mod.GLOBAL_ELEMENTS if isinstance(e[2], type) and e[2].__name__ != "SimpleElement"]

"""Emit the pure-Python backend: message classes plus one encoder and one decoder per type.

The generated code is straight-line per type (one block per slot, event codes folded to
constants wherever the grammar state is known at generation time), so the Cython backend can
compile the same shape with typed locals. Each type's code is emitted as a *snippet*; snippets
that are identical across universes (xmldsig, -20 CommonTypes) go into shared modules, so those
classes are the same objects in every universe.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .grammar import (EE, Event, FlatGrammar, GeneralGrammar, Slot, build_flat, build_general,
                      categories, category_of, nbits_for)
from .model import (XS, ComplexType, ElementDecl, Group, Particle, SchemaError, SimpleType,
                    Universe, Wildcard)
from .naming import assign_names, check_identifier, member_name

BOUNDED_RANGE = 4096  # EXI §7.1.5: ranges of at most 4096 values use n-bit integers
MAX_READ_BITS = 64  # the widest merged read; iso15118/exi/_pyrt.py keeps this much behind a window
# in every loop of an encoder: a long output moves to the linear-cost accumulator (_pyrt.py)
LONG_OUTPUT = "if a.bit_length() > _LONG_OUTPUT_BITS: a = _LongAccumulator(a)"


@dataclass
class Snippet:
    name: str  # class or enum name
    kind: str  # 'enum' | 'class'
    ns: str
    classdef: str
    spec: str  # statements run after all classes exist
    codec: str  # functions and tables
    deps: set[str] = field(default_factory=set)
    signature: str = ""


# --- simple types -------------------------------------------------------------------------

@dataclass
class IntCoding:
    mode: str  # 'nbit' | 'uint' | 'int'
    min: int | None
    max: int | None
    nbits: int = 0  # for nbit
    max_bits: int = 0  # for uint/int: cap on significant bits


def int_coding(st: SimpleType) -> IntCoding:
    lo, hi = st.min, st.max
    if lo is not None and hi is not None and hi - lo + 1 <= BOUNDED_RANGE:
        return IntCoding("nbit", lo, hi, nbits=(hi - lo).bit_length())
    if lo is not None and lo >= 0:
        return IntCoding("uint", lo, hi, max_bits=hi.bit_length() if hi is not None else 0)
    mag = max(abs(lo) - 1 if lo is not None else 0, hi if hi is not None else 0)
    return IntCoding("int", lo, hi, max_bits=mag.bit_length() if (lo is not None and hi is not None) else 0)


def length_bounds(st: SimpleType) -> tuple[int, int | None]:
    if st.length is not None:
        return st.length, st.length
    return (st.min_length or 0), st.max_length


def can_be_empty(st: SimpleType) -> bool:
    """Whether a value of this type may have no characters at all (empty string or binary)."""
    if st.enumeration is not None:
        return "" in st.enumeration
    return st.kind in ("string", "hexBinary", "base64Binary") and length_bounds(st)[0] == 0


def empty_value(st: SimpleType) -> str:
    return "''" if st.kind == "string" else "b''"


def py_type(st: SimpleType, enum_names: dict[int, str]) -> str:
    if st.enumeration is not None:
        return enum_names[id(st)]
    return {"integer": "int", "boolean": "bool", "string": "str", "hexBinary": "bytes",
            "base64Binary": "bytes"}[st.kind]


# --- the code writer ----------------------------------------------------------------------

class Code:
    def __init__(self):
        self.lines: list[str] = []
        self.pending_val = 0
        self.pending_bits = 0
        self.pending_reads = []
        self._indent = 0

    @property
    def indent(self) -> int:
        return self._indent

    @indent.setter
    def indent(self, value: int) -> None:
        # pending writes and reads belong to the block they were issued in
        self.flush()
        self.flush_reads()
        self._indent = value

    def __call__(self, line: str) -> None:
        self.flush()
        self.flush_reads()
        self.lines.append("    " * self.indent + line)

    # fixed-width reads are merged into one shift-and-mask of the stream until a variable-width
    # read, a branch or a call; 'zero' items are single-production event codes (must be 0)
    pending_reads: list

    def read(self, nbits: int, kind: str, payload=None) -> None:
        if nbits:
            self.pending_reads.append((nbits, kind, payload))

    def flush_reads(self) -> None:
        """Emit the pending reads as one read of the stream.

        A merged read fails the way reading its items one by one would (the C backend does):
        the first wrong item in stream order, at its own end, or the end of the stream if an
        item runs past it first. The fast path checks all items at once; when a check fails (or
        the read runs past the end while an earlier item could still be the one to blame),
        ``_group_fault`` walks the items to find that error.
        """
        items = getattr(self, "pending_reads", None)
        if not items:
            self.pending_reads = []
            return
        self.pending_reads = []
        pad = "    " * self.indent
        total = sum(n for n, _k, _p in items)
        if total > MAX_READ_BITS:
            raise SchemaError(f"a merged read of {total} bits: wider than the decoder's window "
                              f"(MAX_READ_BITS = {MAX_READ_BITS})")
        if any(k == "event" for _n, k, _p in items[:-1]):
            raise SchemaError("an event code read in the middle of a merged read")
        desc = []
        for n, kind, payload in items:
            if kind == "zero":
                desc.append((n, "z"))
            elif kind == "value" and payload[2] is not None:
                desc.append((n,) + payload[2])
            else:
                desc.append((n,))
        fault = f"raise _group_fault(D, L, p, {tuple(desc)!r})"
        read = f"_x = (D >> (L - p)) & {(1 << total) - 1}"
        if any(len(d) > 1 for d in desc[:-1]):  # an item before the last may fail its check
            out = [f"p += {total}", f"if p > L: {fault}", read]
        else:  # running past the end is the first error whatever the items hold
            out = [f"p += {total}; {read}"]
        zmask = 0
        post = []
        shift = total
        for n, kind, payload in items:
            shift -= n
            field = f"(_x >> {shift}) & {(1 << n) - 1}" if shift else f"_x & {(1 << n) - 1}"
            if kind == "zero":
                zmask |= ((1 << n) - 1) << shift
            elif kind == "event":
                post.append(f"ev = {payload}[{field}]")
            else:  # value: (target, format with {} for the field, check or None, statements after)
                target, fmt, check, after = payload
                post.append(f"{target} = {fmt.format(field)}")
                if check is not None:
                    cond = f"{target} > {check[2]}" if check[0] == "n" else f"{target} >= {check[1]}"
                    post.append(f"if {cond}: {fault}")
                post.extend(after)
        if zmask:
            out.append(f"if _x & {zmask}: {fault}")
        self.lines.extend(pad + ln for ln in out + post)

    def raw(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def keep(self, line: str) -> None:
        """A statement that does not touch the accumulator: pending bits stay pending."""
        self.lines.append("    " * self.indent + line)

    # constant bit writes are merged until something dynamic happens
    def bits(self, value: int, nbits: int) -> None:
        if nbits == 0:
            return
        self.pending_val = (self.pending_val << nbits) | value
        self.pending_bits += nbits

    def flush(self) -> None:
        if self.pending_bits:
            v, n = self.pending_val, self.pending_bits
            self.pending_val = self.pending_bits = 0
            self.lines.append("    " * self.indent + (f"a = (a << {n}) | {v}" if v else f"a <<= {n}"))

    def text(self) -> str:
        self.flush()
        self.flush_reads()
        return "\n".join(self.lines) + "\n"


# --- per-type emitter ---------------------------------------------------------------------

@dataclass
class FieldInfo:
    name: str
    xml_name: str
    ns: str
    kind: str  # 'attr' | 'elem' | 'value'
    decl: object  # ElementDecl | AttributeUse | SimpleType
    ctype: ComplexType | None
    simple: SimpleType | None
    is_list: bool
    min: int
    max: int | None
    group: int
    event_id: int


def occurrence(p: Particle, qname) -> tuple[int, int | None]:
    """(min, max) number of times element ``qname`` may occur in particle ``p``."""
    t = p.term
    if isinstance(t, ElementDecl):
        lo, hi = (1, 1) if t.qname == qname else (0, 0)
    elif isinstance(t, Wildcard):
        lo, hi = 0, 0
    elif t.kind == "sequence":
        lo, hi = 0, 0
        for c in t.particles:
            a, b = occurrence(c, qname)
            lo += a
            hi = None if (hi is None or b is None) else hi + b
    else:
        subs = [occurrence(c, qname) for c in t.particles]
        lo = min(s[0] for s in subs) if subs else 0
        his = [s[1] for s in subs]
        hi = None if any(h is None for h in his) else max(his, default=0)
    if hi == 0:
        return 0, 0
    mx = None if (hi is None or p.max is None) else hi * p.max
    return lo * p.min, mx


class TypeEmitter:
    def __init__(self, ue: UniverseEmitter, ct: ComplexType, element: ElementDecl | None = None,
                 cls: str | None = None):
        """``element``/``cls``: a class of its own for a global element that shares its type
        with other global elements (UniverseEmitter.element_classes)."""
        self.ue = ue
        self.u = ue.u
        self.ct = ct
        self.element = element
        self.cls = cls or ue.classes[id(ct)]
        self.deps: set[str] = set()
        self.flat: FlatGrammar | None = build_flat(self.u, ct, ue.profile.get("unbounded_above"))
        self.general: GeneralGrammar | None = None if self.flat else build_general(self.u, ct)
        self.fields: list[FieldInfo] = []
        self.event_ids: dict[Event, int] = {EE: 0}
        self.qname_ids: dict = {}
        self.tables: list[str] = []
        self._collect_fields()

    # fields ---------------------------------------------------------------------------
    def _add_field(self, name, xml_name, ns, kind, decl, t, is_list, mn, mx, group, event):
        ctype = t if isinstance(t, ComplexType) else None
        simple = t if isinstance(t, SimpleType) else None
        if ctype is not None and ctype.content == "simple" and not ctype.attributes:
            simple, ctype = ctype.simple, None  # a complex type that is just a value
        check_identifier(name, f"{self.cls}.{name}")
        if any(f.name == name for f in self.fields):
            raise SchemaError(f"{self.cls}: two fields named {name}")
        eid = len(self.event_ids)
        self.event_ids[event] = eid
        self.qname_ids[(event.kind, event.qname)] = eid
        self.fields.append(FieldInfo(name, xml_name, ns, kind, decl, ctype, simple, is_list,
                                     mn, mx, group, eid))
        if ctype is not None:
            self.deps.add(self.ue.classes[id(ctype)])
        if simple is not None and simple.enumeration is not None:
            self.deps.add(self.ue.enum_of(simple, name))

    def _collect_fields(self) -> None:
        ct = self.ct
        if self.flat is not None:
            for s in self.flat.slots:
                if s.kind == "AT":
                    a = s.members[0]
                    self._add_field(a.qname[1], a.qname[1], a.qname[0], "attr", a, a.type, False,
                                    s.min, 1, s.index, s.events[0])
                elif s.kind == "CH":
                    self._add_field("value", "value", "", "value", s.members[0], s.members[0], False,
                                    1, 1, s.index, s.events[0])
                elif s.kind == "SE":
                    concrete = [m for m in s.members if isinstance(m, ElementDecl) and not m.abstract]
                    multi = len(concrete) > 1
                    for m, ev in zip(s.members, s.events):
                        if isinstance(m, Wildcard) or m.abstract:  # never in a valid document
                            self.event_ids[ev] = -1
                            self.qname_ids[(ev.kind, ev.qname)] = -1
                            continue
                        is_list = ct.mixed or s.facet_max is None or s.facet_max > 1
                        mn = 0 if multi else s.min
                        self._add_field(m.qname[1], m.qname[1], m.qname[0], "elem", m, m.type,
                                        is_list, mn, s.facet_max, s.index, ev)
                else:  # ANY
                    self.event_ids[s.events[0]] = -1
            return
        # general grammar: fields in schema order of first appearance
        for a in sorted(ct.attributes, key=lambda a: (a.qname[1], a.qname[0])):
            self._add_field(a.qname[1], a.qname[1], a.qname[0], "attr", a, a.type, False,
                            1 if a.required else 0, 1, -1, Event("AT", a.qname))
        seen: dict = {}
        for st in self.general.states:
            for ev, _ in st.productions:
                if ev.kind == "SE" and ev.qname not in seen:
                    seen[ev.qname] = ev
        decls: dict = {}

        def walk(p: Particle):
            t = p.term
            if isinstance(t, ElementDecl):
                from .grammar import element_members
                for m in element_members(self.u, t):
                    decls.setdefault(m.qname, m)
            elif isinstance(t, Group):
                for c in t.particles:
                    walk(c)
        walk(ct.particle)
        for q, ev in sorted(seen.items(), key=lambda kv: kv[1].pos):
            m = decls[q]
            if m.abstract:
                self.qname_ids[("SE", q)] = -1
                continue
            lo, hi = occurrence(ct.particle, q)
            is_list = ct.mixed or hi is None or hi > 1
            self._add_field(q[1], q[1], q[0], "elem", m, m.type, is_list, lo, hi, -1, ev)
        for st in self.general.states:
            for ev, _ in st.productions:
                if ev.kind in ("SE*", "CHu"):
                    self.event_ids[ev] = -1

    def eid(self, ev: Event) -> int:
        if ev.kind in ("SE*", "CHu"):
            return -1
        if ev.kind in ("SE", "AT"):
            return self.qname_ids[(ev.kind, ev.qname)]
        return self.event_ids[ev]

    # class definition -------------------------------------------------------------------
    def field_hint(self, f: FieldInfo) -> str:
        if f.ctype is not None:
            t = self.ue.classes[id(f.ctype)]
        else:
            t = py_type(f.simple, self.ue.enum_names)
        if f.is_list:
            return f"list[{t}]"
        if f.min == 0:
            return f"{t} | None"
        return t

    def classdef(self) -> str:
        """A frozen keyword-only dataclass, written out (see iso15118/exi/_message.py)."""
        ct = self.ct
        what = ct.name[1] if ct.name else f"anonymous type of {ct.context}"
        ns = ct.name[0] if ct.name else ""
        if self.element is not None:
            e = self.element
            doc = (f"Element {e.qname[1]} ({e.qname[0]}), of type {what}: the fields of "
                   f"{self.ue.classes[id(ct)]}, a class of its own so that the element survives decoding.")
        else:
            doc = f"{what}{f' ({ns})' if ns else ''}."
        names = [f.name for f in self.fields]
        out = [f"class {self.cls}(_Message):",
               f'    """{doc}"""',
               f"    __slots__ = {tuple(names)!r}"]
        hints = [f"    {f.name}: {self.field_hint(f)}" for f in self.fields]
        out += hints
        if not self.fields:
            return "\n".join(out) + "\n"
        params = []
        body = []
        for f in self.fields:
            if f.is_list:
                params.append(f"{f.name}=_NO_LIST")
                body.append(f"        _os(self, {f.name!r}, [] if {f.name} is _NO_LIST else {f.name})")
            elif f.min == 0:
                params.append(f"{f.name}=None")
                body.append(f"        _os(self, {f.name!r}, {f.name})")
            else:
                params.append(f.name)
                body.append(f"        _os(self, {f.name!r}, {f.name})")
        out.append("")
        out.append(f"    def __init__(self, *, {', '.join(params)}):")
        out += body
        return "\n".join(out) + "\n"

    def spec_src(self, simple: SimpleType | None) -> str:
        if simple is None:
            return "None"
        enum = self.ue.enum_of(simple, "") if simple.enumeration is not None else None
        args = [repr(simple.kind), repr(simple.builtin), repr(simple.min), repr(simple.max),
                repr(simple.length), repr(simple.min_length), repr(simple.max_length), enum or "None"]
        return f"_SimpleSpec({', '.join(args)})"

    def spec(self) -> str:
        ct = self.ct
        name = ct.name[1] if ct.name else ct.context
        ns = ct.name[0] if ct.name else ""
        fields = []
        for f in self.fields:
            cls = self.ue.classes[id(f.ctype)] if f.ctype is not None else "None"
            fields.append(f"        _FieldSpec({f.name!r}, {f.xml_name!r}, {f.ns!r}, {f.kind!r}, {cls}, "
                          f"{self.spec_src(f.simple)}, {f.is_list}, {f.min}, {f.max!r}, {f.group}),")
        groups = []
        if self.flat is not None:
            for s in self.flat.slots:
                names = [f.name for f in self.fields if f.group == s.index and f.kind == "elem"]
                if len(names) > 1:
                    groups.append(f"        _GroupSpec({tuple(names)!r}, {s.min}, {s.facet_max!r}),")
        universe = "None" if self.ue.shared_hint(self) else repr(self.ue.key)
        return (f"{self.cls}._exi = _TypeSpec({name!r}, {ns!r}, (\n" + "\n".join(fields) +
                f"\n    ), (\n" + "\n".join(groups) + f"\n    ), {ct.mixed}, __UNIVERSE__)\n")

    # value coding -----------------------------------------------------------------------
    def enc_value(self, c: Code, expr: str, st: SimpleType, label: str) -> None:
        checked = self.ue.checked
        if st.enumeration is not None:
            n = len(st.enumeration)
            nb = nbits_for(n, False)
            idx = f"_EI_{self.ue.enum_of(st, '')}[{expr}]"
            if not checked:  # tests: an int is written as a raw index
                idx = f"({expr} if {expr}.__class__ is int else {idx})"
            c(f"a = (a << {nb}) | {idx}" if nb else idx)
            return
        if st.kind == "boolean":
            c(f"a = (a << 1) | _BOOL[{expr}]")
        elif st.kind == "integer":
            ic = int_coding(st)
            lo, hi = ic.min, ic.max
            conds = []
            if lo is not None:
                conds.append(f"{expr} < {lo}")
            if hi is not None:
                conds.append(f"{expr} > {hi}")
            if conds and checked:
                c(f"if {' or '.join(conds)}: raise _Invalid(f'{label}: {{{expr}}} outside [{lo}, {hi}]')")
            if checked and ic.mode != "nbit" and not ic.max_bits:  # read with UNBOUNDED_INT_BITS
                c(f"if not -_UNBOUNDED_INT_LIMIT <= {expr} < _UNBOUNDED_INT_LIMIT: "
                  f"raise _Invalid(f'{label}: {{{expr}}} is beyond what an unbounded integer may hold')")
            if ic.mode == "nbit":
                off = f"({expr} - {lo})" if lo else expr
                if not checked:
                    off = f"({off} & {(1 << ic.nbits) - 1})"
                c(f"a = (a << {ic.nbits}) | {off}" if ic.nbits else f"{expr} + 0")
            elif ic.mode == "uint":
                c(f"a = ((a << 8) | {expr}) if {expr} < 128 else _w_uint(a, {expr})")
            else:
                c(f"a = _w_int(a, {expr})")
        elif st.kind == "string":
            lo, hi = length_bounds(st) if checked else (0, None)
            c(f"a = _w_str(a, {expr}, {lo}, {hi!r})")
        else:
            lo, hi = length_bounds(st) if checked else (0, None)
            c(f"a = _w_bin(a, {expr}, {lo}, {hi!r})")

    def dec_value(self, c: Code, var: str, st: SimpleType) -> None:
        if st.enumeration is not None:
            n = len(st.enumeration)
            nb = nbits_for(n, False)
            en = self.ue.enum_of(st, "")
            if nb == 0:
                c.keep(f"{var} = _EV_{en}[0]")
                return
            if n != 1 << nb:
                c.read(nb, "value", (var, "{}", ("e", n), [f"{var} = _EV_{en}[{var}]"]))
            else:
                c.read(nb, "value", (var, f"_EV_{en}[{{}}]", None, []))
        elif st.kind == "boolean":
            c.read(1, "value", (var, "({}) == 1", None, []))
        elif st.kind == "integer":
            ic = int_coding(st)
            if ic.mode == "nbit":
                if ic.nbits == 0:
                    c.keep(f"{var} = {ic.min}")
                    return
                off = f" + {ic.min}" if ic.min > 0 else (f" - {-ic.min}" if ic.min < 0 else "")
                check = ("n", ic.min, ic.max) if ic.max - ic.min + 1 != 1 << ic.nbits else None
                c.read(ic.nbits, "value", (var, "(" + "{}" + ")" + off if off else "{}", check, []))
                return
            bits = ic.max_bits or "_UNBOUNDED_INT_BITS"
            fn = "_r_uint" if ic.mode == "uint" else "_r_int"
            c(f"{var}, p = {fn}(D, L, p, {bits})")
            conds = []
            if ic.min is not None and not (ic.mode == "uint" and ic.min == 0):
                conds.append(f"{var} < {ic.min}")
            if ic.max is not None:
                conds.append(f"{var} > {ic.max}")
            if conds:
                c(f"if {' or '.join(conds)}: raise _out_of_range({var}, {ic.min}, {ic.max}, p)")
        elif st.kind == "string":
            lo, hi = length_bounds(st)
            c(f"{var}, p = _r_str(D, L, p, {lo}, {hi!r})")
        else:
            lo, hi = length_bounds(st)
            c(f"{var}, p = _r_bin(D, L, p, {lo}, {hi!r})")

    # element content (after its SE event code) -------------------------------------------
    def enc_content(self, c: Code, f: FieldInfo, expr: str) -> None:
        if f.kind == "attr" or f.kind == "value":
            self.enc_value(c, expr, f.simple, f.name)
        elif f.ctype is not None:
            c(f"a = _e_{self.ue.classes[id(f.ctype)]}({expr}, a)")
        elif can_be_empty(f.simple):
            # EXIficient writes no CH for an empty value: the element ends through the second
            # level of Type_0 (escape 1, then EE = 0 in 3 bits: EE, xsi:type, xsi:nil, AT(*),
            # 3rd level, SE(*), CH are the 7 second-level productions, §8.5.4.4.1)
            c(f"if len({expr}):")
            c.indent += 1
            c.bits(0, 1)  # CH
            self.enc_value(c, expr, f.simple, f.name)
            c.bits(0, 1)  # EE
            c.flush()
            c.indent -= 1
            c("else:")
            c.indent += 1
            c.bits(0b1000, 4)
            c.flush()
            c.indent -= 1
        else:
            c.bits(0, 1)  # CH
            self.enc_value(c, expr, f.simple, f.name)
            c.bits(0, 1)  # EE

    def dec_content(self, c: Code, f: FieldInfo, var: str) -> None:
        if f.kind == "attr" or f.kind == "value":
            self.dec_value(c, var, f.simple)
        elif f.ctype is not None:
            c(f"{var}, p = _d_{self.ue.classes[id(f.ctype)]}(D, L, p)")
        elif can_be_empty(f.simple):
            c.flush_reads()
            c("p += 1")
            c("if (D >> (L - p)) & 1:")
            c("    p += 3")
            c("    if (D >> (L - p)) & 7: raise _bad_event(-1, p)")
            c(f"    {var} = {empty_value(f.simple)}")
            c("else:")
            c.indent += 1
            self.dec_value(c, var, f.simple)
            c.read(1, "zero")  # EE
            c.flush_reads()
            c.indent -= 1
        else:
            c.read(1, "zero")  # CH: the only first-level production of Type_0
            self.dec_value(c, var, f.simple)
            c.read(1, "zero")  # EE

    # ----------------------------------------------------------------------------------
    def codec(self) -> str:
        if self.flat is not None:
            body = self.flat_encoder() + "\n\n" + self.flat_decoder() + "\n" + "".join(self.tables)
        else:
            body = self.general_codec() + "".join(self.tables)
        return self.maker() + "\n\n" + body + self.ctable()

    # --- tables for the Cython backend (same grammar model, interpreted in C) ------------
    def simple_coding(self, st: SimpleType) -> tuple:
        """How a simple value is coded: ('b',) | ('n', nbits, min, max) | ('u'|'i', min, max) |
        ('e', nbits, count, enum name) | ('s'|'x', min length, max length)."""
        if st.enumeration is not None:
            n = len(st.enumeration)
            return ("e", nbits_for(n, False), n, self.ue.enum_of(st, ""))
        if st.kind == "boolean":
            return ("b",)
        if st.kind == "integer":
            ic = int_coding(st)
            if ic.mode == "nbit":
                return ("n", ic.nbits, ic.min, ic.max)
            return ("u" if ic.mode == "uint" else "i", ic.min, ic.max)
        lo, hi = length_bounds(st)
        return ("s" if st.kind == "string" else "x", lo, hi)

    def ctable(self) -> str:
        """``_C_<class>``: the grammar as data for the C interpreter of ``ext/_cexi.pyx``."""
        fields = []
        for f in self.fields:
            if f.ctype is not None:
                value = ("T", self.ue.classes[id(f.ctype)])
            else:
                value = self.simple_coding(f.simple)
            fkind = {"attr": 0, "elem": 1, "value": 2}[f.kind]
            empty = f.simple is not None and f.kind == "elem" and can_be_empty(f.simple)
            fields.append((f.name, f.event_id, fkind, f.is_list, empty, value))
        nev = len(self.event_ids) + 1
        if self.flat is not None:
            sid = self.state_ids()
            states = []
            for key, st in self.flat.states.items():
                dec = [self.eid(e) for e, _ in st.productions] + [-1]
                dec += [-2] * ((1 << st.nbits) - len(dec))
                enc = [-1] * nev
                for code, (e, _) in enumerate(st.productions):
                    if self.eid(e) >= 0:
                        enc[self.eid(e)] = code
                states.append((st.nbits, len(st.productions), tuple(dec), tuple(enc)))
            slots = []
            for sl in self.flat.slots:
                members = tuple(i for i, f in enumerate(self.fields) if f.group == sl.index)
                cats = {c: sid.get((sl.index, c), -1) for c in ("must", "may", "full")}
                ch_empty = sl.kind == "CH" and can_be_empty(sl.members[0])
                slots.append((sl.min, -1 if sl.max is None else sl.max,
                              -1 if sl.facet_max is None else sl.facet_max,
                              cats["must"], cats["may"], cats["full"], members, ch_empty))
            table = (0, tuple(states), tuple(slots), tuple(fields), sid[(-1, "start")])
        else:
            states = []
            for st in self.general.states:
                dec = [(self.eid(e), -1 if t is None else t) for e, t in st.productions] + [(-1, -1)]
                dec += [(-2, -1)] * ((1 << st.nbits) - len(dec))
                enc = [None] * nev
                for code, (e, t) in enumerate(st.productions):
                    if self.eid(e) >= 0:
                        enc[self.eid(e)] = (code, -1 if t is None else t)
                states.append((st.nbits, len(st.productions), tuple(dec), tuple(enc)))
            table = (1, tuple(states), (), tuple(fields), 0)
        return f"_C_{self.cls} = {table!r}\n"

    def maker(self) -> str:
        """A positional constructor for the decoder: object.__new__ plus the slots' descriptors
        is about 2.5x faster than the frozen dataclass's keyword __init__ (same object)."""
        names = [f.name for f in self.fields]
        params = "".join(f"{n}, " for n in names)
        defaults = "".join(f", _s{i}={self.cls}.{n}.__set__" for i, n in enumerate(names))
        sets = "".join(f"; _s{i}(o, {n})" for i, n in enumerate(names))
        return (f"def _mk_{self.cls}({params}_n=object.__new__, _c={self.cls}{defaults}):\n"
                f"    o = _n(_c){sets}\n    return o\n")

    # flat encoder ---------------------------------------------------------------------
    def state_ids(self) -> dict:
        return {k: i for i, k in enumerate(self.flat.states)}

    def emit_code(self, c: Code, ev: Event, possible: set, sid: dict) -> None:
        """Write the event code of ``ev`` from whichever state in ``possible`` we are in."""
        pairs = {}
        for k in possible:
            st = self.flat.states[k]
            try:
                pairs[k] = (st.code_of(ev), st.nbits)
            except KeyError:
                pairs[k] = None
        distinct = set(pairs.values())
        if len(distinct) == 1 and None not in distinct:
            code, nb = distinct.pop()
            c.bits(code, nb)
            return
        self.needs_state = True
        tname = f"_E_{self.cls}_{self.eid(ev)}"
        if tname not in self.emitted_tables:
            row = [None] * len(sid)
            for k, v in pairs.items():
                row[sid[k]] = v
            for k in self.flat.states:  # complete the row for every state
                st = self.flat.states[k]
                if row[sid[k]] is None:
                    try:
                        row[sid[k]] = (st.code_of(ev), st.nbits)
                    except KeyError:
                        pass
            self.tables.append(f"{tname} = {tuple(row)!r}\n")
            self.emitted_tables.add(tname)
        c(f"_c = {tname}[s]")
        c(f"if _c is None: raise _Invalid({f'{self.cls}: {ev.label()} not allowed here'!r})")
        c("a = (a << _c[1]) | _c[0]")

    def emit_escape(self, c: Code, possible: set, sid: dict) -> None:
        """Write the first-level escape (code n of n productions) of the current state."""
        pairs = {(len(self.flat.states[k].productions), self.flat.states[k].nbits) for k in possible}
        if len(pairs) == 1:
            c.bits(*pairs.pop())
            return
        self.needs_state = True
        row = tuple((len(st.productions), st.nbits) for st in self.flat.states.values())
        self.tables.append(f"_X_{self.cls} = {row!r}\n")
        c(f"a = (a << _X_{self.cls}[s][1]) | _X_{self.cls}[s][0]")

    def flat_encoder(self) -> str:
        g = self.flat
        sid = self.state_ids()
        self.needs_state = False
        self.emitted_tables: set[str] = set()
        body = Code()
        body.indent = 1
        possible = {(-1, "start")}
        by_slot: dict[int, list[FieldInfo]] = {}
        for f in self.fields:
            by_slot.setdefault(f.group, []).append(f)

        def set_state(key):
            body.raw(f"s = {sid[key]}  #S")

        for s in g.slots:
            fs = by_slot.get(s.index, [])
            if not fs:
                # a wildcard-only slot: we never produce wildcard content
                if s.min > 0:  # content that only a wildcard can supply: not encodable
                    body(f"raise _Invalid({f'{self.cls}: wildcard (xs:any) content is not supported'!r})")
                    possible = {(s.index, cat) for cat in categories(s) if cat != "must"}
                continue
            after = {(s.index, cat) for cat in categories(s)}
            if s.kind == "CH" and can_be_empty(fs[0].simple):
                # an empty value: escape from this state, then EE at the second level, which
                # ends the element (3 bits in every start-tag state, §8.5.4.4.1)
                f = fs[0]
                body.keep("v = o.value")
                body.keep(f"if v is None: raise _missing({f'{self.cls}.value'!r})")
                body("if not len(v):")
                body.indent += 1
                self.emit_escape(body, possible, sid)
                body.bits(0, 3)
                body("return a")
                body.indent -= 1
            if len(fs) == 1 and not fs[0].is_list:
                f = fs[0]
                ev = next(e for e, i in self.event_ids.items() if i == f.event_id)
                body.keep(f"v = o.{f.name}")
                if s.min == 0:
                    body("if v is not None:")
                    body.indent += 1
                else:
                    body.keep(f"if v is None: raise _missing({f'{self.cls}.{f.name}'!r})")
                self.emit_code(body, ev, possible, sid)
                self.enc_content(body, f, "v")
                set_state((s.index, "full"))
                body.flush()
                if s.min == 0:
                    body.indent -= 1
                    possible = possible | {(s.index, "full")}
                else:
                    possible = {(s.index, "full")}
                continue
            if len(fs) == 1:  # a list slot with one member
                f = fs[0]
                ev = next(e for e, i in self.event_ids.items() if i == f.event_id)
                mx, fmx = s.max, s.facet_max
                body(f"v = o.{f.name}")
                body("n = len(v)")
                conds = []
                if s.min > 0:
                    conds.append(f"n < {s.min}")
                if fmx is not None and self.ue.checked:
                    conds.append(f"n > {fmx}")
                elif mx is not None:  # unchecked encoders still cannot write what the grammar lacks
                    conds.append(f"n > {mx}")
                if conds:
                    body(f"if {' or '.join(conds)}: raise _Invalid(f'{self.cls}.{f.name}: {{n}} items, "
                         f"allowed {s.min}..{fmx if fmx is not None else 'unbounded'}')")
                body("if n:")
                body.indent += 1
                self.emit_code(body, ev, possible, sid)
                self.enc_content(body, f, "v[0]")
                body.flush()
                if mx == 1:
                    pass  # a list only because the type is mixed: at most one item
                elif s.min <= 2:
                    # items 2.. are coded from the 'may' state, or 'must' while below min
                    body("for i in range(1, n):")
                    body.indent += 1
                    body(LONG_OUTPUT)
                    if s.min == 2:
                        body("if i < 2:")
                        body.indent += 1
                        self.emit_code(body, ev, {(s.index, "must")}, sid)
                        body.flush()
                        body.indent -= 1
                        body("else:")
                        body.indent += 1
                        self.emit_code(body, ev, {(s.index, "may")}, sid)
                        body.flush()
                        body.indent -= 1
                    else:
                        self.emit_code(body, ev, {(s.index, "may")}, sid)
                    self.enc_content(body, f, "v[i]")
                    body.flush()
                    body.indent -= 1
                else:
                    raise SchemaError(f"{self.cls}.{f.name}: minOccurs > 2 on a list is not supported")
                cats = categories(s)
                if "full" in cats and "may" in cats:
                    body.raw(f"s = {sid[(s.index, 'full')]} if n == {mx} else {sid[(s.index, 'may')]}  #S")
                elif "full" in cats:
                    set_state((s.index, "full"))
                else:
                    set_state((s.index, "may"))
                body.indent -= 1
                reach = {(s.index, cat) for cat in cats if cat != "must"}
                possible = (possible | reach) if s.min == 0 else reach
                continue
            # several alternative members (choice / substitution group)
            if s.max == 1 and not any(f.is_list for f in fs):
                names = [f.name for f in fs]
                body(f"k = {' + '.join(f'(o.{n} is not None)' for n in names)}")
                if s.min > 0:
                    body(f"if k != 1: raise _Invalid({f'{self.cls}: exactly one of {names} is required'!r}"
                         f" + f', got {{k}}')")
                else:
                    body(f"if k > 1: raise _Invalid({f'{self.cls}: at most one of {names} is allowed'!r})")
                kw = "if"
                for f in fs:
                    ev = next(e for e, i in self.event_ids.items() if i == f.event_id)
                    body(f"{kw} o.{f.name} is not None:")
                    kw = "elif"
                    body.indent += 1
                    self.emit_code(body, ev, possible, sid)
                    self.enc_content(body, f, f"o.{f.name}")
                    set_state((s.index, "full"))
                    body.flush()
                    body.indent -= 1
                possible = (possible | {(s.index, "full")}) if s.min == 0 else {(s.index, "full")}
                continue
            # repeated choice: every member is a list; items are written member by member
            self.needs_state = True
            body.raw(f"s0 = s  #S")
            body("n = 0")
            for f in fs:
                ev = next(e for e, i in self.event_ids.items() if i == f.event_id)
                body(f"for v in o.{f.name}:")
                body.indent += 1
                body(LONG_OUTPUT)
                body(f"s = s0 if n == 0 else _cat_{self.cls}_{s.index}(n)")
                self.emit_code(body, ev, set(self.flat.states), sid)
                self.enc_content(body, f, "v")
                body("n += 1")
                body.indent -= 1
            conds = []
            if s.min > 0:
                conds.append(f"n < {s.min}")
            if s.facet_max is not None:
                conds.append(f"n > {s.facet_max}")
            if conds:
                names = "/".join(f.name for f in fs)
                body(f"if {' or '.join(conds)}: raise _Invalid(f'{self.cls}: {{n}} items in "
                     f"{names}, allowed {s.min}..{s.facet_max if s.facet_max is not None else 'unbounded'}')")
            body(f"if n: s = _cat_{self.cls}_{s.index}(n)")
            self._cat_fn(s, sid)
            reach = {(s.index, cat) for cat in categories(s) if cat != "must"}
            possible = (possible | reach) if s.min == 0 else reach
        self.emit_code(body, EE, possible, sid)
        body("return a")
        lines = [f"def _e_{self.cls}(o, a):"]
        if self.needs_state:
            lines.append("    s = 0")
        for ln in body.text().splitlines():
            if ln.endswith("#S"):
                if not self.needs_state:
                    continue
                ln = ln[:-2].rstrip()
            lines.append(ln)
        return "\n".join(lines) + "\n"

    def _cat_fn(self, s: Slot, sid: dict) -> None:
        name = f"_cat_{self.cls}_{s.index}"
        body = [f"def {name}(n):"]
        if s.min > 1:
            body.append(f"    if n < {s.min}: return {sid[(s.index, 'must')]}")
        if (s.index, "may") not in sid:
            body.append(f"    return {sid[(s.index, 'full')]}")
        else:
            if s.max is not None:
                body.append(f"    if n >= {s.max}: return {sid[(s.index, 'full')]}")
            body.append(f"    return {sid[(s.index, 'may')]}")
        self.tables.append("\n\n" + "\n".join(body) + "\n")

    # flat decoder ---------------------------------------------------------------------
    def dtable(self, key) -> str:
        """Decode table of a state: event id for every code of its width."""
        st = self.flat.states[key]
        name = f"_D_{self.cls}_{self.state_ids()[key]}"
        if name not in self.emitted_tables:
            row = [self.eid(e) for e, _ in st.productions] + [-1]
            row += [-2] * ((1 << st.nbits) - len(row))
            self.tables.append(f"{name} = {tuple(row)!r}\n")
            self.emitted_tables.add(name)
        return name

    def read_event(self, c: Code, key) -> None:
        """Read the next event code in state ``key``; ``self.known`` is its event id when the
        state has a single production (the escape is then refused at the read's flush)."""
        st = self.flat.states[key]
        ev0 = st.productions[0][0]
        empty_ch = ev0.kind == "CH" and can_be_empty(self.flat.slots[-1].members[0])
        if len(st.productions) == 1 and self.eid(ev0) >= 0 and not empty_ch:
            c.read(st.nbits, "zero")
            c.keep(f"ev = {self.eid(ev0)}")
            self.known = self.eid(ev0)
            return
        c.read(st.nbits, "event", self.dtable(key))
        self.known = None

    def flat_decoder(self) -> str:
        g = self.flat
        c = Code()
        c.indent = 2
        self.known = None
        self.read_event(c, (-1, "start"))
        by_slot: dict[int, list[FieldInfo]] = {}
        for f in self.fields:
            by_slot.setdefault(f.group, []).append(f)
        for s in g.slots:
            fs = by_slot.get(s.index, [])
            if not fs:
                continue
            if len(fs) == 1 and not fs[0].is_list:
                f = fs[0]
                if s.min == 0 and self.known is not None:  # the event is known here
                    if self.known == f.event_id:
                        self.dec_content(c, f, f"f_{f.name}")
                        self.read_event(c, (s.index, "full"))
                    else:
                        c.keep(f"f_{f.name} = None")
                elif s.min == 0:
                    c(f"if ev == {f.event_id}:")
                    c.indent += 1
                    self.dec_content(c, f, f"f_{f.name}")
                    self.read_event(c, (s.index, "full"))
                    c.indent -= 1
                    c("else:")
                    c(f"    f_{f.name} = None")
                    self.known = None
                elif s.kind == "CH" and can_be_empty(f.simple):
                    c("if ev == -1:  # escape: an empty value ends the element at the second level")
                    c("    p += 3")
                    c("    if (D >> (L - p)) & 7: raise _bad_event(-1, p)")
                    c(f"    f_value = {empty_value(f.simple)}; ev = 0")
                    c(f"elif ev != {f.event_id}: raise _bad_event(ev, p)")
                    c("else:")
                    c.indent += 1
                    self.dec_content(c, f, f"f_{f.name}")
                    self.read_event(c, (s.index, "full"))
                    c.indent -= 1
                    self.known = None
                else:
                    if self.known != f.event_id:
                        c(f"if ev != {f.event_id}: raise _bad_event(ev, p)")
                    self.dec_content(c, f, f"f_{f.name}")
                    self.read_event(c, (s.index, "full"))
                continue
            if s.max == 1 and not any(f.is_list for f in fs):
                for f in fs:
                    c(f"f_{f.name} = None")
                kw = "if"
                for f in fs:
                    c(f"{kw} ev == {f.event_id}:")
                    kw = "elif"
                    c.indent += 1
                    self.dec_content(c, f, f"f_{f.name}")
                    self.read_event(c, (s.index, "full"))
                    c.indent -= 1
                if s.min > 0:
                    c("else:")
                    c("    raise _bad_event(ev, p)")
                self.known = None
                continue
            # list slot(s): one or several members, all lists
            for f in fs:
                c(f"f_{f.name} = []")
            c("n = 0")
            ids = [f.event_id for f in fs]
            cond = f"ev == {ids[0]}" if len(ids) == 1 else f"ev in {tuple(ids)!r}"
            c(f"while {cond}:")
            c.indent += 1
            if len(fs) == 1:
                self.dec_content(c, fs[0], "x")
                c(f"f_{fs[0].name}.append(x)")
            else:
                kw = "if"
                for f in fs:
                    c(f"{kw} ev == {f.event_id}:")
                    kw = "elif"
                    c.indent += 1
                    self.dec_content(c, f, "x")
                    c(f"f_{f.name}.append(x)")
                    c.indent -= 1
            c("n += 1")
            if s.facet_max is not None and s.facet_max != s.max:
                c(f"if n > {s.facet_max}: raise _too_many(n, {s.facet_max}, p)")
            cats = categories(s)
            branches = []
            if "must" in cats:
                branches.append((f"n < {s.min}", (s.index, "must")))
            if "may" in cats:
                branches.append((f"n < {s.max}" if s.max is not None else "True", (s.index, "may")))
            if "full" in cats:
                branches.append(("True", (s.index, "full")))
            if len(branches) == 1 or branches[0][0] == "True":
                self.read_event(c, branches[0][1])
            else:
                kw = "if"
                for cond2, key in branches:
                    if cond2 == "True":
                        c("else:")
                    else:
                        c(f"{kw} {cond2}:")
                    kw = "elif"
                    c.indent += 1
                    self.read_event(c, key)
                    c.indent -= 1
                    if cond2 == "True":
                        break
            c.indent -= 1
            self.known = None
            if s.min > 0:
                c(f"if n < {s.min}: raise _bad_event(ev, p)")
        if self.known != 0:
            c("if ev != 0: raise _bad_event(ev, p)")
        args = ", ".join(f"{f.name}=f_{f.name}" for f in self.fields)
        c(f"return _mk_{self.cls}({', '.join(f'f_{f.name}' for f in self.fields)}), p")
        head = [f"def _d_{self.cls}(D, L, p):", "    try:"]
        tail = ["    except (ValueError, _ExiDecodeError) as e:",
                f"        raise _fault(e, p, L, {self.cls!r}) from None"]
        return "\n".join(head) + "\n" + c.text() + "\n".join(tail) + "\n"

    # general grammar (three xmldsig types) -------------------------------------------------
    def general_codec(self) -> str:
        g = self.general
        enc_rows = []
        dec_rows = []
        for st in g.states:
            m = {}
            for code, (ev, tgt) in enumerate(st.productions):
                e = self.eid(ev)
                if e >= 0:
                    m[e] = (code, st.nbits, tgt if tgt is not None else -1)
            enc_rows.append(m)
            row = [(self.eid(ev), tgt if tgt is not None else -1) for ev, tgt in st.productions]
            row.append((-1, -1))
            row += [(-2, -1)] * ((1 << st.nbits) - len(row))
            dec_rows.append((st.nbits, tuple(row)))
        self.tables.append(f"_G_{self.cls}_E = {tuple(enc_rows)!r}\n")
        self.tables.append(f"_G_{self.cls}_D = {tuple(dec_rows)!r}\n")
        e = Code()
        e.indent = 1
        e("s = 0")
        for f in self.fields:
            if f.is_list:
                e(f"for v in o.{f.name}:")
                e.indent += 1
                e(LONG_OUTPUT)
            else:
                e(f"v = o.{f.name}")
                e("if v is not None:")
                e.indent += 1
            e(f"_c = _G_{self.cls}_E[s].get({f.event_id})")
            e(f"if _c is None: raise _Invalid({f'{self.cls}.{f.name} not allowed here'!r})")
            e("a = (a << _c[1]) | _c[0]")
            self.enc_content(e, f, "v")
            e("s = _c[2]")
            e.indent -= 1
        e("_c = _G_{0}_E[s].get(0)".format(self.cls))
        e(f"if _c is None: raise _Invalid({f'{self.cls}: content incomplete'!r})")
        e("a = (a << _c[1]) | _c[0]")
        e("return a")
        d = Code()
        d.indent = 2
        for f in self.fields:
            d(f"f_{f.name} = {'[]' if f.is_list else 'None'}")
        d("s = 0")
        d("while True:")
        d.indent += 1
        d(f"nb, row = _G_{self.cls}_D[s]")
        d("p += nb; ev, s = row[(D >> (L - p)) & ((1 << nb) - 1)]")
        d("if ev == 0: break")
        kw = "if"
        for f in self.fields:
            d(f"{kw} ev == {f.event_id}:")
            kw = "elif"
            d.indent += 1
            if f.is_list:
                self.dec_content(d, f, "x")
                d(f"f_{f.name}.append(x)")
            else:
                self.dec_content(d, f, f"f_{f.name}")
            d.indent -= 1
        d("else:")
        d("    raise _bad_event(ev, p)")
        d.indent -= 1
        args = ", ".join(f"{f.name}=f_{f.name}" for f in self.fields)
        d(f"return _mk_{self.cls}({', '.join(f'f_{f.name}' for f in self.fields)}), p")
        enc = f"def _e_{self.cls}(o, a):\n" + e.text()
        dec = (f"def _d_{self.cls}(D, L, p):\n    try:\n" + d.text() +
               "    except (ValueError, _ExiDecodeError) as e:\n"
               f"        raise _fault(e, p, L, {self.cls!r}) from None\n")
        return enc + "\n\n" + dec + "\n"


# --- universe ---------------------------------------------------------------------------

class UniverseEmitter:
    """Generates every snippet of one universe plus its document and fragment tables."""

    def __init__(self, u: Universe, key: str, profile: dict | None = None, checked: bool = True):
        self.u = u
        self.key = key
        self.profile = profile or {}
        self.checked = checked  # False: no facet checks in encoders (tests build invalid streams)
        self.classes, enums = assign_names(u)
        self.enum_names: dict[int, str] = dict(enums)
        self.enum_snippets: dict[str, Snippet] = {}
        self.snippets: dict[str, Snippet] = {}
        self._shared: set[str] = set()

    def shared_hint(self, te: TypeEmitter) -> bool:
        return te.cls in self._shared

    def enum_of(self, st: SimpleType, context: str) -> str:
        if id(st) not in self.enum_names:
            name = check_identifier(f"{context}Enum", "anonymous enumeration")
            if name in self.enum_snippets:
                raise SchemaError(f"enum name clash: {name}")
            self.enum_names[id(st)] = name
        name = self.enum_names[id(st)]
        if name not in self.enum_snippets:
            members = "\n".join(f"    {member_name(v)} = {v!r}" for v in st.enumeration)
            doc = f'    """{st.name[1] if st.name else name} ({st.name[0] if st.name else "anonymous"})."""'
            classdef = f"class {name}(StrEnum):\n{doc}\n{members}\n"
            codec = (f"_EV_{name} = tuple({name})\n"
                     f"_EI_{name} = {{m.value: i for i, m in enumerate(_EV_{name})}}\n")
            self.enum_snippets[name] = Snippet(name, "enum", st.name[0] if st.name else "", classdef, "", codec)
        return name

    def build(self) -> list[Snippet]:
        cts = sorted(self.u.complex_types.values(), key=lambda c: c.order) + \
            sorted(self.u.anonymous_types, key=lambda c: c.order)
        self.type_emitters = [TypeEmitter(self, ct) for ct in cts]
        self.type_emitters += self.element_emitters()
        for te in self.type_emitters:
            ns = te.ct.name[0] if te.ct.name else ""
            self.snippets[te.cls] = Snippet(te.cls, "class", ns, te.classdef(), te.spec(), te.codec(),
                                            set(te.deps))
        out = list(self.enum_snippets.values()) + list(self.snippets.values())
        _sign(out)
        return out

    def element_emitters(self) -> list[TypeEmitter]:
        """Global elements that share their complex type with other global elements (-20 ACDP:
        ACDP_ConnectReq and ACDP_DisconnectReq are both ACDP_ConnectReqType) get a class each,
        named after the element, with the type's fields and codec: a decoded message then says
        which element it was, and encodes, converts and prints as that element. The element
        named like the type's class keeps that class."""
        self.element_classes: dict = {}
        by_type: dict[int, list[ElementDecl]] = {}
        for e in sorted(self.u.elements.values(), key=lambda e: (e.qname[1], e.qname[0])):
            t = e.type
            if isinstance(t, ComplexType) and not (t.content == "simple" and not t.attributes):
                by_type.setdefault(id(t), []).append(e)
        used = set(self.classes.values()) | set(self.enum_snippets)
        out = []
        for elems in by_type.values():
            if len(elems) < 2:
                continue
            type_cls = self.classes[id(elems[0].type)]
            for e in elems:
                if e.qname[1] == type_cls:
                    continue
                name = check_identifier(e.qname[1], f"element {e.qname}")
                if name in used:
                    raise SchemaError(f"global element {e.qname} shares its type, and its name is "
                                      f"taken by another class")
                used.add(name)
                self.element_classes[e.qname] = name
                out.append(TypeEmitter(self, e.type, element=e, cls=name))
        return out

    def element_class(self, e: ElementDecl) -> str:
        return self.element_classes.get(e.qname) or self.classes[id(e.type)]

    # documents and fragments ---------------------------------------------------------
    def element_entry(self, e: ElementDecl) -> str:
        """(local name, namespace, class, encoder, decoder, simple spec) of a document or
        fragment element; simple-typed elements get a value codec and SimpleElement."""
        t = e.type
        if isinstance(t, ComplexType) and not (t.content == "simple" and not t.attributes):
            cls = self.element_class(e)
            return f"({e.qname[1]!r}, {e.qname[0]!r}, {cls}, _e_{cls}, _d_{cls}, None)"
        st = t.simple if isinstance(t, ComplexType) else t
        n = self.simple_codec(st)
        spec = self.simple_emitter.spec_src(st)
        return f"({e.qname[1]!r}, {e.qname[0]!r}, _SimpleElement, _es_{n}, _ds_{n}, {spec})"

    def simple_codec(self, st: SimpleType) -> int:
        """Index of the value codec (CH, value, EE) for elements of simple type ``st``."""
        key = type_key(st)
        if key in self.simple_codecs:
            return self.simple_codecs[key][0]
        n = len(self.simple_codecs)
        se = self.simple_emitter
        f = FieldInfo("value", "value", "", "elem", None, None, st, False, 1, 1, 0, 0)
        e = Code()
        e.indent = 1
        se.enc_content(e, f, "v")
        e("return a")
        d = Code()
        d.indent = 2
        se.dec_content(d, f, "x")
        d("return x, p")
        text = (f"def _es_{n}(v, a):\n" + e.text() + f"\n\ndef _ds_{n}(D, L, p):\n    try:\n" + d.text() +
                "    except (ValueError, _ExiDecodeError) as e:\n"
                f"        raise _fault(e, p, L, 'value') from None\n")
        self.simple_codecs[key] = (n, text)
        return n

    def document_tables(self) -> str:
        self.simple_codecs: dict = {}
        self.simple_emitter = SimpleValueEmitter(self)
        globals_ = sorted(self.u.elements.values(), key=lambda e: (e.qname[1], e.qname[0]))
        rows = "\n".join(f"    {self.element_entry(e)}," for e in globals_)
        nb = nbits_for(len(globals_) + 1, non_strict=False)
        # fragment grammar (§8.5.2): every element declaration, deduplicated by qname; a qname
        # declared with different types (or nillability) takes the relaxed grammar (§8.5.3)
        byq: dict = {}
        for e in sorted(self.u.all_elements(), key=lambda e: e.order):
            byq.setdefault(e.qname, []).append(e)
        frag_rows = []
        for q in sorted(byq, key=lambda q: (q[1], q[0])):
            decls = byq[q]
            if len({(type_key(d.type), d.nillable) for d in decls}) == 1:
                frag_rows.append(f"    {self.element_entry(decls[0])},")
            else:
                cands = []
                for d in decls:
                    t = d.type
                    if isinstance(t, ComplexType) and not (t.content == "simple" and not t.attributes):
                        c = f"({self.element_class(d)}, None)"
                    else:
                        st = t.simple if isinstance(t, ComplexType) else t
                        c = f"(_SimpleElement, {self.simple_emitter.spec_src(st)})"
                    if c not in cands:
                        cands.append(c)
                frag_rows.append(f"    ({q[1]!r}, {q[0]!r}, 'relaxed', None, None, ({', '.join(cands)},)),")
        nfb = nbits_for(len(byq) + 2, non_strict=False)
        # every attribute declared in the universe, for the relaxed element fragment grammar
        attrs: dict = {}
        for ct in list(self.u.complex_types.values()) + self.u.anonymous_types:
            for a in ct.attributes:
                attrs.setdefault(a.qname, {})[type_key(a.type)] = a.type
        attr_rows = ""
        for q in sorted(attrs, key=lambda q: (q[1], q[0])):
            types = list(attrs[q].values())
            # one type: schema-typed; several: the value is coded as a plain string
            spec = (self.simple_emitter.spec_src(types[0]) if len(types) == 1
                    else "_SimpleSpec('string', 'string')")
            attr_rows += f"    ({q[1]!r}, {q[0]!r}, {spec}),\n"
        codecs = "\n\n".join(text for _, text in self.simple_codecs.values())
        tables = "".join(self.simple_emitter.tables)
        return (codecs + "\n\n" + tables + f"\nGLOBAL_ELEMENTS = (\n{rows}\n)\nDOC_NBITS = {nb}\n\n"
                f"FRAGMENT_ELEMENTS = (\n" + "\n".join(frag_rows) + f"\n)\nFRAGMENT_NBITS = {nfb}\n\n"
                f"FRAGMENT_ATTRIBUTES = (\n{attr_rows})\n")


def type_key(t) -> object:
    """Identity of a type for the fragment grammar: named types by name, anonymous by object."""
    name = getattr(t, "name", None)
    return ("named", name) if name is not None else ("anonymous", id(t))


class SimpleValueEmitter(TypeEmitter):
    """Value coding for simple-typed document and fragment elements (no complex type)."""

    def __init__(self, ue: UniverseEmitter):  # noqa: D107 - a TypeEmitter without a type
        self.ue = ue
        self.u = ue.u
        self.cls = "value"
        self.tables = []
        self.deps = set()


def _sign(snippets: list[Snippet]) -> None:
    """A snippet's signature covers its text and, transitively, its dependencies'."""
    by_name = {s.name: s for s in snippets}
    done: dict[str, str] = {}

    def sig(name: str, stack: tuple = ()) -> str:
        if name in done:
            return done[name]
        s = by_name[name]
        h = hashlib.sha256((s.classdef + s.spec + s.codec).encode())
        for d in sorted(s.deps):
            if d != name and d not in stack:
                h.update(sig(d, stack + (name,)).encode())
        done[name] = h.hexdigest()
        return done[name]

    for s in snippets:
        s.signature = sig(s.name)

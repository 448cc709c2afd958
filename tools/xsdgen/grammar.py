"""Schema-informed EXI 1.0 grammars (spec §8.5.4) for the schema model of ``model.py``.

Two constructions, one result (states whose productions carry event codes):

* **flat** — content that is a sequence of *slots* (an attribute, an element with its
  substitution group, a choice of single elements, a wildcard, or the typed value of simple
  content), each with min/max occurrences. A state is "after slot j, count category" (must
  repeat / may repeat / full), so a list of 1024 entries costs three states and a counter,
  not 1024 states. Every V2G type is flat except three xmldsig types.
* **general** — the literal §8.5.4.1 construction (particle grammars concatenated, unioned and
  repeated, then normalised to a deterministic grammar by subset construction). Used for the
  rest, and as an independent check of the flat construction in the tests.

The V2G codecs use non-strict grammars (the vectors settle it): every state keeps a second
level (xsi:type, xsi:nil, undeclared content), so a state with n first-level productions
writes its event codes in ceil(log2(n + 1)) bits.

Event code order (§8.5.4.4.2): AT(qname) sorted by local name then uri, AT(*), SE(qname) in
schema order (substitution-group members sorted lexically inside their particle), SE(uri:*),
SE(*), EE, CH.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import (ComplexType, ElementDecl, Group, Particle, SchemaError, SimpleType,
                    Universe, Wildcard)


def nbits_for(n_first_level: int, non_strict: bool = True) -> int:
    """Bits of a first-level event code in a state with ``n_first_level`` productions."""
    n = n_first_level + (1 if non_strict else 0)
    return max(0, (n - 1).bit_length())


# --- events -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """A terminal symbol: kind is 'AT', 'SE', 'SE*', 'EE', 'CH' (typed) or 'CHu' (untyped, mixed)."""

    kind: str
    qname: tuple[str, str] | None = None
    pos: tuple[int, int] = (0, 0)  # schema order for SE: (particle position, member index)

    def sort_key(self):
        order = {"AT": 0, "SE": 2, "SE*": 4, "EE": 5, "CH": 6, "CHu": 6}[self.kind]
        if self.kind == "AT":
            return (order, self.qname[1], self.qname[0])
        if self.kind == "SE":
            return (order, self.pos)
        return (order,)

    def label(self) -> str:
        if self.qname:
            return f"{self.kind}({self.qname[1]})"
        return self.kind


EE = Event("EE")


def element_members(u: Universe, decl: ElementDecl) -> list[ElementDecl]:
    """The elements an element particle stands for: itself and its substitution group, sorted
    lexically by local name then uri (§8.5.4.1.6). Abstract elements keep their production
    (EXIficient and libcbv2g count them: the -2 and DIN vectors prove it) even though no valid
    document can contain them."""
    members = [decl]
    if decl.is_global:
        members += list(u.substitution_members(decl.qname))
    members.sort(key=lambda e: (e.qname[1], e.qname[0]))
    if not members:
        raise SchemaError(f"element particle {decl.qname[1]} accepts no element")
    return members


# --- flat construction --------------------------------------------------------------------

@dataclass
class Slot:
    kind: str  # 'AT' | 'SE' | 'ANY' | 'CH'
    min: int
    max: int | None
    members: list = field(default_factory=list)  # AT: [AttributeUse]; SE: [ElementDecl]; CH: [SimpleType]
    events: list[Event] = field(default_factory=list)
    index: int = 0
    facet_max: int | None = -1  # the XSD maxOccurs when the grammar uses another (-1: same)

    def __post_init__(self):
        if self.facet_max == -1:
            self.facet_max = self.max


@dataclass
class State:
    """A grammar state: productions in event-code order; ``nbits`` per event code."""

    name: str
    productions: list[tuple[Event, object]]  # (event, target); target meaning depends on grammar
    nbits: int = 0

    def code_of(self, ev: Event) -> int:
        for i, (e, _) in enumerate(self.productions):
            if e == ev:
                return i
        raise KeyError(ev)


@dataclass
class FlatGrammar:
    slots: list[Slot]
    states: dict[tuple[int, str], State]  # (slot index or -1, category) → state
    mixed: bool

    def state(self, slot: int, cat: str) -> State:
        return self.states[(slot, cat)]


def categories(slot: Slot) -> list[str]:
    """Count categories reachable after consuming >= 1 occurrence of ``slot``."""
    cats = []
    mn, mx = slot.min, slot.max
    if mn > 1:
        cats.append("must")  # 1 <= count < min
    if mx is None or mx > max(mn, 1):
        cats.append("may")  # max(min,1) <= count < max
    if mx is not None:
        cats.append("full")  # count == max
    return cats


def category_of(slot: Slot, count: int) -> str:
    if count < slot.min:
        return "must"
    if slot.max is not None and count >= slot.max:
        return "full"
    return "may"


def _flatten(u: Universe, p: Particle, out: list[Slot], counter: list[int]) -> bool:
    """Append the slots of particle ``p``; False when it is not flat."""
    t = p.term
    if isinstance(t, ElementDecl):
        counter[0] += 1
        members = element_members(u, t)
        ev = [Event("SE", m.qname, (counter[0], i)) for i, m in enumerate(members)]
        out.append(Slot("SE", p.min, p.max, members, ev))
        return True
    if isinstance(t, Wildcard):
        counter[0] += 1
        out.append(Slot("ANY", p.min, p.max, [t], [Event("SE*")]))
        return True
    if t.kind == "sequence" and (p.min, p.max) == (1, 1):
        return all(_flatten(u, c, out, counter) for c in t.particles)
    if t.kind == "sequence" and len(t.particles) == 1 and (t.particles[0].min, t.particles[0].max) == (1, 1):
        inner = t.particles[0]
        return _flatten(u, Particle(inner.term, p.min, p.max), out, counter)
    if t.kind == "choice" and all(isinstance(c.term, (ElementDecl, Wildcard)) and c.max == 1
                                  for c in t.particles):
        members, events = [], []
        optional = any(c.min == 0 for c in t.particles)
        wild = None
        for c in t.particles:
            counter[0] += 1
            if isinstance(c.term, Wildcard):
                wild = c.term
                continue
            for i, m in enumerate(element_members(u, c.term)):
                members.append(m)
                events.append(Event("SE", m.qname, (counter[0], i)))
        if wild is not None:
            members.append(wild)
            events.append(Event("SE*"))
        out.append(Slot("SE", 0 if optional else p.min, p.max, members, events))
        return True
    return False


def flat_slots(u: Universe, ct: ComplexType, unbounded_above: int | None = None) -> list[Slot] | None:
    """The slots of a complex type, or None when its content is not flat.

    ``unbounded_above``: particles with a larger maxOccurs get the grammar of an unbounded
    particle (the XSD bound stays a facet). The -2 grammar of the EXIficient codec that
    produced the public vectors does this for maxOccurs 16, 20, 24, 255 and 1024; see
    tools/xsdgen/profiles.py."""
    slots: list[Slot] = []
    for a in sorted(ct.attributes, key=lambda a: (a.qname[1], a.qname[0])):
        slots.append(Slot("AT", 1 if a.required else 0, 1, [a], [Event("AT", a.qname)]))
    if ct.content == "simple":
        slots.append(Slot("CH", 1, 1, [ct.simple], [Event("CH")]))
    elif ct.content == "element":
        if not _flatten(u, ct.particle, slots, [0]):
            return None
    for i, s in enumerate(slots):
        s.index = i
        if unbounded_above is not None and s.max is not None and s.max > unbounded_above:
            s.facet_max, s.max = s.max, None
    return slots


def build_flat(u: Universe, ct: ComplexType, unbounded_above: int | None = None) -> FlatGrammar | None:
    slots = flat_slots(u, ct, unbounded_above)
    if slots is None:
        return None

    def follow(j: int) -> list[Event]:
        evs: list[Event] = []
        for k in range(j + 1, len(slots)):
            evs += slots[k].events
            if slots[k].min >= 1:
                return evs
        return evs + [EE]

    states: dict[tuple[int, str], State] = {}

    def make(key, evs: list[Event], name: str):
        seen = set()
        for e in evs:
            if e in seen or (e.kind == "SE" and any(x.kind == "SE" and x.qname == e.qname for x in seen)):
                raise SchemaError(f"{name}: duplicate production {e.label()} (schema not UPA)")
            seen.add(e)
        if ct.mixed and any(e.kind != "AT" for e in evs):
            evs = evs + [Event("CHu")]  # mixed: CH[untyped] in every content state
        evs = sorted(evs, key=Event.sort_key)
        # targets are resolved by the emitter from the slot model; keep the slot index here
        st = State(name, [(e, None) for e in evs], nbits_for(len(evs)))
        states[key] = st

    tname = ct.name[1] if ct.name else ct.context
    make((-1, "start"), follow(-1), f"{tname}/start")
    for s in slots:
        for cat in categories(s):
            evs = []
            if cat in ("must", "may"):
                evs += s.events
            if cat in ("may", "full"):
                evs += follow(s.index)
            make((s.index, cat), evs, f"{tname}/{s.index}:{cat}")
    return FlatGrammar(slots, states, ct.mixed)


# --- general construction (§8.5.4.1) -------------------------------------------------------

class _NFA:
    def __init__(self):
        self.trans: list[list[tuple[Event | None, int]]] = []
        self.accept: set[int] = set()

    def new(self) -> int:
        self.trans.append([])
        return len(self.trans) - 1


@dataclass
class GeneralGrammar:
    states: list[State]  # state 0 is the start; production targets are state indices
    mixed: bool


MAX_EXPANSION = 256


def build_general(u: Universe, ct: ComplexType) -> GeneralGrammar:
    """Deterministic grammar for any content model (bounded maxOccurs expanded)."""
    nfa = _NFA()
    counter = [0]
    # particle positions must be stable across repeated copies: assign them once
    positions: dict[int, int] = {}

    def pos_of(p) -> int:
        if id(p) not in positions:
            counter[0] += 1
            positions[id(p)] = counter[0]
        return positions[id(p)]

    def assign(p: Particle):
        t = p.term
        if isinstance(t, (ElementDecl, Wildcard)):
            pos_of(p)
        else:
            for c in t.particles:
                assign(c)

    def term(p: Particle) -> tuple[int, int]:
        """Build the term grammar once; returns (start, end) with an epsilon-accepting end."""
        t = p.term
        s, e = nfa.new(), nfa.new()
        if isinstance(t, ElementDecl):
            for i, m in enumerate(element_members(u, t)):
                nfa.trans[s].append((Event("SE", m.qname, (pos_of(p), i)), e))
        elif isinstance(t, Wildcard):
            nfa.trans[s].append((Event("SE*"), e))
        elif t.kind == "sequence":
            cur = s
            for c in t.particles:
                cs, ce = particle(c)
                nfa.trans[cur].append((None, cs))
                cur = ce
            nfa.trans[cur].append((None, e))
        else:  # choice
            if not t.particles:
                nfa.trans[s].append((None, e))
            for c in t.particles:
                cs, ce = particle(c)
                nfa.trans[s].append((None, cs))
                nfa.trans[ce].append((None, e))
        return s, e

    def particle(p: Particle) -> tuple[int, int]:
        mn, mx = p.min, p.max
        if mx is not None and mx > MAX_EXPANSION:
            raise SchemaError(f"maxOccurs {mx} too large for the general construction")
        s = nfa.new()
        cur = s
        for _ in range(mn):
            ts, te = term(p)
            nfa.trans[cur].append((None, ts))
            cur = te
        end = nfa.new()
        if mx is None:
            ts, te = term(p)
            nfa.trans[cur].append((None, ts))
            nfa.trans[te].append((None, cur))
            nfa.trans[cur].append((None, end))
        else:
            for _ in range(mx - mn):
                ts, te = term(p)
                nfa.trans[cur].append((None, end))
                nfa.trans[cur].append((None, ts))
                cur = te
            nfa.trans[cur].append((None, end))
        return s, end

    # attributes, sorted; then content
    start = nfa.new()
    cur = start
    for a in sorted(ct.attributes, key=lambda a: (a.qname[1], a.qname[0])):
        nxt = nfa.new()
        nfa.trans[cur].append((Event("AT", a.qname), nxt))
        if not a.required:
            nfa.trans[cur].append((None, nxt))
        cur = nxt
    if ct.content == "simple":
        nxt = nfa.new()
        nfa.trans[cur].append((Event("CH"), nxt))
        cur = nxt
    elif ct.content == "element":
        assign(ct.particle)
        ps, pe = particle(ct.particle)
        nfa.trans[cur].append((None, ps))
        cur = pe
    nfa.accept.add(cur)

    def closure(states: frozenset[int]) -> frozenset[int]:
        stack, seen = list(states), set(states)
        while stack:
            x = stack.pop()
            for ev, y in nfa.trans[x]:
                if ev is None and y not in seen:
                    seen.add(y)
                    stack.append(y)
        return frozenset(seen)

    # content states (after the attributes) get CH[untyped] self-loops when mixed
    dstart = closure(frozenset([start]))
    index = {dstart: 0}
    order = [dstart]
    out: list[State] = []
    i = 0
    while i < len(order):
        cur_set = order[i]
        moves: dict[Event, set[int]] = {}
        for x in cur_set:
            for ev, y in nfa.trans[x]:
                if ev is not None:
                    moves.setdefault(ev, set()).add(y)
        prods: list[tuple[Event, object]] = []
        for ev, ys in moves.items():
            tgt = closure(frozenset(ys))
            if tgt not in index:
                index[tgt] = len(order)
                order.append(tgt)
            prods.append((ev, index[tgt]))
        if cur_set & nfa.accept:
            prods.append((EE, None))
        if ct.mixed and any(e.kind != "AT" for e, _ in prods):
            prods.append((Event("CHu"), i))
        prods.sort(key=lambda p: p[0].sort_key())
        qn = [e.qname for e, _ in prods if e.kind == "SE"]
        if len(qn) != len(set(qn)):
            raise SchemaError(f"{ct.name}: non-deterministic content model")
        out.append(State(f"g{i}", prods, nbits_for(len(prods))))
        i += 1
    return GeneralGrammar(out, ct.mixed)

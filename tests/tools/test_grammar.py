"""Two independent constructions of the same EXI grammars must agree.

The generator codes every V2G type with the compact *flat* construction (slots with counters);
the literal §8.5.4.1 construction (particle grammars expanded and normalised by subset
construction) is kept as a reference. Random walks through the reference grammar must see, at
every step, exactly the productions (in event-code order) and code widths of the flat one.
"""

from __future__ import annotations

import json
import random

import pytest

from tools.generate import ROOT
from tools.xsdgen.grammar import EE, build_flat, build_general, category_of
from tools.xsdgen.model import SchemaError, load_universe

MANIFEST = json.loads((ROOT / "schemas" / "manifest.json").read_text())


def flat_state(g, trace):
    """The flat grammar state after a sequence of events."""
    slot_of = {}
    for s in g.slots:
        for e in s.events:
            slot_of[e.label() if e.kind != "SE*" else ("SE*", s.index)] = s
    key = (-1, "start")
    count = 0
    last = None
    for ev in trace:
        s = next(s for s in g.slots if any(e.label() == ev.label() for e in s.events))
        count = count + 1 if last is s else 1
        last = s
        key = (s.index, category_of(s, count))
    return g.states[key]


@pytest.mark.parametrize("universe", ["din", "iso2", "iso20_cm", "iso20_dc", "iso20_ac", "iso20_wpt", "iso20_acdp"])
def test_flat_and_general_constructions_agree(universe, schema_dir):
    u = load_universe(universe, schema_dir, MANIFEST["universes"][universe]["files"])
    rnd = random.Random(universe)
    checked = 0
    for ct in list(u.complex_types.values()) + u.anonymous_types:
        flat = build_flat(u, ct)
        if flat is None:
            continue
        try:
            gen = build_general(u, ct)
        except SchemaError:
            continue  # maxOccurs too large to expand: covered by the vectors instead
        for _ in range(20):
            state, trace = gen.states[0], []
            for _step in range(60):
                f = flat_state(flat, trace)
                got = [e.label() for e, _ in f.productions]
                want = [e.label() for e, _ in state.productions]
                assert got == want, (ct.name, [e.label() for e in trace])
                assert f.nbits == state.nbits, (ct.name, [e.label() for e in trace])
                moves = [(e, t) for e, t in state.productions if e.kind in ("SE", "AT", "CH") and t is not None]
                if not moves or (EE in [e for e, _ in state.productions] and rnd.random() < 0.2):
                    break
                ev, t = rnd.choice(moves)
                trace.append(ev)
                state = gen.states[t]
                checked += 1
    assert checked > 100

"""The invariants hold under arbitrary sequences; and the checker kills plausible mutants."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from . import mutants
from .stateful import SiteMachine

DETERMINISTIC = os.environ.get("CI_DETERMINISTIC") == "1"


def test_invariants_hold_under_arbitrary_sequences():
    run_state_machine_as_test(SiteMachine, settings=settings(
        max_examples=int(os.environ.get("V2H_HEMS_EXAMPLES", "60")), stateful_step_count=40, deadline=None,
        derandomize=DETERMINISTIC, suppress_health_check=[HealthCheck.too_slow]))


@pytest.mark.parametrize("name", sorted(mutants.MUTANTS))
def test_the_checker_kills_the_mutant(name, monkeypatch):
    expected = mutants.MUTANTS[name](monkeypatch)
    expected = (expected,) if isinstance(expected, str) else expected
    with pytest.raises(AssertionError) as e:
        run_state_machine_as_test(SiteMachine, settings=settings(
            max_examples=400, stateful_step_count=40, deadline=None, derandomize=True, database=None,
            phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck)))
    assert any(f"{inv} at" in str(e.value) for inv in expected), str(e.value)[:500]

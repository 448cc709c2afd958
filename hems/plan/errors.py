"""The planner's typed errors.

Bad numbers in the inputs are ``hems.errors.ConfigError`` (naming the field, column or flag); a
request that no schedule can satisfy is ``InfeasiblePlan`` (naming the constraint); a solver that
fails on a feasible request is ``SolverError``.
"""

from __future__ import annotations

from ..errors import HemsError


class PlanError(HemsError):
    """Base class of the planner's errors (besides ``ConfigError`` for bad inputs)."""


class InfeasiblePlan(PlanError, ValueError):
    """No schedule meets every constraint. ``constraint`` names the one that cannot be met
    (``trip``, ``soc_final``, ``departure_soc``, ``outage``, ``soc_max``), ``slot`` the first slot
    where it fails and ``message`` says by how much."""

    def __init__(self, constraint: str, slot: int, message: str) -> None:
        super().__init__(f"infeasible: {constraint}: {message}")
        self.constraint = constraint
        self.slot = slot
        self.message = message


class SolverError(PlanError):
    """The solver did not return an optimum for a request the feasibility check accepted (a
    numerical failure, or the optional solver package missing)."""

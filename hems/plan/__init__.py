"""The energy manager's plan: the car's charge/discharge schedule over the next 24-48 h in
15-minute slots that minimises import cost − export revenue + battery wear, under the charger's and
the car's limits, the SoC bounds and reserve, trips, a final SoC and announced outages.

``plan(inputs, car, options) -> Plan`` is a pure function (no clock, no I/O): the caller passes the
horizon's forecasts and prices (``PlanInputs``), the car (``CarParams``) and the options. It raises
``ConfigError`` for a bad number (naming the field), ``InfeasiblePlan`` naming the constraint that
cannot be met, ``SolverError`` if the solver fails. The model and how a slot is kept to one
direction of flow are in docs/hems.md ("The plan") and ``hems.plan.lp``. Needs numpy and highspy
(the ``hems`` extra), imported on first use.
"""

from __future__ import annotations

from .errors import InfeasiblePlan, PlanError, SolverError
from .model import CarParams, Outage, Plan, PlanInputs, PlanOptions, Trip, outages_from_config

__all__ = ["plan", "outages_from_config", "CarParams", "Outage", "Plan", "PlanInputs", "PlanOptions", "Trip",
           "InfeasiblePlan", "PlanError", "SolverError"]


def plan(inputs: PlanInputs, car: CarParams, options: PlanOptions | None = None) -> Plan:
    """The optimal plan for ``inputs`` (see the module docstring); ``options`` default: export allowed."""
    import numpy as np

    from . import lp
    from .horizon import prepare

    h = prepare(inputs, car, options or PlanOptions())
    x, ms, modes, proven = lp.solve(h)
    T, dt = h.T, h.dt_h
    c, d = x[0:T], x[T:2 * T]
    i, e = x[2 * T:3 * T], x[3 * T:4 * T]
    # an import/export overlap left at prices where it neither gains nor loses is netted
    both = np.minimum(i, e)
    i, e = i - both, e - both
    c = np.where(c < 1e-9, 0.0, c)
    d = np.where(d < 1e-9, 0.0, d)
    i = np.where(i < 1e-9, 0.0, i)
    e = np.where(e < 1e-9, 0.0, e)
    soc = x[4 * T:5 * T] / h.cap * 100.0
    imp = float(np.dot(h.p_imp, i) * dt)
    exp_ = float(np.dot(h.p_exp, e) * dt)
    wear = float(h.wear * d.sum() * dt)
    return Plan(start=inputs.start, slot_s=inputs.slot_s,
                car_w=tuple(float(v) for v in (c - d) * 1000.0),
                grid_w=tuple(float(v) for v in (i - e) * 1000.0),
                soc_pct=tuple(float(v) for v in np.clip(soc, 0.0, 100.0)),
                import_cost=imp, export_revenue=exp_, wear_cost=wear, cost=imp - exp_ + wear,
                charged_kwh=float(c.sum() * dt), discharged_kwh=float(d.sum() * dt), solve_ms=ms,
                mode_slots=modes, optimal=proven, away=tuple(bool(v) for v in ~h.home))

"""The horizon as per-slot arrays, and the feasibility check that names what cannot be met.

Everything here is plain arithmetic on numpy arrays (kW, kWh): where the car is, what each slot
allows it to do, the SoC bounds, and the interval of SoC reachable at every slot's end. The
interval is exact for this model (one state, per-slot increments bounded by a box), so a request
is feasible if and only if no interval is empty; when one is, the constraint that emptied it is
named in an ``InfeasiblePlan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InfeasiblePlan
from .model import CarParams, PlanInputs, PlanOptions

if TYPE_CHECKING:
    import numpy as np

TOL_KWH = 1e-7

# where a slot's lower SoC bound comes from (for the error message)
FLOOR, FINAL, DEPART = 0, 1, 2


@dataclass(slots=True)
class Horizon:
    """Per-slot arrays, all length T (kW / kWh / per kWh). ``free`` slots: the car is home and the
    grid is up, so the charger may charge or discharge; elsewhere the car's flow is fixed."""

    T: int
    dt_h: float
    load: "np.ndarray"          # kW, house load forecast
    pv: "np.ndarray"            # kW
    p_imp: "np.ndarray"
    p_exp: "np.ndarray"
    home: "np.ndarray"          # bool: car plugged in at home
    outage: "np.ndarray"        # bool: announced outage (no grid)
    out_load: "np.ndarray"      # kW the car carries in an outage slot (0 elsewhere)
    trip: "np.ndarray"          # kWh of stored energy the trip uses in the slot
    trip_of: "np.ndarray"       # index of the trip a slot belongs to, -1 at home
    outage_of: "np.ndarray"     # index of the outage, -1 elsewhere
    cmax: "np.ndarray"          # kW, AC charge limit in the slot (0 where the car cannot charge)
    dmax: "np.ndarray"          # kW, AC discharge limit (no-export applied)
    lb: "np.ndarray"            # kWh, SoC lower bound at the slot's end
    ub: "np.ndarray"            # kWh
    lb_src: "np.ndarray"        # FLOOR / FINAL / DEPART
    lb_trip: "np.ndarray"       # for DEPART: the trip's index
    s0: float                   # kWh at the start
    cap: float                  # kWh
    eta_c: float
    eta_d: float
    wear: float                 # per kWh discharged (AC)


def _slot_range(inputs: PlanInputs, start, end) -> tuple[int, int]:
    """Every slot the period [start, end) overlaps, clipped to the horizon."""
    a = (start - inputs.start).total_seconds() / inputs.slot_s
    b = (end - inputs.start).total_seconds() / inputs.slot_s
    return max(0, math.floor(a + 1e-9)), min(inputs.slots, math.ceil(b - 1e-9))


def prepare(inputs: PlanInputs, car: CarParams, options: PlanOptions) -> Horizon:
    """The horizon's arrays, checked for feasibility (``InfeasiblePlan`` names the constraint)."""
    import numpy as np

    T = inputs.slots
    dt = inputs.slot_s / 3600.0
    cap = car.capacity_kwh
    load = np.asarray(inputs.load_w, dtype=float) / 1000.0
    pv = np.asarray(inputs.pv_w, dtype=float) / 1000.0
    home = np.ones(T, dtype=bool)
    trip = np.zeros(T)
    trip_of = np.full(T, -1, dtype=np.int64)
    for j, tr in enumerate(inputs.trips):
        a, b = _slot_range(inputs, tr.start, tr.end)
        if a >= b:
            continue
        if not home[a:b].all():
            raise InfeasiblePlan("trip", a, f"trip {tr.label()} overlaps another trip")
        home[a:b] = False
        trip[a:b] += tr.energy_kwh / (b - a)        # the trip's energy, spread over its slots in the horizon
        trip_of[a:b] = j
    outage = np.zeros(T, dtype=bool)
    out_load = np.zeros(T)
    outage_of = np.full(T, -1, dtype=np.int64)
    for j, o in enumerate(inputs.outages):
        a, b = _slot_range(inputs, o.start, o.end)
        if a >= b:
            continue
        outage[a:b] = True
        outage_of[a:b] = j
        out_load[a:b] = np.maximum(out_load[a:b], load[a:b] if o.load_w is None else o.load_w / 1000.0)
    out_load[~home] = 0.0                           # the car away: the house is dark, nothing to carry
    free = home & ~outage
    cmax = np.where(free, car.charge_max_w / 1000.0, 0.0)
    dmax = np.where(free, car.discharge_max_w / 1000.0, 0.0)
    if options.no_export:
        dmax = np.minimum(dmax, np.maximum(load - pv, 0.0))
    over = np.flatnonzero(outage & home & (out_load > car.discharge_max_w / 1000.0 + 1e-12))
    if over.size:
        k = int(over[0])
        raise InfeasiblePlan("outage", k, f"outage {inputs.outages[outage_of[k]].label()}: the island load "
                                          f"{out_load[k] * 1000:.0f} W is above the car's discharge limit "
                                          f"{car.discharge_max_w:.0f} W")
    eta_c, eta_d = car.eff_charge, car.eff_discharge

    s0 = car.soc_pct / 100.0 * cap
    floor = car.soc_min_pct / 100.0 * cap
    # a car below its floor at the start is charged up to it as fast as it can be: the floor
    # follows the fastest possible rise until it is reached
    ramp = s0 + np.cumsum(cmax * eta_c * dt)
    lb = np.minimum(floor, ramp)
    lb_src = np.full(T, FLOOR, dtype=np.int64)
    lb_trip = np.full(T, -1, dtype=np.int64)
    # never charged above where it started when it starts above soc_max
    ub = np.full(T, max(car.soc_max_pct / 100.0 * cap, s0))
    for j, tr in enumerate(inputs.trips):
        a, b = _slot_range(inputs, tr.start, tr.end)
        if a >= b or tr.depart_soc_pct is None:
            continue
        want = tr.depart_soc_pct / 100.0 * cap
        if a == 0:
            if s0 + TOL_KWH < want:
                raise InfeasiblePlan("departure_soc", 0, f"trip {tr.label()} leaves at the start with "
                                                         f"{car.soc_pct:.1f} %, below the wanted "
                                                         f"{tr.depart_soc_pct:g} %")
        elif want > lb[a - 1]:
            lb[a - 1] = want
            lb_src[a - 1] = DEPART
            lb_trip[a - 1] = j
    if car.soc_final_pct is not None:
        want = car.soc_final_pct / 100.0 * cap
        if want > lb[T - 1]:
            lb[T - 1] = want
            lb_src[T - 1] = FINAL
    h = Horizon(T=T, dt_h=dt, load=load, pv=pv, p_imp=np.asarray(inputs.import_price, dtype=float),
                p_exp=np.asarray(inputs.export_price, dtype=float), home=home, outage=outage,
                out_load=out_load, trip=trip, trip_of=trip_of, outage_of=outage_of, cmax=cmax, dmax=dmax,
                lb=lb, ub=ub, lb_src=lb_src, lb_trip=lb_trip, s0=s0, cap=cap, eta_c=eta_c, eta_d=eta_d,
                wear=car.wear_cost_per_kwh)
    check_feasible(h, inputs, car)
    return h


def fixed_delta(h: Horizon) -> "np.ndarray":
    """kWh change of stored energy in the slots where the car's flow is fixed (0 elsewhere)."""
    import numpy as np

    return np.where(h.home & h.outage, -h.out_load * h.dt_h / h.eta_d, 0.0) - h.trip


def check_feasible(h: Horizon, inputs: PlanInputs, car: CarParams) -> None:
    """Walk the reachable SoC interval forward; the first empty one names the constraint."""
    up = h.cmax * h.eta_c * h.dt_h + fixed_delta(h)
    down = -h.dmax * h.dt_h / h.eta_d + fixed_delta(h)
    lo = hi = h.s0
    pct = 100.0 / h.cap
    for k in range(h.T):
        lo_n = max(h.lb[k], lo + down[k])
        hi_n = min(h.ub[k], hi + up[k])
        if h.lb[k] > h.ub[k] + TOL_KWH:
            raise _why_low(h, inputs, car, k, h.ub[k], above_max=True)
        if hi_n + TOL_KWH < h.lb[k]:
            raise _why_low(h, inputs, car, k, hi + up[k])
        if lo_n > hi_n + TOL_KWH:          # only if a fixed flow pushes above the ceiling (cannot happen: flows out)
            raise InfeasiblePlan("soc_max", k, f"the SoC is forced to {lo_n * pct:.1f} % at "
                                               f"{inputs.slot_time(k + 1).isoformat()}, above "
                                               f"{h.ub[k] * pct:.1f} %")
        lo, hi = lo_n, max(hi_n, lo_n)


def _why_low(h: Horizon, inputs: PlanInputs, car: CarParams, k: int, best: float,
             above_max: bool = False) -> InfeasiblePlan:
    pct = 100.0 / h.cap
    at = inputs.slot_time(k + 1).isoformat()
    best_pct = best * pct
    if h.trip_of[k] >= 0:
        tr = inputs.trips[h.trip_of[k]]
        return InfeasiblePlan("trip", k, f"trip {tr.label()} ({tr.energy_kwh:g} kWh) cannot be covered: "
                                         f"the car would reach {best_pct:.1f} % by {at}, below the floor "
                                         f"soc_min {car.soc_min_pct:g} %")
    if h.outage_of[k] >= 0 and h.home[k]:
        o = inputs.outages[h.outage_of[k]]
        return InfeasiblePlan("outage", k, f"outage {o.label()} cannot be covered above the reserve: the car "
                                           f"would reach {best_pct:.1f} % by {at}, below soc_min "
                                           f"{car.soc_min_pct:g} %")
    if h.lb_src[k] == DEPART:
        tr = inputs.trips[h.lb_trip[k]]
        what = "above soc_max" if above_max else f"at most {best_pct:.1f} % is reachable"
        return InfeasiblePlan("departure_soc", k, f"trip {tr.label()} wants {tr.depart_soc_pct:g} % at "
                                                  f"departure: {what}")
    if h.lb_src[k] == FINAL:
        what = (f"above soc_max {car.soc_max_pct:g} %" if above_max
                else f"at most {best_pct:.1f} % is reachable by {at}")
        return InfeasiblePlan("soc_final", k, f"{car.soc_final_pct:g} % wanted at the end: {what}")
    return InfeasiblePlan("soc_min", k, f"the floor {car.soc_min_pct:g} % cannot be held at {at}: at most "
                                        f"{best_pct:.1f} %")

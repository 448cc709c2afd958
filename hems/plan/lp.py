"""The plan as a linear program, solved with HiGHS through highspy's direct array API.

Columns, each a block of T (one per slot), in kW and kWh::

    c  AC charge power       0 ≤ c ≤ cmax                  cost 0
    d  AC discharge power    0 ≤ d ≤ dmax                  cost wear · dt
    i  grid import           0 ≤ i ≤ max(net load + cmax, 0)  cost p_imp · dt
    e  grid export           0 ≤ e ≤ max(dmax − net load, 0)  cost −p_exp · dt
    s  stored energy at the slot's end, lb ≤ s ≤ ub

(net load = house load − solar.) Rows::

    balance  i − e − c + d = load − pv        (outage slots: = the island load, i = e = 0)
    energy   s_t − s_{t−1} − η_c·dt·c + dt/η_d·d = −trip energy of the slot   (s_{−1} = s0)

One direction of flow per slot. A slot's plan must be one net car power and one net grid power.
The LP alone may charge and discharge (or import and export) in the same slot when that pays: it
burns energy in the conversion losses, which earns money when a price is negative, and it
trades through the meter when export pays more than import. In each slot the cost as a function of
the stored-energy change is piecewise linear; the LP is exact where that function is convex, and
``nonconvex`` finds the slots where it is not:

- car: a negative price (import when the slot imports, export when it exports) whose size exceeds
  wear·η_d / (1/η_c − η_d) — what a kWh burnt in a charge-discharge loop earns beats the wear;
- grid: export paying more than import, with both directions reachable in the slot.

Those slots get the hull rows ``c/cmax + d/dmax ≤ 1`` and ``i/I + e/E ≤ 1`` (valid for every real
schedule). The LP is solved; if any slot still holds both flows, every non-convex slot and every
slot found overlapping gets a binary mode variable (``c ≤ cmax·y``, ``d ≤ dmax·(1−y)``; ``i ≤ I·z``,
``e ≤ E·(1−z)``) and the problem is solved again as a MIP, repeated until no slot holds both flows.
The last solve is the optimum of a relaxation of the real problem whose solution is feasible for
the real problem, so it is the real optimum. An import-and-export overlap at equal prices is
netted afterwards, which changes neither the cost nor any constraint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import SolverError
from .horizon import Horizon

if TYPE_CHECKING:
    import numpy as np

OVERLAP_KW = 1e-6          # both flows above 1 mW in a slot: the slot needs a mode decision
MAX_ROUNDS = 6             # then every slot gets a mode variable (still exact, only slower)
MIP_TIME_LIMIT_S = 20.0
MIP_REL_GAP = 1e-7


def _highs():
    try:
        import highspy
    except ImportError as e:           # the optional 'hems' extra
        raise SolverError("the planner needs highspy and numpy (pip install 'v2h[hems]')") from e
    return highspy


def grid_limits(h: Horizon) -> tuple["np.ndarray", "np.ndarray"]:
    """The most a slot can import and export with one direction of flow at a time: the net load
    plus the car's full charge, and the car's full discharge less the net load. Valid for every
    real schedule, they also bound what the relaxation can gain from an overlap."""
    import numpy as np

    a = h.load - h.pv
    grid_up = ~h.outage
    return (np.where(grid_up, np.maximum(a + h.cmax, 0.0), 0.0),
            np.where(grid_up, np.maximum(h.dmax - a, 0.0), 0.0))


def nonconvex(h: Horizon) -> tuple["np.ndarray", "np.ndarray"]:
    """The slots where the LP may gain from overlapping flows (see the module docstring)."""
    import numpy as np

    free = h.home & ~h.outage & (h.cmax > 0) & (h.dmax > 0)
    loss = 1.0 / h.eta_c - h.eta_d
    threshold = h.wear * h.eta_d / loss if loss > 0 else np.inf      # lossless: a loop burns nothing
    # the price a kWh burnt in the slot meets: import if the slot can import, export if it can export
    i_max, e_max = grid_limits(h)
    neg_imp = (i_max > 0) & (-h.p_imp > threshold)
    neg_exp = (e_max > 0) & (-h.p_exp > threshold)
    car = np.flatnonzero(free & (neg_imp | neg_exp))
    grid = np.flatnonzero((i_max > 0) & (e_max > 0) & (h.p_imp < h.p_exp))
    return car, grid


def build(h: Horizon, car_modes: "np.ndarray", grid_modes: "np.ndarray",
          car_hull: "np.ndarray", grid_hull: "np.ndarray"):
    """The model as a ``highspy.HighsLp`` (column-wise arrays). ``car_modes`` / ``grid_modes``:
    the slots with a binary charge-or-discharge / import-or-export variable; ``car_hull`` /
    ``grid_hull``: the slots with a hull row."""
    import numpy as np

    highspy = _highs()
    T, dt = h.T, h.dt_h
    nk, ng = len(car_modes), len(grid_modes)
    hk, hg = len(car_hull), len(grid_hull)
    nc = 5 * T
    n = nc + nk + ng
    m = 2 * T + 2 * nk + 2 * ng + hk + hg
    t = np.arange(T)
    i_max, e_max = grid_limits(h)
    island = h.home & h.outage

    cost = np.zeros(n)
    cost[T:2 * T] = h.wear * dt
    cost[2 * T:3 * T] = h.p_imp * dt
    cost[3 * T:4 * T] = -h.p_exp * dt

    lo = np.zeros(n)
    up = np.ones(n)
    up[0:T] = h.cmax
    lo[T:2 * T] = np.where(island, h.out_load, 0.0)
    up[T:2 * T] = np.where(island, h.out_load, h.dmax)
    up[2 * T:3 * T] = i_max
    up[3 * T:4 * T] = e_max
    lo[4 * T:5 * T] = h.lb
    up[4 * T:5 * T] = h.ub

    row_lo = np.full(m, -np.inf)
    row_up = np.empty(m)
    bal = np.where(h.outage, np.where(h.home, h.out_load, 0.0), h.load - h.pv)
    row_lo[:T] = row_up[:T] = bal
    rhs = -h.trip.copy()
    rhs[0] += h.s0
    row_lo[T:2 * T] = row_up[T:2 * T] = rhs

    cols: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    vals: list[np.ndarray] = []

    def add(col: np.ndarray, row: np.ndarray, val) -> None:
        cols.append(col)
        rows.append(row)
        vals.append(np.broadcast_to(np.asarray(val, dtype=float), col.shape))

    add(t, t, -1.0)                                  # c in balance
    add(t, T + t, -h.eta_c * dt)                     # c in energy
    add(T + t, t, 1.0)                               # d in balance
    add(T + t, T + t, dt / h.eta_d)                  # d in energy
    add(2 * T + t, t, 1.0)                           # i
    add(3 * T + t, t, -1.0)                          # e
    add(4 * T + t, T + t, 1.0)                       # s_t in its own energy row
    add(4 * T + t[:-1], T + t[1:], -1.0)             # s_t in the next slot's row

    r = 2 * T
    k = np.arange(nk)
    y = nc + k
    row_up[r:r + nk] = 0.0                           # c − cmax·y ≤ 0
    add(car_modes, r + k, 1.0)
    add(y, r + k, -h.cmax[car_modes])
    row_up[r + nk:r + 2 * nk] = h.dmax[car_modes]    # d + dmax·y ≤ dmax
    add(T + car_modes, r + nk + k, 1.0)
    add(y, r + nk + k, h.dmax[car_modes])
    r += 2 * nk
    g = np.arange(ng)
    z = nc + nk + g
    row_up[r:r + ng] = 0.0                           # i − I·z ≤ 0
    add(2 * T + grid_modes, r + g, 1.0)
    add(z, r + g, -i_max[grid_modes])
    row_up[r + ng:r + 2 * ng] = e_max[grid_modes]    # e + E·z ≤ E
    add(3 * T + grid_modes, r + ng + g, 1.0)
    add(z, r + ng + g, e_max[grid_modes])
    r += 2 * ng
    q = np.arange(hk)
    row_up[r:r + hk] = 1.0                           # c/cmax + d/dmax ≤ 1
    add(car_hull, r + q, 1.0 / h.cmax[car_hull])
    add(T + car_hull, r + q, 1.0 / h.dmax[car_hull])
    r += hk
    q = np.arange(hg)
    row_up[r:r + hg] = 1.0                           # i/I + e/E ≤ 1
    add(2 * T + grid_hull, r + q, 1.0 / i_max[grid_hull])
    add(3 * T + grid_hull, r + q, 1.0 / e_max[grid_hull])

    col = np.concatenate(cols)
    row = np.concatenate(rows)
    val = np.concatenate(vals)
    order = np.lexsort((row, col))
    col, row, val = col[order], row[order], val[order]

    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = m
    lp.col_cost_ = cost
    lp.col_lower_ = lo
    lp.col_upper_ = up
    lp.row_lower_ = row_lo
    lp.row_upper_ = row_up
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.searchsorted(col, np.arange(n + 1)).astype(np.int32)
    lp.a_matrix_.index_ = row.astype(np.int32)
    lp.a_matrix_.value_ = val
    if nk + ng:
        lp.integrality_ = [highspy.HighsVarType.kContinuous] * nc + [highspy.HighsVarType.kInteger] * (nk + ng)
    return lp


def run(lp) -> tuple["np.ndarray", float, bool]:
    """Solve; the column values, HiGHS's own run time (ms), and whether the optimum was proven
    (False only for a MIP stopped by the time limit with a feasible schedule in hand)."""
    import numpy as np

    highspy = _highs()
    hs = highspy.Highs()
    hs.setOptionValue("output_flag", False)
    mip = bool(lp.integrality_)
    if mip:
        hs.setOptionValue("mip_rel_gap", MIP_REL_GAP)
        hs.setOptionValue("time_limit", MIP_TIME_LIMIT_S)
    else:
        hs.setOptionValue("presolve", "off")         # faster on this small, already tight LP
    hs.passModel(lp)
    hs.run()
    status = hs.getModelStatus()
    ms = hs.getRunTime() * 1000.0
    st = highspy.HighsModelStatus
    if status == st.kOptimal:
        return np.asarray(hs.getSolution().col_value), ms, True
    if mip and status == st.kTimeLimit and hs.getInfo().primal_solution_status == 2:
        return np.asarray(hs.getSolution().col_value), ms, False
    raise SolverError(f"HiGHS: {hs.modelStatusToString(status)}")


def overlaps(h: Horizon, x: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Slots with both charge and discharge, and slots with both import and export where export
    pays more than import costs (at other prices the overlap is netted without loss)."""
    import numpy as np

    T = h.T
    c, d, i, e = x[0:T], x[T:2 * T], x[2 * T:3 * T], x[3 * T:4 * T]
    car = np.flatnonzero(np.minimum(c, d) > OVERLAP_KW)
    grid = np.flatnonzero((np.minimum(i, e) > OVERLAP_KW) & (h.p_imp < h.p_exp))
    return car, grid


def solve(h: Horizon) -> tuple["np.ndarray", float, int, bool]:
    """The optimal columns with no slot holding both flows; the solver's ms; the number of slots
    that got a mode variable; whether optimality was proven."""
    import numpy as np

    car_hull, grid_hull = nonconvex(h)
    car_m = np.zeros(0, dtype=np.int64)
    grid_m = np.zeros(0, dtype=np.int64)
    total_ms = 0.0
    for rnd in range(MAX_ROUNDS + 1):
        x, ms, proven = run(build(h, car_m, grid_m, car_hull, grid_hull))
        total_ms += ms
        car_o, grid_o = overlaps(h, x)
        if not car_o.size and not grid_o.size:
            return x, total_ms, len(np.union1d(car_m, grid_m)), proven
        if rnd == 0:
            car_o, grid_o = np.union1d(car_o, car_hull), np.union1d(grid_o, grid_hull)
        if rnd == MAX_ROUNDS - 1:
            car_o = np.flatnonzero(h.home & ~h.outage & (h.cmax > 0) & (h.dmax > 0))
            grid_o = np.flatnonzero(~h.outage)
        car_m = np.union1d(car_m, car_o).astype(np.int64)
        grid_m = np.union1d(grid_m, grid_o).astype(np.int64)
    raise SolverError("overlapping flows remained after every slot got a mode variable")

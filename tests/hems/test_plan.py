"""The planner (hems.plan): optimality against independent checks, one direction of flow per slot
with negative prices, the constraints, infeasibility named, bad inputs refused."""

from __future__ import annotations

import itertools
import math
import random
from datetime import datetime, timedelta, timezone

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("highspy")
scipy_opt = pytest.importorskip("scipy.optimize")

from hems.errors import ConfigError  # noqa: E402
from hems.plan import CarParams, InfeasiblePlan, Outage, PlanInputs, PlanOptions, Trip, plan  # noqa: E402
from hems.plan import lp as lpmod  # noqa: E402
from hems.plan.horizon import prepare  # noqa: E402

T0 = datetime(2025, 3, 3, tzinfo=timezone(timedelta(hours=1)))
DT = 0.25


def at(k: int) -> datetime:
    return T0 + timedelta(minutes=15 * k)


def inputs(load, pv, pi, pe, **kw) -> PlanInputs:
    return PlanInputs(start=T0, load_w=load, pv_w=pv, import_price=pi, export_price=pe, **kw)


def car(**kw) -> CarParams:
    base = dict(capacity_kwh=10.0, soc_pct=50.0, soc_min_pct=20.0, soc_max_pct=100.0, charge_max_w=7000.0,
                discharge_max_w=7000.0, eff_charge=0.9, eff_discharge=0.9, wear_cost_per_kwh=0.0)
    base.update(kw)
    return CarParams(**base)


# ---------------------------------------------------------------- the independent check

def brute_force(inp: PlanInputs, c: CarParams, no_export: bool, away: set[int], trip_kwh: float,
                outage: set[int], island_w: float = 0.0) -> float:
    """Enumerate every slot's direction (charge or discharge × import or export) and solve each
    fixed-direction problem, a plain LP in the car's power and the SoC, with scipy's linprog.
    Written from the problem statement, sharing no code with hems.plan."""
    n = inp.slots
    a = [(inp.load_w[k] - inp.pv_w[k]) / 1000 for k in range(n)]
    cap = c.capacity_kwh
    s0 = c.soc_pct / 100 * cap
    lo_s = c.soc_min_pct / 100 * cap
    hi_s = max(c.soc_max_pct / 100 * cap, s0)
    per_trip = trip_kwh / len(away) if away else 0.0
    best = math.inf
    choices = []
    for k in range(n):
        if k in outage:
            choices.append([("island", "none")])
        elif k in away:
            choices.append([("idle", "imp"), ("idle", "exp")])
        else:
            choices.append([(m, g) for m in ("chg", "dis") for g in ("imp", "exp")])
    for combo in itertools.product(*choices):
        # variables: p_0..p_{n-1} (car power magnitude, kW), s_0..s_{n-1} (kWh)
        cost = np.zeros(2 * n)
        const = 0.0
        bounds = []
        A_eq, b_eq, A_ub, b_ub = [], [], [], []
        for k, (m, g) in enumerate(combo):
            sgn = {"chg": 1.0, "dis": -1.0, "idle": 0.0, "island": -1.0}[m]
            if m == "chg":
                bounds.append((0, c.charge_max_w / 1000))
            elif m == "dis":
                hi = c.discharge_max_w / 1000
                if no_export:
                    hi = min(hi, max(a[k], 0.0))
                bounds.append((0, hi))
            elif m == "idle":
                bounds.append((0, 0))
            else:
                load = island_w / 1000
                if load > c.discharge_max_w / 1000:
                    bounds.append((1, 0))        # infeasible on purpose
                else:
                    bounds.append((load, load))
            # grid net = a + sgn·p (island: 0 by construction)
            if g in ("imp", "exp"):
                price = inp.import_price[k] if g == "imp" else inp.export_price[k]
                cost[k] += price * sgn * DT
                const += price * a[k] * DT
                row = np.zeros(2 * n)
                row[k] = -sgn if g == "imp" else sgn        # imp: a + sgn p ≥ 0 ; exp: a + sgn p ≤ 0
                A_ub.append(row)
                b_ub.append(a[k] if g == "imp" else -a[k])
            if m in ("dis",):
                cost[k] += c.wear_cost_per_kwh * DT
            # energy: s_k = s_{k-1} + Δ
            row = np.zeros(2 * n)
            row[n + k] = 1.0
            if k:
                row[n + k - 1] = -1.0
            if m == "chg":
                row[k] = -c.eff_charge * DT
            elif m in ("dis", "island"):
                row[k] = DT / c.eff_discharge
            A_eq.append(row)
            b_eq.append((s0 if k == 0 else 0.0) - (per_trip if k in away else 0.0))
        sb = [(lo_s, hi_s)] * n
        if c.soc_final_pct is not None:
            sb[-1] = (max(lo_s, c.soc_final_pct / 100 * cap), hi_s)
        if any(lo > hi for lo, hi in bounds):
            continue
        res = scipy_opt.linprog(cost, A_ub=np.array(A_ub) if A_ub else None, b_ub=b_ub or None,
                                A_eq=np.array(A_eq), b_eq=b_eq, bounds=bounds + sb, method="highs")
        if res.status == 0:
            best = min(best, res.fun + const)
    return best


def random_case(rng: random.Random, n: int):
    load = [rng.choice([0.0, 300.0, 1200.0, 2500.0]) for _ in range(n)]
    pv = [rng.choice([0.0, 0.0, 1500.0, 4000.0]) for _ in range(n)]
    pi = [round(rng.uniform(-0.4, 0.5), 3) for _ in range(n)]
    # mostly export ≤ import (spot-following tariffs), sometimes export paying more
    pe = [round(p - rng.uniform(0.0, 0.3), 3) if rng.random() < 0.75 else round(rng.uniform(-0.2, 0.6), 3)
          for p in pi]
    return load, pv, pi, pe


@pytest.mark.parametrize("seed", range(12))
def test_optimum_matches_brute_force_on_tiny_horizons(seed):
    """Every direction pattern of a 4-slot horizon, each solved as an LP: the plan's cost is the
    minimum over all of them (to 1e-6), with negative prices and export paying more than import."""
    rng = random.Random(seed)
    n = 4
    load, pv, pi, pe = random_case(rng, n)
    no_export = rng.random() < 0.3
    c = car(soc_pct=rng.choice([30.0, 60.0, 95.0]), wear_cost_per_kwh=rng.choice([0.0, 0.03]),
            soc_final_pct=rng.choice([None, 40.0]), discharge_max_w=rng.choice([3000.0, 7000.0]))
    away: set[int] = set()
    trips = ()
    outage: set[int] = set()
    outages = ()
    if seed % 4 == 1:
        away, trips = {2}, (Trip(start=at(2), end=at(3), energy_kwh=1.0),)
    if seed % 4 == 3:
        outage, outages = {1}, (Outage(start=at(1), end=at(2), load_w=1000.0),)
    inp = inputs(load, pv, pi, pe, trips=trips, outages=outages)
    p = plan(inp, c, PlanOptions(no_export=no_export))
    ref = brute_force(inp, c, no_export, away, 1.0 if away else 0.0, outage, 1000.0)
    assert p.optimal
    assert p.cost == pytest.approx(ref, abs=1e-6), (p.cost, ref)
    check_consistent(inp, c, p)


def full_milp(inp: PlanInputs, c: CarParams) -> float:
    """The same problem with a binary direction in every slot, solved by scipy's MILP: a second,
    independently written formulation (net car power split by a binary, net grid split by a binary)."""
    n = inp.slots
    cm, dm = c.charge_max_w / 1000, c.discharge_max_w / 1000
    a = np.array(inp.load_w) / 1000 - np.array(inp.pv_w) / 1000
    cap = c.capacity_kwh
    # x = [c(n), d(n), i(n), e(n), s(n), y(n), z(n)]
    N = 7 * n
    cost = np.zeros(N)
    cost[n:2 * n] = c.wear_cost_per_kwh * DT
    cost[2 * n:3 * n] = np.array(inp.import_price) * DT
    cost[3 * n:4 * n] = -np.array(inp.export_price) * DT
    rows, lo, hi = [], [], []
    big = 100.0
    for k in range(n):
        r = np.zeros(N); r[2 * n + k] = 1; r[3 * n + k] = -1; r[k] = -1; r[n + k] = 1
        rows.append(r); lo.append(a[k]); hi.append(a[k])
        r = np.zeros(N); r[4 * n + k] = 1; r[k] = -c.eff_charge * DT; r[n + k] = DT / c.eff_discharge
        if k:
            r[4 * n + k - 1] = -1
        b = c.soc_pct / 100 * cap if k == 0 else 0.0
        rows.append(r); lo.append(b); hi.append(b)
        r = np.zeros(N); r[k] = 1; r[5 * n + k] = -cm; rows.append(r); lo.append(-np.inf); hi.append(0)
        r = np.zeros(N); r[n + k] = 1; r[5 * n + k] = dm; rows.append(r); lo.append(-np.inf); hi.append(dm)
        r = np.zeros(N); r[2 * n + k] = 1; r[6 * n + k] = -big; rows.append(r); lo.append(-np.inf); hi.append(0)
        r = np.zeros(N); r[3 * n + k] = 1; r[6 * n + k] = big; rows.append(r); lo.append(-np.inf); hi.append(big)
    lb = np.zeros(N)
    ub = np.full(N, np.inf)
    ub[:n] = cm
    ub[n:2 * n] = dm
    lb[4 * n:5 * n] = c.soc_min_pct / 100 * cap
    ub[4 * n:5 * n] = c.soc_max_pct / 100 * cap
    if c.soc_final_pct is not None:
        lb[5 * n - 1] = c.soc_final_pct / 100 * cap
    ub[5 * n:] = 1
    integrality = np.zeros(N)
    integrality[5 * n:] = 1
    res = scipy_opt.milp(cost, constraints=scipy_opt.LinearConstraint(np.array(rows), lo, hi),
                         bounds=scipy_opt.Bounds(lb, ub), integrality=integrality,
                         options={"mip_rel_gap": 1e-9})
    assert res.status == 0, res.message
    return res.fun


@pytest.mark.parametrize("seed", range(3))
def test_optimum_matches_a_full_milp_over_12_hours(seed):
    rng = random.Random(100 + seed)
    n = 48
    load = [rng.uniform(200, 2500) for _ in range(n)]
    pv = [max(0.0, 6000 * math.sin(math.pi * (k - 8) / 32)) if 8 <= k < 40 else 0.0 for k in range(n)]
    spot = [0.15 + 0.1 * math.sin(k / 7) - (0.5 if 16 <= k < 28 else 0.0) for k in range(n)]
    pi = [s + 0.12 for s in spot]
    pe = spot if seed != 2 else [0.08] * n           # seed 2: a fixed feed-in above a negative import
    c = car(capacity_kwh=15.0, soc_pct=40.0, soc_final_pct=40.0, wear_cost_per_kwh=0.01 * seed)
    inp = inputs(load, pv, pi, pe)
    p = plan(inp, c)
    assert p.optimal
    assert p.cost == pytest.approx(full_milp(inp, c), abs=1e-5)
    check_consistent(inp, c, p)


# ---------------------------------------------------------------- one direction per slot

def check_consistent(inp: PlanInputs, c: CarParams, p) -> None:
    """The plan is physical: the SoC follows the net car power with the efficiency of its
    direction (so nothing was burnt in a same-slot charge-discharge loop), the grid is the net load
    plus the car, and the SoC stays in bounds."""
    s = c.soc_pct / 100 * c.capacity_kwh
    away = p.away
    for k in range(inp.slots):
        x = p.car_w[k] / 1000
        if away[k]:
            assert x == 0.0
        else:
            assert p.grid_w[k] == pytest.approx(inp.load_w[k] - inp.pv_w[k] + p.car_w[k], abs=1e-3) or \
                any(o.start <= at(k) < o.end for o in inp.outages)
        trip = sum(t.energy_kwh / round((t.end - t.start).total_seconds() / 900) for t in inp.trips
                   if t.start <= at(k) < t.end)
        s += (c.eff_charge * x if x > 0 else x / c.eff_discharge) * DT - trip
        assert p.soc_pct[k] == pytest.approx(s / c.capacity_kwh * 100, abs=1e-4), k
        assert p.soc_pct[k] >= min(c.soc_min_pct, c.soc_pct) - 1e-6


def test_negative_prices_never_charge_and_discharge_in_one_slot():
    """A small car, a long negative-price window: the LP relaxation burns energy by charging and
    discharging in the same slots (shown), the plan does not, and its SoC follows its net power."""
    n = 96
    load = [800.0] * n
    pv = [0.0] * n
    pi = [-0.5 if 40 <= k < 64 else 0.3 for k in range(n)]
    pe = [p - 0.1 for p in pi]
    c = car(capacity_kwh=10.0, soc_pct=50.0, soc_final_pct=50.0)
    inp = inputs(load, pv, pi, pe)
    h = prepare(inp, c, PlanOptions())
    empty = np.zeros(0, dtype=np.int64)
    x, _, _ = lpmod.run(lpmod.build(h, empty, empty, empty, empty))
    both_car, _ = lpmod.overlaps(h, x)
    assert both_car.size > 0, "the relaxation should prefer overlapping flows here"
    p = plan(inp, c)
    assert p.mode_slots > 0 and p.optimal
    check_consistent(inp, c, p)
    for k in range(n):                       # one net grid power: its sign matches the balance
        assert p.grid_w[k] == pytest.approx(load[k] + p.car_w[k], abs=1e-3)
    assert max(p.car_w[40:64]) == pytest.approx(7000.0)         # it does charge in the window


def test_export_paying_more_than_import_gives_one_grid_direction():
    n = 8
    pi = [-0.2] * n
    pe = [0.1] * n
    c = car(capacity_kwh=10.0, soc_pct=50.0, soc_final_pct=50.0)
    inp = inputs([500.0] * n, [3000.0] * n, pi, pe)
    p = plan(inp, c)
    check_consistent(inp, c, p)
    assert p.cost == pytest.approx(brute_force_sampled(inp, c), abs=1e-6)


def brute_force_sampled(inp, c):
    return full_milp(inp, c)


def test_positive_prices_solve_as_one_lp():
    n = 192
    rng = random.Random(7)
    inp = inputs([rng.uniform(300, 2000) for _ in range(n)], [0.0] * n,
                 [0.2 + 0.1 * math.sin(k / 10) for k in range(n)], [0.05] * n)
    p = plan(inp, car(capacity_kwh=60.0, soc_final_pct=60.0, wear_cost_per_kwh=0.02))
    assert p.mode_slots == 0 and p.optimal


# ---------------------------------------------------------------- constraints

def test_cheap_night_charges_dear_evening_discharges():
    n = 16
    pi = [0.10] * 8 + [0.40] * 8
    inp = inputs([1000.0] * n, [0.0] * n, pi, [0.0] * n)
    p = plan(inp, car(soc_pct=50.0, soc_final_pct=50.0, wear_cost_per_kwh=0.01), PlanOptions(no_export=True))
    assert sum(p.car_w[:8]) > 0 and all(x >= -1e-6 for x in p.car_w[:8])
    assert all(-1000.0 - 1e-6 <= x <= 1e-6 for x in p.car_w[8:])       # no export: at most the load
    assert all(g >= -1e-6 for g in p.grid_w)
    assert p.soc_pct[-1] >= 50.0 - 1e-6


def test_trip_away_and_departure_target():
    n = 32
    trip = Trip(start=at(12), end=at(20), energy_kwh=3.0, depart_soc_pct=90.0)
    inp = inputs([500.0] * n, [0.0] * n, [0.3] * n, [0.0] * n, trips=(trip,))
    c = car(soc_pct=30.0)
    p = plan(inp, c)
    assert all(p.car_w[k] == 0.0 for k in range(12, 20))
    assert p.soc_pct[11] >= 90.0 - 1e-6
    assert p.soc_pct[19] == pytest.approx(p.soc_pct[11] - 30.0, abs=1e-6)
    check_consistent(inp, c, p)


def test_announced_outage_fills_the_car_beforehand():
    n = 24
    out = Outage(start=at(12), end=at(24), load_w=2000.0)
    inp = inputs([1000.0] * n, [0.0] * n, [0.5] * n, [0.0] * n, outages=(out,))
    c = car(capacity_kwh=20.0, soc_pct=20.0, soc_min_pct=20.0)
    p = plan(inp, c)
    need = 2.0 * 3.0 / 0.9                            # kWh stored for 3 h at 2 kW
    assert p.soc_pct[11] >= 20.0 + need / 20.0 * 100 - 1e-6
    assert all(p.grid_w[k] == 0.0 for k in range(12, 24))
    assert all(p.car_w[k] == pytest.approx(-2000.0) for k in range(12, 24))
    assert p.soc_pct[-1] == pytest.approx(20.0, abs=1e-6)


def test_a_car_below_its_floor_charges_at_full_power_first():
    inp = inputs([500.0] * 8, [0.0] * 8, [0.9] * 8, [0.0] * 8)
    p = plan(inp, car(capacity_kwh=40.0, soc_pct=5.0, soc_min_pct=20.0))     # 6 kWh short: 3.8 slots at 7 kW
    assert p.car_w[:3] == pytest.approx([7000.0] * 3)
    assert p.soc_pct[3] >= 20.0 - 1e-6


# ---------------------------------------------------------------- infeasible, bad input

def test_uncoverable_trip_is_named():
    trip = Trip(start=at(2), end=at(6), energy_kwh=9.0)
    inp = inputs([0.0] * 8, [0.0] * 8, [0.1] * 8, [0.0] * 8, trips=(trip,))
    with pytest.raises(InfeasiblePlan) as ei:
        plan(inp, car(soc_pct=30.0))
    assert ei.value.constraint == "trip" and "9 kWh" in str(ei.value)


def test_unreachable_final_soc_is_named():
    inp = inputs([0.0] * 4, [0.0] * 4, [0.1] * 4, [0.0] * 4)
    with pytest.raises(InfeasiblePlan) as ei:
        plan(inp, car(soc_pct=20.0, soc_final_pct=100.0, charge_max_w=3000.0))
    assert ei.value.constraint == "soc_final"
    assert "47.0 %" in str(ei.value)            # 20 % + 4 × 0.75 kWh × 0.9 = 2.7 kWh of 10


def test_outage_beyond_the_discharge_limit_is_named():
    out = Outage(start=at(1), end=at(2), load_w=9000.0)
    inp = inputs([0.0] * 4, [0.0] * 4, [0.1] * 4, [0.0] * 4, outages=(out,))
    with pytest.raises(InfeasiblePlan) as ei:
        plan(inp, car())
    assert ei.value.constraint == "outage"


@pytest.mark.parametrize("field,value,key", [
    ("load_w", [1.0, float("nan"), 1.0], "load_w[1]"),
    ("pv_w", [1.0, -5.0, 1.0], "pv_w[1]"),
    ("import_price", [1.0, float("inf"), 1.0], "import_price[1]"),
])
def test_bad_series_named(field, value, key):
    kw = dict(load_w=[1.0] * 3, pv_w=[0.0] * 3, import_price=[0.1] * 3, export_price=[0.0] * 3)
    kw[field] = value
    with pytest.raises(ConfigError) as ei:
        PlanInputs(start=T0, **kw)
    assert ei.value.key == key


@pytest.mark.parametrize("kw,key", [({"eff_charge": 0.0}, "car.eff_charge"),
                                    ({"soc_pct": 101.0}, "car.soc_pct"),
                                    ({"charge_max_w": float("nan")}, "car.charge_max_w"),
                                    ({"soc_min_pct": 90.0, "soc_max_pct": 80.0}, "car.soc_min_pct")])
def test_bad_car_named(kw, key):
    with pytest.raises(ConfigError) as ei:
        car(**kw)
    assert ei.value.key == key


def test_naive_start_refused():
    with pytest.raises(ConfigError):
        PlanInputs(start=datetime(2025, 1, 1), load_w=[0.0], pv_w=[0.0], import_price=[0.0], export_price=[0.0])


def test_outages_from_config():
    import tomllib

    from hems.plan import outages_from_config

    data = tomllib.loads('[[outages]]\nstart = 2025-03-03T03:00:00+01:00\nend = "2025-03-03T06:00+01:00"\n'
                         'load_w = 1500\n[[outages]]\nstart = "2025-03-04T18:00+01:00"\n'
                         'end = "2025-03-04T20:00+01:00"\n')
    outs = outages_from_config(data["outages"])
    assert outs[0].start == at(12) and outs[0].load_w == 1500.0 and outs[1].load_w is None
    for bad, key in ([{"start": "2025-03-03T03:00", "end": "2025-03-03T04:00+01:00"}], "outages[0].start"), \
                    ([{"start": "2025-03-03T03:00+01:00", "end": "2025-03-03T04:00+01:00", "load_w": "x"}],
                     "outages[0].load_w"), \
                    ([{"start": "2025-03-03T05:00+01:00", "end": "2025-03-03T04:00+01:00"}], "outages[0].end"), \
                    ([{"start": "2025-03-03T03:00+01:00", "end": "2025-03-03T04:00+01:00", "w": 1}], "outages[0].w"):
        with pytest.raises(ConfigError) as ei:
            outages_from_config(bad)
        assert ei.value.key == key

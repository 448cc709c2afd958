"""Load shedding and restoration: pure functions over the circuits' state.

Shedding order: deferrable before essential, the largest first within a class (one relay then
frees the most power: the fastest way out of an overload). Critical circuits are not in the order
at all. Restoration: the other way round, one circuit per settle delay, highest priority first,
only once its minimum off-time has passed and only if it fits under the headroom.
"""

from __future__ import annotations

from .config import CircuitConfig, Priority


def estimate(c: CircuitConfig, measured: float | None) -> float:
    """What a circuit draws or will draw: its meter if it has one and reads sensibly, else its rating.
    A metered circuit is never assumed to draw less than its rating when it is being restored."""
    if measured is None or not (0.0 <= measured <= 1e6):
        return c.power_w
    return max(measured, c.power_w)


def shed_order(circuits: tuple[CircuitConfig, ...], on: list[bool], measured: tuple[float | None, ...]) -> list[int]:
    """Indices of the circuits that are on and may be shed, in shedding order (critical never)."""
    cand = [i for i, c in enumerate(circuits) if on[i] and c.priority is not Priority.CRITICAL]
    return sorted(cand, key=lambda i: (-circuits[i].priority.rank, -_m(circuits[i], measured, i), i))


def restore_candidate(circuits: tuple[CircuitConfig, ...], on: list[bool], off_since: list[float | None],
                      measured: tuple[float | None, ...], load_w: float, budget_w: float, now: float,
                      allowed: frozenset[Priority]) -> int | None:
    """The next circuit to switch on: highest priority, then configuration order; None if nothing
    fits. A circuit that does not fit, or waits out its minimum off-time, keeps its room from those
    of lower priority (they would starve it)."""
    order = sorted((i for i, c in enumerate(circuits) if not on[i] and c.priority in allowed),
                   key=lambda i: (circuits[i].priority.rank, i))
    reserved = 0.0    # room kept for higher-priority circuits still waiting out their minimum off-time
    for i in order:
        c = circuits[i]
        need = estimate(c, _get(measured, i))
        if off_since[i] is not None and now < off_since[i] + c.min_off_s:
            reserved += need
            continue
        if load_w + reserved + need <= budget_w:
            return i
        return None           # the highest-priority eligible circuit does not fit: wait for room
    return None


def min_off_deadline(circuits: tuple[CircuitConfig, ...], on: list[bool], off_since: list[float | None],
                     now: float) -> float | None:
    """When the next waiting circuit's minimum off-time ends (for the runner's skip-ahead)."""
    best = None
    for i, c in enumerate(circuits):
        if not on[i] and off_since[i] is not None:
            t = off_since[i] + c.min_off_s
            if t > now and (best is None or t < best):
                best = t
    return best


def _get(measured: tuple[float | None, ...], i: int) -> float | None:
    return measured[i] if i < len(measured) else None


def _m(c: CircuitConfig, measured: tuple[float | None, ...], i: int) -> float:
    m = _get(measured, i)
    return c.power_w if m is None else m

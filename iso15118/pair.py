"""Run a charger session and a car session against each other in memory, on a simulated clock.

Both ends are the sans-I/O machines the network runners use; frames go through real V2GTP
bytes (encoded, re-parsed) with a configurable one-way latency. Tests and what-if studies use
this to run hours of charging in milliseconds; ``tamper`` lets a test change, drop or inject
frames on the wire.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from iso15118.v2gtp import V2GTPDecoder, V2GTPFrame


@dataclass
class Wire:
    """What travelled, for assertions: (time, 'ev→evse'|'evse→ev', frame)."""

    log: list[tuple[float, str, V2GTPFrame]] = field(default_factory=list)


CUT = object()
"""Returned by a tamper function: the connection breaks now (both ends see it lost)."""

Tamper = Callable[[str, V2GTPFrame, float], object]


def run_pair(secc, evcc, *, start: float = 0.0, latency: float = 0.002, until: float = 24 * 3600.0,
             tamper: Tamper | None = None) -> Wire:
    """Run until both ends are closed (or ``until``). ``tamper(direction, frame, now)`` may
    return replacement frames (``[]`` drops the frame, ``CUT`` breaks the connection)."""
    wire = Wire()
    queue: list[tuple[float, int, str, bytes]] = []
    seq = 0
    cut = False
    decoders = {"evse": V2GTPDecoder(), "ev": V2GTPDecoder()}

    def post(now: float, direction: str, frames: list[V2GTPFrame]) -> None:
        nonlocal seq, cut
        for f in frames:
            out = [f] if tamper is None else tamper(direction, f, now)
            if out is CUT:
                cut = True
                return
            for g in ([f] if out is None else out):
                wire.log.append((now, direction, g))
                seq += 1
                heapq.heappush(queue, (now + latency, seq, direction, g.to_bytes()))

    now = start
    post(now, "ev→evse", evcc.start(now))
    while now < until and not (secc.closed and evcc.closed):
        if cut:
            secc.on_connection_lost(now)
            evcc.on_connection_lost(now)
            break
        if (secc.closed or evcc.closed) and not queue:
            break  # one end hung up and nothing is in flight: the other sees the TCP close
        times = [t for t in (secc.next_deadline(), evcc.next_deadline()) if t is not None]
        if queue:
            times.append(queue[0][0])
        if not times:
            break
        now = max(now, min(times))
        if queue and queue[0][0] <= now:
            _, _, direction, data = heapq.heappop(queue)
            target = secc if direction == "ev→evse" else evcc
            dec = decoders["evse" if direction == "ev→evse" else "ev"]
            dec.receive_data(data)
            for frame in dec.frames():
                back = "evse→ev" if direction == "ev→evse" else "ev→evse"
                post(now, back, target.on_frame(frame, now))
            continue
        for end, direction in ((secc, "evse→ev"), (evcc, "ev→evse")):
            d = end.next_deadline()
            if d is not None and d <= now:
                post(now, direction, end.handle_timer(now))
    # whoever is still open when the other side closed sees the connection go
    if secc.closed and not evcc.closed:
        evcc.on_connection_lost(now)
    if evcc.closed and not secc.closed:
        secc.on_connection_lost(now)
    return wire

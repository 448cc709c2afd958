"""The whole chain in one process on a simulated clock: a car (EVCC with its battery) ↔ a charger
(SECC + power stage + OCPP bridge + station core) ↔ the house's CSMS core, with real bytes on
each link — V2GTP/EXI between car and charger, OCPP-J text between charger and CSMS, every OCPP
payload checked against the 2.1 schemas on both sides — and time passed in everywhere, so a
day of charging and discharging runs in seconds.

``Chain`` is the wiring; ``Chain.run(until)`` the event loop: it jumps from one deadline (a
session timer, a charge loop, an OCPP timeout, a reconnect, a message in flight, a scripted
event) to the next. Scripted events (``at``) change what the CSMS asks, take the CSMS away
(``csms_down``), plug a car in (``plug``).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from iso15118.evcc import Battery, EVCCConfig, EVCCSession
from iso15118.secc import EVSEController, SECCConfig, SECCSession, SimulatedPowerStage
from iso15118.v2gtp import V2GTPDecoder
from ocpp_bridge.bridge import OCPPBridge
from ocpp_bridge.core import StationConfig, StationCore
from ocpp_bridge.store import MemoryStore

from .csms import CSMSCore

Script = Callable[["Chain", float], None]


@dataclass
class Wire:
    """What crossed the links, for assertions (the OCPP frames only when asked to keep them)."""

    v2g_frames: int = 0                                                # V2GTP frames, both ways
    ocpp: list[tuple[float, str, str]] = field(default_factory=list)   # (t, 'cs→csms'|'csms→cs', frame text)


class Chain:
    """One charger with its station core, the house's CSMS core and one car at a time."""

    def __init__(self, *, start: float, csms: CSMSCore | None = None, station_id: str = "CS001",
                 stage: SimulatedPowerStage | None = None, secc_config: SECCConfig | None = None,
                 default_setpoint_w: float = 7000.0, tx_updated_interval: float = 60.0,
                 v2g_latency: float = 0.0, ocpp_latency: float = 0.005, keep_ocpp_text: bool = False,
                 retry_backoff: float = 1.0):
        """``v2g_latency`` 0 delivers each V2GTP frame at once (the charge loop's round trip is then
        three calls, not three events); ``ocpp_latency`` is the one-way delay of OCPP frames."""
        self.now = start
        self.csms = csms or CSMSCore()
        self.station_id = station_id
        self.stage = stage or SimulatedPowerStage(kind="DC")
        self.secc_config = secc_config or SECCConfig(require_tls=False)
        self.core = StationCore(StationConfig(station_id, "ws://house.invalid/ocpp", password="x" * 16,
                                              retry_backoff_min=retry_backoff, retry_backoff_random=retry_backoff),
                                MemoryStore(), now=start, rng=_fixed_rng())
        self.bridge = OCPPBridge(self.stage, self.core, default_setpoint_w=default_setpoint_w,
                                 tx_updated_interval=tx_updated_interval, clock_offset=0.0)
        self.v2g_latency, self.ocpp_latency = v2g_latency, ocpp_latency
        self.keep_ocpp_text = keep_ocpp_text
        self.wire = Wire()
        self.csms_up = True
        self.secc: SECCSession | None = None
        self.evcc: EVCCSession | None = None
        self.sessions: list[tuple[SECCSession, EVCCSession]] = []
        self._link = None
        self._queue: list[tuple[float, int, str, object]] = []  # (time, seq, kind, data)
        self._seq = itertools.count()
        self._decoders = {"evse": V2GTPDecoder(), "ev": V2GTPDecoder()}
        self._script: list[tuple[float, int, Script]] = []
        self.timers: list = []  # more timer sources (next_deadline() / handle_timer(now)): an energy manager

    # --- scripting ------------------------------------------------------------------------------------
    def at(self, t: float, fn: Script) -> None:
        """Run ``fn(chain, now)`` at simulated time ``t``."""
        heapq.heappush(self._script, (t, next(self._seq), fn))

    def attach(self, timer_source) -> None:
        """Run ``timer_source`` (an energy manager: ``next_deadline()``, ``handle_timer(now)`` and,
        if it has one, ``poke(now)`` called whenever the CSMS hears from the station) on this clock."""
        self.timers.append(timer_source)
        if hasattr(timer_source, "poke"):
            previous = self.csms.observer

            def heard(station: str, action: str, payload: dict, now: float) -> None:
                if previous is not None:
                    previous(station, action, payload, now)
                timer_source.poke(now)
            self.csms.observer = heard

    def plug(self, battery: Battery, config: EVCCConfig) -> EVCCSession:
        """A car plugs in now: a new ISO 15118-20 session on a new connection."""
        if self.evcc is not None and not self.evcc.closed:
            raise ValueError("a car is already plugged in")
        self.secc = SECCSession(EVSEController(self.stage, self.bridge), self.secc_config, now=self.now, tls=False)
        self.evcc = EVCCSession(battery, config, tls=False)
        self._decoders = {"evse": V2GTPDecoder(), "ev": V2GTPDecoder()}
        self.sessions.append((self.secc, self.evcc))
        self._post_v2g("ev→evse", self.evcc.start(self.now))
        return self.evcc

    def csms_down(self) -> None:
        """The CSMS goes away (its host reboots, the network fails): the connection drops and
        every reconnect fails until ``csms_back``."""
        self.csms_up = False
        if self._link is not None:
            self._drop_link()

    def csms_back(self) -> None:
        self.csms_up = True

    def record_every(self, interval: float, until: float) -> list[dict]:
        """Sample the charger every ``interval`` s until ``until``: time, measured power (+ into
        the car), the arbiter's source, the car's SoC, whether the CSMS is reachable."""
        rows: list[dict] = []

        def sample(chain: Chain, now: float) -> None:
            m = chain.stage.measurements(now)
            rows.append({"t": now, "power_w": m.power, "source": chain.bridge.decision(now).source,
                         "soc": chain.evcc.battery.soc if chain.evcc is not None else None,
                         "online": chain.core.online})
        t = self.now
        while t <= until:
            self.at(t, sample)
            t += interval
        return rows

    def send(self, action: str, payload: dict, on_answer=None) -> None:
        """The CSMS asks the charger something (SetChargingProfile, SetVariables, …)."""
        self.csms.call(self.station_id, action, payload, now=self.now, on_answer=on_answer)
        self._flush_csms()

    # --- the event loop ---------------------------------------------------------------------------------
    def run(self, until: float) -> None:
        """Advance the simulated clock to ``until``, handling everything due on the way."""
        self._flush_station()  # what was asked from outside the loop since it last ran
        self._flush_csms()
        while True:
            t = self._next_time()
            if t is None or t > until:
                self.now = max(self.now, until)
                return
            self.now = max(self.now, t)
            self._step()

    def _next_time(self) -> float | None:
        """The earliest deadline of anything on the clock (once per event: kept as it goes, with
        the comparisons ``min`` would make over them, in its order)."""
        best = self.core.next_deadline()
        link = self._link
        if link is not None:
            d = link.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        else:
            d = self.core.next_connect_at()
            if best is None or d < best:
                best = d
        for end in (self.secc, self.evcc):
            if end is not None and not end.closed:
                d = end.next_deadline()
                if d is not None and (best is None or d < best):
                    best = d
        if self._queue:
            d = self._queue[0][0]
            if best is None or d < best:
                best = d
        if self._script:
            d = self._script[0][0]
            if best is None or d < best:
                best = d
        for t in self.timers:
            d = t.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def _step(self) -> None:
        now = self.now
        if self._script and self._script[0][0] <= now:
            _, _, fn = heapq.heappop(self._script)
            fn(self, now)
        elif self._queue and self._queue[0][0] <= now:
            _, _, kind, data = heapq.heappop(self._queue)
            self._deliver(kind, data, now)
        else:
            self._timers(now)
        self._flush_station()
        self._flush_csms()

    def _timers(self, now: float) -> None:
        for t in self.timers:
            d = t.next_deadline()
            if d is not None and d <= now:
                t.handle_timer(now)
        for end, direction in ((self.secc, "evse→ev"), (self.evcc, "ev→evse")):
            if end is not None and not end.closed:
                d = end.next_deadline()
                if d is not None and d <= now:
                    self._post_v2g(direction, end.handle_timer(now))
        self._v2g_closed(now)
        d = self.core.next_deadline()
        if d is not None and d <= now:
            self.core.handle_timer(now)
            if self.core.close_requested and self._link is not None:
                self._drop_link()
        if self._link is not None:
            d = self._link.next_deadline()
            if d is not None and d <= now:
                self._link.handle_timer(now)
        elif self.core.next_connect_at() <= now:
            if self.csms_up:
                self._link = self.csms.open(self.station_id, now)
                self.core.connection_made(now)
            else:
                self.core.connect_failed(now, "connection refused")

    def _deliver(self, kind: str, data, now: float) -> None:
        if kind in ("ev→evse", "evse→ev"):
            target, dec = (self.secc, self._decoders["evse"]) if kind == "ev→evse" else (self.evcc, self._decoders["ev"])
            if target is None or target.closed:
                return
            dec.receive_data(data)
            back = "evse→ev" if kind == "ev→evse" else "ev→evse"
            for frame in dec.frames():
                self._post_v2g(back, target.on_frame(frame, now))
            self._v2g_closed(now)
        elif kind == "cs→csms":
            if self._link is not None and data[0] is self._link:
                self._link.receive(data[1], now)
        elif kind == "csms→cs":
            if self._link is not None and data[0] is self._link and self.core.connected:
                self.core.receive(data[1], now)

    def _v2g_closed(self, now: float) -> None:
        """One end hung up and nothing is in flight: the other sees the TCP connection close."""
        secc, evcc = self.secc, self.evcc
        if secc is None or evcc is None or secc.closed == evcc.closed:
            return
        if any(k in ("ev→evse", "evse→ev") for _, _, k, _ in self._queue):
            return
        if secc.closed:
            evcc.on_connection_lost(now)
        elif evcc.closed:
            secc.on_connection_lost(now)

    def _post_v2g(self, direction: str, frames_out) -> None:
        for f in frames_out:
            self.wire.v2g_frames += 1
            if self.v2g_latency:
                heapq.heappush(self._queue, (self.now + self.v2g_latency, next(self._seq), direction, f.to_bytes()))
            else:
                self._deliver(direction, f.to_bytes(), self.now)

    def _flush_station(self) -> None:
        for text in self.core.data_to_send():
            if self._link is None:
                continue  # the connection is gone: the core resends what matters after the next boot
            if self.keep_ocpp_text:
                self.wire.ocpp.append((self.now, "cs→csms", text))
            heapq.heappush(self._queue, (self.now + self.ocpp_latency, next(self._seq), "cs→csms", (self._link, text)))

    def _flush_csms(self) -> None:
        link = self._link
        if link is None:
            return
        for text in link.data_to_send():
            if self.keep_ocpp_text:
                self.wire.ocpp.append((self.now, "csms→cs", text))
            heapq.heappush(self._queue, (self.now + self.ocpp_latency, next(self._seq), "csms→cs", (link, text)))

    def _drop_link(self) -> None:
        self.csms.close(self.station_id, self.now)
        self.core.connection_lost(self.now, "the CSMS went away")
        self._link = None


def _fixed_rng() -> Callable[[], float]:
    """Back-off jitter without randomness: runs repeat exactly."""
    return lambda: 0.5

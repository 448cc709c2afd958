"""The charger's ISO 15118-20 session, sans-I/O.

``SECCSession`` takes V2GTP frames and the time, and returns V2GTP frames. Which request is
allowed in which state is one table (``TRANSITIONS``, built in ``handlers.py``): a request not
in the table gets FAILED_SequenceError and ends the session; a wrong SessionID gets
FAILED_UnknownSession. Every abort path — a sequence error, an undecodable message, a timeout,
a lost connection — de-energises first (current to zero, contactors open), and the session
object is then closed; the listener is ready for the next car.

The power stage belongs to a ``Connector``: a session reaches it only while it owns the
connector (from an accepted SessionSetup to its end), so a second connection to a charger with
one stage is refused at SessionSetup and can never de-energise the car that is charging.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from iso15118 import exi
from iso15118.messages import TRACE_LENGTH, Observer, filled, name_of, payload_type_of, response_class, schema_of_payload
from iso15118.units import header
from iso15118.v2gtp import V2GTPFrame

from .connector import Connector, StageNotOwned
from .controller import EVSEController, PowerStage, Supervisor
from .events import EndReason, GeneratorMode, SessionEnded


class State(Enum):
    WAIT_SAP = "WaitSupportedAppProtocol"
    WAIT_SESSION_SETUP = "WaitSessionSetup"
    WAIT_AUTH_SETUP = "WaitAuthorizationSetup"
    WAIT_AUTH = "WaitAuthorization"
    WAIT_SERVICE_DISCOVERY = "WaitServiceDiscovery"
    WAIT_SERVICE_SELECTION = "WaitServiceSelection"
    WAIT_CPD = "WaitChargeParameterDiscovery"
    WAIT_SCHEDULE = "WaitScheduleExchange"
    WAIT_CABLE_CHECK = "WaitCableCheck"
    WAIT_PRECHARGE = "WaitPreCharge"
    WAIT_POWER_DELIVERY = "WaitPowerDelivery"
    CHARGE_LOOP = "ChargeLoop"
    WAIT_WELDING = "WaitWeldingDetectionOrSessionStop"
    WAIT_SESSION_STOP = "WaitSessionStop"
    ENDED = "Ended"


@dataclass
class SECCConfig:
    """What this charger offers and how long it waits (the ISO 15118-20 timers, and v2h's own)."""

    evse_id: str = "DE*V2H*E0001"
    services: tuple[int, ...] = (2, 6, 1, 5)  # DC, DC_BPT, AC, AC_BPT; filtered by the handshake
    control_modes: tuple[int, ...] = (1, 2)    # 1 Scheduled, 2 Dynamic
    auth_methods: tuple[str, ...] = ("EIM", "PnC")
    require_tls: bool = True                   # ISO 15118-20 only over TLS
    contract_roots: tuple = ()                 # MO roots (PEM/DER) for Plug & Charge
    sequence_timeout: float = 60.0
    # the car's communication setup timer (connection → SessionSetupRes): no car waits longer,
    # so a connection that has not set up a session by then is closed
    communication_setup_timeout: float = 20.0
    energized_timeout: float = 2.0             # v2h: silence while power flows (not in the standard)
    ongoing_timeout: float = 60.0
    cable_check_timeout: float = 40.0
    precharge_timeout: float = 10.0
    meter_id: str = "V2H-METER-1"
    pause_allowed: bool = True
    max_paused_sessions: int = 16              # paused sessions kept for resumption (oldest dropped)
    # DC: PowerDelivery(Start) is refused unless the output is within this many volts of the
    # car's present voltage (closing the car's contactors across a larger difference is an inrush)
    precharge_tolerance: float = 20.0
    # ServiceDetail of the BPT services: how the charger's inverter runs while it discharges (-20
    # GeneratorMode: 1 GridFollowing, 2 GridForming — a charger that can form an island for the house)
    # and, for AC_BPT, its GridCodeIslandingDetectionMethod (1 Active, 2 Passive)
    generator_mode: GeneratorMode = GeneratorMode.GRID_FOLLOWING
    islanding_detection_method: int = 1
    # a time-of-use tariff published to the car as a PriceLevelSchedule (ServiceDetail Pricing=2):
    # (duration in s, price level) from the schedule's start; empty = no pricing (Pricing=0)
    price_levels: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.islanding_detection_method not in (1, 2):
            raise ValueError("GridCodeIslandingDetectionMethod is 1 (active) or 2 (passive)")
        if self.max_paused_sessions < 1:
            raise ValueError("max_paused_sessions must be at least 1")
        if not self.precharge_tolerance > 0:
            raise ValueError("the precharge tolerance must be a positive number of volts")
        if len(self.price_levels) > 1024:
            raise ValueError("a PriceLevelSchedule holds at most 1024 entries")
        for duration, level in self.price_levels:
            if not (0 < duration < 2**32 and 0 <= level < 256):
                raise ValueError(f"price level entry ({duration} s, level {level}) out of range "
                                 "(duration 1..2^32-1 s, level 0..255)")


@dataclass
class SessionContext:
    """Everything negotiated so far."""

    session_id: bytes = b""
    kind: str = ""                      # 'DC' or 'AC', from the handshake
    evcc_id: str = ""
    resumed: bool = False
    auth_methods: tuple[str, ...] = ()
    gen_challenge: bytes | None = None  # single use
    auth_method: str = ""
    emaid: str = ""
    authorized: bool = False
    ongoing_since: float | None = None
    service_id: int = 0
    parameter_set_id: int = 0
    control_mode: str = ""              # 'Scheduled' | 'Dynamic'
    bpt: bool = False
    ev: dict = field(default_factory=dict)  # the car's limits and needs, in SI units
    precharge_done: bool = False
    ev_voltage: float | None = None     # DC: the car's latest EVPresentVoltage (PreCharge, ChargeLoop)
    channel: str = "Charge"
    energized: bool = False
    loops: int = 0
    ev_soc: float | None = None
    ev_min_soc: float | None = None


@dataclass(frozen=True)
class Reply:
    response: object
    next_state: State
    terminate: bool = False
    reason: str | None = None  # why the session ends, when the response code alone does not say
    end: EndReason | None = None  # ... as the enum the supervisor sees (default: from the response)


class SequenceError(Exception):
    """A request that is not allowed now (answered with FAILED_SequenceError)."""


class SECCSession:
    """One connection's session. Feed it frames with ``on_frame``; honour ``next_deadline``."""

    def __init__(self, controller: EVSEController | Connector, config: SECCConfig | None = None, *, now: float,
                 tls: bool = True, resume_store: dict | None = None, clock_offset: float = 0.0,
                 rng=os.urandom, observer: Observer | None = None,
                 on_end: Callable[[SECCSession], None] | None = None):
        from .handlers import TRANSITIONS

        # a shared Connector is taken at SessionSetup; a bare controller is this session's alone
        self._private = not isinstance(controller, Connector)
        self.connector = Connector(controller) if self._private else controller
        if self._private:
            self.connector.acquire(self)
        self.established = False  # SessionSetup accepted: this session owns the connector
        self.config = config or SECCConfig()
        self.table = TRANSITIONS
        self.ctx = SessionContext()
        self.state = State.WAIT_SAP
        self.tls = tls
        self.resume_store = resume_store if resume_store is not None else {}
        self.clock_offset = clock_offset
        self.rng = rng
        self.closed = False
        self.setup_deadline = now + self.config.communication_setup_timeout
        self.deadline: float | None = min(now + self.config.sequence_timeout, self.setup_deadline)
        self.trace: deque[tuple[float, str, str, object]] = deque(maxlen=TRACE_LENGTH)  # (time, 'rx'|'tx', name, message)
        self.observer = observer
        self.on_end = on_end
        self.end_reason: str | None = None
        self._schema = "iso20_cm"

    @property
    def controller(self) -> EVSEController:
        """The charger (stage and supervisor), for the session that owns the connector; anyone
        else is refused."""
        if self.connector.owner is not self:
            raise StageNotOwned(f"session in {self.state.value} does not own the power stage")
        return self.connector.controller

    @property
    def stage(self) -> PowerStage:
        return self.controller.stage

    @property
    def supervisor(self) -> Supervisor:
        return self.controller.supervisor

    # --- the FrameHandler interface --------------------------------------------------------
    def next_deadline(self) -> float | None:
        return None if self.closed else self.deadline

    def handle_timer(self, now: float) -> list[V2GTPFrame]:
        if self.deadline is not None and now >= self.deadline and not self.closed:
            setup = self.state in (State.WAIT_SAP, State.WAIT_SESSION_SETUP) and self.deadline >= self.setup_deadline
            self.terminate(now, f"{'communication setup' if setup else 'sequence'} timeout in {self.state.value}",
                           EndReason.SEQUENCE_TIMEOUT)
        return []

    def on_connection_lost(self, now: float) -> None:
        if not self.closed:
            self.terminate(now, f"connection lost in {self.state.value}", EndReason.CONNECTION_LOST)

    def on_frame(self, frame: V2GTPFrame, now: float) -> list[V2GTPFrame]:
        if self.closed:
            return []
        schema = schema_of_payload(frame.payload_type, self.state is not State.WAIT_SAP, self.ctx.kind)
        if schema is None:
            self.terminate(now, f"payload type {frame.payload_type:#06x} not allowed in {self.state.value}",
                           EndReason.PROTOCOL_ERROR)
            return []
        try:
            req = exi.decode(frame.payload, schema)
        except exi.ExiDecodeError as e:
            self.terminate(now, f"undecodable {schema} message: {e}", EndReason.PROTOCOL_ERROR)
            return []
        name = name_of(req)
        self._schema = schema  # the response travels in the request's schema (see header())
        self._record(now, "rx", name, req)
        reply = self._dispatch(name, req, now)
        if reply is None:
            return []
        res = reply.response
        out = V2GTPFrame(payload_type_of(schema), exi.encode(res, schema))
        self._record(now, "tx", name_of(res), res)
        if reply.terminate or reply.next_state is State.ENDED:
            code = str(getattr(res, "ResponseCode", ""))
            self.terminate(now, reply.reason or f"{name_of(res)} {code}", reply.end or (
                EndReason.REFUSED if code.startswith(("FAILED", "Failed")) else EndReason.STOPPED_BY_EV))
        else:
            self.state = reply.next_state
            # while energised the car must keep talking: a silent car is de-energised quickly
            self.deadline = now + (self.config.energized_timeout if self.ctx.energized else self.config.sequence_timeout)
            if not self.established:  # no session yet: the communication setup timer still runs
                self.deadline = min(self.deadline, self.setup_deadline)
        return [out]

    def _record(self, now: float, direction: str, name: str, message) -> None:
        self.trace.append((now, direction, name, message))
        if self.observer is not None:
            self.observer(now, direction, name, message)

    # --- dispatch ----------------------------------------------------------------------------
    def _dispatch(self, name: str, req, now: float) -> Reply | None:
        entry = self.table.get((self.state, name))
        if self.state is not State.WAIT_SAP and self.state is not State.WAIT_SESSION_SETUP:
            sid = getattr(getattr(req, "Header", None), "SessionID", None)
            if sid is not None and sid != self.ctx.session_id:
                return self.failure(name, "FAILED_UnknownSession", now)
        if entry is None:
            return self.failure(name, "FAILED_SequenceError", now)
        try:
            return entry(req, self, now)
        except SequenceError:
            return self.failure(name, "FAILED_SequenceError", now)

    def failure(self, request_name: str, code: str, now: float) -> Reply:
        """A response of the right type, every mandatory field filled, that ends the session."""
        try:
            cls = response_class(request_name)
        except KeyError:
            self.terminate(now, f"no response type for {request_name}", EndReason.PROTOCOL_ERROR)
            return None  # type: ignore[return-value]
        if request_name.startswith("supportedAppProtocol"):
            return Reply(filled(cls, ResponseCode="Failed_NoNegotiation"), State.ENDED, True, end=EndReason.REFUSED)
        return Reply(filled(cls, Header=self.header(now), ResponseCode=code), State.ENDED, True,
                     end=EndReason.PROTOCOL_ERROR)

    def header(self, now: float, signature=None):
        """The response's MessageHeader, in the class of the schema the request came in."""
        schema = self._schema if self._schema.startswith("iso20") else "iso20_cm"
        return header(self.ctx.session_id or bytes(8), now + self.clock_offset, signature, schema)

    def terminate(self, now: float, reason: str, why: EndReason = EndReason.PROTOCOL_ERROR) -> None:
        """De-energise first, then close; the supervisor hears ``why`` (and the ``reason`` text). A
        session that does not own the connector (refused at SessionSetup, or never got that far)
        has no power to take away and leaves it alone."""
        first = not self.closed
        if self.connector.owner is self:
            charger = self.connector.controller
            charger.stage.de_energise(now)
            self.ctx.energized = False
            if first:
                charger.supervisor.session_event(SessionEnded(reason=why, detail=reason, state=self.state.value), now)
            if not self._private:
                self.connector.release(self)
        self.ctx.energized = False
        self.state = State.ENDED
        self.closed = True
        self.deadline = None
        self.end_reason = reason
        if first and self.on_end is not None:
            self.on_end(self)

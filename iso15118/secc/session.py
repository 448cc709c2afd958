"""The charger's session, sans-I/O: ISO 15118-20, ISO 15118-2 or DIN SPEC 70121, whichever
SupportedAppProtocol chooses.

``SECCSession`` takes V2GTP frames and the time, and returns V2GTP frames. It starts with the
handshake (``sap``); the protocol it chooses brings its table (``iso20.TABLE``, ``iso2.TABLE``,
``din.TABLE``), its payload types and schemas, and (DIN, -2) the V2G_Message envelope, which the
session unwraps for the handlers and puts around their responses. Which request is allowed in
which state, and where its handler may lead, is that table: a
request not in the table gets FAILED_SequenceError and ends the session; a wrong SessionID gets
FAILED_UnknownSession; a handler leading somewhere undeclared raises UndeclaredTransition (a
bug: the adapters de-energise and report it). Every abort path — a sequence error, an undecodable message, a timeout,
a lost connection — de-energises first (current to zero, contactors open), and the session
object is then closed; the listener is ready for the next car.

The power stage belongs to a ``Connector``: a session reaches it only while it owns the
connector (from an accepted SessionSetup to its end), so a second connection to a charger with
one stage is refused at SessionSetup and can never de-energise the car that is charging.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from iso15118 import exi
from iso15118.driver import SessionDriver
from iso15118.messages import Observer, filled, name_of, response_class
from iso15118.protocols import ISO20, AppProtocol, payload_schemas, unwrap, wrap
from iso15118.statetable import StateTable, Transition
from iso15118.units import header
from iso15118.v2gtp import V2GTPFrame

from .connector import Connector, StageNotOwned
from .context import Reply, SECCConfig, SequenceError, SessionContext, State  # noqa: F401 (the session's names)
from .controller import EVSEController, PowerStage, Supervisor
from .events import EndReason, SessionEnded
from .din import TABLE as DIN_TABLE
from .handlers_iso2 import failure as v2g_failure
from .iso2 import TABLE as ISO2_TABLE
from .iso20 import TABLE as ISO20_TABLE
from .sap import supported_app_protocol

TABLES = {"iso20": ISO20_TABLE, "iso2": ISO2_TABLE, "din": DIN_TABLE}  # a session runs one protocol
WAIT_POLL = 0.05  # s: how often a reply that waits (a CSMS's answer) looks again
HANDSHAKE = StateTable("SECC SupportedAppProtocol", {
    (State.WAIT_SAP, "supportedAppProtocolReq"): Transition(supported_app_protocol, State.WAIT_SESSION_SETUP),
}, end=State.ENDED)
ZERO_SESSION = bytes(8)


class SECCSession(SessionDriver):
    """One connection's session. Feed it frames with ``on_frame``; honour ``next_deadline``."""

    def __init__(self, controller: EVSEController | Connector, config: SECCConfig | None = None, *, now: float,
                 tls: bool = True, transport: str | None = None, resume_store: dict | None = None,
                 clock_offset: float = 0.0,
                 rng=os.urandom, observer: Observer | None = None,
                 on_end: Callable[[SECCSession], None] | None = None):
        super().__init__(observer)
        # a shared Connector is taken at SessionSetup; a bare controller is this session's alone
        self._private = not isinstance(controller, Connector)
        self.connector = Connector(controller) if self._private else controller
        if self._private:
            self.connector.acquire(self)
        self.established = False  # SessionSetup accepted: this session owns the connector
        self.config = config or SECCConfig()
        self.table = HANDSHAKE             # the chosen protocol's table after SupportedAppProtocol
        self.protocol: AppProtocol | None = None
        self.msgs = None                   # DIN/-2: the generated classes of its schema
        self.request_header = None         # the header of the request being handled
        self.ctx = SessionContext()
        self.state = State.WAIT_SAP
        # 'tcp', 'tls1.2', 'tls1.3', or 'tls' (a TLS connection of a version not given: in-memory pairs)
        self.transport = transport or ("tls" if tls else "tcp")
        self.resume_store = resume_store if resume_store is not None else {}
        self.clock_offset = clock_offset
        self.rng = rng
        self.setup_deadline = now + self.config.communication_setup_timeout
        self.deadline: float | None = min(now + self.config.sequence_timeout, self.setup_deadline)
        self.on_end = on_end
        self.end_reason: str | None = None
        self._schema = "iso20_cm"
        # a reply that waits (-2 CertificateInstallation forwarded to a CSMS): (table key, poll, schema)
        self.waiting: tuple[tuple, Callable[[float], Reply | None], str] | None = None

    @property
    def tls(self) -> bool:
        return self.transport != "tcp"

    @tls.setter
    def tls(self, value: bool) -> None:
        self.transport = "tls" if value else "tcp"

    def use(self, protocol: AppProtocol) -> None:
        """Run ``protocol`` from the next message on (SupportedAppProtocol chose it)."""
        self.protocol = protocol
        self.ctx.protocol = protocol.name
        self.table = TABLES[protocol.name]
        self.msgs = exi.messages(protocol.schema) if protocol.wrapped else None

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
        if self.waiting is not None and self.deadline is not None and now >= self.deadline and not self.closed:
            key, wait, schema = self.waiting
            reply = wait(now)
            if reply is None:
                self.deadline = now + WAIT_POLL
                return []
            self.waiting = None
            if not reply.terminate:
                self.table.check(key, reply.next_state)
            return [self._respond(reply, schema, now)]
        if self.deadline is not None and now >= self.deadline and not self.closed:
            setup = self.state in (State.WAIT_SAP, State.WAIT_SESSION_SETUP) and self.deadline >= self.setup_deadline
            self.terminate(now, f"{'communication setup' if setup else 'sequence'} timeout in {self.state.value}",
                           EndReason.SEQUENCE_TIMEOUT)
        return []

    def on_connection_lost(self, now: float) -> None:
        if not self.closed:
            self.terminate(now, f"connection lost in {self.state.value}", EndReason.CONNECTION_LOST)

    def _abort(self, now: float, detail: str) -> None:
        self.terminate(now, f"{detail} (in {self.state.value})", EndReason.PROTOCOL_ERROR)

    def on_frame(self, frame: V2GTPFrame, now: float) -> list[V2GTPFrame]:
        if self.closed:
            return []
        read = self._read(frame, now, payload_schemas(self.protocol, self.ctx.kind if self.protocol is ISO20 else ""))
        if read is None:
            return []
        schema, name, msg = read
        _, req, hdr = unwrap(msg)
        if req is None:
            self._abort(now, "a V2G_Message without a message in its Body")
            return []
        self._schema = schema  # the response travels in the request's schema (see header())
        self.request_header = hdr
        self.waiting = None
        reply = self._dispatch(name, req, hdr, now)
        if reply is None:
            return []
        if reply.wait is not None:  # the answer comes later (a CSMS is asked): polled until it does
            self.waiting = ((self.state, name), reply.wait, schema)
            self.deadline = now + WAIT_POLL
            return []
        return [self._respond(reply, schema, now)]

    def _respond(self, reply: Reply, schema: str, now: float) -> V2GTPFrame:
        """The reply's response on the wire (DIN/-2: in its envelope), and the state it leads to."""
        res = reply.response
        if schema in ("din", "iso2"):  # the V2G_Message envelope, with this session's ID
            res = wrap(schema, res, self.ctx.session_id or ZERO_SESSION, reply.signature)
        out = self._write(now, res, schema)
        res = reply.response
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
        return out

    # --- dispatch ----------------------------------------------------------------------------
    def _dispatch(self, name: str, req, hdr, now: float) -> Reply | None:
        key = (self.state, name)
        table = self.table  # the handshake's handler chooses the next table
        entry = table.get(key)
        if self.state is not State.WAIT_SAP and self.state is not State.WAIT_SESSION_SETUP:
            sid = getattr(hdr, "SessionID", None)
            if sid is not None and sid != self.ctx.session_id:
                return self.failure(name, "FAILED_UnknownSession", now)
        if entry is None:
            return self.failure(name, "FAILED_SequenceError", now)
        try:
            reply = entry.handler(req, self, now)
        except SequenceError:
            return self.failure(name, "FAILED_SequenceError", now)
        if reply is not None and not reply.terminate:
            table.check(key, reply.next_state)  # UndeclaredTransition: a bug, de-energised by the adapter
        return reply

    def failure(self, request_name: str, code: str, now: float) -> Reply:
        """A response of the right type, every mandatory field filled, that ends the session."""
        try:
            cls = response_class(request_name) if self.protocol is None or not self.protocol.wrapped else \
                getattr(self.msgs, request_name[:-3] + "Res")
        except (KeyError, AttributeError):
            self.terminate(now, f"no response type for {request_name}", EndReason.PROTOCOL_ERROR)
            return None  # type: ignore[return-value]
        if request_name.startswith("supportedAppProtocol"):
            return Reply(filled(cls, ResponseCode="Failed_NoNegotiation"), State.ENDED, True, end=EndReason.REFUSED)
        if self.protocol is not None and self.protocol.wrapped:
            return Reply(v2g_failure(self, now, request_name, code).response, State.ENDED, True,
                         end=EndReason.PROTOCOL_ERROR)
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

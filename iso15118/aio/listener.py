"""The charger's listener: TCP accept, the TLS handshake, and the accounting of connections.

asyncio's own TLS server hides what matters to a charger facing untrusted peers: it gives every
accepted socket a 256 KiB read buffer before a byte has arrived, waits 60 s for a handshake,
and drops failed handshakes without a word (the protocol never learns of them). Here the TLS
layer is ours, over ``ssl.MemoryBIO`` (the way the sans-I/O cores work), so one place holds:

- the handshake deadline: the car's communication setup timer (20 s from the connection to
  SessionSetupRes, ISO 15118-20 and -2), after which no conforming car is still waiting;
- one port for ISO 15118-20 and ISO 15118-2: the TLS context is chosen from the versions the
  car's ClientHello offers (``client_hello``), read before the handshake starts;
- the cap on concurrent connections, and when it is reached, shedding the oldest connection
  that has not authenticated (handshake unfinished, or no SessionSetup yet): a legitimate car
  always gets in by pushing out an idle stranger, an established session is never shed;
- the reason for every refused or abandoned handshake, logged at most once per kind every
  ``LOG_INTERVAL`` seconds (with the count of the ones held back), counted in ``stats``, and
  passed to ``on_failure`` (``v2h charger`` reports them to the CSMS);
- small per-connection memory: nothing but the socket until the first byte, then the OpenSSL
  object and two memory BIOs; plaintext is read a TLS record (16 KiB) at a time;
- a rate-limited log for accept errors (EMFILE/ENFILE): asyncio reports each failed accept,
  up to 100 per event-loop pass, which becomes a storm of log lines when descriptors run out.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_mod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .client_hello import MAX_BUFFER, offered_versions

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 20.0   # s: the communication setup timer (connection → SessionSetupRes)
TLS_READ_CHUNK = 16384     # bytes: the plaintext of one TLS record at most
LOG_INTERVAL = 10.0        # s: at most one log line per kind of failure in this time
ACCEPT_ERROR_MESSAGE = "socket.accept() out of system resource"

# why a handshake did not finish. The first four are refusals by policy (the peer offered
# something the -20 TLS profile does not allow, or is not TLS); the others are abandoned
# connections (too slow, closed, pushed out by the cap, or refused at the cap).
REFUSED_KINDS = ("version", "cipher", "certificate", "protocol")
ABANDONED_KINDS = ("timeout", "closed", "shed", "full")

_VERSION = ("UNSUPPORTED_PROTOCOL", "WRONG_SSL_VERSION", "VERSION_TOO_LOW", "TLSV1_ALERT_PROTOCOL_VERSION")
_CIPHER = ("NO_SHARED_CIPHER", "NO_SUITABLE_KEY_SHARE", "NO_SHARED_GROUPS", "NO_SUITABLE_SIGNATURE_ALGORITHM",
           "NO_SHARED_SIGNATURE_ALGORITHMS", "NO_CIPHERS_AVAILABLE", "TLSV1_ALERT_INSUFFICIENT_SECURITY",
           "SSLV3_ALERT_HANDSHAKE_FAILURE")
_CERTIFICATE = ("CERTIFICATE_VERIFY_FAILED", "PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_REQUIRED",
                "TLSV13_ALERT_CERTIFICATE_REQUIRED", "NO_CERTIFICATE_RETURNED", "UNKNOWN_CA", "BAD_CERTIFICATE",
                "CERTIFICATE_EXPIRED", "CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE", "CERTIFICATE_REVOKED")


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, readable reason) of a failed server handshake."""
    reason = getattr(exc, "reason", None) or ""
    if isinstance(exc, ssl_mod.SSLCertVerificationError):
        return "certificate", f"vehicle certificate refused: {exc.verify_message or reason}"
    if reason in _VERSION:
        return "version", f"not TLS 1.3 (nor a TLS 1.2 the charger serves) ({reason})"
    if reason in _CIPHER:
        return "cipher", f"no cipher suite, group or signature algorithm of ISO 15118 in common ({reason})"
    if reason in _CERTIFICATE or any(reason.endswith(c) for c in _CERTIFICATE):
        return "certificate", f"certificate refused ({reason})"
    if isinstance(exc, ssl_mod.SSLError):
        return "protocol", f"TLS handshake failed ({reason or exc})"
    return "closed", f"connection failed during the TLS handshake ({exc.__class__.__name__}: {exc})"


@dataclass(frozen=True)
class HandshakeFailure:
    """A connection that ended before it carried V2GTP: ``kind`` (see REFUSED_KINDS and
    ABANDONED_KINDS), a readable ``reason``, the peer's address."""

    kind: str
    reason: str
    peer: tuple | None

    @property
    def refused(self) -> bool:
        return self.kind in REFUSED_KINDS


class Throttle:
    """At most one event per key every ``interval`` seconds (time passed in). ``check`` returns
    None for an event to hold back, else how many were held back since the last one let through."""

    def __init__(self, interval: float = LOG_INTERVAL):
        self.interval = interval
        self._state: dict[object, tuple[float, int]] = {}

    def check(self, key, now: float) -> int | None:
        last, held = self._state.get(key, (None, 0))
        if last is not None and now - last < self.interval:
            self._state[key] = (last, held + 1)
            return None
        self._state[key] = (now, 0)
        return held


@dataclass
class ListenerStats:
    accepted: int = 0                 # TCP connections accepted
    handshakes: int = 0               # TLS handshakes finished
    failures: Counter = field(default_factory=Counter)  # by kind (refused and abandoned)
    accept_errors: int = 0            # accept() failed (EMFILE, ENFILE, ENOBUFS, ENOMEM)

    @property
    def refused_handshakes(self) -> int:
        return sum(self.failures[k] for k in REFUSED_KINDS)


TLSChooser = Callable[[frozenset], ssl_mod.SSLContext]
"""The TLS context for a connection, from the versions its ClientHello offers (empty: not a
ClientHello; the context's handshake then fails as it would)."""


class Listener:
    """Listening sockets and the connections they accepted. ``protocol_factory`` makes the
    application protocol (``V2GTPProtocol``) of a connection once its handshake is done.
    ``ssl``: None (plain TCP), one context, or a ``TLSChooser`` picking one per ClientHello."""

    def __init__(self, protocol_factory: Callable[[], asyncio.Protocol],
                 ssl: ssl_mod.SSLContext | TLSChooser | None, *,
                 max_connections: int | None = None, handshake_timeout: float = HANDSHAKE_TIMEOUT,
                 on_failure: Callable[[HandshakeFailure], None] | None = None):
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if not handshake_timeout > 0:
            raise ValueError("the handshake timeout must be positive")
        self.protocol_factory = protocol_factory
        self.ssl = ssl
        self.choose: TLSChooser | None = ssl if callable(ssl) and not isinstance(ssl, ssl_mod.SSLContext) else None
        self.max_connections = max_connections
        self.handshake_timeout = handshake_timeout
        self.on_failure = on_failure
        self.loop = asyncio.get_running_loop()
        self.stats = ListenerStats()
        self.connections: dict[_Connection, None] = {}  # accept order: the first is the oldest
        self.servers: list[asyncio.Server] = []
        self._throttle = Throttle()
        self._previous_handler = None

    # --- asyncio.Server's surface ------------------------------------------------------------------
    @property
    def sockets(self) -> list:
        return [s for srv in self.servers for s in srv.sockets]

    def close(self) -> None:
        """Stop listening and end every connection: a session still running ends as a lost
        connection does (the charger de-energises first), not with the process."""
        for srv in self.servers:
            srv.close()
        for conn in list(self.connections):
            conn.raw.abort()
        if self.loop.get_exception_handler() == self._on_loop_exception:
            self.loop.set_exception_handler(self._previous_handler)

    async def wait_closed(self) -> None:
        for srv in self.servers:
            await srv.wait_closed()
        while self.connections:  # connection_lost runs on the next passes of the loop
            await asyncio.sleep(0)

    async def start(self, host: str | None, port: int) -> Listener:
        self.servers.append(await self.loop.create_server(lambda: _Connection(self), host, port))
        if self.loop.get_exception_handler() != self._on_loop_exception:
            self._previous_handler = self.loop.get_exception_handler()
            self.loop.set_exception_handler(self._on_loop_exception)
        return self

    # --- accounting ------------------------------------------------------------------------------------
    def _admit(self, conn: _Connection) -> bool:
        """Room for ``conn``: under the cap, or by shedding the oldest unauthenticated one."""
        self.stats.accepted += 1
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            victim = next((c for c in self.connections if not c.authenticated), None)
            if victim is None:
                self._failed(HandshakeFailure("full", f"{len(self.connections)} connections, all in sessions: "
                                                      "refused", conn.peer))
                return False
            victim.shed()
        self.connections[conn] = None
        return True

    def _forget(self, conn: _Connection) -> None:
        self.connections.pop(conn, None)

    def _failed(self, failure: HandshakeFailure) -> None:
        self.stats.failures[failure.kind] += 1
        held = self._throttle.check(failure.kind, self.loop.time())
        if held is not None:
            more = f" ({held} more of this kind held back)" if held else ""
            level = logging.WARNING if failure.refused else logging.INFO
            log.log(level, "%s TLS connection from %s: %s%s", "refused" if failure.refused else "dropped",
                    _address(failure.peer), failure.reason, more)
        if self.on_failure is not None:
            self.on_failure(failure)

    def _on_loop_exception(self, loop, context: dict) -> None:
        """Accept errors are counted and logged at most once per interval; everything else goes
        where it went before."""
        if context.get("message") == ACCEPT_ERROR_MESSAGE:
            self.stats.accept_errors += 1
            held = self._throttle.check("accept", loop.time())
            if held is not None:
                exc = context.get("exception")
                log.error("cannot accept connections: %s%s", exc,
                          f" ({held} more accept errors held back)" if held else "")
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)


def _address(peer) -> str:
    return f"{peer[0]} port {peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)


class _Connection(asyncio.Protocol):
    """One accepted socket: the TLS handshake (if any), then the application protocol over a
    transport that encrypts and decrypts."""

    def __init__(self, listener: Listener):
        self.listener = listener
        self.raw: asyncio.Transport | None = None
        self.peer = None
        self.accepted_at = 0.0
        self.sslobj: ssl_mod.SSLObject | None = None
        self.incoming: ssl_mod.MemoryBIO | None = None
        self.outgoing: ssl_mod.MemoryBIO | None = None
        self.app = None
        self.transport: _TLSTransport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.hello: bytearray | None = None  # the ClientHello so far, while a context is being chosen
        self.ended = False  # the handshake failed or the connection was shed: nothing more to report

    @property
    def authenticated(self) -> bool:
        """Handshake done and, for a handler that knows the notion (the SECC), SessionSetup done."""
        if self.app is None:
            return False
        handler = getattr(self.app, "handler", None)
        return handler is not None and getattr(handler, "established", True)

    # --- asyncio callbacks -------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.raw = transport
        self.peer = transport.get_extra_info("peername")
        self.accepted_at = self.listener.loop.time()
        if not self.listener._admit(self):
            self.ended = True
            transport.abort()
            return
        if self.listener.ssl is None:
            self._start_app(transport)
            return
        self.timer = self.listener.loop.call_at(self.accepted_at + self.listener.handshake_timeout, self._expired)

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        if self.listener.ssl is None:
            self.app.data_received(data)
            return
        if self.sslobj is None:  # the first bytes: only now the OpenSSL object is worth its memory
            ctx = self.listener.ssl
            if self.listener.choose is not None:  # the ClientHello says which standard's context
                self.hello = (self.hello or bytearray()) + data
                versions = offered_versions(bytes(self.hello))
                if versions is None and len(self.hello) <= MAX_BUFFER:
                    return
                ctx = self.listener.choose(versions or frozenset())
                data, self.hello = bytes(self.hello), None
            self.incoming, self.outgoing = ssl_mod.MemoryBIO(), ssl_mod.MemoryBIO()
            self.sslobj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.incoming.write(data)
        if self.app is None and not self._handshake():
            return
        self._read()

    def eof_received(self) -> bool:
        if self.app is not None and not self.ended:
            return bool(self.app.eof_received())
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.listener._forget(self)
        if self.app is not None:
            self.app.connection_lost(exc)
        elif not self.ended and self.listener.ssl is not None:
            self.ended = True
            why = f": {exc}" if exc else ""
            self.listener._failed(HandshakeFailure("closed", f"closed by the peer during the TLS handshake{why}",
                                                   self.peer))

    # --- internals -----------------------------------------------------------------------------------
    def _handshake(self) -> bool:
        """Go on with the handshake; True once it is done and the application is running."""
        try:
            self.sslobj.do_handshake()
        except ssl_mod.SSLWantReadError:
            self._flush()
            return False
        except ssl_mod.SSLError as e:
            self._flush()  # our alert, if any, goes out before the close
            self._end(*classify(e))
            self.raw.close()
            return False
        self._flush()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.listener.stats.handshakes += 1
        self.transport = _TLSTransport(self)
        self._start_app(self.transport)
        policy = getattr(self.app, "error", None)
        if policy is not None and getattr(policy, "kind", None) in REFUSED_KINDS:
            self.listener._failed(HandshakeFailure(policy.kind, str(policy), self.peer))
        return not self.transport.is_closing()

    def _start_app(self, transport) -> None:
        self.app = self.listener.protocol_factory()
        self.app.accepted_at = self.accepted_at
        self.app.connection_made(transport)

    def _read(self) -> None:
        chunks, eof = [], False
        while True:
            try:
                chunk = self.sslobj.read(TLS_READ_CHUNK)
            except ssl_mod.SSLWantReadError:
                break
            except ssl_mod.SSLZeroReturnError:  # the peer's close_notify
                eof = True
                break
            except ssl_mod.SSLError as e:
                log.info("TLS error from %s: %s", _address(self.peer), e)
                self._flush()
                self.raw.abort()  # connection_lost tells the application
                return
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        self._flush()
        if chunks:
            self.app.data_received(b"".join(chunks))
        if eof and not self.eof_received():
            self.transport.close()

    def _flush(self) -> None:
        if self.outgoing is not None and self.outgoing.pending and not self.raw.is_closing():
            self.raw.write(self.outgoing.read())

    def _end(self, kind: str, reason: str) -> None:
        if not self.ended:
            self.ended = True
            self.listener._failed(HandshakeFailure(kind, reason, self.peer))

    def _expired(self) -> None:
        self.timer = None
        if self.app is None:
            self._end("timeout", f"no TLS handshake within {self.listener.handshake_timeout:g} s")
            self.raw.abort()

    def shed(self) -> None:
        """Pushed out by the cap to make room for a newer connection."""
        self.listener._forget(self)
        if self.app is None:
            self._end("shed", "unfinished TLS handshake closed to make room (connection cap)")
        else:
            self.ended = True
            self.listener._failed(HandshakeFailure("shed", "no session yet, closed to make room (connection cap)",
                                                   self.peer))
        self.raw.abort()


class _TLSTransport(asyncio.Transport):
    """What the application sees: writes are encrypted, closing sends close_notify."""

    def __init__(self, conn: _Connection):
        super().__init__()
        self._conn = conn
        self._closing = False

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self._conn.sslobj
        if name == "peercert":
            return self._conn.sslobj.getpeercert()
        if name == "cipher":
            return self._conn.sslobj.cipher()
        return self._conn.raw.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing or self._conn.raw.is_closing()

    def write(self, data) -> None:
        if self.is_closing():
            return
        view = memoryview(data)
        while view:
            n = self._conn.sslobj.write(view)
            view = view[n:]
        self._conn._flush()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        try:
            self._conn.sslobj.unwrap()  # queues our close_notify
        except ssl_mod.SSLError:
            pass  # WantRead: the peer's close_notify is not awaited; or the session is already broken
        self._conn._flush()
        self._conn.raw.close()

    def abort(self) -> None:
        self._closing = True
        self._conn.raw.abort()

    def get_write_buffer_size(self) -> int:
        return self._conn.raw.get_write_buffer_size()

    def pause_reading(self) -> None:
        self._conn.raw.pause_reading()

    def resume_reading(self) -> None:
        self._conn.raw.resume_reading()

    def is_reading(self) -> bool:
        return self._conn.raw.is_reading()

"""asyncio adapter: V2GTP frames over TCP or TLS between a sans-I/O handler and the network.

The server hands every complete frame to a handler object (the SECC) with the current time and
writes back the frames it returns; a handler with ``next_deadline()`` also gets
``handle_timer(now)`` calls when its deadline passes, so timers stay data in the protocol core.
A malformed V2GTP header closes the connection; so does a handshake that misses the
standard's TLS policy. The server side's accept, TLS handshake and connection accounting live
in ``listener.py``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_mod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from iso15118.v2gtp import DEFAULT_MAX_PAYLOAD, V2GTPDecoder, V2GTPError, V2GTPFrame

from .listener import HANDSHAKE_TIMEOUT, HandshakeFailure, Listener, Throttle
from .tls import TLSPolicyError, check_negotiated, negotiated_group

READ_CHUNK = 65536
log = logging.getLogger(__name__)
_throttle = Throttle()  # a peer must not flood the log: one line per kind every 10 s


def _log(kind: str, now: float, message: str, *args) -> None:
    held = _throttle.check(kind, now)
    if held is not None:
        log.info(message + (f" ({held} more held back)" if held else ""), *args)


class FrameHandler(Protocol):
    closed: bool

    def on_frame(self, frame: V2GTPFrame, now: float) -> list[V2GTPFrame]: ...


@dataclass(frozen=True)
class PeerInfo:
    """What the handler learns about its peer when the connection opens."""

    address: tuple
    tls_version: str | None
    cipher: str | None
    peer_certificate: bytes | None  # DER of the peer's leaf, if it sent one
    group: str | None = None        # key-exchange group (OpenSSL short name), if known
    accepted_at: float | None = None  # loop time the server accepted the TCP connection

    def describe(self) -> str:
        """'TLSv1.3 TLS_AES_256_GCM_SHA384 secp521r1', or 'plain TCP'."""
        if self.tls_version is None:
            return "plain TCP"
        return " ".join(x for x in (self.tls_version, self.cipher, self.group) if x)


def _peer_info(transport, accepted_at: float | None = None) -> PeerInfo:
    obj = transport.get_extra_info("ssl_object")
    return PeerInfo(transport.get_extra_info("peername"), obj.version() if obj else None,
                    (obj.cipher() or (None,))[0] if obj else None,
                    obj.getpeercert(binary_form=True) if obj else None,
                    negotiated_group(obj) if obj else None, accepted_at)


class V2GTPProtocol(asyncio.Protocol):
    """One connection driven by a sans-I/O handler: frames in → ``on_frame``; the handler's
    ``next_deadline`` is a loop timer; a closed handler closes the connection; a lost
    connection, a malformed V2GTP stream or a failure inside the handler reaches the handler
    as ``on_connection_lost`` (a charger de-energises there). With ``first`` (a callable
    returning frames) the protocol is a client that speaks first."""

    def __init__(self, make_handler: Callable[[PeerInfo], FrameHandler], *, standard: str | None = None,
                 peer_check: Callable[[PeerInfo], None] | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD,
                 first: Callable[[float], list[V2GTPFrame]] | None = None):
        self.make_handler = make_handler
        self.standard = standard
        self.peer_check = peer_check
        self.decoder = V2GTPDecoder(max_payload)
        self.first = first
        self.handler: FrameHandler | None = None
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None
        self.armed: float | None = None
        self.done: asyncio.Future = self.loop.create_future()
        self.error: BaseException | None = None
        self.accepted_at: float | None = None  # set by the listener (server side)

    # --- asyncio callbacks -----------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        try:
            obj = transport.get_extra_info("ssl_object")
            if self.standard is not None and obj is not None:
                # 'auto': one port for both standards, each held to its own policy by its version
                standard = self.standard if self.standard != "auto" else \
                    "iso20" if obj.version() == "TLSv1.3" else "iso2"
                check_negotiated(obj, standard)
            info = _peer_info(transport, self.accepted_at)
            if self.peer_check is not None:
                self.peer_check(info)
            self.handler = self.make_handler(info)
        except (TLSPolicyError, ValueError) as e:
            _log("refused", self.loop.time(), "refusing V2GTP connection from %s: %s",
                 transport.get_extra_info("peername"), e)
            self.error = e
            transport.close()
            return
        if self.first is not None:
            self._write(self.first(self.loop.time()))
        self._after()

    def data_received(self, data: bytes) -> None:
        if self.handler is None or self.handler.closed:
            return
        now = self.loop.time()
        try:
            self.decoder.receive_data(data)
            for frame in self.decoder.frames():
                self._write(self.handler.on_frame(frame, now))
                if self.handler.closed:
                    break
        except V2GTPError as e:
            _log("malformed", now, "malformed V2GTP stream from %s: %s", self.transport.get_extra_info("peername"), e)
            self.error = e
            self._lost(now)
            self.transport.close()
            return
        except BaseException:
            self._lost(now)  # a bug must not leave power flowing: de-energise, then let asyncio report it
            self.transport.abort()
            raise
        self._after()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self._lost(self.loop.time())
        if exc is not None and self.error is None:
            self.error = exc
        if not self.done.done():
            self.done.set_result(None)

    # --- internals ---------------------------------------------------------------------------------
    def _lost(self, now: float) -> None:
        h = self.handler
        if h is not None and not h.closed and hasattr(h, "on_connection_lost"):
            h.on_connection_lost(now)

    def _write(self, frames: list[V2GTPFrame]) -> None:
        if frames and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(f.to_bytes() for f in frames))

    def _after(self) -> None:
        """Close when the handler is done, else (re)arm its timer."""
        h = self.handler
        if h is None:
            return
        if h.closed:
            if self.timer is not None:
                self.timer.cancel()
            self.transport.close()
            return
        deadline = h.next_deadline() if hasattr(h, "next_deadline") else None
        if deadline is None or self.armed is not None and self.armed <= deadline:
            return  # no timer wanted, or the armed one fires first and re-checks (see _on_timer)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(deadline, self._on_timer)
        self.armed = deadline

    def _on_timer(self) -> None:
        """Timers are armed lazily: most messages move the deadline later, so the handle stays
        and, when it fires early, is re-armed for the handler's present deadline."""
        self.timer = self.armed = None
        if self.handler is None or self.handler.closed:
            return
        deadline = self.handler.next_deadline()
        if deadline is not None and deadline > self.loop.time():
            self._after()
            return
        try:
            self._write(self.handler.handle_timer(self.loop.time()))
        except BaseException:
            self._lost(self.loop.time())
            self.transport.abort()
            raise
        self._after()


async def serve(handler_factory: Callable[[PeerInfo], FrameHandler], host: str | None, port: int, *,
                ssl: ssl_mod.SSLContext | None = None, standard: str | None = None,
                peer_check: Callable[[PeerInfo], None] | None = None,
                max_payload: int = DEFAULT_MAX_PAYLOAD, max_connections: int | None = None,
                handshake_timeout: float = HANDSHAKE_TIMEOUT,
                on_failure: Callable[[HandshakeFailure], None] | None = None) -> Listener:
    """Listen for V2GTP connections; ``port=0`` picks a free port (see ``listener.sockets``);
    ``host`` None listens on every address of both IP families. ``max_connections`` caps the
    connections held at once (the oldest unauthenticated one makes room for a new one);
    ``on_failure`` hears of every connection that ended before its handshake finished."""
    listener = Listener(lambda: V2GTPProtocol(handler_factory, standard=standard if ssl is not None else None,
                                              peer_check=peer_check, max_payload=max_payload), ssl,
                        max_connections=max_connections, handshake_timeout=handshake_timeout, on_failure=on_failure)
    return await listener.start(host, port)


async def run_client(handler, host: str, port: int, *, ssl: ssl_mod.SSLContext | None = None,
                     standard: str | None = None, timeout: float = 10.0,
                     peer_check: Callable[[PeerInfo], None] | None = None,
                     max_payload: int = DEFAULT_MAX_PAYLOAD) -> V2GTPProtocol:
    """Connect, let ``handler`` speak first (``handler.start(now)``) and run until it closes or
    the connection ends. Connection and TLS errors raise before the handler has started."""
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(loop.create_connection(
        lambda: V2GTPProtocol(lambda info: handler, standard=standard, max_payload=max_payload,
                              peer_check=peer_check, first=handler.start), host, port, ssl=ssl), timeout)
    if isinstance(proto.error, (TLSPolicyError, ValueError)):
        raise proto.error
    await proto.done
    return proto


async def pump(handler: FrameHandler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               max_payload: int = DEFAULT_MAX_PAYLOAD, first: list[V2GTPFrame] | None = None) -> None:
    """Move frames between the connection and ``handler`` until it closes or the peer does
    (``first``: frames to send before reading, e.g. the car's first request)."""
    loop = asyncio.get_running_loop()
    decoder = V2GTPDecoder(max_payload)
    if first:
        await _send(writer, first)
    while not handler.closed:
        deadline = handler.next_deadline() if hasattr(handler, "next_deadline") else None
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout)
        except asyncio.TimeoutError:
            out = handler.handle_timer(loop.time())
            await _send(writer, out)
            continue
        if not data:
            if hasattr(handler, "on_connection_lost"):
                handler.on_connection_lost(loop.time())
            return
        decoder.receive_data(data)
        for frame in decoder.frames():
            await _send(writer, handler.on_frame(frame, loop.time()))
            if handler.closed:
                break


async def _send(writer: asyncio.StreamWriter, frames: list[V2GTPFrame]) -> None:
    if frames:
        writer.write(b"".join(f.to_bytes() for f in frames))
        await writer.drain()


class V2GTPClient:
    """The EV side: one connection, request/response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_payload: int):
        self._reader = reader
        self._writer = writer
        self._decoder = V2GTPDecoder(max_payload)
        self._frames: list[V2GTPFrame] = []
        self.info = _peer_info(writer.transport)

    @classmethod
    async def connect(cls, host: str, port: int, *, ssl: ssl_mod.SSLContext | None = None,
                      standard: str | None = None, timeout: float = 10.0,
                      max_payload: int = DEFAULT_MAX_PAYLOAD) -> V2GTPClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ssl), timeout)
        if ssl is not None and standard is not None:
            try:
                check_negotiated(writer.get_extra_info("ssl_object"), standard)
            except TLSPolicyError:
                writer.close()
                raise
        return cls(reader, writer, max_payload)

    async def send(self, frame: V2GTPFrame) -> None:
        self._writer.write(frame.to_bytes())
        await self._writer.drain()

    async def receive(self, timeout: float) -> V2GTPFrame:
        """The next frame; ``TimeoutError`` after ``timeout`` seconds, ``ConnectionError`` if
        the peer closed, ``V2GTPError`` on a malformed stream."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._frames:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no V2GTP frame in time")
            try:
                data = await asyncio.wait_for(self._reader.read(READ_CHUNK), remaining)
            except asyncio.TimeoutError:
                raise TimeoutError("no V2GTP frame in time") from None
            if not data:
                raise ConnectionError("the peer closed the connection")
            self._decoder.receive_data(data)
            self._frames += self._decoder.frames()
        return self._frames.pop(0)

    async def request(self, frame: V2GTPFrame, timeout: float) -> V2GTPFrame:
        await self.send(frame)
        return await self.receive(timeout)

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, ssl_mod.SSLError):
            pass  # already gone

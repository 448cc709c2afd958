"""asyncio adapter: V2GTP frames over TCP or TLS between a sans-I/O handler and the network.

The server hands every complete frame to a handler object (the SECC) with the current time and
writes back the frames it returns; a handler with ``next_deadline()`` also gets
``handle_timer(now)`` calls when its deadline passes, so timers stay data in the protocol core.
A malformed V2GTP header closes the connection; so does a handshake that misses the
standard's TLS policy.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_mod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from iso15118.v2gtp import DEFAULT_MAX_PAYLOAD, V2GTPDecoder, V2GTPError, V2GTPFrame

from .tls import TLSPolicyError, check_negotiated

READ_CHUNK = 65536
log = logging.getLogger(__name__)


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


def _peer_info(writer: asyncio.StreamWriter) -> PeerInfo:
    obj = writer.get_extra_info("ssl_object")
    return PeerInfo(writer.get_extra_info("peername"), obj.version() if obj else None,
                    (obj.cipher() or (None,))[0] if obj else None,
                    obj.getpeercert(binary_form=True) if obj else None)


async def serve(handler_factory: Callable[[PeerInfo], FrameHandler], host: str, port: int, *,
                ssl: ssl_mod.SSLContext | None = None, standard: str | None = None,
                peer_check: Callable[[PeerInfo], None] | None = None,
                max_payload: int = DEFAULT_MAX_PAYLOAD) -> asyncio.Server:
    """Listen for V2GTP connections; ``port=0`` picks a free port (see ``server.sockets``)."""
    loop = asyncio.get_running_loop()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = None
        try:
            info = _peer_info(writer)
            if ssl is not None and standard is not None:
                check_negotiated(writer.get_extra_info("ssl_object"), standard)
            if peer_check is not None:
                peer_check(info)
            handler = handler_factory(info)
            await pump(handler, reader, writer, max_payload)
        except (TLSPolicyError, ValueError, V2GTPError, ConnectionError, ssl_mod.SSLError) as e:
            # the peer broke the protocol or went away: close the connection (below)
            log.info("closing V2GTP connection from %s: %s", writer.get_extra_info("peername"), e)
        finally:
            # whatever ended the connection (even a bug in the handler), the handler hears it
            # so that a charger de-energises
            if handler is not None and not handler.closed and hasattr(handler, "on_connection_lost"):
                handler.on_connection_lost(loop.time())
            writer.close()

    return await asyncio.start_server(on_connect, host, port, ssl=ssl)


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
        self.info = _peer_info(writer)

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

"""The house's OCPP 2.1 server on the network: the ``websockets`` adapter around ``hems.csms``.

Security profiles (OCPP 2.1 part 2, A00): 1 HTTP Basic over ws://, 2 Basic over TLS, 3 mutual TLS
where the station's certificate names it (CN = the station identity). One connection per
identity: a second one is refused and the first kept (a hijack must not push the charger off);
failed logins are rate-limited per address. Everything else — frames, answers, timers — is the
core's; this module moves text and time.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import ssl
import time
from dataclasses import dataclass, field
from http import HTTPStatus

import websockets
from websockets.asyncio.server import ServerConnection, serve

from hems.csms import CSMSCore, StationLink

log = logging.getLogger(__name__)
SUBPROTOCOL = "ocpp2.1"


@dataclass
class LoginLimiter:
    """At most ``attempts`` failed logins per address in ``window`` s; then refused until the
    window has passed (HTTP 429)."""

    attempts: int = 5
    window: float = 60.0
    failures: dict[str, list[float]] = field(default_factory=dict)

    def blocked(self, address: str, now: float) -> bool:
        recent = [t for t in self.failures.get(address, []) if now - t < self.window]
        self.failures[address] = recent
        return len(recent) >= self.attempts

    def failed(self, address: str, now: float) -> None:
        self.failures.setdefault(address, []).append(now)


class CSMSServer:
    """Accept charging stations and run their links on the event loop."""

    def __init__(self, core: CSMSCore, *, passwords: dict[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None, require_client_cert: bool = False,
                 limiter: LoginLimiter | None = None, clock=None, speed: float = 1.0, on_activity=None):
        """``clock()``: the core's time (default: Unix time from the monotonic clock; a simulation
        passes its accelerated clock, ``speed`` simulated seconds per real one); ``on_activity()``: called after every frame a station sent
        (the energy manager looks again at once)."""
        self.core = core
        self.passwords = passwords or {}
        self.ssl_context = ssl_context
        self.require_client_cert = require_client_cert
        self.limiter = limiter or LoginLimiter()
        self.clock_offset = time.time() - time.monotonic()
        self.clock = clock
        self.speed = speed
        self.on_activity = on_activity
        self.refused: list[str] = []   # why connections were refused (for logs and tests)
        self._wake: dict[str, asyncio.Event] = {}
        self._server = None
        self.port: int | None = None

    def now(self) -> float:
        return self.clock() if self.clock is not None else time.monotonic() + self.clock_offset

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> CSMSServer:
        self._server = await serve(self._handler, host, port, subprotocols=[SUBPROTOCOL],
                                   process_request=self._check, ssl=self.ssl_context, ping_interval=None,
                                   max_size=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def call(self, station_id: str, action: str, payload: dict, on_answer=None) -> None:
        """A request to a connected station from the event loop (None to ``on_answer`` if absent)."""
        self.core.call(station_id, action, payload, now=self.now(), on_answer=on_answer)
        if station_id in self._wake:
            self._wake[station_id].set()

    # --- the handshake --------------------------------------------------------------------------
    def _refuse(self, connection: ServerConnection, status: HTTPStatus, why: str):
        self.refused.append(why)
        log.warning("refused a station: %s", why)
        return connection.respond(status, f"{status.phrase}\n")

    def _check(self, connection: ServerConnection, request):
        address = str((connection.remote_address or ("?",))[0])
        now = self.now()
        station = request.path.strip("/").rsplit("/", 1)[-1]
        if self.limiter.blocked(address, now):
            return self._refuse(connection, HTTPStatus.TOO_MANY_REQUESTS, f"{address}: too many failed logins")
        if not station or station not in self.passwords and not self.require_client_cert:
            self.limiter.failed(address, now)
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED, f"{station or '?'}: unknown station")
        if self.require_client_cert:  # profile 3: TLS verified the chain; the certificate must name the station
            cert = connection.transport.get_extra_info("ssl_object").getpeercert()
            cn = dict(x[0] for x in cert.get("subject", ())).get("commonName") if cert else None
            if cn != station:
                self.limiter.failed(address, now)
                return self._refuse(connection, HTTPStatus.UNAUTHORIZED, f"{station}: certificate names {cn}")
        else:
            expected = base64.b64encode(f"{station}:{self.passwords[station]}".encode()).decode()
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Basic {expected}".encode()):
                self.limiter.failed(address, now)
                return self._refuse(connection, HTTPStatus.UNAUTHORIZED, f"{station}: bad credentials")
        link = self.core.links.get(station)
        if link is not None and not link.closed:
            return self._refuse(connection, HTTPStatus.CONFLICT, f"{station}: already connected")
        return None

    # --- one station's connection ---------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        station = ws.request.path.strip("/").rsplit("/", 1)[-1]
        if ws.subprotocol != SUBPROTOCOL:
            self.refused.append(f"{station}: subprotocol {ws.subprotocol}")
            await ws.close(1002, "ocpp2.1 required")
            return
        try:
            link = self.core.open(station, self.now())
        except ValueError:  # raced with another connection of the same identity
            await ws.close(1008, "already connected")
            return
        wake = self._wake[station] = asyncio.Event()
        link.on_output = wake.set
        try:
            await self._pump(ws, link, wake)
        except websockets.exceptions.ConnectionClosed:
            pass  # the station went away: the link hears it below
        finally:
            if self._wake.get(station) is wake:
                del self._wake[station]
            if self.core.links.get(station) is link:
                self.core.close(station, self.now())

    async def _pump(self, ws: ServerConnection, link: StationLink, wake: asyncio.Event) -> None:
        recv = asyncio.ensure_future(ws.recv())
        try:
            while True:
                for text in link.data_to_send():
                    await ws.send(text)
                deadline = link.next_deadline()
                wake.clear()
                waiter = asyncio.ensure_future(wake.wait())
                timeout = None if deadline is None else max(0.0, deadline - self.now()) / self.speed
                done, _ = await asyncio.wait({recv, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if recv in done:
                    text = recv.result()
                    recv = asyncio.ensure_future(ws.recv())
                    link.receive(text, self.now())
                    if self.on_activity is not None:
                        self.on_activity()
                link.handle_timer(self.now())
        finally:
            recv.cancel()

"""Running the -20 sessions on the network: the charger's TLS listener (with SDP on an
interface) and the car's connection, both on asyncio, both driving the sans-I/O machines."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import ssl as ssl_mod
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iso15118 import pki
from iso15118.evcc import Battery, EVCCConfig, EVCCResult, EVCCSession
from iso15118.messages import Observer
from iso15118.sdp import SECC_PORT_MAX, SECC_PORT_MIN, SDPServer
from iso15118.secc import Connector, EVSEController, SECCConfig, SECCSession

from . import sdp as aio_sdp
from .listener import HandshakeFailure, Listener, ListenerStats
from .tls import (TLSPolicyError, check_negotiated, credentials_from_pki, enable_keylog, iso20_client_context,
                  iso20_server_context)
from .v2gtp_stream import PeerInfo, run_client, serve

log = logging.getLogger(__name__)
DEFAULT_PROFILE = "iso20-secp521r1"
MAX_CONNECTIONS = 8  # a charger: one car on the cable, room for strangers to be pushed out


def wall_offset() -> float:
    """Unix time minus the event loop's clock: sessions run on the loop clock."""
    return time.time() - asyncio.get_running_loop().time()


@dataclass
class SECCServer:
    """A running charger: the TLS listener, the SDP responder if any, its connector (one power
    stage; None when each connection has its own), the sessions (all of them, with
    ``keep_sessions``) and those that ended since the owner last looked (``ended``, set with
    ``session_ended``)."""

    server: Listener
    port: int
    sdp: asyncio.DatagramTransport | None
    connector: Connector | None = None
    sessions: list[SECCSession] = field(default_factory=list)
    session_ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended: deque = field(default_factory=lambda: deque(maxlen=1024))

    @property
    def stats(self) -> ListenerStats:
        """Connections accepted, handshakes finished, failures by kind, accept errors."""
        return self.server.stats

    async def close(self) -> None:
        if self.sdp is not None:
            self.sdp.close()
        self.server.close()
        await self.server.wait_closed()


async def start_secc(controller: EVSEController | None = None, *, pki_dir: str | Path,
                     controller_factory: Callable[[], EVSEController] | None = None,
                     profile: str = DEFAULT_PROFILE, host: str | None = None, port: int = 0,
                     interface: str | None = None, config: SECCConfig | None = None,
                     observer: Callable[[SECCSession], Observer | None] | None = None,
                     on_connection: Callable[[SECCSession, PeerInfo], None] | None = None,
                     keep_sessions: bool = True, max_connections: int | None = MAX_CONNECTIONS,
                     on_handshake_failure: Callable[[HandshakeFailure], None] | None = None,
                     keylog: str | Path | None = None) -> SECCServer:
    """Listen for cars over TLS 1.3 (mutual, -20 policy) on ``host`` (None: every address,
    IPv4 and IPv6). ``controller`` is the charger's one power stage: one session at a time owns
    it (a SessionSetup while it is owned is refused). ``controller_factory`` gives each
    connection its own (simulations of many chargers). With ``interface``, SDP answers on it
    with the interface's link-local address. ``on_connection`` hears of each accepted connection
    (address, negotiated TLS parameters) before its first message; ``on_handshake_failure`` of
    each one that ended before (refused by the TLS policy, too slow, shed by the cap of
    ``max_connections``). The handshake, and SessionSetup after it, must come within the
    communication setup timer (``config.communication_setup_timeout``, 20 s). ``keylog``: append
    the TLS secrets to this file (SSLKEYLOGFILE format; test benches only)."""
    if (controller is None) == (controller_factory is None):
        raise ValueError("give either a controller or a controller_factory")
    creds = credentials_from_pki(pki_dir, "secc", profile)
    ctx = iso20_server_context(creds)
    if keylog is not None:
        enable_keylog(ctx, keylog)
    cfg = config or SECCConfig(contract_roots=pki.contract_roots(pki_dir, profile))
    resume_store: dict = {}
    offset = wall_offset()
    loop = asyncio.get_running_loop()
    srv: SECCServer | None = None

    connector = Connector(controller) if controller is not None else None

    def ended(session: SECCSession) -> None:
        if srv is not None:
            srv.ended.append(session)
            srv.session_ended.set()

    def new_session(info: PeerInfo) -> SECCSession:
        stage = connector if connector is not None else controller_factory()  # type: ignore[misc]
        # the communication setup timer runs from the TCP connection, not from the handshake's end
        start = info.accepted_at if info.accepted_at is not None else loop.time()
        session = SECCSession(stage, cfg, now=start, tls=info.tls_version is not None,
                              resume_store=resume_store, clock_offset=offset, on_end=ended)
        session.observer = observer(session) if observer is not None else None
        if on_connection is not None:
            on_connection(session, info)
        if keep_sessions and srv is not None:
            srv.sessions.append(session)
        return session

    server = await _listen(lambda p: serve(new_session, host, p, ssl=ctx, standard="iso20",
                                           max_connections=max_connections,
                                           handshake_timeout=cfg.communication_setup_timeout,
                                           on_failure=on_handshake_failure), port)
    bound = server.sockets[0].getsockname()[1]
    sdp_transport = None
    if interface is not None:
        logic = SDPServer(aio_sdp.link_local_address(interface))
        logic.tls_port = bound
        sdp_transport = await aio_sdp.start_responder(logic, interface=interface)
    srv = SECCServer(server, bound, sdp_transport, connector)
    return srv


async def _listen(open_server, port: int) -> Listener:
    """Bind ``port``; 0 picks a free port in the range SDP may announce (49152–65535), which
    the kernel's own ephemeral range does not guarantee."""
    if port:
        return await open_server(port)
    rng = random.SystemRandom()
    for _ in range(64):
        try:
            return await open_server(rng.randint(SECC_PORT_MIN, SECC_PORT_MAX))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free TCP port in {SECC_PORT_MIN}-{SECC_PORT_MAX}")


async def connect_evcc(*, pki_dir: str | Path, profile: str = DEFAULT_PROFILE, secc: tuple[str, int] | None = None,
                       interface: str | None = None, timeout: float = 20.0, keylog: str | Path | None = None):
    """Find the charger (SDP on ``interface``, or ``secc`` directly) and open the TLS
    connection, retrying refused connections until ``timeout``. Returns (reader, writer)."""
    ctx = iso20_client_context(credentials_from_pki(pki_dir, "evcc", profile))
    if keylog is not None:
        enable_keylog(ctx, keylog)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if secc is None:
        secc = await _discover(interface)
    while True:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(secc[0], secc[1], ssl=ctx),
                                                    max(0.1, deadline - loop.time()))
            break
        except (ConnectionRefusedError, OSError) as e:
            if isinstance(e, ssl_mod.SSLError) or loop.time() >= deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        check_negotiated(writer.get_extra_info("ssl_object"), "iso20")
    except TLSPolicyError:
        writer.close()
        raise
    return reader, writer


def _describe(e: BaseException) -> str:
    """An exception as a reason: some (a reset during the TLS handshake) have no message."""
    text = str(e)
    if isinstance(e, ConnectionResetError) and not text:
        return "connection reset by the charger during the TLS handshake"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused (nothing listening on that port)"
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)) and not text:
        return "no answer in time"
    return text or type(e).__name__


async def run_evcc(battery: Battery, config: EVCCConfig, *, pki_dir: str | Path, profile: str = DEFAULT_PROFILE,
                   secc: tuple[str, int] | None = None, interface: str | None = None,
                   observer: Observer | None = None,
                   session_class: type[EVCCSession] = EVCCSession,
                   keylog: str | Path | None = None) -> EVCCResult:
    """One complete session of the simulated car; the result says how it ended. What happens
    before the first message is logged: the charger looked for (SDP) and found, the connection
    tried (info), refused and retried until when (a warning). ``keylog``: append the TLS
    secrets to this file (SSLKEYLOGFILE format; test benches only)."""
    loop = asyncio.get_running_loop()
    say = log.info
    session = session_class(battery, config, clock_offset=wall_offset(), observer=observer)
    ctx = iso20_client_context(credentials_from_pki(pki_dir, "evcc", profile))
    if keylog is not None:
        enable_keylog(ctx, keylog)
    setup = config.timers.communication_setup
    deadline = loop.time() + setup

    def check_charger(info: PeerInfo) -> None:
        _charger_leaf(info)
        session.result.connection = info.describe()

    refused = 0
    try:
        if secc is None:
            say("looking for a charger with SDP on %s", interface)
            secc = await _discover(interface)
            say("SDP: a charger at [%s]:%d", secc[0], secc[1])
        where = f"[{secc[0]}]:{secc[1]}" if ":" in secc[0] else f"{secc[0]}:{secc[1]}"
        say("connecting to %s (TLS 1.3)", where)
        while True:
            try:
                proto = await run_client(session, secc[0], secc[1], ssl=ctx, standard="iso20",
                                         timeout=max(0.1, deadline - loop.time()), peer_check=check_charger)
                break
            except ConnectionRefusedError:
                if loop.time() >= deadline:
                    raise
                refused += 1
                if refused == 1:  # the charger is not listening yet: retry until setup times out
                    until = time.strftime("%H:%M:%S", time.gmtime(deadline + wall_offset()))
                    log.warning("%s refuses the connection (nothing listening); retrying every 0.2 s until %s UTC "
                                "(the communication setup timer, %g s)", where, until, setup)
                await asyncio.sleep(0.2)
    except (OSError, TimeoutError, asyncio.TimeoutError, TLSPolicyError, ValueError) as e:
        tried = f" after {refused + 1} attempts in {setup:g} s" if refused else ""
        session.result.reason = f"could not connect: {_describe(e)}{tried}"
        return session.result
    if not session.closed:
        session.on_connection_lost(loop.time())
    if proto.error is not None and not session.result.ok:
        session.result.reason = f"{session.result.reason}: {proto.error}"
    return session.result


def _charger_leaf(info: PeerInfo) -> None:
    """The car's policy on the charger's certificate beyond what TLS verified: DC=CPO."""
    try:
        pki.check_secc_leaf(info.peer_certificate)
    except pki.ChainError as e:
        raise TLSPolicyError(str(e)) from None


async def _discover(interface: str | None) -> tuple[str, int]:
    if interface is None:
        raise ValueError("give the charger's address or an interface for SDP")
    found = await aio_sdp.discover(interface=interface)
    addr = str(found.address)
    return (f"{addr}%{interface}" if found.address.is_link_local else addr), found.port

"""Running the sessions on the network: the charger's listeners (TLS for ISO 15118-20 and -2,
one port, the context chosen by the car's ClientHello; plain TCP for DIN 70121 and -2 without
TLS) with SDP on an interface, and the car's connection, both on asyncio, both driving the
sans-I/O machines."""

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
from typing import TYPE_CHECKING

from iso15118 import pki
from iso15118.messages import Observer
from iso15118.sdp import SECC_PORT_MAX, SECC_PORT_MIN, SDPServer, Security
from iso15118.secc import Connector, EVSEController, SECCConfig, SECCSession

from . import sdp as aio_sdp
from .listener import HandshakeFailure, Listener, ListenerStats
from .client_hello import TLS13
from .tls import (TLSPolicyError, check_negotiated, credentials_from_pki, enable_keylog, iso2_client_context,
                  iso2_server_context, iso20_client_context, iso20_server_context)
from .v2gtp_stream import PeerInfo, run_client, serve

if TYPE_CHECKING:  # the car is imported where it runs: a charger never loads it
    from iso15118.evcc import Battery, EVCCConfig, EVCCResult, EVCCSession

log = logging.getLogger(__name__)
DEFAULT_PROFILE = "iso20-secp521r1"
ISO2_PROFILE = "iso2-secp256r1"  # the -2 certificates (TLS 1.2 server, contracts, provisioning)
TRANSPORTS = {"TLSv1.3": "tls1.3", "TLSv1.2": "tls1.2", None: "tcp"}
MAX_CONNECTIONS = 8  # a charger: one car on the cable, room for strangers to be pushed out


def wall_offset() -> float:
    """Unix time minus the event loop's clock: sessions run on the loop clock."""
    return time.time() - asyncio.get_running_loop().time()


@dataclass
class SECCServer:
    """A running charger: the TLS listener (``server``, ``port``; None when it offers only DIN),
    the plain TCP listener (``tcp_server``, ``tcp_port``; None when it offers only -20), the SDP
    responder if any, its connector (one power stage; None when each connection has its own),
    the sessions (all of them, with ``keep_sessions``) and those that ended since the owner last
    looked (``ended``, set with ``session_ended``), and its TLS contexts by standard ('iso20',
    'iso2': ``load_cert_chain`` on one changes the certificate of the next handshake)."""

    server: Listener | None
    port: int | None
    sdp: asyncio.DatagramTransport | None
    connector: Connector | None = None
    sessions: list[SECCSession] = field(default_factory=list)
    session_ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended: deque = field(default_factory=lambda: deque(maxlen=1024))
    tcp_server: Listener | None = None
    tcp_port: int | None = None
    contexts: dict = field(default_factory=dict)

    @property
    def stats(self) -> ListenerStats:
        """Connections accepted, handshakes finished, failures by kind, accept errors (of the TLS
        listener; of the TCP one when there is no TLS listener)."""
        return (self.server or self.tcp_server).stats

    async def close(self) -> None:
        if self.sdp is not None:
            self.sdp.close()
        for server in (self.server, self.tcp_server):
            if server is not None:
                server.close()
        for server in (self.server, self.tcp_server):
            if server is not None:
                await server.wait_closed()


async def start_secc(controller: EVSEController | None = None, *, pki_dir: str | Path | None,
                     controller_factory: Callable[[], EVSEController] | None = None,
                     profile: str = DEFAULT_PROFILE, iso2_profile: str = ISO2_PROFILE, host: str | None = None,
                     port: int = 0, tcp_port: int = 0, interface: str | None = None,
                     config: SECCConfig | None = None,
                     observer: Callable[[SECCSession], Observer | None] | None = None,
                     on_connection: Callable[[SECCSession, PeerInfo], None] | None = None,
                     keep_sessions: bool = True, max_connections: int | None = MAX_CONNECTIONS,
                     on_handshake_failure: Callable[[HandshakeFailure], None] | None = None,
                     keylog: str | Path | None = None) -> SECCServer:
    """Listen for cars on ``host`` (None: every address, IPv4 and IPv6), for the protocols of
    ``config.protocols``: ISO 15118-20 over TLS 1.3 (mutual, the -20 certificates of
    ``profile``) and ISO 15118-2 over TLS 1.2 (server authentication, the certificates of
    ``iso2_profile``) on one port (``port``), the context chosen by each car's ClientHello; DIN
    70121 and -2 without TLS on a plain TCP port (``tcp_port``). ``controller`` is the charger's
    one power stage: one session at a time owns it (a SessionSetup while it is owned is
    refused). ``controller_factory`` gives each connection its own (simulations of many
    chargers). With ``interface``, SDP answers on it with the interface's link-local address
    (the TLS port to a car asking for TLS, the TCP port to one asking for none).
    ``on_connection`` hears of each accepted connection (address, negotiated TLS parameters)
    before its first message; ``on_handshake_failure`` of each one that ended before (refused by
    the TLS policy, too slow, shed by the cap of ``max_connections``). The handshake, and
    SessionSetup after it, must come within the communication setup timer
    (``config.communication_setup_timeout``, 20 s). ``keylog``: append the TLS secrets to this
    file (SSLKEYLOGFILE format; test benches only). Without ``config``, Plug & Charge trusts the
    MO roots of both profiles and -2 CertificateInstallation is answered when the PKI has a
    provisioning service."""
    if (controller is None) == (controller_factory is None):
        raise ValueError("give either a controller or a controller_factory")
    cfg = config or _default_config(pki_dir, profile, iso2_profile)
    protocols = set(cfg.protocols)
    contexts = {}
    if "iso20" in protocols:
        contexts["iso20"] = iso20_server_context(credentials_from_pki(_need(pki_dir), "secc", profile))
    if "iso2" in protocols and pki_dir is not None and (Path(pki_dir) / iso2_profile).is_dir():
        contexts["iso2"] = iso2_server_context(credentials_from_pki(pki_dir, "secc", iso2_profile))
    elif "iso2" in protocols:
        log.info("no %s certificates in %s: ISO 15118-2 over plain TCP only", iso2_profile, pki_dir)
    if keylog is not None:
        for ctx in contexts.values():
            enable_keylog(ctx, keylog)
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
        session = SECCSession(stage, cfg, now=start, transport=TRANSPORTS.get(info.tls_version, "tls"),
                              resume_store=resume_store, clock_offset=offset, on_end=ended)
        session.observer = observer(session) if observer is not None else None
        if on_connection is not None:
            on_connection(session, info)
        if keep_sessions and srv is not None:
            srv.sessions.append(session)
        return session

    def choose(versions: frozenset):
        """-20's context for a car offering TLS 1.3, -2's for one that offers TLS 1.2 at most."""
        if TLS13 in versions and "iso20" in contexts or "iso2" not in contexts:
            return contexts["iso20"]
        return contexts["iso2"]

    def listen(tls, p: int):
        return _listen(lambda q: serve(new_session, host, q, ssl=tls, standard="auto" if tls is not None else None,
                                       max_connections=max_connections,
                                       handshake_timeout=cfg.communication_setup_timeout,
                                       on_failure=on_handshake_failure), p)

    server = tcp_server = None
    if contexts:
        server = await listen(choose if len(contexts) > 1 else next(iter(contexts.values())), port)
    if protocols & {"iso2", "din"}:
        tcp_server = await listen(None, tcp_port)
    bound = server.sockets[0].getsockname()[1] if server is not None else None
    tcp_bound = tcp_server.sockets[0].getsockname()[1] if tcp_server is not None else None
    sdp_transport = None
    if interface is not None:
        logic = SDPServer(aio_sdp.link_local_address(interface))
        logic.tls_port, logic.tcp_port = bound, tcp_bound
        sdp_transport = await aio_sdp.start_responder(logic, interface=interface)
    srv = SECCServer(server, bound, sdp_transport, connector, tcp_server=tcp_server, tcp_port=tcp_bound,
                     contexts=contexts)
    return srv


def _need(pki_dir):
    if pki_dir is None:
        raise ValueError("TLS needs certificates: give the PKI directory (v2h pki init DIR)")
    return pki_dir


def _default_config(pki_dir, profile: str, iso2_profile: str) -> SECCConfig:
    """Plug & Charge against the MO roots of every profile there is; the provisioning services
    (-20, -2) when the PKI has them."""
    if pki_dir is None:
        return SECCConfig()
    roots: tuple = ()
    service = None
    for prof in (profile, iso2_profile):
        if (Path(pki_dir) / prof).is_dir():
            roots += pki.contract_roots(pki_dir, prof)
    if any((Path(pki_dir) / prof / "cps_chain.pem").exists() for prof in ("iso20-secp521r1", iso2_profile)):
        from iso15118.pki.pool import ContractPool
        service = ContractPool.from_pki(pki_dir)
    return SECCConfig(contract_roots=roots, certificate_service=service)


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


def car_security(config: EVCCConfig) -> str:
    """'tls' or 'none': what a car asks for in SDP. Its first protocol decides: DIN has no TLS,
    -20 always uses it, -2 uses it too unless the caller says otherwise."""
    return "none" if config.protocols[0] == "din" else "tls"


async def run_evcc(battery: Battery, config: EVCCConfig, *, pki_dir: str | Path | None,
                   profile: str = DEFAULT_PROFILE, iso2_profile: str = ISO2_PROFILE,
                   secc: tuple[str, int] | None = None, interface: str | None = None,
                   observer: Observer | None = None,
                   session_class: type[EVCCSession] | None = None,
                   keylog: str | Path | None = None, security: str | None = None) -> EVCCResult:
    """One complete session of the simulated car; the result says how it ended. ``security``
    ('tls' or 'none', default ``car_security``): with TLS, TLS 1.3 with the -20 vehicle
    certificate of ``profile`` when the car's first protocol is -20, TLS 1.2 trusting the -2
    V2G root of ``iso2_profile`` when it is -2. What happens before the first message is logged:
    the charger looked for (SDP) and found, the connection tried (info), refused and retried
    until when (a warning). ``keylog``: append the TLS secrets to this file (SSLKEYLOGFILE
    format; test benches only). ``session_class``: the car's session class (EVCCSession; the load benchmark's own)."""
    if session_class is None:
        from iso15118.evcc import EVCCSession as session_class
    loop = asyncio.get_running_loop()
    say = log.info
    session = session_class(battery, config, clock_offset=wall_offset(), observer=observer)
    security = security or car_security(config)
    if security not in ("tls", "none"):
        raise ValueError(f"security is tls or none, not {security!r}")
    ctx, standard, what = None, None, "plain TCP"
    if security == "tls":
        if config.protocols[0] == "iso20":
            ctx, standard, what = iso20_client_context(credentials_from_pki(_need(pki_dir), "evcc", profile)), \
                "iso20", "TLS 1.3"
        else:
            ctx, standard, what = iso2_client_context(credentials_from_pki(_need(pki_dir), "evcc", iso2_profile)), \
                "iso2", "TLS 1.2"
    if keylog is not None and ctx is not None:
        enable_keylog(ctx, keylog)
    setup = config.timers.communication_setup
    deadline = loop.time() + setup

    def check_charger(info: PeerInfo) -> None:
        if ctx is not None:
            _charger_leaf(info)
        session.result.connection = info.describe()

    refused = 0
    try:
        if secc is None:
            say("looking for a charger with SDP on %s (%s)", interface, "TLS" if ctx is not None else "no TLS")
            secc = await _discover(interface, Security.TLS if ctx is not None else Security.NONE)
            say("SDP: a charger at [%s]:%d", secc[0], secc[1])
        where = f"[{secc[0]}]:{secc[1]}" if ":" in secc[0] else f"{secc[0]}:{secc[1]}"
        say("connecting to %s (%s)", where, what)
        while True:
            try:
                proto = await run_client(session, secc[0], secc[1], ssl=ctx, standard=standard,
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


async def _discover(interface: str | None, security: Security = Security.TLS) -> tuple[str, int]:
    if interface is None:
        raise ValueError("give the charger's address or an interface for SDP")
    found = await aio_sdp.discover(interface=interface, security=security)
    addr = str(found.address)
    return (f"{addr}%{interface}" if found.address.is_link_local else addr), found.port

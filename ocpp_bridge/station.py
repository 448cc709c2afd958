"""The asyncio adapter of the station core: the websocket to the CSMS (subprotocol ``ocpp2.1``,
``websockets`` package) with security profiles 1–3, timers on the event loop, reconnects on the
core's back-off, and a supervisor that restarts the connection task if it ever fails.

All OCPP logic lives in ``ocpp_bridge.core.StationCore``; this module only moves frames and time.
Messages that must not be lost go through :meth:`ChargingStation.enqueue` (written to the store
first); a TransactionEvent raised while the CSMS is unreachable carries ``offline=true``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
import time
from collections.abc import Callable

import websockets

from .core import (SECURITY_EVENT_INTERVAL, ConfigError, StationConfig, StationCore, Target, iso,  # noqa: F401
                   transaction_event as _transaction_event)
from .store import QueuedMessage, Store
from .transfer import HttpTransfer

log = logging.getLogger(__name__)
SUBPROTOCOL = "ocpp2.1"


def ssl_context(config: StationConfig | Target) -> ssl.SSLContext | None:
    """TLS for security profiles 2 and 3 (the station's certificate in 3), None for profile 1."""
    if config.security_profile == 1:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.csms_ca:
        ctx.load_verify_locations(cafile=str(config.csms_ca))
    elif config.csms_ca is None:
        ctx.load_default_certs()
    # "": every CSMS root was deleted over OCPP (DeleteCertificate): no CSMS is trusted, not even
    # one the system's roots would vouch for
    if config.client_cert:
        ctx.load_cert_chain(str(config.client_cert), str(config.client_key))
    return ctx


def transfer_ssl_context(config: StationConfig) -> ssl.SSLContext:
    """HTTPS for firmware and log files: the system's roots and the CSMS's (``--csms-ca``)."""
    ctx = ssl.create_default_context()
    if config.csms_ca:
        ctx.load_verify_locations(cafile=str(config.csms_ca))
    return ctx


def basic_auth(config: StationConfig | Target) -> dict[str, str]:
    """The HTTP Basic authorization header of profiles 1 and 2 (none in profile 3)."""
    if config.security_profile == 3:
        return {}
    token = base64.b64encode(f"{config.station_id}:{config.password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def utc_now() -> str:
    return iso(time.time())


def transaction_event(event_type: str, trigger_reason: str, transaction_id: str, *, timestamp: str | None = None,
                      **kw) -> dict:
    """``core.transaction_event`` stamped with the wall clock unless a timestamp is given."""
    return _transaction_event(event_type, trigger_reason, transaction_id, timestamp=timestamp or utc_now(), **kw)


class ChargingStation:
    """The station's side of OCPP on a real websocket: keeps a connection to the CSMS and runs the
    core's timers. ``now`` is Unix time taken from the event loop's monotonic clock (so a clock
    step does not fire every timer at once)."""

    def __init__(self, config: StationConfig, outbox: Store, *, rng: Callable[[], float] = random.random,
                 frame_log: Callable[[str, str, object], None] | None = None,
                 clock: Callable[[], float] | None = None, speed: float = 1.0):
        """``clock()``: the station's time (default: Unix time from the monotonic clock; an
        accelerated demo passes its simulated clock, ``speed`` simulated seconds per real one)."""
        self.clock_offset = time.time() - time.monotonic()  # Unix time − the event loop's clock
        self.clock, self.speed = clock, speed
        self.core = StationCore(config, outbox, now=self.now(), rng=rng, frame_log=frame_log)
        self.core.on_output = self._wakeup
        # firmware images in, log files out: over HTTP(S), in worker threads (ocpp_bridge.transfer)
        self.core.transfer = HttpTransfer(ssl_context=transfer_ssl_context(config), wakeup=self._wakeup,
                                          clock=self.now)
        self.connected = asyncio.Event()   # set while online (booted)
        self.crashes = 0                   # unexpected ends of the connection task (restarted by run())
        self._wake = asyncio.Event()

    def now(self) -> float:
        return self.clock() if self.clock is not None else time.monotonic() + self.clock_offset

    # --- the core's surface, with the adapter's clock ----------------------------------------------
    @property
    def config(self) -> StationConfig:
        return self.core.config

    @property
    def outbox(self) -> Store:
        return self.core.store

    @property
    def handlers(self) -> dict[str, Callable[[dict], dict]]:
        return self.core.handlers

    @property
    def device_model(self):
        return self.core.device_model

    @property
    def boot_accepted(self) -> bool:
        return self.core.boot_accepted

    @property
    def handler_errors(self) -> int:
        return self.core.handler_errors

    def enqueue(self, action: str, payload: dict, *, state: dict | None = None) -> QueuedMessage:
        return self.core.enqueue(action, payload, now=self.now(), state=state)

    def security_event(self, kind: str, tech_info: str = "") -> None:
        self.core.security_event(kind, tech_info, now=self.now())

    def set_connector_status(self, evse_id: int, connector_id: int, status: str) -> None:
        self.core.set_connector_status(evse_id, connector_id, status, now=self.now())

    def _wakeup(self) -> None:
        self._wake.set()

    # --- connection loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, boot, heartbeat and drain; on any loss of the connection, back off and
        reconnect. An unexpected failure (a bug, a database error) is logged with its traceback,
        counted in ``crashes`` and the connection task started again after a back-off: the
        station never goes silent for good. Runs until cancelled."""
        await supervise("OCPP connection", self._connect_loop, self._count_crash, self.core.backoff)

    def _count_crash(self) -> int:
        self.crashes += 1
        self.connected.clear()
        if self.core.connected:
            self.core.connection_lost(self.now(), "the connection task failed")
        return self.crashes

    async def _connect_loop(self) -> None:
        while True:
            await self._sleep_until(self.core.next_connect_at())
            target = self.core.connect_target()  # the network profile slot to use now
            ping = int(self.core.device_model.value("OCPPCommCtrlr", "WebSocketPingInterval"))
            try:
                async with websockets.connect(target.url, subprotocols=[SUBPROTOCOL],
                                              additional_headers=basic_auth(target), ssl=ssl_context(target),
                                              open_timeout=10, ping_interval=ping or None,
                                              ping_timeout=ping or None) as ws:
                    if ws.subprotocol != SUBPROTOCOL:
                        raise ConnectionError(f"the CSMS did not accept subprotocol {SUBPROTOCOL}")
                    try:
                        await self._serve(ws)
                    finally:
                        self.connected.clear()
                        self.core.connection_lost(self.now(), self.core.close_requested or "closed")
            except ssl.SSLCertVerificationError as e:
                log.warning("CSMS certificate refused: %s", e)
                self.core.connect_failed(self.now(), str(e), "InvalidCsmsCertificate")
            except ssl.SSLError as e:  # the handshake failed: a TLS version or cipher suite below part 2 A00
                log.warning("TLS with the CSMS failed: %s", e)
                reason = (e.reason or str(e)).upper()
                kind = "InvalidTLSVersion" if "VERSION" in reason or "PROTOCOL" in reason else \
                    "InvalidTLSCipherSuite" if "CIPHER" in reason or "HANDSHAKE_FAILURE" in reason else None
                self.core.connect_failed(self.now(), str(e), kind)
            except websockets.exceptions.InvalidStatus as e:
                log.warning("CSMS refused the connection: %s", e)
                self.core.connect_failed(self.now(), f"HTTP {e.response.status_code}",
                                         "FailedToAuthenticateAtCsms" if e.response.status_code == 401 else None)
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, ConnectionError) as e:
                log.info("CSMS connection lost or refused: %s", e)
                if not self.core.connected and self.core.next_connect_at() <= self.now():
                    self.core.connect_failed(self.now(), str(e))

    async def _sleep_until(self, t: float) -> None:
        delay = (t - self.now()) / self.speed
        if delay > 0:
            await asyncio.sleep(delay)

    async def _serve(self, ws) -> None:
        """Frames in → core; the core's frames out; its timers on the loop; until the connection
        closes or the core asks for it to be closed."""
        core = self.core
        core.connection_made(self.now())
        recv = asyncio.ensure_future(ws.recv())
        try:
            while True:
                for text in core.data_to_send():
                    await ws.send(text)
                if core.online:
                    self.connected.set()
                if core.close_requested:
                    log.warning("closing the CSMS connection: %s", core.close_requested)
                    return
                deadline = core.next_deadline()
                self._wake.clear()
                wake = asyncio.ensure_future(self._wake.wait())
                timeout = None if deadline is None else max(0.0, deadline - self.now()) / self.speed
                done, _ = await asyncio.wait({recv, wake}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                if recv in done:
                    text = recv.result()  # ConnectionClosed ends the connection
                    recv = asyncio.ensure_future(ws.recv())
                    core.receive(text, self.now())
                core.handle_timer(self.now())
        finally:
            recv.cancel()


async def supervise(name: str, body: Callable[[], object], crashed: Callable[[], int],
                    backoff: Callable[[int], float]) -> None:
    """Run the coroutine function ``body`` for ever: when it fails, log why with its traceback,
    count it (``crashed`` returns the count) and start it again after ``backoff(count - 1)``."""
    while True:
        try:
            await body()
            log.error("%s task returned; starting it again", name)
        except asyncio.CancelledError:
            raise
        except Exception:  # anything: logged with its traceback, counted, restarted (never silent)
            n = crashed()
            log.exception("%s task failed (%d so far); starting it again", name, n)
            await asyncio.sleep(backoff(n - 1))

"""The charging station's OCPP 2.1 connection to the CSMS (websocket subprotocol ``ocpp2.1``) on
the ``ocpp`` and ``websockets`` packages: security profiles 1–3, BootNotification, Heartbeat,
and the durable outbox drained in order, with reconnects on the back-off of OCPPCommCtrlr.

Messages that must not be lost go through :meth:`ChargingStation.enqueue` (written to SQLite
first); a TransactionEvent raised while the CSMS is unreachable carries ``offline=true``.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import random
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import websockets
import ocpp.v21 as ocpp_v21
from ocpp.exceptions import FormationViolationError, InternalError, NotImplementedError, NotSupportedError, \
    OCPPError
from ocpp.messages import Call, MessageType, _validate_payload, validate_payload
from ocpp.v21 import ChargePoint

from . import frames
from .device_model import DAY, DeviceModel, standard_variables
from .outbox import Outbox, QueuedMessage

log = logging.getLogger(__name__)
SUBPROTOCOL = "ocpp2.1"
SECURITY_EVENT_INTERVAL = 60.0  # s: at most one SecurityEventNotification per kind in this time


class ConfigError(ValueError):
    """The station's connection settings are inconsistent (e.g. profile 1 without a password)."""


@dataclass
class StationConfig:
    """Connection settings; names follow the OCPP 2.1 device model where one exists."""

    station_id: str
    csms_url: str                       # ws://… (profile 1) or wss://… (profiles 2, 3)
    password: str | None = None         # SecurityCtrlr.BasicAuthPassword (profiles 1, 2), 16–40 chars
    csms_ca: str | Path | None = None   # roots that sign the CSMS certificate (profiles 2, 3)
    client_cert: str | Path | None = None  # the station's certificate chain (profile 3)
    client_key: str | Path | None = None
    vendor: str = "v2h"
    model: str = "v2h-bpt"
    response_timeout: float = 30.0      # OCPPCommCtrlr.MessageTimeout
    retry_backoff_min: float = 3.0      # OCPPCommCtrlr.RetryBackOffWaitMinimum
    retry_backoff_random: float = 10.0  # OCPPCommCtrlr.RetryBackOffRandomRange
    retry_backoff_repeat: int = 5       # OCPPCommCtrlr.RetryBackOffRepeatTimes
    message_attempts: int = 3           # OCPPCommCtrlr.MessageAttempts (CALLERROR answers)
    message_attempt_interval: float = 3.0  # OCPPCommCtrlr.MessageAttemptInterval

    @property
    def security_profile(self) -> int:
        if self.csms_url.startswith("ws://"):
            return 1
        return 3 if self.client_cert else 2

    def check(self) -> None:
        """Raise ConfigError if the settings do not make one of the three security profiles."""
        if not self.csms_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"the CSMS URL must start with ws:// or wss://, got {self.csms_url!r}")
        profile = self.security_profile
        if profile in (1, 2):
            if self.password is None:
                raise ConfigError(f"security profile {profile} needs the basic-auth password")
            if not 16 <= len(self.password) <= 40:
                raise ConfigError("BasicAuthPassword must be 16 to 40 characters")
        if profile == 3 and not self.client_key:
            raise ConfigError("security profile 3 needs the station's key with its certificate")

    def url(self) -> str:
        return f"{self.csms_url.rstrip('/')}/{self.station_id}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.security_profile == 1:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.csms_ca:
            ctx.load_verify_locations(cafile=str(self.csms_ca))
        else:
            ctx.load_default_certs()
        if self.client_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx

    def headers(self) -> dict[str, str]:
        if self.security_profile == 3:
            return {}
        token = base64.b64encode(f"{self.station_id}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


def _direct(action: str, payload: dict) -> QueuedMessage:
    """A request sent straight away, outside the outbox (boot, heartbeat, status, Authorize)."""
    return QueuedMessage(0, action, payload, str(uuid.uuid4()), 0.0)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Link(ChargePoint):
    """One websocket connection. Requests from the CSMS are routed by v2h itself, not by the
    ``ocpp`` package, to work around its 2.1.0 defects (DOMAIN.md §5): payloads stay camelCase
    (its snake_case conversion renames per-phase fields such as ``setpoint_L2``), an action
    without a handler gets a CALLERROR NotSupported (it answers nothing, the CSMS times out), an
    unknown action NotImplemented, and a broken frame a CALLERROR instead of silence."""

    station: ChargingStation

    async def _send(self, message: str) -> None:
        self.station._log_frame("tx", message)
        await super()._send(message)

    async def route_message(self, raw_msg):
        """Every frame gets an answer or a logged drop and the link stays up, whatever it holds:
        broken JSON, NaN, deep nesting, a handler that fails (found by an attack review: one
        such frame used to end the station task for good)."""
        self.station._log_frame("rx", raw_msg)
        try:
            frame = frames.parse(raw_msg)
        except frames.FrameError as e:
            await self._reject_frame(raw_msg, e.unique_id, FormationViolationError(str(e)))
            return
        kind = frame[0]
        if kind in (frames.CALLRESULT, frames.CALLERROR):
            await super().route_message(raw_msg)
            return
        if kind == frames.CALLRESULTERROR:  # 2.1: the CSMS could not process our CALLRESULT; nothing to retry
            log.warning("CSMS reported an error for our response: %s", raw_msg[:300])
            return
        if kind == frames.SEND:  # 2.1: unconfirmed; v2h has no SEND handlers yet
            log.info("ignored SEND frame: %s", raw_msg[:300])
            return
        _, unique_id, action, payload = frame
        call = Call(unique_id=unique_id, action=action, payload=payload)
        try:
            handler = self.station.handlers.get(action)
            if handler is None:
                known = (Path(ocpp_v21.__file__).parent / "schemas" / f"{action}Request.json").exists()
                raise (NotSupportedError if known else NotImplementedError)(f"{action} is not handled")
            await validate_payload(call, self._ocpp_version)
            try:
                result = handler(payload)
                if inspect.isawaitable(result):
                    result = await result
            except OCPPError:
                raise
            except Exception as e:  # a handler bug: answered, logged with its traceback, counted
                self.station.handler_errors += 1
                log.exception("handling %s %s failed", action, unique_id)
                raise InternalError(f"{action} could not be handled: {type(e).__name__}") from e
            response = call.create_call_result(result)
            await validate_payload(response, self._ocpp_version)
            text = frames.dumps([frames.CALLRESULT, unique_id, result])
        except (OCPPError, ValueError) as e:  # ValueError: a non-finite number in our own answer
            self.station._after_response.clear()
            await self._reject_frame(raw_msg, unique_id, e if isinstance(e, OCPPError) else InternalError(str(e)))
            return
        await self._send(text)
        hooks, self.station._after_response[:] = list(self.station._after_response), []
        for hook in hooks:
            hook()

    async def _reject_frame(self, raw: str, unique_id: str, error: OCPPError) -> None:
        """Answer with a CALLERROR, keep the connection, and raise InvalidMessages (rate-limited)."""
        log.warning("invalid message from the CSMS (%s): %s", error.code, raw[:300])
        await self._send(frames.dumps([frames.CALLERROR, unique_id, error.code, str(error)[:255], {}]))
        self.station.security_event("InvalidMessages", f"{error.code}: {raw[:200]}")

    async def call_queued(self, item: QueuedMessage, timeout: float):
        """Send a queued request with its stored message id (validated when it was queued); the
        CALLRESULT or CALLERROR."""
        call = Call(unique_id=item.message_id, action=item.action, payload=item.payload)
        async with self._call_lock:
            await self._send(call.to_json())
            return await self._get_specific_response(item.message_id, timeout)


class ChargingStation:
    """The station's side of OCPP: keeps a connection to the CSMS and drains the outbox."""

    def __init__(self, config: StationConfig, outbox: Outbox, *, rng: Callable[[], float] = random.random,
                 frame_log: Callable[[str, str, object], None] | None = None):
        config.check()
        self.config = config
        self.outbox = outbox
        self.rng = rng
        self.connected = asyncio.Event()
        self.boot_accepted = False
        self.heartbeat_interval = 60.0
        self._wake = asyncio.Event()
        self._link: _Link | None = None
        self._boot_reason = outbox.get("boot_reason") or "PowerUp"  # RemoteReset after a Reset
        self.handlers: dict[str, Callable[[dict], dict]] = {}  # CSMS-initiated actions → camelCase payload in/out
        self.frame_log = frame_log  # (direction, name, frame): every OCPP-J frame, for the JSON-lines log
        self._pending: dict[str, str] = {}  # message id → action, to name the answers
        self.connector_status: dict[tuple[int, int], str] = {(1, 1): "Available"}
        self._heartbeat_changed = asyncio.Event()
        self._after_response: list[Callable[[], None]] = []
        self.device_model = DeviceModel(standard_variables(
            identity=config.station_id, security_profile=config.security_profile, secc_id=config.station_id,
            retry_min=config.retry_backoff_min, retry_random=config.retry_backoff_random,
            retry_repeat=config.retry_backoff_repeat, message_timeout=config.response_timeout,
            message_attempts=config.message_attempts), outbox)
        self._wire_device_model()
        self._failure_reported: str | None = None  # the security event raised for the current failure streak
        self._security_events: dict[str, tuple[float, int]] = {}  # kind → (last reported, suppressed since)
        self.handler_errors = 0  # CSMS requests whose handler failed (answered InternalError)
        self.crashes = 0         # unexpected ends of the connection task (restarted by run())

    # --- what the rest of the station calls -------------------------------------------------
    def enqueue(self, action: str, payload: dict, *, state: dict | None = None) -> QueuedMessage:
        """Persist a request for the CSMS; it is sent in order once the CSMS answers the ones
        before it. TransactionEvents get their seqNo and, when raised while offline, offline=true.
        ``state`` is persisted atomically with the message (see Outbox.put). A payload that
        breaks the OCPP 2.1 schema raises the package's OCPPError here and is never queued."""
        payload = dict(payload)
        if action == "TransactionEvent" and not self.connected.is_set():
            payload["offline"] = True
        probe = dict(payload, seqNo=0) if action == "TransactionEvent" else payload
        _validate_payload(Call(unique_id="0", action=action, payload=probe), "2.1")  # raises an OCPPError
        item = self.outbox.put(action, payload, now=asyncio.get_running_loop().time(), state=state)
        self._wake.set()
        return item

    def _wire_device_model(self) -> None:
        """The OCPPCommCtrlr/SecurityCtrlr variables the CSMS may set, applied to this station."""
        c, dm = self.config, self.device_model
        self.handlers.update({"GetVariables": dm.get_variables, "SetVariables": dm.set_variables,
                              "GetBaseReport": self._get_base_report})

        def setter(attr: str, cast=float):
            return lambda v: setattr(c, attr, cast(v))
        dm.listen("OCPPCommCtrlr", "HeartbeatInterval", self._set_heartbeat)
        dm.listen("OCPPCommCtrlr", "MessageTimeout", setter("response_timeout"), instance="Default")
        dm.listen("OCPPCommCtrlr", "MessageAttempts", setter("message_attempts", int), instance="TransactionEvent")
        dm.listen("OCPPCommCtrlr", "MessageAttemptInterval", setter("message_attempt_interval"),
                  instance="TransactionEvent")
        dm.listen("OCPPCommCtrlr", "RetryBackOffWaitMinimum", setter("retry_backoff_min"))
        dm.listen("OCPPCommCtrlr", "RetryBackOffRandomRange", setter("retry_backoff_random"))
        dm.listen("OCPPCommCtrlr", "RetryBackOffRepeatTimes", setter("retry_backoff_repeat", int))
        # a new password is used from the next connection (the CSMS closes this one when it wants)
        dm.listen("SecurityCtrlr", "BasicAuthPassword", lambda v: setattr(c, "password", v) if v else None)

    def after_response(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the answer to the CSMS request being handled has been sent (a Reset
        must be answered before the station goes down; a report must not overtake its answer)."""
        self._after_response.append(hook)

    def _set_heartbeat(self, value: str) -> None:
        self.heartbeat_interval = float(value)
        self._heartbeat_changed.set()

    def _get_base_report(self, payload: dict) -> dict:
        if payload["reportBase"] == "SummaryInventory":
            return {"status": "NotSupported"}
        reports = self.device_model.report(payload["requestId"], payload["reportBase"], utc_now())
        # after the response: NotifyReport must not overtake the GetBaseReportResponse
        def send() -> None:
            for report in reports:
                self.enqueue("NotifyReport", report)
        self.after_response(send)
        return {"status": "Accepted"}

    def set_connector_status(self, evse_id: int, connector_id: int, status: str) -> None:
        """StatusNotification: sent now if connected, else the current status after the next boot
        (a status is a state, not an event: only the latest matters)."""
        if self.connector_status.get((evse_id, connector_id)) == status:
            return
        self.connector_status[(evse_id, connector_id)] = status
        if self._link is not None and self.connected.is_set():
            asyncio.ensure_future(self._send_status(self._link, evse_id, connector_id, status))

    async def _send_status(self, link: _Link, evse_id: int, connector_id: int, status: str) -> None:
        item = _direct("StatusNotification", {"timestamp": utc_now(), "connectorStatus": status,
                                              "evseId": evse_id, "connectorId": connector_id})
        try:
            await link.call_queued(item, self.config.response_timeout)
        except (asyncio.TimeoutError, websockets.exceptions.ConnectionClosed) as e:
            log.info("StatusNotification not delivered (resent after the next boot): %s", e)

    async def request(self, action: str, payload: dict, timeout: float | None = None) -> dict | None:
        """A request whose answer matters only now (Authorize): sent directly, not queued; None
        when offline, on a CALLERROR or on no answer, so the caller applies its offline rule."""
        link = self._link
        if link is None or not self.connected.is_set():
            return None
        item = _direct(action, payload)
        _validate_payload(Call(unique_id=item.message_id, action=action, payload=payload), "2.1")
        try:
            res = await link.call_queued(item, timeout or self.config.response_timeout)
        except (asyncio.TimeoutError, websockets.exceptions.ConnectionClosed) as e:
            log.info("%s got no answer: %s", action, e)
            return None
        if res.message_type_id == MessageType.CallError:
            log.warning("CSMS answered %s with %s", action, res.error_code)
            return None
        return res.payload

    def security_event(self, kind: str, tech_info: str = "") -> None:
        """Queue a SecurityEventNotification (it must reach the CSMS even if raised offline),
        at most one per kind every SECURITY_EVENT_INTERVAL: a flood of bad frames must not
        flood the durable outbox; the next report says how many were left out."""
        now = asyncio.get_running_loop().time()
        last, suppressed = self._security_events.get(kind, (None, 0))
        if last is not None and now - last < SECURITY_EVENT_INTERVAL:
            self._security_events[kind] = (last, suppressed + 1)
            return
        self._security_events[kind] = (now, 0)
        if suppressed:
            tech_info = f"(+{suppressed} more since the last report) {tech_info}"
        payload = {"type": kind, "timestamp": utc_now()}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self.enqueue("SecurityEventNotification", payload)

    def _log_frame(self, direction: str, raw: str) -> None:
        if self.frame_log is None:
            return
        try:
            frame = frames.loads(raw)
        except ValueError:
            self.frame_log(direction, "(malformed)", raw)
            return
        name = "(frame)"
        if isinstance(frame, list) and len(frame) >= 3:
            if frame[0] == 2 and isinstance(frame[2], str):
                name = frame[2]
                self._pending[str(frame[1])] = name
            elif frame[0] in (3, 4):
                action = self._pending.pop(str(frame[1]), "?")
                name = f"{action}Response" if frame[0] == 3 else f"{action}Error"
        self.frame_log(direction, name, frame)

    # --- connection loop --------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, boot, heartbeat and drain; on any loss of the connection, back off and
        reconnect. An unexpected failure (a bug, a database error) is logged with its traceback,
        counted in ``crashes`` and the connection task started again after a back-off: the
        station never goes silent for good. Runs until cancelled."""
        await supervise("OCPP connection", self._connect_loop, self._count_crash, self._backoff)

    def _count_crash(self) -> int:
        self.crashes += 1
        self.connected.clear()
        self._link = None
        return self.crashes

    async def _connect_loop(self) -> None:
        attempt = 0
        while True:
            try:
                async with websockets.connect(self.config.url(), subprotocols=[SUBPROTOCOL],
                                              additional_headers=self.config.headers(),
                                              ssl=self.config.ssl_context(), open_timeout=10,
                                              ping_interval=None) as ws:
                    if ws.subprotocol != SUBPROTOCOL:
                        raise ConnectionError(f"the CSMS did not accept subprotocol {SUBPROTOCOL}")
                    attempt = 0
                    await self._session(ws)
            except ssl.SSLCertVerificationError as e:
                log.warning("CSMS certificate refused: %s", e)
                self._report_failure("InvalidCsmsCertificate", str(e))
            except websockets.exceptions.InvalidStatus as e:
                log.warning("CSMS refused the connection: %s", e)
                if e.response.status_code == 401:
                    self._report_failure("FailedToAuthenticateAtCsms", f"HTTP {e.response.status_code}")
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException,
                    ConnectionError, OCPPError) as e:
                log.info("CSMS connection lost or refused: %s", e)
            finally:
                self.connected.clear()
                self._link = None
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        """RetryBackOffWaitMinimum doubled per attempt (up to RepeatTimes doublings) plus a
        random part up to RetryBackOffRandomRange."""
        c = self.config
        return c.retry_backoff_min * 2 ** min(attempt, c.retry_backoff_repeat) + self.rng() * c.retry_backoff_random

    async def _session(self, ws) -> None:
        link = _Link(self.config.station_id, ws, response_timeout=self.config.response_timeout)
        link.station = self
        self._link = link
        reader = asyncio.ensure_future(link.start())
        try:
            tasks = [reader, asyncio.ensure_future(self._boot_and_drain(link))]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # a closed connection raises here
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _report_failure(self, kind: str, info: str) -> None:
        """One SecurityEventNotification per failure streak (queued: it reaches the CSMS once
        the station gets through), not one per retry."""
        if self._failure_reported != kind:
            self._failure_reported = kind
            self.security_event(kind, info)

    async def _boot_and_drain(self, link: _Link) -> None:
        first = self._boot_reason != "Unknown"
        await self._boot(link)
        self.connected.set()
        self._failure_reported = None
        if first:
            self.security_event("StartupOfTheDevice")
        for (evse_id, connector_id), status in list(self.connector_status.items()):
            await self._send_status(link, evse_id, connector_id, status)
        heart = asyncio.ensure_future(self._heartbeat(link))
        try:
            await self._drain(link)
        finally:
            heart.cancel()

    async def _boot(self, link: _Link) -> None:
        """BootNotification until Accepted; nothing else is sent before (the outbox waits)."""
        while True:
            item = _direct("BootNotification", {"reason": self._boot_reason, "chargingStation": {
                "vendorName": self.config.vendor, "model": self.config.model}})
            res = await link.call_queued(item, self.config.response_timeout)
            if res.message_type_id == MessageType.CallError:
                raise ConnectionError(f"BootNotification refused: {res.error_code} {res.error_description}")
            # the interval is the CSMS's number: bounded before it becomes a timer
            status, interval = res.payload["status"], min(max(float(res.payload["interval"]), 0.0), DAY)
            if status == "Accepted":
                self.boot_accepted = True
                if interval:  # the CSMS sets the heartbeat at boot (OCPPCommCtrlr.HeartbeatInterval)
                    self.heartbeat_interval = interval
                    self.device_model.values[("OCPPCommCtrlr", "HeartbeatInterval", None)] = str(int(interval))
                if self._boot_reason != "Unknown":
                    self.outbox.set("boot_reason", None)
                self._boot_reason = "Unknown"  # a reconnect is not a power-up
                return
            await asyncio.sleep(interval or self.config.retry_backoff_min)

    async def _heartbeat(self, link: _Link) -> None:
        """Heartbeat every HeartbeatInterval; a new interval (SetVariables) applies at once."""
        while True:
            self._heartbeat_changed.clear()
            try:
                await asyncio.wait_for(self._heartbeat_changed.wait(), self.heartbeat_interval)
                continue
            except asyncio.TimeoutError:
                pass
            await link.call_queued(_direct("Heartbeat", {}), self.config.response_timeout)

    async def _drain(self, link: _Link) -> None:
        """Send the outbox head, wait for its answer, remove it; repeat. A CALLERROR is retried
        MessageAttempts times, then the message is set aside in the 'rejected' record."""
        attempts = 0
        while True:
            item = self.outbox.head()
            if item is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            res = await link.call_queued(item, self.config.response_timeout)
            if res.message_type_id == MessageType.CallError:
                attempts += 1
                log.warning("CSMS answered %s %s with %s: %s", item.action, item.message_id, res.error_code,
                            res.error_description)
                if attempts < self.config.message_attempts:
                    await asyncio.sleep(self.config.message_attempt_interval)
                    continue
                rejected = self.outbox.get("rejected", [])
                rejected.append({"action": item.action, "payload": item.payload, "error": res.error_code})
                self.outbox.set("rejected", rejected)
            attempts = 0
            self.outbox.done(item.id)


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


def transaction_event(event_type: str, trigger_reason: str, transaction_id: str, *, evse_id: int = 1,
                      meter_value: list | None = None, charging_state: str | None = None,
                      stopped_reason: str | None = None, id_token: dict | None = None,
                      remote_start_id: int | None = None) -> dict:
    """A TransactionEvent payload (seqNo and offline are filled in by the outbox/station)."""
    info: dict = {"transactionId": transaction_id}
    if charging_state:
        info["chargingState"] = charging_state
    if stopped_reason:
        info["stoppedReason"] = stopped_reason
    payload: dict = {"eventType": event_type, "timestamp": utc_now(), "triggerReason": trigger_reason,
                     "transactionInfo": info}
    if event_type == "Started":
        payload["evse"] = {"id": evse_id, "connectorId": 1}
    if meter_value:
        payload["meterValue"] = meter_value
    if id_token:
        payload["idToken"] = id_token
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    return payload


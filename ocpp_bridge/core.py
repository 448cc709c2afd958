"""The charging station's OCPP 2.1 core, sans-I/O: OCPP-J frames (text) and ``now`` in, frames
to send, the next deadline and decisions out. No sockets, no clock, no event loop — the asyncio
adapter (``ocpp_bridge.station``) feeds it a websocket, and a simulation feeds it a CSMS core
directly, a day in seconds.

What it does (OCPP 2.1 part 4 for the framing, part 2 for the messages):
- BootNotification first on every connection; nothing else is sent before it is Accepted
  (Pending/Rejected: again after the interval the CSMS gave).
- One CALL outstanding at a time (part 4 §4.1.1): direct requests (StatusNotification,
  Authorize, Heartbeat) go first, then the durable outbox in order. An outbox message leaves only
  when answered; a CALLERROR is retried MessageAttempts times, MessageAttemptInterval × n apart,
  then set aside in the 'rejected' record; no answer within MessageTimeout means the connection
  is broken: the adapter closes it and the message is resent, with its message id, after the
  next boot.
- TransactionEvents raised while offline carry ``offline=true``.
- Requests from the CSMS are routed to ``handlers`` (camelCase payloads in and out, validated
  against the OCPP 2.1 schemas both ways); whatever a frame holds, it gets an answer or a logged
  drop and the connection stays (unknown action: NotImplemented; known but not handled:
  NotSupported; broken frame: FormationViolation; failing handler: InternalError).
- Reconnects back off per OCPPCommCtrlr (RetryBackOffWaitMinimum doubled up to
  RetryBackOffRepeatTimes, plus RetryBackOffRandomRange × rng()).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from ocpp.exceptions import FormationViolationError, OCPPError, SecurityError

from . import frames
from .device_model import DAY, DeviceModel, standard_variables
from .rpc import Answer, HandlerFailed, Outstanding, answer_call, error_frame, read_answer, schema_check
from .store import QueuedMessage, Store

log = logging.getLogger("ocpp_bridge.station")
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


def iso(t: float) -> str:
    """Unix seconds as an OCPP dateTime (UTC, milliseconds)."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def transaction_event(event_type: str, trigger_reason: str, transaction_id: str, *, timestamp: str,
                      evse_id: int = 1, meter_value: list | None = None, charging_state: str | None = None,
                      stopped_reason: str | None = None, id_token: dict | None = None,
                      remote_start_id: int | None = None) -> dict:
    """A TransactionEvent payload (seqNo and offline are filled in by the store/core)."""
    info: dict = {"transactionId": transaction_id}
    if charging_state:
        info["chargingState"] = charging_state
    if stopped_reason:
        info["stoppedReason"] = stopped_reason
    payload: dict = {"eventType": event_type, "timestamp": timestamp, "triggerReason": trigger_reason,
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


class TimerSource(Protocol):
    """Something above the core with its own timers (the bridge's clock-aligned meter values)."""

    def next_deadline(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...


@dataclass
class _Call(Outstanding):
    """The CALL waiting for its answer: an outbox message, a direct request or the boot."""

    item: QueuedMessage | None = None   # from the outbox


@dataclass
class _Direct:
    action: str
    payload: dict
    on_answer: Answer | None = None
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class StationCore:
    """One charging station's OCPP state: the connection's lifecycle, the boot, the outstanding
    CALL, the outbox, the CSMS's requests. Drive it with ``connection_made``, ``receive``,
    ``handle_timer`` at ``next_deadline()``, ``connection_lost``/``connect_failed``; send what
    ``data_to_send()`` returns; close the connection when ``close_requested`` is set; connect
    again at ``next_connect_at()``."""

    def __init__(self, config: StationConfig, store: Store, *, now: float, rng: Callable[[], float] = random.random,
                 frame_log: Callable[[str, str, object], None] | None = None):
        config.check()
        self.config = config
        self.store = store
        self.rng = rng
        self.frame_log = frame_log  # (direction, name, frame): every OCPP-J frame, for the JSON-lines log
        self.on_output: Callable[[], None] | None = None  # the adapter's wake-up: frames or deadlines changed
        self.handlers: dict[str, Callable[[dict], dict]] = {}  # CSMS-initiated actions → camelCase in/out
        self.timers: list[TimerSource] = []
        self.connected = False           # the websocket is open
        self.boot_accepted = False       # ... and this connection's BootNotification was Accepted
        self.boot_status: str | None = None
        self.offline_since: float | None = now
        self.heartbeat_interval = 60.0
        self.close_requested: str | None = None
        self.connector_status: dict[tuple[int, int], str] = {(1, 1): "Available"}
        self.handler_errors = 0          # CSMS requests whose handler failed (answered InternalError)
        self.now = now                   # the latest time the core was given
        self._out: list[str] = []
        self._inflight: _Call | None = None
        self._direct: list[_Direct] = []
        self._next_boot: float | None = None
        self._next_heartbeat: float | None = None
        self._retry_at: float | None = None    # the outbox head after a CALLERROR
        self._attempts = 0                     # CALLERRORs of the outbox head
        self._attempt = 0                      # connection attempts since the last boot
        self._next_connect = now
        self._boot_reason = store.get("boot_reason") or "PowerUp"  # RemoteReset after a Reset
        self._failure_reported: str | None = None  # the security event raised for the current failure streak
        self._security_events: dict[str, tuple[float, int]] = {}  # kind → (last reported, suppressed since)
        self._after_response: list[Callable[[], None]] = []
        self._names: dict[str, str] = {}       # message id → action, to name the answers in the log
        self.device_model = DeviceModel(standard_variables(
            identity=config.station_id, security_profile=config.security_profile, secc_id=config.station_id,
            retry_min=config.retry_backoff_min, retry_random=config.retry_backoff_random,
            retry_repeat=config.retry_backoff_repeat, message_timeout=config.response_timeout,
            message_attempts=config.message_attempts), store)
        self._wire_device_model()

    # --- state ----------------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        """Connected and booted: messages flow."""
        return self.connected and self.boot_accepted

    def offline_for(self, now: float) -> float:
        """Seconds since the CSMS was last reachable (0 while online)."""
        return 0.0 if self.online or self.offline_since is None else max(0.0, now - self.offline_since)

    # --- what the rest of the station calls -----------------------------------------------------
    def enqueue(self, action: str, payload: dict, *, now: float, state: dict | None = None) -> QueuedMessage:
        """Persist a request for the CSMS; it is sent in order once the CSMS answers the ones
        before it. TransactionEvents get their seqNo and, when raised offline, offline=true.
        ``state`` is persisted atomically with the message. A payload that breaks the OCPP 2.1
        schema raises the package's OCPPError (a non-finite number ValueError) and is never queued."""
        payload = dict(payload)
        if action == "TransactionEvent" and not self.online:
            payload["offline"] = True
        schema_check(action, dict(payload, seqNo=0) if action == "TransactionEvent" else payload)
        frames.dumps(payload)  # strict JSON or ValueError, before anything is stored
        item = self.store.put(action, payload, now=now, state=state)
        self._pump(now)
        return item

    def request(self, action: str, payload: dict, *, now: float, on_answer: Answer | None = None) -> None:
        """A request whose answer matters only now (Authorize, StatusNotification): sent before
        the outbox, not stored. ``on_answer`` gets the CALLRESULT payload, or None offline, on a
        CALLERROR, a timeout or a lost connection, so the caller applies its offline rule."""
        schema_check(action, payload)
        if not self.online:
            if on_answer is not None:
                on_answer(None)
            return
        self._direct.append(_Direct(action, payload, on_answer))
        self._pump(now)

    def set_connector_status(self, evse_id: int, connector_id: int, status: str, *, now: float) -> None:
        """StatusNotification: sent now if online, else the current status after the next boot
        (a status is a state, not an event: only the latest matters)."""
        if self.connector_status.get((evse_id, connector_id)) == status:
            return
        self.connector_status[(evse_id, connector_id)] = status
        if self.online:
            self._status(evse_id, connector_id, status, now)

    def security_event(self, kind: str, tech_info: str = "", *, now: float) -> None:
        """Queue a SecurityEventNotification (it must reach the CSMS even if raised offline),
        at most one per kind every SECURITY_EVENT_INTERVAL: a flood of bad frames must not flood
        the durable outbox; the next report says how many were left out."""
        last, suppressed = self._security_events.get(kind, (None, 0))
        if last is not None and now - last < SECURITY_EVENT_INTERVAL:
            self._security_events[kind] = (last, suppressed + 1)
            return
        self._security_events[kind] = (now, 0)
        if suppressed:
            tech_info = f"(+{suppressed} more since the last report) {tech_info}"
        payload = {"type": kind, "timestamp": iso(now)}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        self.enqueue("SecurityEventNotification", payload, now=now)

    def after_response(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the answer to the CSMS request being handled is out (a Reset must be
        answered before the station goes down; a report must not overtake its answer)."""
        self._after_response.append(hook)

    def changed(self) -> None:
        """A timer source's deadline moved: the adapter re-arms its timer."""
        if self.on_output is not None:
            self.on_output()

    # --- the connection -------------------------------------------------------------------------
    def next_connect_at(self) -> float:
        """When the adapter should try to connect (back-off after a failure or a loss)."""
        return self._next_connect

    def connection_made(self, now: float) -> None:
        self.now = now
        self.connected, self.boot_accepted, self.boot_status = True, False, None
        self.close_requested = None
        self._inflight = None
        self._next_boot = now
        self._pump(now)

    def connection_lost(self, now: float, reason: str = "") -> None:
        """The websocket closed: the outstanding outbox message is resent after the next boot
        (same message id); direct requests get no answer (their callers apply the offline rule)."""
        self.now = now
        if self.online:
            self.offline_since = now
        was_connected = self.connected
        self.connected = self.boot_accepted = False
        pending, self._direct = self._direct, []
        if self._inflight is not None and self._inflight.on_answer is not None:
            pending.insert(0, _Direct(self._inflight.action, {}, self._inflight.on_answer))
        self._inflight = None
        self._next_boot = self._next_heartbeat = self._retry_at = None
        self._schedule_connect(now)
        if was_connected:
            log.info("CSMS connection lost: %s", reason or "closed")
        for d in pending:
            if d.on_answer is not None:
                d.on_answer(None)

    def connect_failed(self, now: float, reason: str, security_event: str | None = None) -> None:
        """A connection attempt failed; ``security_event`` (FailedToAuthenticateAtCsms,
        InvalidCsmsCertificate) is raised once per failure streak, not once per retry."""
        self.now = now
        if security_event is not None and self._failure_reported != security_event:
            self._failure_reported = security_event
            self.security_event(security_event, reason, now=now)
        self._schedule_connect(now)

    def backoff(self, attempt: int) -> float:
        """RetryBackOffWaitMinimum doubled per attempt (up to RepeatTimes doublings) plus a
        random part up to RetryBackOffRandomRange."""
        c = self.config
        return c.retry_backoff_min * 2 ** min(attempt, c.retry_backoff_repeat) + self.rng() * c.retry_backoff_random

    def _schedule_connect(self, now: float) -> None:
        self._next_connect = now + self.backoff(self._attempt)
        self._attempt += 1

    # --- frames in, timers ------------------------------------------------------------------------
    def receive(self, text: str | bytes, now: float) -> None:
        """One frame from the CSMS."""
        self.now = now
        try:
            frame = frames.parse(text)
        except frames.FrameError as e:
            self._log("rx", "(malformed)", text if isinstance(text, str) else repr(text[:300]))
            self._reject(text, e.unique_id, FormationViolationError(str(e)), now)
            return
        kind = frame[0]
        if kind == frames.CALL:
            self._log("rx", frame[2], frame)
            self._on_call(text, frame, now)
        elif kind in (frames.CALLRESULT, frames.CALLERROR):
            self._on_answer(frame, now)
        elif kind == frames.CALLRESULTERROR:  # 2.1: the CSMS could not process our CALLRESULT; nothing to retry
            self._log("rx", "(CALLRESULTERROR)", frame)
            log.warning("CSMS reported an error for our response: %s", str(text)[:300])
        else:  # SEND (2.1): unconfirmed; v2h implements no SEND messages
            self._log("rx", "(SEND)", frame)
            log.info("ignored SEND frame: %s", str(text)[:300])
        self._pump(now)

    def next_deadline(self) -> float | None:
        times = [t for t in (self._inflight.deadline if self._inflight else None, self._next_boot,
                             self._next_heartbeat if self.online else None,
                             self._retry_at if self.online else None) if t is not None]
        times += [d for d in (t.next_deadline() for t in self.timers) if d is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        self.now = now
        call = self._inflight
        if call is not None and now >= call.deadline:
            self._inflight = None
            if call.on_answer is not None:  # a direct request: its caller applies the offline rule
                log.info("%s got no answer in %.0f s", call.action, self.config.response_timeout)
                call.on_answer(None)
            else:  # the boot or the outbox head: the connection is considered broken
                self.close_requested = f"no answer to {call.action} in {self.config.response_timeout:g} s"
        if self.online and self._next_heartbeat is not None and now >= self._next_heartbeat:
            self._next_heartbeat = now + self.heartbeat_interval
            if not any(d.action == "Heartbeat" for d in self._direct):
                self._direct.append(_Direct("Heartbeat", {}))
        for t in list(self.timers):
            d = t.next_deadline()
            if d is not None and now >= d:
                t.handle_timer(now)
        self._pump(now)

    def data_to_send(self) -> list[str]:
        """The frames to write, in order (and forgets them)."""
        out, self._out = self._out, []
        return out

    # --- internals: sending -----------------------------------------------------------------------
    def _emit(self, direction_name: str, frame: list) -> None:
        self._out.append(frames.dumps(frame))
        self._log("tx", direction_name, frame)
        if self.on_output is not None:
            self.on_output()

    def _log(self, direction: str, name: str, frame) -> None:
        if self.frame_log is not None:
            self.frame_log(direction, name, frame)

    def _send_call(self, message_id: str, action: str, payload: dict, now: float, *, item: QueuedMessage | None = None,
                   on_answer: Answer | None = None) -> None:
        self._inflight = _Call(message_id, action, now + self.config.response_timeout, on_answer, item)
        self._emit(action, [frames.CALL, message_id, action, payload])

    def _pump(self, now: float) -> None:
        """Send the next CALL if none is outstanding: the boot, then direct requests, then the outbox."""
        if not self.connected or self._inflight is not None or self.close_requested:
            return
        if not self.boot_accepted:
            if self._next_boot is not None and now >= self._next_boot:
                self._next_boot = None
                self._send_call(str(uuid.uuid4()), "BootNotification", {"reason": self._boot_reason, "chargingStation": {
                    "vendorName": self.config.vendor, "model": self.config.model}}, now)
            return
        if self._direct:
            d = self._direct.pop(0)
            self._send_call(d.message_id, d.action, d.payload, now, on_answer=d.on_answer or _ignore)
            return
        if self._retry_at is not None and now < self._retry_at:
            return
        self._retry_at = None
        item = self.store.head()
        if item is not None:
            self._send_call(item.message_id, item.action, item.payload, now, item=item)

    def _status(self, evse_id: int, connector_id: int, status: str, now: float) -> None:
        self._direct.append(_Direct("StatusNotification", {"timestamp": iso(now), "connectorStatus": status,
                                                           "evseId": evse_id, "connectorId": connector_id}))
        self._pump(now)

    # --- internals: answers to our CALLs ------------------------------------------------------------
    def _on_answer(self, frame: list, now: float) -> None:
        call = self._inflight
        if call is None or len(frame) < 3 or frame[1] != call.message_id:
            self._log("rx", "(unexpected answer)", frame)
            log.warning("an answer to no outstanding request: %s", str(frame)[:300])
            return
        self._log("rx", f"{call.action}Response" if frame[0] == frames.CALLRESULT else f"{call.action}Error", frame)
        self._inflight = None
        payload, error = read_answer(call, frame)  # a broken answer counts as an error answer
        if call.action == "BootNotification":
            self._on_boot(payload, now)
        elif call.on_answer is not None:
            if error is not None:
                log.warning("CSMS answered %s with %s", call.action, error)
            call.on_answer(payload)
        elif call.item is not None:
            self._on_outbox_answer(call.item, error, now)

    def _on_boot(self, payload: dict | None, now: float) -> None:
        if payload is None:  # CALLERROR: try again after the back-off minimum
            self._next_boot = now + max(self.config.retry_backoff_min, 1.0)
            return
        # the interval is the CSMS's number: bounded before it becomes a timer
        interval = min(max(float(payload["interval"]), 0.0), DAY)
        self.boot_status = payload["status"]
        if payload["status"] != "Accepted":
            self._next_boot = now + (interval or max(self.config.retry_backoff_min, 1.0))
            return
        self.boot_accepted = True
        first = self._boot_reason != "Unknown"
        if interval:  # the CSMS sets the heartbeat at boot (OCPPCommCtrlr.HeartbeatInterval)
            self.heartbeat_interval = interval
            self.device_model.values[("OCPPCommCtrlr", "HeartbeatInterval", None)] = str(int(interval))
        self._next_heartbeat = now + self.heartbeat_interval
        if first:
            self.store.set("boot_reason", None)
        self._boot_reason = "Unknown"  # a reconnect is not a power-up
        self._attempt = 0
        self.offline_since = None
        self._failure_reported = None
        for (evse_id, connector_id), status in self.connector_status.items():  # before anything queued
            self._status(evse_id, connector_id, status, now)
        if first:
            self.security_event("StartupOfTheDevice", now=now)

    def _on_outbox_answer(self, item: QueuedMessage, error: str | None, now: float) -> None:
        if error is not None:
            self._attempts += 1
            log.warning("CSMS answered %s %s with %s", item.action, item.message_id, error)
            if self._attempts < self.config.message_attempts:
                self._retry_at = now + self.config.message_attempt_interval * self._attempts
                return
            rejected = self.store.get("rejected", [])
            rejected.append({"action": item.action, "payload": item.payload, "error": error})
            self.store.set("rejected", rejected)
        self._attempts = 0
        self.store.done(item.id)

    # --- internals: the CSMS's requests ---------------------------------------------------------------
    def _on_call(self, text, frame: list, now: float) -> None:
        _, unique_id, action, payload = frame
        try:
            if self.boot_status == "Rejected":  # part 2 B02: nothing but the boot while Rejected
                raise SecurityError("the CSMS rejected this station's BootNotification")
            answer = answer_call(frame, self.handlers)
        except OCPPError as e:
            self.handler_errors += isinstance(e, HandlerFailed)
            self._after_response.clear()
            self._reject(text, unique_id, e, now)
            return
        self._emit(f"{action}Response", answer)
        hooks, self._after_response = self._after_response, []
        for hook in hooks:
            hook()

    def _reject(self, text, unique_id: str, error: OCPPError, now: float) -> None:
        """Answer with a CALLERROR, keep the connection, and raise InvalidMessages (rate-limited)."""
        raw = text if isinstance(text, str) else repr(text)
        log.warning("invalid message from the CSMS (%s): %s", error.code, raw[:300])
        self._emit("CALLERROR", error_frame(unique_id, error))
        self.security_event("InvalidMessages", f"{error.code}: {raw[:200]}", now=now)

    # --- the device model's effect on the connection --------------------------------------------------
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

    def _set_heartbeat(self, value: str) -> None:
        """A new HeartbeatInterval applies at once."""
        self.heartbeat_interval = float(value)
        if self.online:
            self._next_heartbeat = self.now + self.heartbeat_interval

    def _get_base_report(self, payload: dict) -> dict:
        if payload["reportBase"] == "SummaryInventory":
            return {"status": "NotSupported"}
        now = self.now
        reports = self.device_model.report(payload["requestId"], payload["reportBase"], iso(now))

        def send() -> None:  # after the response: NotifyReport must not overtake GetBaseReportResponse
            for report in reports:
                self.enqueue("NotifyReport", report, now=now)
        self.after_response(send)
        return {"status": "Accepted"}


def _ignore(answer: dict | None) -> None:
    """The answer of a request nobody waits for (StatusNotification, Heartbeat)."""

"""The charging station's OCPP 2.1 core, sans-I/O: OCPP-J frames (text) and ``now`` in, frames
to send, the next deadline and decisions out. No sockets, no clock, no event loop — the asyncio
adapter (``ocpp_bridge.station``) feeds it a websocket, and a simulation feeds it a CSMS core
directly, a day in seconds.

What it does (OCPP 2.1 part 4 for the framing and reconnecting, part 2 for the messages; the
behaviour the OCPP 2.0.1 part 6 test cases check is named by their TC ids):
- Registration (B01–B03): BootNotification after every boot — power-up, reset, firmware update —
  not after a mere reconnect (a registration Accepted before the connection dropped still holds;
  the connectors' status is then reported again, all of them after more than OfflineThreshold
  offline, else the ones that changed: TC_B_51/52). While Pending the CSMS may configure the
  station (Get/SetVariables, GetBaseReport with its NotifyReports, TriggerMessage) and nothing
  else is sent (TC_B_02); while Rejected every CSMS request gets CALLERROR SecurityError
  (TC_B_30); a triggered boot carries reason Triggered.
- One CALL outstanding at a time (part 4 §4.1.1): the boot, then direct requests
  (StatusNotification, Authorize, Heartbeat, reports the CSMS asked for), then the durable outbox
  in order. An outbox message leaves only when answered. No answer within MessageTimeout, or a
  CALLERROR, is a failed attempt: it is sent again MessageAttemptInterval × (attempts so far)
  later, with its message id, at most MessageAttempts times, then set aside in the 'rejected'
  record (E13, TC_E_41/42/50/51); the connection stays up. A lost connection is no attempt: the
  message is sent again after the reconnect.
- TransactionEvents raised while offline carry ``offline=true``.
- Requests from the CSMS are routed to ``handlers`` (camelCase payloads in and out, validated
  against the OCPP 2.1 schemas both ways); whatever a frame holds, it gets an answer or a logged
  drop and the connection stays (unknown action: NotImplemented; known but not handled:
  NotSupported; broken frame: FormationViolation; failing handler: InternalError).
- Network connection profiles (B09/B10): slots from SetNetworkProfile (slot 1 is the start-up
  configuration), NetworkConfigurationPriority at the next boot, NetworkProfileConnectionAttempts
  per slot before the next one is tried; a connection with a higher security profile drops the
  lower ones from the priority list (A05). Reconnects back off per OCPPCommCtrlr
  (RetryBackOffWaitMinimum doubled up to RetryBackOffRepeatTimes, plus RetryBackOffRandomRange ×
  rng(); TC_B_57). A new BasicAuthPassword is used at once: the station reconnects with it
  (TC_A_09).
- TriggerMessage (F06) for BootNotification, Heartbeat and StatusNotification here; the bridge,
  the firmware and the log modules add theirs (``triggers``).
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from ocpp.exceptions import FormationViolationError, OCPPError, SecurityError

from . import frames
from .device_model import DAY, DeviceModel, standard_variables
from .diagnostics import Diagnostics
from .rpc import Answer, HandlerFailed, Outstanding, answer_call, error_frame, read_answer, schema_check
from .store import QueuedMessage, Store
from .times import iso, parse_time  # noqa: F401 (part of this module's surface)

log = logging.getLogger("ocpp_bridge.station")
SECURITY_EVENT_INTERVAL = 60.0  # s: at most one SecurityEventNotification per kind in this time
SECURITY_LOG_ENTRIES = 500      # the security log kept for GetLog (oldest dropped first)
SLOTS = (1, 2)                  # network connection profile slots (1: the start-up configuration)
RECENT_FRAMES = 1000            # the last OCPP frames (time, direction, name) kept for GetLog DiagnosticsLog
# the security event raised at the boot after each kind of restart (appendix 1)
BOOT_EVENTS = {"PowerUp": "StartupOfTheDevice", "RemoteReset": "ResetOrReboot", "ScheduledReset": "ResetOrReboot",
               "FirmwareUpdate": "FirmwareUpdated", "Unknown": "StartupOfTheDevice"}


class ConfigError(ValueError):
    """The station's connection settings are inconsistent (e.g. profile 1 without a password)."""


@dataclass
class StationConfig:
    """Connection settings; names follow the OCPP 2.1 device model where one exists."""

    station_id: str
    csms_url: str                       # ws://… (profile 1) or wss://… (profiles 2, 3)
    password: str | None = None         # SecurityCtrlr.BasicAuthPassword (profiles 1, 2), 16–40 chars
    # roots that sign the CSMS certificate (profiles 2, 3); None: the system's, "": none (all deleted)
    csms_ca: str | Path | None = None
    client_cert: str | Path | None = None  # the station's certificate chain (profile 3)
    client_key: str | Path | None = None
    vendor: str = "v2h"
    model: str = "v2h-bpt"
    response_timeout: float = 30.0      # OCPPCommCtrlr.MessageTimeout (slot 1's messageTimeout)
    retry_backoff_min: float = 3.0      # OCPPCommCtrlr.RetryBackOffWaitMinimum
    retry_backoff_random: float = 10.0  # OCPPCommCtrlr.RetryBackOffRandomRange
    retry_backoff_repeat: int = 5       # OCPPCommCtrlr.RetryBackOffRepeatTimes
    message_attempts: int = 3           # OCPPCommCtrlr.MessageAttempts (TransactionEvent)
    message_attempt_interval: float = 3.0  # OCPPCommCtrlr.MessageAttemptInterval (TransactionEvent)
    firmware_version: str | None = None

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


@dataclass
class NetworkProfile:
    """One slot's NetworkConnectionProfile (SetNetworkProfile connectionData)."""

    slot: int
    url: str                      # ocppCsmsUrl, without the identity
    security_profile: int
    message_timeout: float
    identity: str | None = None   # 2.1: the basic-auth user (default SecurityCtrlr.Identity)
    password: str | None = None   # 2.1: this profile's basicAuthPassword (default SecurityCtrlr's)
    interface: str = "Any"


@dataclass(frozen=True)
class Target:
    """Where and how the adapter connects now: the slot's profile with the station's credentials."""

    slot: int
    url: str                      # the full websocket URL (ocppCsmsUrl + identity)
    station_id: str
    security_profile: int
    password: str | None
    csms_ca: str | Path | None
    client_cert: str | Path | None
    client_key: str | Path | None
    message_timeout: float


def transaction_event(event_type: str, trigger_reason: str, transaction_id: str, *, timestamp: str,
                      evse_id: int = 1, meter_value: list | None = None, charging_state: str | None = None,
                      stopped_reason: str | None = None, id_token: dict | None = None,
                      remote_start_id: int | None = None, connector_id: int = 1, with_evse: bool | None = None) -> dict:
    """A TransactionEvent payload (seqNo and offline are filled in by the store/core)."""
    info: dict = {"transactionId": transaction_id}
    if charging_state:
        info["chargingState"] = charging_state
    if stopped_reason:
        info["stoppedReason"] = stopped_reason
    payload: dict = {"eventType": event_type, "timestamp": timestamp, "triggerReason": trigger_reason,
                     "transactionInfo": info}
    if with_evse or (with_evse is None and event_type == "Started"):
        payload["evse"] = {"id": evse_id, "connectorId": connector_id}
    if meter_value:
        payload["meterValue"] = meter_value
    if id_token:
        payload["idToken"] = id_token
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    return payload


class TimerSource(Protocol):
    """Something above the core with its own timers (the bridge's meter values, firmware)."""

    def next_deadline(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...


Trigger = Callable[[dict | None, float], str]  # (evse, now) → TriggerMessage status; sends after the answer


@dataclass
class _Call(Outstanding):
    """The CALL waiting for its answer: an outbox message, a direct request or the boot."""

    item: QueuedMessage | None = None   # from the outbox


@dataclass
class _Direct:
    action: str
    payload: dict
    on_answer: Answer | None = None
    while_pending: bool = False        # asked for by the CSMS: may go out while the boot is Pending
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class StationCore:
    """One charging station's OCPP state: the connection's lifecycle, the registration, the
    outstanding CALL, the outbox, the CSMS's requests. Drive it with ``connection_made``,
    ``receive``, ``handle_timer`` at ``next_deadline()``, ``connection_lost``/``connect_failed``;
    send what ``data_to_send()`` returns; close the connection when ``close_requested`` is set;
    connect to ``connect_target()`` at ``next_connect_at()``."""

    def __init__(self, config: StationConfig, store: Store, *, now: float, rng: Callable[[], float] = random.random,
                 frame_log: Callable[[str, str, object], None] | None = None):
        config.check()
        self.config = config
        self.store = store
        self.rng = rng
        self.frame_log = frame_log  # (direction, name, frame): every OCPP-J frame, for the JSON-lines log
        self.on_output: Callable[[], None] | None = None  # the adapter's wake-up: frames or deadlines changed
        self.handlers: dict[str, Callable[[dict], dict]] = {}  # CSMS-initiated actions → camelCase in/out
        self.triggers: dict[str, Trigger] = {}                  # TriggerMessage requestedMessage → its sender
        self.timers: list[TimerSource] = []
        self.outbox_answered: list[Callable[[QueuedMessage, dict], None]] = []  # a CALLRESULT for the outbox
        self.on_registered: list[Callable[[], None]] = []  # once, after the next BootNotification Accepted
        self.transfer = None             # FileTransfer (firmware in, logs out): the adapter's, if any
        # a valid CSMS root is installed (A05.FR.02: no higher security profile without one): the
        # start-up --csms-ca, unless certificate management (StationCertificates) says what is installed
        self.has_csms_root: Callable[[], bool] = lambda: bool(self.config.csms_ca)
        self.recent: deque[tuple[float, str, str]] = deque(maxlen=RECENT_FRAMES)  # for the diagnostics log
        self.connected = False           # the websocket is open
        self.registration: str | None = None  # None until the first BootNotification answer since power-up
        self.offline_since: float | None = now
        self.heartbeat_interval = 60.0
        self.close_requested: str | None = None
        self.connector_status: dict[tuple[int, int], str] = {(1, 1): "Available"}
        self.handler_errors = 0          # CSMS requests whose handler failed (answered InternalError)
        self.now = now                   # the latest time the core was given
        self._sent_status: dict[tuple[int, int], str] = {}
        self._out: list[str] = []
        self._inflight: _Call | None = None
        self._direct: list[_Direct] = []
        self._next_boot: float | None = None
        self._boot_triggered = False
        self._next_heartbeat: float | None = None
        self._retry_at: float | None = None    # the outbox head after a failed attempt
        self._attempts = 0                     # failed attempts (CALLERROR, no answer) of the outbox head
        self._attempt = 0                      # connection attempts that failed in a row
        self._next_connect = now
        self._reconnect_now = False
        self._boot_reason = store.get("boot_reason") or "PowerUp"  # RemoteReset after a Reset, …
        self._failure_reported: str | None = None  # the security event raised for the current failure streak
        self._security_events: dict[str, tuple[float, int]] = {}  # kind → (last reported, suppressed since)
        self._after_response: list[Callable[[], None]] = []
        self.device_model = DeviceModel(standard_variables(
            identity=config.station_id, security_profile=config.security_profile, secc_id=config.station_id,
            retry_min=config.retry_backoff_min, retry_random=config.retry_backoff_random,
            retry_repeat=config.retry_backoff_repeat, message_timeout=config.response_timeout,
            message_attempts=config.message_attempts, slots=tuple(str(s) for s in SLOTS)), store)
        # network connection profiles: slot 1 is the start-up configuration unless the CSMS replaced it
        self.profiles: dict[int, NetworkProfile] = {1: NetworkProfile(1, config.csms_url, config.security_profile,
                                                                      config.response_timeout)}
        for raw in store.get("network_profiles", []):
            self.profiles[raw["slot"]] = NetworkProfile(**raw)
        self.priority = self._read_priority()
        # C-47: when every slot of the priority list failed, the slot that worked last (before a
        # new priority list took effect) with the ordinary back-off
        fallback = store.get("last_good_slot")
        self._order = self.priority + ([fallback] if fallback in self.profiles and fallback not in self.priority
                                       else [])
        self.active_slot = self.priority[0]
        self._slot_index = 0
        self._slot_failures = 0
        self._wire_device_model()
        self.diagnostics = Diagnostics(self)  # GetLog, CustomerInformation

    # --- state ----------------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        """Connected and registered (BootNotification Accepted): messages flow."""
        return self.connected and self.registration == "Accepted"

    @property
    def boot_accepted(self) -> bool:
        return self.online

    @property
    def boot_status(self) -> str | None:
        return self.registration

    def offline_for(self, now: float) -> float:
        """Seconds since the CSMS was last reachable (0 while online)."""
        return 0.0 if self.online or self.offline_since is None else max(0.0, now - self.offline_since)

    @property
    def response_timeout(self) -> float:
        """OCPPCommCtrlr.MessageTimeout: the active profile's messageTimeout."""
        return self.profiles[self.active_slot].message_timeout

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

    def request(self, action: str, payload: dict, *, now: float, on_answer: Answer | None = None,
                while_pending: bool = False) -> None:
        """A request whose answer matters only now (Authorize, StatusNotification, a report the
        CSMS asked for): sent before the outbox, not stored. ``on_answer`` gets the CALLRESULT
        payload, or None offline, on a CALLERROR, a timeout or a lost connection, so the caller
        applies its offline rule. ``while_pending``: the CSMS asked for it, so it may go out while
        the registration is Pending."""
        schema_check(action, payload)
        if not (self.online or (self.connected and while_pending and self.registration == "Pending")):
            if on_answer is not None:
                on_answer(None)
            return
        self._direct.append(_Direct(action, payload, on_answer, while_pending))
        self._pump(now)

    def set_connector_status(self, evse_id: int, connector_id: int, status: str, *, now: float,
                             force: bool = False) -> None:
        """StatusNotification: sent now if online and it changed (or ``force``), else the
        current status after the next connection (a status is a state, not an event)."""
        key = (evse_id, connector_id)
        changed = self.connector_status.get(key) != status
        self.connector_status[key] = status
        if self.online and (changed or force or self._sent_status.get(key) != status):
            self._status(evse_id, connector_id, status, now)

    def security_event(self, kind: str, tech_info: str = "", *, now: float) -> None:
        """Queue a SecurityEventNotification (it must reach the CSMS even if raised offline),
        at most one per kind every SECURITY_EVENT_INTERVAL: a flood of bad frames must not flood
        the durable outbox; the next report says how many were left out. Every event is kept in
        the security log (GetLog SecurityLog), the last SECURITY_LOG_ENTRIES of them."""
        entries = self.store.get("security_log", [])
        entries.append({"timestamp": iso(now), "type": kind, **({"techInfo": tech_info[:255]} if tech_info else {})})
        self.store.set("security_log", entries[-SECURITY_LOG_ENTRIES:])
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

    def transaction_messages(self, transaction_id: str | None = None) -> bool:
        """Whether the outbox still holds TransactionEvents (of ``transaction_id``, or any)."""
        return self.store.has_transaction_messages(transaction_id)

    # --- the connection -------------------------------------------------------------------------
    def next_connect_at(self) -> float:
        """When the adapter should try to connect (back-off after a failure or a loss)."""
        return self._next_connect

    def connect_target(self) -> Target:
        """The slot to connect to now (NetworkConfigurationPriority, NetworkProfileConnectionAttempts)."""
        slot = self._order[self._slot_index % len(self._order)]
        p, c = self.profiles[slot], self.config
        identity = p.identity or c.station_id
        return Target(slot, f"{p.url.rstrip('/')}/{identity}", identity, p.security_profile,
                      p.password or c.password, c.csms_ca, c.client_cert if p.security_profile == 3 else None,
                      c.client_key if p.security_profile == 3 else None, p.message_timeout)

    def connection_made(self, now: float) -> None:
        """The websocket is open. A station whose registration was Accepted (and not rebooted
        since) goes on where it was; otherwise it boots."""
        self.now = now
        self.connected = True
        self.close_requested = None
        self._inflight = None
        self._attempt = 0
        self._slot_failures = 0
        slot = self._order[self._slot_index % len(self._order)]
        self._use_slot(slot)
        if self.registration == "Accepted":
            self._resume(now)
        else:
            self._next_boot = now
        self._pump(now)

    def connection_lost(self, now: float, reason: str = "") -> None:
        """The websocket closed: the outstanding outbox message is resent after the reconnect
        (same message id, no attempt counted); direct requests get no answer (their callers apply
        the offline rule)."""
        self.now = now
        if self.online:
            self.offline_since = now
        was_connected = self.connected
        self.connected = False
        pending, self._direct = self._direct, []
        if self._inflight is not None and self._inflight.on_answer is not None:
            pending.insert(0, _Direct(self._inflight.action, {}, self._inflight.on_answer))
        self._inflight = None
        self._next_boot = self._next_heartbeat = None
        if self._reconnect_now:  # closed on purpose to use new credentials: no back-off
            self._reconnect_now = False
            self._next_connect = now
        else:
            self._schedule_connect(now)
        if was_connected:
            log.info("CSMS connection lost: %s", reason or "closed")
        for d in pending:
            if d.on_answer is not None:
                d.on_answer(None)

    def connect_failed(self, now: float, reason: str, security_event: str | None = None) -> None:
        """A connection attempt failed; ``security_event`` (FailedToAuthenticateAtCsms,
        InvalidCsmsCertificate) is raised once per failure streak, not once per retry. After
        NetworkProfileConnectionAttempts failures the next slot of the priority list is tried."""
        self.now = now
        if security_event is not None and self._failure_reported != security_event:
            self._failure_reported = security_event
            self.security_event(security_event, reason, now=now)
        self._slot_failures += 1
        if self._slot_failures >= int(self.device_model.value("OCPPCommCtrlr", "NetworkProfileConnectionAttempts")):
            self._slot_failures = 0
            last = self._slot_index >= len(self._order) - 1
            if not (last and len(self._order) > len(self.priority)):  # on the fallback slot: it stays
                self._slot_index = 0 if last else self._slot_index + 1
        self._schedule_connect(now)

    def backoff(self, attempt: int) -> float:
        """RetryBackOffWaitMinimum doubled per attempt (up to RepeatTimes doublings) plus a
        random part up to RetryBackOffRandomRange."""
        c = self.config
        return c.retry_backoff_min * 2 ** min(attempt, c.retry_backoff_repeat) + self.rng() * c.retry_backoff_random

    def reconnect(self, reason: str) -> None:
        """Close this connection and connect again at once (new credentials, a new profile)."""
        if self.connected:
            self._reconnect_now = True
            self.close_requested = reason
            self.changed()

    def _schedule_connect(self, now: float) -> None:
        self._next_connect = now + self.backoff(self._attempt)
        self._attempt += 1

    def _use_slot(self, slot: int) -> None:
        """Connected with ``slot``: it is the active profile; a higher security profile than
        before drops the lower slots from the priority list (no way back down, A05)."""
        self.active_slot = slot
        self.store.set("last_good_slot", slot)
        level = self.profiles[slot].security_profile
        kept = [s for s in self.priority if self.profiles[s].security_profile >= level]
        if kept and kept != self.priority:
            self.priority = kept
            self._order = kept + [s for s in self._order if s not in kept and s == slot]
            self._slot_index = self._order.index(slot)
            value = ",".join(str(s) for s in kept)
            self.device_model.values[("OCPPCommCtrlr", None, None, "NetworkConfigurationPriority", None)] = value
            saved = self.store.get("device_model", {})
            saved["OCPPCommCtrlr/NetworkConfigurationPriority/"] = value
            self.store.set("device_model", saved)

    def _read_priority(self) -> list[int]:
        text = self.device_model.value("OCPPCommCtrlr", "NetworkConfigurationPriority")
        slots = [int(s) for s in text.split(",") if s.strip().isdigit() and int(s) in self.profiles]
        return slots or [1]

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
        """The earliest of the core's own deadlines and its timer sources' (asked several times
        per charge loop: kept as it goes, with the comparisons ``min`` would make, in its order)."""
        best = self._inflight.deadline if self._inflight else None
        if self.connected:
            t = self._next_boot
            if t is not None and (best is None or t < best):
                best = t
            if self.online:
                for t in (self._next_heartbeat, self._retry_at):
                    if t is not None and (best is None or t < best):
                        best = t
        for source in self.timers:
            t = source.next_deadline()
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, now: float) -> None:
        self.now = now
        call = self._inflight
        if call is not None and now >= call.deadline:
            self._inflight = None
            if call.item is not None:  # the outbox head: a failed attempt
                log.info("%s got no answer in %.0f s", call.action, self.response_timeout)
                self._outbox_failed(call.item, "no answer", now)
            elif call.on_answer is not None:  # a direct request: its caller applies the offline rule
                log.info("%s got no answer in %.0f s", call.action, self.response_timeout)
                call.on_answer(None)
            elif call.action == "BootNotification":  # no registration without an answer: a broken link
                self.close_requested = f"no answer to BootNotification in {self.response_timeout:g} s"
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
        self.recent.append((self.now, direction, name))
        if self.frame_log is not None:
            self.frame_log(direction, name, frame)

    def _send_call(self, message_id: str, action: str, payload: dict, now: float, *, item: QueuedMessage | None = None,
                   on_answer: Answer | None = None) -> None:
        self._inflight = _Call(message_id, action, now + self.response_timeout, on_answer, item)
        self._emit(action, [frames.CALL, message_id, action, payload])

    def _pump(self, now: float) -> None:
        """Send the next CALL if none is outstanding: the boot, then direct requests, then the outbox."""
        if not self.connected or self._inflight is not None or self.close_requested:
            return
        if self.registration != "Accepted":
            if self._next_boot is not None and now >= self._next_boot:
                self._next_boot = None
                reason = "Triggered" if self._boot_triggered else self._boot_reason
                self._boot_triggered = False
                charging_station = {"vendorName": self.config.vendor, "model": self.config.model}
                if self.config.firmware_version:
                    charging_station["firmwareVersion"] = self.config.firmware_version
                self._send_call(str(uuid.uuid4()), "BootNotification",
                                {"reason": reason, "chargingStation": charging_station}, now)
            elif self.registration == "Pending":
                for n, d in enumerate(self._direct):
                    if d.while_pending:
                        del self._direct[n]
                        self._send_call(d.message_id, d.action, d.payload, now, on_answer=d.on_answer or _ignore)
                        break
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
        self._sent_status[(evse_id, connector_id)] = status
        self._direct.append(_Direct("StatusNotification", {"timestamp": iso(now), "connectorStatus": status,
                                                           "evseId": evse_id, "connectorId": connector_id},
                                    while_pending=False))
        self._pump(now)

    def _resume(self, now: float) -> None:
        """Reconnected without a reboot: the registration holds. The connectors' status again —
        all of them after more than OfflineThreshold offline, else the ones that changed (B04)."""
        offline = now - self.offline_since if self.offline_since is not None else math.inf
        self.offline_since = None
        self._failure_reported = None
        self._next_heartbeat = now + self.heartbeat_interval
        threshold = float(self.device_model.value("OCPPCommCtrlr", "OfflineThreshold"))
        for key, status in self.connector_status.items():
            if offline > threshold or self._sent_status.get(key) != status:
                self._status(*key, status, now)

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
        elif call.item is not None:
            if error is not None:
                log.warning("CSMS answered %s %s with %s", call.item.action, call.item.message_id, error)
                self._outbox_failed(call.item, error, now)
            else:
                self._attempts = 0
                self.store.done(call.item.id)
                for hook in self.outbox_answered:
                    hook(call.item, payload)
        elif call.on_answer is not None:
            if error is not None:
                log.warning("CSMS answered %s with %s", call.action, error)
            call.on_answer(payload)

    def _outbox_failed(self, item: QueuedMessage, error: str, now: float) -> None:
        """A failed attempt (CALLERROR, no answer): again after MessageAttemptInterval × attempts,
        at most MessageAttempts sends, then the message is set aside (E13)."""
        self._attempts += 1
        if self._attempts < self.config.message_attempts:
            self._retry_at = now + self.config.message_attempt_interval * self._attempts
            return
        rejected = self.store.get("rejected", [])
        rejected.append({"action": item.action, "payload": item.payload, "error": error})
        self.store.set("rejected", rejected[-1000:])
        self._attempts = 0
        self.store.done(item.id)

    def _on_boot(self, payload: dict | None, now: float) -> None:
        if payload is None:  # CALLERROR: try again after the back-off minimum
            self._next_boot = now + max(self.config.retry_backoff_min, 1.0)
            return
        # the interval is the CSMS's number: bounded before it becomes a timer
        interval = min(max(float(payload["interval"]), 0.0), DAY)
        self.registration = payload["status"]
        if payload["status"] != "Accepted":
            self._next_boot = now + (interval or max(self.config.retry_backoff_min, 1.0))
            if payload["status"] == "Rejected":
                self._direct = []  # nothing but the boot while Rejected (B03)
            return
        if interval:  # the CSMS sets the heartbeat at boot (OCPPCommCtrlr.HeartbeatInterval)
            self.heartbeat_interval = interval
            self.device_model.set_value("OCPPCommCtrlr", "HeartbeatInterval", str(int(interval)))
        self._next_heartbeat = now + self.heartbeat_interval
        reason = self._boot_reason
        self.store.set("boot_reason", None)
        self._boot_reason = "PowerUp"
        self.offline_since = None
        self._failure_reported = None
        self._sent_status = {}
        for (evse_id, connector_id), status in self.connector_status.items():  # before anything queued
            self._status(evse_id, connector_id, status, now)
        self.security_event(BOOT_EVENTS.get(reason, "StartupOfTheDevice"), now=now)
        hooks, self.on_registered = self.on_registered, []
        for hook in hooks:
            hook()

    # --- internals: the CSMS's requests ---------------------------------------------------------------
    def _on_call(self, text, frame: list, now: float) -> None:
        _, unique_id, action, payload = frame
        try:
            if self.registration == "Rejected":  # B03.FR.08: nothing but the boot while Rejected
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
        """Answer with a CALLERROR, keep the connection, and raise InvalidMessages (rate-limited;
        not for a request refused because the station is not registered)."""
        raw = text if isinstance(text, str) else repr(text)
        log.warning("refused a message from the CSMS (%s): %s", error.code, raw[:300])
        self._emit("CALLERROR", error_frame(unique_id, error))
        if not isinstance(error, SecurityError):
            self.security_event("InvalidMessages", f"{error.code}: {raw[:200]}", now=now)

    # --- the device model's effect on the connection --------------------------------------------------
    def _wire_device_model(self) -> None:
        """The OCPPCommCtrlr/SecurityCtrlr variables the CSMS may set, applied to this station,
        and the requests of the core itself."""
        c, dm = self.config, self.device_model
        self.handlers.update({"GetVariables": dm.get_variables, "SetVariables": dm.set_variables,
                              "GetBaseReport": self._get_base_report, "TriggerMessage": self._trigger_message,
                              "SetNetworkProfile": self._set_network_profile, "DataTransfer": self._data_transfer})
        self.triggers.update({"BootNotification": self._trigger_boot, "Heartbeat": self._trigger_heartbeat,
                              "StatusNotification": self._trigger_status})

        def setter(attr: str, cast=float):
            return lambda v: setattr(c, attr, cast(v))
        dm.listen("OCPPCommCtrlr", "HeartbeatInterval", self._set_heartbeat)
        dm.listen("OCPPCommCtrlr", "MessageAttempts", setter("message_attempts", int), instance="TransactionEvent")
        dm.listen("OCPPCommCtrlr", "MessageAttemptInterval", setter("message_attempt_interval"),
                  instance="TransactionEvent")
        dm.listen("OCPPCommCtrlr", "RetryBackOffWaitMinimum", setter("retry_backoff_min"))
        dm.listen("OCPPCommCtrlr", "RetryBackOffRandomRange", setter("retry_backoff_random"))
        dm.listen("OCPPCommCtrlr", "RetryBackOffRepeatTimes", setter("retry_backoff_repeat", int))
        dm.get("OCPPCommCtrlr", "MessageTimeout", lambda: str(int(self.response_timeout)), instance="Default")
        dm.get("OCPPCommCtrlr", "ActiveNetworkProfile", lambda: str(self.active_slot))
        dm.get("SecurityCtrlr", "SecurityProfile", lambda: str(self.profiles[self.active_slot].security_profile))
        dm.get("SecurityCtrlr", "CertificateEntries", lambda: "1" if c.csms_ca else "0")
        dm.get("ClockCtrlr", "DateTime", lambda: iso(self.now))
        dm.validate("OCPPCommCtrlr", "NetworkConfigurationPriority", self._check_priority)
        dm.validate("SecurityCtrlr", "BasicAuthPassword", _check_password)
        # a new password is used at once: the station reconnects with it (A01)
        dm.listen("SecurityCtrlr", "BasicAuthPassword", self._set_password)

    def _set_password(self, value: str) -> None:
        if not value:
            return
        self.config.password = value
        for p in self.profiles.values():  # a profile's own password gives way to the new one
            p.password = None
        self._save_profiles()
        self.after_response(lambda: self.reconnect("new BasicAuthPassword"))

    def _set_heartbeat(self, value: str) -> None:
        """A new HeartbeatInterval applies at once."""
        self.heartbeat_interval = float(value)
        if self.online:
            self._next_heartbeat = self.now + self.heartbeat_interval

    def _check_priority(self, value: str) -> str | None:
        active = self.profiles[self.active_slot].security_profile
        for s in value.split(","):
            if int(s) not in self.profiles:
                return f"slot {s} has no network connection profile"
            level = self.profiles[int(s)].security_profile
            if level < active:
                return f"slot {s} has a lower security profile than the one in use"
            if level > active and level >= 2 and not self.has_csms_root():  # A05.FR.02
                return f"slot {s} has security profile {level}, and no valid CSMSRootCertificate is installed"
        return None

    def _get_base_report(self, payload: dict) -> dict:
        if payload["reportBase"] == "SummaryInventory":
            return {"status": "NotSupported", "statusInfo": {"reasonCode": "UnsupportedParam"}}
        now = self.now
        reports = self.device_model.report(payload["requestId"], payload["reportBase"], iso(now))

        def send() -> None:  # after the response: NotifyReport must not overtake GetBaseReportResponse
            for report in reports:
                self.request("NotifyReport", report, now=now, while_pending=True)
        self.after_response(send)
        return {"status": "Accepted"}

    def _data_transfer(self, payload: dict) -> dict:
        """P01: v2h implements no vendor-specific messages."""
        return {"status": "UnknownVendorId"}

    # --- TriggerMessage (F06) ---------------------------------------------------------------------
    def _trigger_message(self, payload: dict) -> dict:
        trigger = self.triggers.get(payload["requestedMessage"])
        if trigger is None:
            return {"status": "NotImplemented"}
        evse = payload.get("evse")
        if evse is not None and evse["id"] not in (0, 1):  # v2h has one EVSE
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        return {"status": trigger(evse, self.now)}

    def _trigger_boot(self, evse: dict | None, now: float) -> str:
        if self.registration == "Accepted":  # F06.FR.17: no BootNotification once Accepted
            return "Rejected"

        def boot() -> None:
            self._boot_triggered = True
            self._next_boot = self.now
        self.after_response(boot)
        return "Accepted"

    def _trigger_heartbeat(self, evse: dict | None, now: float) -> str:
        self.after_response(lambda: self.request("Heartbeat", {}, now=self.now, while_pending=True))
        return "Accepted"

    def _trigger_status(self, evse: dict | None, now: float) -> str:
        keys = [k for k in self.connector_status
                if evse is None or evse["id"] in (0, k[0]) and evse.get("connectorId", k[1]) == k[1]]
        if not keys:
            return "Rejected"

        def send() -> None:
            for key in keys:
                status = self.connector_status[key]
                self._sent_status[key] = status
                self.request("StatusNotification", {"timestamp": iso(self.now), "connectorStatus": status,
                                                    "evseId": key[0], "connectorId": key[1]},
                             now=self.now, while_pending=True)
        self.after_response(send)
        return "Accepted"

    # --- SetNetworkProfile (B09) --------------------------------------------------------------------
    def _set_network_profile(self, payload: dict) -> dict:
        slot, data = payload["configurationSlot"], payload["connectionData"]

        def rejected(why: str) -> dict:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidNetworkConf", "additionalInfo": why}}
        if slot not in SLOTS:
            return rejected(f"configurationSlot must be one of {','.join(map(str, SLOTS))}")
        if slot == self.active_slot and self.connected:
            return rejected("the slot is in use")
        level = data["securityProfile"]
        if level not in (1, 2, 3):
            return rejected("securityProfile must be 1, 2 or 3")
        if level < self.profiles[self.active_slot].security_profile:
            return rejected("the security profile may not be lowered")  # B09.FR.04
        url = data["ocppCsmsUrl"]
        try:
            parts = urlsplit(url)
        except ValueError:
            return rejected("ocppCsmsUrl is not a URL")
        if parts.scheme != ("ws" if level == 1 else "wss") or not parts.hostname:
            return rejected(f"security profile {level} needs a {'ws' if level == 1 else 'wss'}:// URL")
        if data.get("ocppTransport", "JSON") != "JSON":
            return rejected("only OCPP-J (JSON)")
        timeout = data["messageTimeout"]
        if not 1 <= timeout <= 600:
            return rejected("messageTimeout must be 1..600 s")
        password = data.get("basicAuthPassword")
        if password is not None and _check_password(password) is not None:
            return rejected("basicAuthPassword must be 16..40 characters of identifierString")
        if level in (1, 2) and not (password or self.config.password):
            return rejected("no BasicAuthPassword for security profile 1 or 2")
        if level == 3 and not self.config.client_cert:
            return rejected("no charging station certificate for security profile 3")
        self.profiles[slot] = NetworkProfile(slot, url, level, float(timeout), data.get("identity"), password,
                                             data.get("ocppInterface", "Any"))
        self._save_profiles()
        return {"status": "Accepted"}

    def _save_profiles(self) -> None:
        self.store.set("network_profiles", [asdict(p) for s, p in sorted(self.profiles.items()) if s != 1
                                            or p != NetworkProfile(1, self.config.csms_url,
                                                                   self.config.security_profile,
                                                                   self.config.response_timeout)])


def _check_password(value: str) -> str | None:
    """A BasicAuthPassword: 16 to 40 characters of identifierString (part 2 §2.1.4)."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-_=:+|@.")
    if not 16 <= len(value) <= 40 or not set(value) <= allowed:
        return "a password is 16 to 40 characters of a-z A-Z 0-9 * - _ = : + | @ ."
    return None


def _ignore(answer: dict | None) -> None:
    """The answer of a request nobody waits for (StatusNotification, Heartbeat)."""

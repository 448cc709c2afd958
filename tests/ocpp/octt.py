"""The OCA test system's side of the OCPP 2.0.1 part 6 charging-station test cases, in memory.

``OCTT`` plays the CSMS the way the OCA Compliance Testing Tool does: it expects the station's
requests in order (``expect``), answers them (by default with a schema-valid Accepted answer),
sends its own requests and reads the answers (``call``), and asserts silence (``quiet``). Below
it runs what `v2h charger` runs minus the sockets: the station core, the OCPP bridge, a
simulated DC power stage, and, when a car is plugged in, a real ISO 15118-20 session between the
charger's SECC and a simulated car (EVCC) over V2GTP/EXI bytes — the "manual actions" of the
test cases (connect the EV, the EV suspends, disconnect) act on that car and on the cable the
bridge's control pilot input reports. Time is simulated: a test of an hour runs in a second.

The station reboots as the process would (``reboot``, or the bridge's ``on_reset``): a new core
and bridge on the same store (the charger's SQLite file), the cable still in the car.

Every frame either way is checked against the OCPP 2.1 JSON schemas (the station speaks 2.1;
the 2.0.1 test cases' messages are kept by 2.1).
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from iso15118.evcc import Battery, EVCCConfig, EVCCSession
from iso15118.secc import EVSEController, SECCConfig, SECCSession, SimulatedPowerStage
from iso15118.v2gtp import V2GTPDecoder
from ocpp_bridge.bridge import OCPPBridge
from ocpp_bridge.core import StationConfig, StationCore, iso
from ocpp_bridge.rpc import schema_check
from ocpp_bridge.store import MemoryStore

T0 = 1_900_000_000.0          # 2030-03-17T17:46:40Z, a whole second
STATION = "CS001"
URL = "ws://octt.invalid/ocpp"
PASSWORD = "octt-basic-auth-password-1"
TOKEN = {"idToken": "DEADBEEF", "type": "ISO14443"}

# the OCTT's answer to each request of the station (a function of the OCTT for the ones that carry time)
ANSWERS = {
    "BootNotification": lambda o: {"currentTime": iso(o.now), "interval": o.heartbeat_interval,
                                   "status": o.boot_status},
    "Heartbeat": lambda o: {"currentTime": iso(o.now)},
    "Authorize": lambda o: {"idTokenInfo": {"status": o.authorize_status}},
    "NotifyEVChargingNeeds": lambda o: {"status": "Accepted"},
    "NotifyEVChargingSchedule": lambda o: {"status": "Accepted"},
}
BACKGROUND = frozenset({"Heartbeat", "NotifyEVChargingNeeds", "NotifyEVChargingSchedule", "MeterValues"})
# TransactionEvents the OCTT answers while it waits (the transaction's "<Configured Transaction
# Duration>"): periodic meter values and power changes, unless a step asks for them
BACKGROUND_TRIGGERS = frozenset({"MeterValuePeriodic", "ChargingRateChanged"})


@dataclass
class Msg:
    """A request of the station."""

    t: float
    id: str
    action: str
    payload: dict
    answered: bool = False

    def __getitem__(self, key):
        return self.payload[key]

    def get(self, key, default=None):
        return self.payload.get(key, default)


@dataclass
class Attempt:
    t: float
    url: str
    slot: int
    accepted: bool
    security_profile: int
    password: str | None


class Files:
    """The OCTT's file server (firmware images to fetch, log files received) on the simulated
    clock: a transfer takes ``delay`` seconds; a missing file or ``refuse_uploads`` fails it."""

    def __init__(self, octt: OCTT):
        self.octt = octt
        self.files: dict[str, bytes] = {}
        self.uploads: list[tuple[float, str, str, bytes]] = []
        self.downloads: list[tuple[float, str]] = []
        self.delay = 2.0
        self.refuse_uploads = False

    def download(self, url: str, done) -> None:
        self.downloads.append((self.octt.now, url))
        data = self.files.get(url)
        self.octt.later(self.delay, lambda: done(data, None if data is not None else "HTTP Error 404: Not Found",
                                                 self.octt.now))

    def upload(self, url: str, filename: str, data: bytes, done) -> None:
        def finish() -> None:
            if self.refuse_uploads:
                done("HTTP Error 500: Internal Server Error", self.octt.now)
            else:
                self.uploads.append((self.octt.now, url, filename, data))
                done(None, self.octt.now)
        self.octt.later(self.delay, finish)


class SimulatedInstaller:
    """A firmware installer for the tests: installs after a restart (or at once), with the
    outcome the test chooses; what it installed is kept."""

    def __init__(self):
        self.reboot = True
        self.outcome = "Installed"        # after the restart (or at once without one)
        self.installed: list[tuple[int, bytes]] = []

    def install(self, image: bytes, request_id: int, now: float) -> str:
        self.installed.append((request_id, image))
        return "RebootRequired" if self.reboot else self.outcome

    def after_reboot(self, request_id: int) -> str:
        return self.outcome


@dataclass
class Car:
    battery: Battery = field(default_factory=lambda: Battery(soc=50.0))
    config: EVCCConfig = field(default_factory=lambda: EVCCConfig(service="DC_BPT", loops=10**6, loop_period=0.25))


class OCTT:
    """One test case's CSMS and the world around the station (the car, the cable, the clock)."""

    def __init__(self, *, config: dict | None = None, bridge: dict | None = None, boot: bool = True,
                 store=None, cable: bool = False, extras=None, firmware_roots=None, url: str = URL):
        self.now = T0
        self.url = url
        self.store = store if store is not None else MemoryStore()
        self.config_kw = {"password": PASSWORD, "retry_backoff_min": 1.0, "retry_backoff_random": 0.0,
                          "retry_backoff_repeat": 2, "message_attempt_interval": 5.0, **(config or {})}
        self.bridge_kw = bridge or {}
        self.extras = extras  # builds more of the station around core and bridge (firmware, logs)
        self.passwords = {STATION: self.config_kw["password"]}
        self.endpoints: dict[str, bool] = {url.rstrip("/"): True}   # ocppCsmsUrl → accepting connections
        self.tls_endpoints: set[str] = {url.rstrip("/")} if url.startswith("wss:") else set()  # TLS (wss://)
        self.boot_status = "Accepted"
        self.authorize_status = "Accepted"
        self.heartbeat_interval = 86400
        self.background = set(BACKGROUND)
        self.background_triggers = set(BACKGROUND_TRIGGERS)
        # like the OCTT, every request is answered as it arrives (the test still reads them in
        # order with expect); the actions in ``hold`` wait for the test's own answer
        self.hold: set[str] = set()
        self.inbox: deque[Msg] = deque()
        self.frames: list[tuple[float, str, list]] = []  # every frame: (t, 'cs' | 'csms', frame)
        self.attempts: list[Attempt] = []
        self.answers: dict[str, list] = {}
        self.connected = False
        self.plugged = cable
        self.secc: SECCSession | None = None
        self.evcc: EVCCSession | None = None
        self.stage = SimulatedPowerStage(kind="DC")  # the hardware survives a reboot
        self.reboots = 0
        self._reboot_wanted: float | None = None
        self._queue: list = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._later: list = []
        self.files = Files(self)
        self.installer = SimulatedInstaller()
        self.firmware_roots = firmware_roots or []
        self.power_on()
        if boot:
            self.booted()

    # --- the station -----------------------------------------------------------------------------
    def power_on(self) -> None:
        """The charger starts (first power-up or a reboot): core and bridge on the stored state."""
        self.core = StationCore(StationConfig(STATION, self.url, **self.config_kw), self.store, now=self.now,
                                rng=lambda: 0.0)
        self.core.transfer = self.files
        self.bridge = OCPPBridge(self.stage, self.core, clock_offset=0.0, cable_sensor=True, cable=self.plugged,
                                 installer=self.installer, firmware_roots=self.firmware_roots, **self.bridge_kw)
        self.bridge.on_reset = self._reset_requested
        self.parts = self.extras(self) if self.extras is not None else None
        self.connected = False

    def reboot(self) -> None:
        """Power cycle: the process is gone (its connections with it), the store and the cable stay."""
        if self.connected:
            self.connected = False
        self._end_session()
        self.reboots += 1
        self._reboot_wanted = None
        self.power_on()

    def _reset_requested(self) -> None:
        # `v2h charger` stops the SECC, hands the CSMS what is queued (up to 10 s), then re-executes
        self._reboot_wanted = self.now

    # --- time ----------------------------------------------------------------------------------------
    def run(self, seconds: float) -> None:
        self.run_until(lambda: False, seconds, fail=False)

    def run_until(self, predicate, timeout: float = 120.0, *, fail: bool = True, what: str = "condition") -> None:
        end = self.now + timeout
        while not predicate():
            t = self._next_time()
            if t is None or t > end:
                self.now = max(self.now, end)
                if fail:
                    raise AssertionError(f"{what} not reached within {timeout:g} s (inbox: "
                                         f"{[m.action for m in self.inbox]})")
                return
            self.now = max(self.now, t)
            self._step()

    def later(self, delay: float, fn) -> None:
        """Run ``fn()`` ``delay`` simulated seconds from now (the file server's answers)."""
        heapq.heappush(self._later, (self.now + delay, next(self._seq), fn))

    def _next_time(self) -> float | None:
        times = [self.core.next_deadline()]
        if self._later:
            times.append(self._later[0][0])
        if not self.connected:
            times.append(self.core.next_connect_at())
        for end in (self.secc, self.evcc):
            if end is not None and not end.closed:
                times.append(end.next_deadline())
        if self._queue:
            times.append(self._queue[0][0])
        if self._reboot_wanted is not None:
            times.append(self.now if self._reboot_ready() else self._reboot_wanted + 10)
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def _reboot_ready(self) -> bool:
        """`v2h charger` restarts once the outbox is delivered, or after 10 s."""
        return not (self.connected and len(self.store)) or self.now >= self._reboot_wanted + 10

    def _step(self) -> None:
        now = self.now
        if self._reboot_wanted is not None and self._reboot_ready():
            self.reboot()
            return
        while self._later and self._later[0][0] <= now:
            heapq.heappop(self._later)[2]()
        if self._queue and self._queue[0][0] <= now:
            _, _, direction, data = heapq.heappop(self._queue)
            self._deliver(direction, data, now)
        for end, direction in ((self.secc, "evse→ev"), (self.evcc, "ev→evse")):
            if end is not None and not end.closed:
                d = end.next_deadline()
                if d is not None and d <= now:
                    self._post(direction, end.handle_timer(now))
        self._closed_sessions(now)
        d = self.core.next_deadline()
        if d is not None and d <= now:
            self.core.handle_timer(now)
        if not self.connected and self.core.next_connect_at() <= now:
            self._connect(now)
        self._flush()

    # --- the websocket ------------------------------------------------------------------------------
    def _connect(self, now: float) -> None:
        target = self.core.connect_target()
        base = target.url.rsplit("/", 1)[0]
        scheme = urlsplit(target.url).scheme
        up = self.endpoints.get(base, False)
        tls_ok = (scheme == "wss") == (base in self.tls_endpoints)
        auth_ok = target.security_profile == 3 or self.passwords.get(target.station_id) == target.password
        ok = up and tls_ok and auth_ok
        self.attempts.append(Attempt(now, target.url, target.slot, ok, target.security_profile, target.password))
        if ok:
            self.connected = True
            self.core.connection_made(now)
        elif up and tls_ok:
            self.core.connect_failed(now, "HTTP 401", "FailedToAuthenticateAtCsms")
        else:
            self.core.connect_failed(now, "connection refused")

    def drop(self, *, accept: bool = True) -> None:
        """The OCTT closes the websocket (and, with ``accept=False``, refuses reconnects)."""
        for url in self.endpoints:
            self.endpoints[url] = accept
        if self.connected:
            self.connected = False
            self.core.connection_lost(self.now, "closed by the OCTT")

    def accept(self, url: str | None = None) -> None:
        self.endpoints[(url or self.url).rstrip("/")] = True

    def _flush(self) -> None:
        for text in self.core.data_to_send():
            if not self.connected:
                continue
            frame = json.loads(text)
            self.frames.append((self.now, "cs", frame))
            if frame[0] == 2:
                _, mid, action, payload = frame
                schema_check(action, payload)
                msg = Msg(self.now, mid, action, payload)
                self.inbox.append(msg)
                if action not in self.hold:
                    self.answer(msg)
            else:
                self.answers[frame[1]] = frame
        if self.connected and self.core.close_requested:
            self.connected = False
            self.core.connection_lost(self.now, self.core.close_requested)

    def _send(self, frame: list) -> None:
        self.frames.append((self.now, "csms", frame))
        self.core.receive(json.dumps(frame), self.now)
        self._flush()

    # --- the OCTT's side of the protocol --------------------------------------------------------------
    def answer(self, msg: Msg, payload: dict | None = None) -> None:
        if msg.answered:
            return
        msg.answered = True
        if payload is None:
            make = ANSWERS.get(msg.action)
            payload = make(self) if make is not None else {}
        schema_check(msg.action, payload, "Response")
        if self.connected:
            self._send([3, msg.id, payload])

    def error(self, msg: Msg, code: str = "InternalError") -> None:
        msg.answered = True
        if self.connected:
            self._send([4, msg.id, code, "OCTT refuses", {}])

    def _noise(self, msg: Msg, triggers: set[str]) -> bool:
        return msg.action == "TransactionEvent" and msg.payload["triggerReason"] in self.background_triggers \
            and msg.payload["triggerReason"] not in triggers

    def _pop(self, actions: set[str], answer, triggers: set[str] = frozenset()) -> Msg | None:
        while self.inbox:
            msg = self.inbox[0]
            if self._noise(msg, triggers):
                self.inbox.popleft()
                self.answer(msg)
                continue
            if msg.action in actions:
                self.inbox.popleft()
                if answer is True:
                    self.answer(msg)
                elif isinstance(answer, dict):
                    self.answer(msg, answer)
                return msg
            if msg.action in self.background:
                self.inbox.popleft()
                self.answer(msg)
                continue
            raise AssertionError(f"expected {sorted(actions)}, the station sent {msg.action} {msg.payload}")
        return None

    def expect(self, *actions: str, timeout: float = 120.0, answer=True, triggers: tuple[str, ...] = ()) \
            -> Msg | list[Msg]:
        """The station's next request(s), in any order among ``actions``; anything else
        (beyond the background messages) fails the test. ``answer``: True answers with the
        default (unless answered on arrival already), a dict with that payload (the action must be
        in ``hold``), False leaves it to the test (likewise). ``triggers``: background
        TransactionEvents (MeterValuePeriodic, ChargingRateChanged) this step waits for."""
        got: dict[str, Msg] = {}
        while len(got) < len(actions):
            msg = self.expect_any(*(a for a in actions if a not in got), timeout=timeout, answer=answer,
                                  triggers=triggers)
            got[msg.action] = msg
        return got[actions[0]] if len(actions) == 1 else [got[a] for a in actions]

    def expect_any(self, *actions: str, timeout: float = 120.0, answer=True, triggers: tuple[str, ...] = ()) -> Msg:
        """The station's next request, whichever of ``actions`` it is."""
        found: list[Msg] = []

        def arrived() -> bool:
            msg = self._pop(set(actions), answer, set(triggers))
            if msg is not None:
                found.append(msg)
            return bool(found)
        self.run_until(arrived, timeout, what=f"{' or '.join(actions)} from the station")
        return found[0]

    def quiet(self, seconds: float, *, allow: tuple[str, ...] = ()) -> None:
        """The station sends nothing (but background messages and ``allow``) for ``seconds``."""
        end = self.now + seconds
        while True:
            self.run_until(lambda: bool(self.inbox), max(0.0, end - self.now), fail=False)
            while self.inbox and (self.inbox[0].action in self.background or self.inbox[0].action in allow
                                  or self._noise(self.inbox[0], set())):
                self.answer(self.inbox.popleft())
            if self.inbox:
                raise AssertionError(f"the station sent {self.inbox[0].action} {self.inbox[0].payload}")
            if self.now >= end:
                return

    def call(self, action: str, payload: dict, *, timeout: float = 30.0) -> tuple[int, dict]:
        """A request of the OCTT; (3, payload) for a CALLRESULT, (4, {errorCode, …}) for a CALLERROR."""
        schema_check(action, payload)
        mid = f"octt-{next(self._ids)}"
        self._send([2, mid, action, payload])
        self.run_until(lambda: mid in self.answers, timeout, what=f"the answer to {action}")
        frame = self.answers.pop(mid)
        if frame[0] == 3:
            schema_check(action, frame[2], "Response")
            return 3, frame[2]
        return 4, {"errorCode": frame[2], "errorDescription": frame[3]}

    def ok(self, action: str, payload: dict, **kw) -> dict:
        """``call`` that must be answered with a CALLRESULT."""
        kind, answer = self.call(action, payload, **kw)
        assert kind == 3, answer
        return answer

    def set_variable(self, component: str, name: str, value: str, instance: str | None = None,
                     evse: dict | None = None) -> str:
        item = {"component": {"name": component, **({"evse": evse} if evse else {})},
                "variable": {"name": name, **({"instance": instance} if instance else {})}, "attributeValue": value}
        return self.ok("SetVariables", {"setVariableData": [item]})["setVariableResult"][0]["attributeStatus"]

    def get_variable(self, component: str, name: str, instance: str | None = None, evse: dict | None = None):
        item = {"component": {"name": component, **({"evse": evse} if evse else {})},
                "variable": {"name": name, **({"instance": instance} if instance else {})}}
        return self.ok("GetVariables", {"getVariableData": [item]})["getVariableResult"][0]

    # --- reusable states (part 6 §2.18) -----------------------------------------------------------------
    def booted(self, *, reason: str | None = None) -> Msg:
        """Reusable State Booted: BootNotification Accepted, every connector's status, the
        security event of the start (StartupOfTheDevice or ResetOrReboot)."""
        boot = self.expect("BootNotification")
        if reason is not None:
            assert boot["reason"] == reason, boot.payload
        status = self.expect("StatusNotification")
        assert status["evseId"] != 0 and status["connectorId"] != 0
        event = self.expect("SecurityEventNotification")
        assert event["type"] in ("StartupOfTheDevice", "ResetOrReboot", "FirmwareUpdated"), event.payload
        self._last_status = status
        return boot

    def ev_connected(self, *, start_session: bool = True, **car) -> tuple[Msg, Msg | None]:
        """Reusable State EVConnectedPreSession (TxStartPoint EVConnected): Occupied, Started."""
        self.plug(start_session=start_session, **car)
        status, tx = self.expect("StatusNotification", "TransactionEvent")
        assert status["connectorStatus"] == "Occupied" and (status["evseId"], status["connectorId"]) == (1, 1)
        return status, tx

    def authorized_remote(self, token: dict = TOKEN, *, remote_start_id: int = 17) -> tuple[dict, Msg | None]:
        answer = self.ok("RequestStartTransaction", {"idToken": token, "remoteStartId": remote_start_id, "evseId": 1})
        assert answer["status"] == "Accepted", answer
        return answer, None

    def energy_transfer_started(self, timeout: float = 60.0) -> Msg:
        """Part 2 of Reusable State EnergyTransferStarted: ChargingStateChanged to Charging."""
        while True:
            msg = self.expect("TransactionEvent", timeout=timeout)
            if msg["transactionInfo"].get("chargingState") == "Charging":
                return msg
            assert msg["triggerReason"] in ("Authorized", "ChargingStateChanged", "ChargingRateChanged"), msg.payload

    def transaction(self, *, remote: bool = False, **car) -> dict:
        """EVConnectedPreSession, Authorized (the car's own -20 EIM authorization, or a remote
        start) and EnergyTransferStarted, with the default TxStartPoint (EVConnected): the
        Started event's payload."""
        _, started = self.ev_connected(start_session=not remote, **car)
        assert started["eventType"] == "Started", started.payload
        if remote:
            self.authorized_remote()
            msg = self.expect("TransactionEvent")
            assert msg["triggerReason"] == "RemoteStart" and msg["idToken"] == TOKEN, msg.payload
            self.start_session(**car)
        self.energy_transfer_started()
        return started.payload

    # --- the car and the cable ----------------------------------------------------------------------------
    def plug(self, *, start_session: bool = True, **car) -> None:
        """Manual action: connect the EV and EVSE (control pilot B), then the car's ISO 15118-20
        session (SLAC, SDP and TCP are below this harness)."""
        self.plugged = True
        self.bridge.cable_plugged(self.now)
        self._flush()
        if start_session:
            self.start_session(**car)

    def start_session(self, *, soc: float = 50.0, loops: int = 10**6, service: str = "DC_BPT", end: str = "Terminate",
                      control_mode: str = "dynamic", auth: str = "eim", **config) -> EVCCSession:
        if self.evcc is not None and not self.evcc.closed:
            raise AssertionError("a session is running")
        self.secc = SECCSession(EVSEController(self.stage, self.bridge), SECCConfig(require_tls=False), now=self.now,
                                tls=False)
        self.evcc = EVCCSession(Battery(soc=soc), EVCCConfig(service=service, loops=loops, loop_period=0.25, end=end,
                                                             control_mode=control_mode, auth=auth, **config),
                                tls=False)
        self._decoders = {"evse": V2GTPDecoder(), "ev": V2GTPDecoder()}
        self._post("ev→evse", self.evcc.start(self.now))
        return self.evcc

    def ev_stops(self, *, end: str = "Terminate") -> None:
        """Manual action: the EV ends the energy transfer (after its next charge loop), then the
        session (SessionStop Terminate, or Pause: the EV suspends)."""
        if self.evcc is not None and not self.evcc.closed:
            self.evcc.config.end = end
            self.evcc.config.loops = self.evcc.loops_done + 1

    def unplug(self) -> None:
        """Manual action: disconnect the EV and EVSE (control pilot A): the session goes with the car."""
        self.plugged = False
        self.bridge.cable_unplugged(self.now)
        self._end_session()
        self._flush()

    def _end_session(self) -> None:
        for end in (self.secc, self.evcc):
            if end is not None and not end.closed:
                end.on_connection_lost(self.now)
        self._queue = [q for q in self._queue if q[2] not in ("ev→evse", "evse→ev")]

    def _post(self, direction: str, frames_out) -> None:
        for f in frames_out:
            heapq.heappush(self._queue, (self.now + 0.01, next(self._seq), direction, f.to_bytes()))

    def _deliver(self, direction: str, data: bytes, now: float) -> None:
        target, dec = (self.secc, self._decoders["evse"]) if direction == "ev→evse" else (self.evcc,
                                                                                          self._decoders["ev"])
        if target is None or target.closed:
            return
        dec.receive_data(data)
        back = "evse→ev" if direction == "ev→evse" else "ev→evse"
        for frame in dec.frames():
            self._post(back, target.on_frame(frame, now))

    def _closed_sessions(self, now: float) -> None:
        """One end hung up and nothing is in flight: the other sees the TCP connection close."""
        secc, evcc = self.secc, self.evcc
        if secc is None or evcc is None or secc.closed == evcc.closed or self._queue:
            return
        (evcc if secc.closed else secc).on_connection_lost(now)

    # --- checks ---------------------------------------------------------------------------------------------
    def sent(self, action: str) -> list[dict]:
        """Every request ``action`` the station sent so far (payloads)."""
        return [f[3] for t, d, f in self.frames if d == "cs" and f[0] == 2 and f[2] == action]

"""The house's OCPP 2.1 server (the CSMS the chargers connect to), sans-I/O: one ``StationLink`` per
connected charging station takes OCPP-J frames (text) and ``now`` and gives frames to send,
deadlines and what the station reported. The websocket server around it (security profiles,
one connection per identity, rate-limited logins) is an adapter; a simulation connects a
``StationLink`` straight to a station core.

It answers what a station sends (BootNotification, StatusNotification, Heartbeat, Authorize,
TransactionEvent, MeterValues, NotifyEVChargingNeeds, NotifyEVChargingSchedule,
SecurityEventNotification, NotifyReport, ReportChargingProfiles; with a contract-certificate pool
Get15118EVCertificate and GetCertificateStatus) — each request and answer
checked against the OCPP 2.1 schemas — keeps the station's state (``StationState``), and sends
the station requests (SetChargingProfile, SetVariables, …) one at a time with their answers
delivered to callbacks. A request repeated with a message id already answered (a station that
resends after a crash) is answered again but recorded once.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ocpp.exceptions import FormationViolationError, OCPPError

from iso15118.pki.pool import ContractPool, PoolRequestError
from iso15118.pki.signer import CsrSigner, SigningRefused
from ocpp_bridge import frames
from ocpp_bridge.core import iso
from ocpp_bridge.rpc import Answer, Outstanding, answer_call, error_frame, read_answer, schema_check

log = logging.getLogger(__name__)
SEEN_IDS = 1024  # message ids remembered per station to recognise a resend


def _epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


@dataclass
class Transaction:
    """One transaction as the station reported it."""

    id: str
    started: float | None
    evse_id: int | None
    charging_state: str | None = None
    ended: float | None = None
    stopped_reason: str | None = None
    id_token: dict | None = None
    events: int = 0


@dataclass
class MeterSample:
    """The latest meter reading of a station (from TransactionEvent or MeterValues)."""

    time: float
    power_w: float | None = None          # + into the car / − out of it
    imported_wh: float | None = None
    exported_wh: float | None = None
    soc: float | None = None


@dataclass
class StationState:
    """What the CSMS knows of one charging station."""

    id: str
    connected: bool = False
    boot: dict | None = None
    connectors: dict[tuple[int, int], str] = field(default_factory=dict)
    transaction: Transaction | None = None
    transactions: list[Transaction] = field(default_factory=list)
    meter: MeterSample | None = None
    charging_needs: dict | None = None     # the last NotifyEVChargingNeeds chargingNeeds
    ev_schedule: dict | None = None        # the last NotifyEVChargingSchedule
    security_events: list[dict] = field(default_factory=list)
    last_seen: float | None = None
    after_answer: list[tuple[str, dict]] = field(default_factory=list)  # requests to send once answered
    certificates: list[dict] = field(default_factory=list)  # CertificateSigned sent: certificateType, chain


def meter_sample(meter_values: list[dict], now: float) -> MeterSample | None:
    """The measurands v2h's chargers report, from a meterValue list (the last sample wins)."""
    if not meter_values:
        return None
    sample = MeterSample(_epoch(meter_values[-1].get("timestamp", "")) or now)
    imp = exp = None
    for mv in meter_values:
        for v in mv.get("sampledValue", []):
            m, value = v.get("measurand", "Energy.Active.Import.Register"), float(v["value"])
            if m == "Energy.Active.Import.Register":
                sample.imported_wh = value
            elif m == "Energy.Active.Export.Register":
                sample.exported_wh = value
            elif m == "Power.Active.Import":
                imp = value
            elif m == "Power.Active.Export":
                exp = value
            elif m == "SoC":
                sample.soc = value
    if imp is not None or exp is not None:
        sample.power_w = (imp or 0.0) - (exp or 0.0)
    return sample


Observer = Callable[[str, str, dict, float], None]
"""(station id, action, payload, now) for every request a station sent (once per message id)."""


class StationLink:
    """One station's connection, seen from the CSMS."""

    def __init__(self, csms: CSMSCore, state: StationState, now: float):
        self.csms = csms
        self.state = state
        self.closed = False
        self._out: list[str] = []
        self._queue: list[tuple[str, dict, Answer | None]] = []
        self._inflight: Outstanding | None = None
        self._seen: OrderedDict[str, list] = OrderedDict()  # message id → our answer
        self._next_id = 0
        self.on_output: Callable[[], None] | None = None
        state.connected, state.last_seen = True, now

    # --- frames ---------------------------------------------------------------------------------------
    def receive(self, text: str | bytes, now: float) -> None:
        self.state.last_seen = now
        try:
            frame = frames.parse(text)
        except frames.FrameError as e:
            log.warning("malformed frame from %s: %s", self.state.id, e)
            self._emit(error_frame(e.unique_id, FormationViolationError(str(e))))
            return
        if frame[0] == frames.CALL:
            self._on_call(frame, now)
        elif frame[0] in (frames.CALLRESULT, frames.CALLERROR):
            self._on_answer(frame, now)
        else:
            log.info("ignored frame from %s: %s", self.state.id, str(text)[:200])
        self._pump(now)

    def data_to_send(self) -> list[str]:
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        return self._inflight.deadline if self._inflight is not None else None

    def handle_timer(self, now: float) -> None:
        call = self._inflight
        if call is not None and now >= call.deadline:
            self._inflight = None
            log.warning("%s did not answer %s in time", self.state.id, call.action)
            if call.on_answer is not None:
                call.on_answer(None)
        self._pump(now)

    def connection_lost(self, now: float) -> None:
        """The websocket closed: requests not answered get None."""
        self.closed = True
        self.state.connected = False
        pending = ([self._inflight.on_answer] if self._inflight is not None else []) + [a for _, _, a in self._queue]
        self._inflight, self._queue = None, []
        for on_answer in pending:
            if on_answer is not None:
                on_answer(None)

    # --- requests to the station ------------------------------------------------------------------------
    def call(self, action: str, payload: dict, *, now: float, on_answer: Answer | None = None) -> None:
        """Send ``action`` to the station (after the ones before it); ``on_answer`` gets the
        CALLRESULT payload, or None on a CALLERROR, a timeout or a lost connection. A payload that
        breaks the 2.1 schema raises OCPPError here."""
        schema_check(action, payload)
        frames.dumps(payload)
        if self.closed:
            if on_answer is not None:
                on_answer(None)
            return
        self._queue.append((action, payload, on_answer))
        self._pump(now)

    def _pump(self, now: float) -> None:
        if self._inflight is not None or not self._queue or self.closed:
            return
        action, payload, on_answer = self._queue.pop(0)
        self._next_id += 1
        message_id = f"csms-{self._next_id}"
        self._inflight = Outstanding(message_id, action, now + self.csms.response_timeout, on_answer)
        self._emit([frames.CALL, message_id, action, payload])

    def _on_answer(self, frame: list, now: float) -> None:
        call = self._inflight
        if call is None or frame[1] != call.message_id:
            log.warning("%s answered nothing we asked: %s", self.state.id, str(frame)[:200])
            return
        self._inflight = None
        payload, error = read_answer(call, frame)
        if error is not None:
            log.warning("%s answered %s with %s", self.state.id, call.action, error)
        if call.on_answer is not None:
            call.on_answer(payload)

    # --- requests from the station ------------------------------------------------------------------------
    def _on_call(self, frame: list, now: float) -> None:
        unique_id = frame[1]
        if unique_id in self._seen:  # a resend (the station crashed before it saw our answer)
            self._emit(self._seen[unique_id])
            return
        handlers = {a: (lambda payload, a=a: self.csms.handle(self.state, a, payload, now))
                    for a in self.csms.HANDLED}
        try:
            answer = answer_call(frame, handlers)
        except OCPPError as e:
            log.warning("%s: %s refused (%s): %s", self.state.id, frame[2], e.code, e)
            answer = error_frame(unique_id, e)
        else:
            self._seen[unique_id] = answer
            if len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)
        self._emit(answer)
        while self.state.after_answer:  # requests that follow the answer (CertificateSigned after SignCertificate)
            action, payload = self.state.after_answer.pop(0)
            self.call(action, payload, now=now)

    def _emit(self, frame: list) -> None:
        self._out.append(frames.dumps(frame))
        if self.on_output is not None:
            self.on_output()


class CSMSCore:
    """The stations of the house and what they said. ``open`` a link when a station's
    connection is accepted (credentials are the adapter's business), feed it, ``close`` it."""

    HANDLED = ("BootNotification", "StatusNotification", "Heartbeat", "Authorize", "TransactionEvent",
               "MeterValues", "NotifyEVChargingNeeds", "NotifyEVChargingSchedule", "SecurityEventNotification",
               "NotifyReport", "ReportChargingProfiles", "Get15118EVCertificate", "GetCertificateStatus",
               "SignCertificate")

    def __init__(self, *, heartbeat_interval: int = 300, response_timeout: float = 30.0,
                 authorize: Callable[[dict], dict] | None = None, observer: Observer | None = None,
                 contract_pool: ContractPool | None = None, certificate_signer: CsrSigner | None = None):
        """``authorize(idToken) -> idTokenInfo-and-more`` answers Authorize (default: Accepted,
        no energy-transfer restriction); ``observer`` hears every request once; ``contract_pool``
        answers a car's certificate requests and the status of the contracts it issued
        (without one, Get15118EVCertificate and GetCertificateStatus are Failed);
        ``certificate_signer`` signs the charger's CSRs (SignCertificate → CertificateSigned;
        without one SignCertificate is Rejected)."""
        self.heartbeat_interval = heartbeat_interval
        self.response_timeout = response_timeout
        self.authorize = authorize or (lambda token: {"idTokenInfo": {"status": "Accepted"}})
        self.observer = observer
        self.contract_pool = contract_pool
        self.certificate_signer = certificate_signer
        self.stations: dict[str, StationState] = {}
        self.links: dict[str, StationLink] = {}

    def open(self, station_id: str, now: float) -> StationLink:
        """A station connected (a second connection of the same identity is refused by the
        adapter before it gets here; this replaces a link only if the old one is closed)."""
        old = self.links.get(station_id)
        if old is not None and not old.closed:
            raise ValueError(f"station {station_id} is already connected")
        state = self.stations.setdefault(station_id, StationState(station_id))
        link = StationLink(self, state, now)
        self.links[station_id] = link
        return link

    def close(self, station_id: str, now: float) -> None:
        link = self.links.pop(station_id, None)
        if link is not None:
            link.connection_lost(now)

    def call(self, station_id: str, action: str, payload: dict, *, now: float, on_answer: Answer | None = None) -> None:
        """A request to a connected station (None to ``on_answer`` when it is not connected)."""
        link = self.links.get(station_id)
        if link is None:
            if on_answer is not None:
                on_answer(None)
            return
        link.call(action, payload, now=now, on_answer=on_answer)

    # --- answering ------------------------------------------------------------------------------------
    def handle(self, st: StationState, action: str, p: dict, now: float) -> dict:
        """The answer to a station's request, after recording what it says."""
        if self.observer is not None:
            self.observer(st.id, action, p, now)
        if action == "BootNotification":
            st.boot = p
            return {"currentTime": iso(now), "interval": self.heartbeat_interval, "status": "Accepted"}
        if action == "Heartbeat":
            return {"currentTime": iso(now)}
        if action == "StatusNotification":
            st.connectors[(p["evseId"], p["connectorId"])] = p["connectorStatus"]
            return {}
        if action == "Authorize":
            return self.authorize(p["idToken"])
        if action == "TransactionEvent":
            self._transaction_event(st, p, now)
            return {}
        if action == "MeterValues":
            st.meter = meter_sample(p["meterValue"], now) or st.meter
            return {}
        if action == "NotifyEVChargingNeeds":
            st.charging_needs = p["chargingNeeds"]
            return {"status": "Accepted"}
        if action == "NotifyEVChargingSchedule":
            st.ev_schedule = p
            return {"status": "Accepted"}
        if action == "SecurityEventNotification":
            st.security_events.append(p)
            return {}
        if action == "Get15118EVCertificate":
            return ev_certificate(self.contract_pool, p, now)
        if action == "GetCertificateStatus":
            return certificate_status(self.contract_pool, p, now)
        if action == "SignCertificate":
            return self._sign_certificate(st, p, now)
        return {}  # NotifyReport, ReportChargingProfiles: recorded by the observer

    def _sign_certificate(self, st: StationState, p: dict, now: float) -> dict:
        """SignCertificate (A02/A03): Accepted, then CertificateSigned with the chain the signer
        issued for the CSR (Rejected without a signer or for a CSR it refuses)."""
        kind = p.get("certificateType", "ChargingStationCertificate")
        if self.certificate_signer is None:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "NotEnabled"}}
        try:
            chain = self.certificate_signer.sign(kind, p["csr"], datetime.fromtimestamp(now, timezone.utc))
        except SigningRefused as e:
            log.warning("%s: SignCertificate %s refused: %s", st.id, kind, e)
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCSR", "additionalInfo": str(e)[:1024]}}
        signed = {"certificateChain": chain, "certificateType": kind}
        st.certificates.append(signed)
        st.after_answer.append(("CertificateSigned", signed))
        return {"status": "Accepted"}

    def _transaction_event(self, st: StationState, p: dict, now: float) -> None:
        info = p["transactionInfo"]
        tx = st.transaction
        if tx is None or tx.id != info["transactionId"]:
            tx = next((t for t in st.transactions if t.id == info["transactionId"]), None)
            if tx is None:
                tx = Transaction(info["transactionId"], _epoch(p["timestamp"]), p.get("evse", {}).get("id"))
                st.transactions.append(tx)
        tx.events += 1
        tx.charging_state = info.get("chargingState", tx.charging_state)
        if "idToken" in p:
            tx.id_token = p["idToken"]
        if p.get("meterValue"):
            st.meter = meter_sample(p["meterValue"], now) or st.meter
        if p["eventType"] == "Ended":
            tx.ended, tx.stopped_reason = _epoch(p["timestamp"]), info.get("stoppedReason")
            if st.transaction is tx:
                st.transaction = None
        elif tx.ended is None:
            st.transaction = tx


def ev_certificate(pool: ContractPool | None, p: dict, now: float) -> dict:
    """Get15118EVCertificate (M01/M02) answered by ``pool``: the car's response as EXI (Failed
    with the refusal's response code inside when it refuses), Failed without a pool or for a
    request it cannot read."""
    if pool is None:
        return {"status": "Failed", "exiResponse": "", "statusInfo": {"reasonCode": "NotEnabled"}}
    try:
        ok, data, why = pool.respond(base64.b64decode(p["exiRequest"], validate=True), p["iso15118SchemaVersion"],
                                     p["action"], datetime.fromtimestamp(now, timezone.utc))
    except (binascii.Error, PoolRequestError) as e:
        log.warning("Get15118EVCertificate refused: %s", e)
        return {"status": "Failed", "exiResponse": "",
                "statusInfo": {"reasonCode": "InvalidRequest", "additionalInfo": str(e)[:1024]}}
    log.info("Get15118EVCertificate %s: %s", p["action"], why)
    answer = {"status": "Accepted" if ok else "Failed", "exiResponse": base64.b64encode(data).decode()}
    if p["iso15118SchemaVersion"].startswith("urn:iso:std:iso:15118:-20"):
        answer["remainingContracts"] = 0
    return answer


def certificate_status(pool: ContractPool | None, p: dict, now: float) -> dict:
    """GetCertificateStatus (M06): the OCSP response (RFC 6960, DER in base64) of ``pool``
    for a contract it issued; Failed without a pool."""
    if pool is None:
        return {"status": "Failed", "statusInfo": {"reasonCode": "NotEnabled"}}
    der = pool.ocsp_response(p["ocspRequestData"], datetime.fromtimestamp(now, timezone.utc))
    return {"status": "Accepted", "ocspResult": base64.b64encode(der).decode()}


def central_setpoint(watts: float, *, profile_id: int = 1, stack_level: int = 0,
                     purpose: str = "TxDefaultProfile", max_offline_duration: int | None = None,
                     discharge_limit_w: float | None = None, evse_id: int = 1) -> dict:
    """A SetChargingProfileRequest that holds the charger at ``watts`` (negative discharges the
    car) from now on: OCPP 2.1 Q04, operationMode CentralSetpoint (Idle for 0 W), with
    ``maxOfflineDuration`` so that the charger falls back to its safe default (no discharge) if
    this server goes away."""
    period: dict = {"startPeriod": 0, "operationMode": "Idle" if watts == 0 else "CentralSetpoint"}
    if watts != 0:
        period["setpoint"] = float(watts)
        period["dischargeLimit"] = float(min(0.0, watts if discharge_limit_w is None else discharge_limit_w))
    profile: dict = {"id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
                     "chargingProfileKind": "Relative",
                     "chargingSchedule": [{"id": profile_id, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}]}
    if max_offline_duration is not None:
        profile["maxOfflineDuration"] = int(max_offline_duration)
    return {"evseId": evse_id, "chargingProfile": profile}

"""The SECC's supervisor over OCPP 2.1: it answers the session's questions (authorization,
consent, setpoint, the plan ahead) from the CSMS and reports the session to it; the power stage
below is the SECC's (the bridge only reads its meter).

- the session's events become TransactionEvents (Started at SessionSetup, Updated on
  authorization, energy transfer start/stop and every TxUpdatedInterval with energy imported
  and exported, power and the car's SoC, Ended with the reason), all through the durable outbox;
- the car's -20 parameters become NotifyEVChargingNeeds (once per schedule exchange);
- SetChargingProfile / ClearChargingProfile / GetChargingProfiles feed the setpoint the SECC
  reads every charge loop (so a new setpoint applies within one loop period), through the one
  arbiter (``arbiter.decide``); offline, the profiles' maxOfflineDuration falls back to the safe
  default (charge, never discharge) unless the site is islanded;
- RequestStopTransaction ends the session at the next loop;
- Plug & Charge authorization is a request/answer exchange with the CSMS that the session waits
  on with EVSEProcessing=Ongoing.

Sans-I/O like the core it sits on: times come from the SECC (its monotonic ``now``, turned into
Unix time with ``clock_offset``) or from the core's timers (Unix time).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable

from ocpp.exceptions import OCPPError

from iso15118.secc.controller import AuthorizationStatus, PowerStage
from iso15118.secc.events import (Authorized, EndReason, EnergyTransferStarted, EnergyTransferStopped,
                                  EVChargingNeeds, GeneratorMode, PowerChanged, SessionEnded, SessionEvent,
                                  SessionStarted, SoCChanged)
from iso15118.secc.supervisor import SupervisorBase

from .arbiter import PowerLimits, SetpointDecision, composite, decide
from .core import StationCore, iso, transaction_event
from .device_model import RW, Variable
from .profiles import MAX_POWER_W, Profile, ProfileRejected, ProfileStore

log = logging.getLogger(__name__)
ENERGY_MODES = {"DC": "DC", "DC_BPT": "DC_BPT", "AC": "AC_three_phase", "AC_BPT": "AC_BPT"}
# why a session ended → TransactionEvent Ended (triggerReason, stoppedReason), OCPP 2.1 part 2 E/F
END_REASONS = {
    EndReason.STOPPED_BY_EV: ("StopAuthorized", "StoppedByEV"),
    EndReason.PAUSED: ("StopAuthorized", "StoppedByEV"),
    EndReason.SEQUENCE_TIMEOUT: ("EVCommunicationLost", "Timeout"),
    EndReason.CONNECTION_LOST: ("EVCommunicationLost", "EVDisconnected"),
    EndReason.PROTOCOL_ERROR: ("EVCommunicationLost", "Other"),
    EndReason.REFUSED: ("AbnormalCondition", "Other"),
    EndReason.FAULT: ("AbnormalCondition", "Other"),
    EndReason.EMERGENCY_STOP: ("AbnormalCondition", "EmergencyStop"),
    EndReason.STOPPED_BY_SUPERVISOR: ("AbnormalCondition", "Other"),
}


# a v2h variable the energy manager sets (SetVariables) while its transfer switch has isolated the
# house from the grid: the charger then forms the island (not persisted: after a restart the
# charger assumes the grid, where the safe default never discharges)
ISLAND = ("V2HSiteCtrlr", "Islanded", None)


class OCPPBridge(SupervisorBase):
    """The supervisor of one EVSE over a station core: give it to the SECC with the power stage
    (``EVSEController(stage, bridge)``); it reads the stage's meter for OCPP. ``station`` is a
    ``StationCore`` or an adapter holding one (``.core``); ``clock_offset`` turns the SECC's
    ``now`` into Unix time (0 when the SECC already runs on Unix time)."""

    def __init__(self, stage: PowerStage, station, *, evse_id: int = 1,
                 default_setpoint_w: float = 7000.0, tx_updated_interval: float = 60.0,
                 allow_bidirectional: bool = True, clock_offset: float | None = None, clock_scale: float = 1.0):
        core: StationCore = getattr(station, "core", station)
        if clock_offset is None:  # an adapter knows its clock's offset; a bare core runs on the caller's
            clock_offset = getattr(station, "clock_offset", 0.0)
        self.clock_scale = clock_scale  # station seconds per SECC second (an accelerated demo)
        self.stage = stage
        self.station = core
        self.clock_offset = clock_offset
        self.evse_id = evse_id
        self.profiles = ProfileStore(default_setpoint_w,
                                     on_change=lambda raws: core.store.set("charging_profiles", raws))
        self.profiles.restore(core.store.get("charging_profiles", []))
        self.tx_updated_interval = tx_updated_interval
        self.allow_bidirectional = allow_bidirectional
        self.transaction_id: str | None = None
        self.tx_start: float | None = None
        self.stop_requested_by_csms = False
        self.soc: float | None = None   # the car's PresentSOC, % (from the charge loop)
        self.external_setpoint: float | None = None
        self.islanded = False
        self.needs: EVChargingNeeds | None = None
        self.allowed_energy_transfer: list[str] | None = None  # None: the CSMS has not said
        # Plug & Charge: the EMAID asked about and the CSMS's answer (None: no answer, offline rule)
        self._auth: tuple[str, bool, dict | None] | None = None
        self.v2x_enabled = True
        self.contract_validation_offline = True
        self.aligned_interval = 0.0
        self._next_aligned: float | None = None
        self._next_tx_meter: float | None = None  # Unix time of the next TxUpdatedInterval meter value
        dm = core.device_model
        key = ("SampledDataCtrlr", "TxUpdatedInterval", None)
        if key not in dm.persisted:
            dm.values[key] = str(int(tx_updated_interval))
        dm.listen("SampledDataCtrlr", "TxUpdatedInterval", lambda v: setattr(self, "tx_updated_interval", float(v)))
        dm.listen("V2XChargingCtrlr", "Enabled", lambda v: setattr(self, "v2x_enabled", v == "true"))
        dm.listen("ISO15118Ctrlr", "ContractValidationOffline",
                  lambda v: setattr(self, "contract_validation_offline", v == "true"))
        dm.add(Variable(*ISLAND[:2], "boolean", RW, "false", persistent=False))
        dm.listen(*ISLAND[:2], lambda v: setattr(self, "islanded", v == "true"))
        dm.listen("AlignedDataCtrlr", "Interval", self._set_aligned_interval)
        self._set_aligned_interval(dm.value("AlignedDataCtrlr", "Interval"))
        core.timers.append(self)
        self._end_interrupted_transaction()
        core.handlers.update({
            "SetChargingProfile": self._set_charging_profile,
            "ClearChargingProfile": self._clear_charging_profile,
            "GetChargingProfiles": self._get_charging_profiles,
            "RequestStopTransaction": self._request_stop,
            "NotifyAllowedEnergyTransfer": self._allowed_energy_transfer,
            "Reset": self._reset,
            "ChangeAvailability": self._change_availability,
            "RequestStartTransaction": self._request_start,
            "GetCompositeSchedule": self._composite_schedule,
        })
        self.on_reset: Callable[[], None] | None = None  # the process restarts itself (set by `v2h charger`)
        self.reset_pending: str | None = None  # "Immediate" or "OnIdle" while a session runs
        self.remote_start: dict | None = None
        self.operative = core.store.get("operative", True)
        self.pending_operative: bool | None = None
        if not self.operative:
            core.connector_status[(evse_id, 1)] = "Unavailable"

    def wall(self, now: float) -> float:
        """The SECC's ``now`` as the station's (Unix) time."""
        return now * self.clock_scale + self.clock_offset

    def secc_time(self, wall: float) -> float:
        """The station's time as the SECC's ``now`` (the inverse of ``wall``)."""
        return (wall - self.clock_offset) / self.clock_scale

    def stop_requested(self, now: float) -> str | None:
        """The CSMS's RequestStopTransaction or an immediate Reset end the session at the next step."""
        if self.stop_requested_by_csms:
            return "stopped by the CSMS (RequestStopTransaction)"
        if self.reset_pending == "Immediate":
            return "reset by the CSMS"
        return None

    # --- the upper half: OCPP -----------------------------------------------------------------
    def authorize(self, method: str, identity: str, now: float) -> AuthorizationStatus:
        """Inoperative refuses; then, for Plug & Charge, the CSMS's Authorize for the
        EMAID: ONGOING until it answers (the SECC repeats AuthorizationRes EVSEProcessing=Ongoing).
        No answer (offline, timeout, CALLERROR): ISO15118Ctrlr.ContractValidationOffline decides
        whether the contract the SECC validated itself suffices. EIM has no token at v2h's
        chargers (no reader)."""
        if not self.operative:
            return AuthorizationStatus.REJECTED  # ChangeAvailability Inoperative
        if method != "PnC":
            return AuthorizationStatus.ACCEPTED
        if self._auth is None or self._auth[0] != identity:
            self._auth = (identity, False, None)

            def answered(payload: dict | None, emaid: str = identity) -> None:
                if self._auth is not None and self._auth[0] == emaid:
                    self._auth = (emaid, True, payload)
            self.station.request("Authorize", {"idToken": {"idToken": identity, "type": "eMAID"}},
                                 now=self.wall(now), on_answer=answered)
        _, done, answer = self._auth
        if not done:
            return AuthorizationStatus.ONGOING
        if answer is None:
            return AuthorizationStatus.ACCEPTED if self.contract_validation_offline else AuthorizationStatus.REJECTED
        if "allowedEnergyTransfer" in answer:
            self.allowed_energy_transfer = list(answer["allowedEnergyTransfer"])
        ok = answer["idTokenInfo"]["status"] == "Accepted"
        return AuthorizationStatus.ACCEPTED if ok else AuthorizationStatus.REJECTED

    def energy_transfer_allowed(self, bidirectional: bool, now: float) -> bool:
        """Discharging needs the charger's consent and, once the CSMS has said which energy
        transfers it allows (AuthorizeResponse / NotifyAllowedEnergyTransfer), a BPT one among them."""
        if bidirectional:
            if not (self.allow_bidirectional and self.v2x_enabled):  # V2XChargingCtrlr.Enabled
                return False
            if self.allowed_energy_transfer is not None and \
                    not any(m.endswith("_BPT") for m in self.allowed_energy_transfer):
                return False
        return True

    def decision(self, now: float, limits: PowerLimits = PowerLimits()) -> SetpointDecision:
        """The arbiter's decision at the SECC's ``now`` (``now`` is Unix time when called by the
        station's timers with ``clock_offset`` 0). Pure: nothing changes."""
        wall = self.wall(now)
        return decide(self.profiles.profiles.values(), wall=wall, tx_start=self.tx_start,
                      offline_for=self.station.offline_for(wall), default_w=self.profiles.default_setpoint_w,
                      external=self.external_setpoint, islanded=self.islanded, limits=limits)

    def setpoint(self, now: float) -> float:
        return self.decision(now).power_w

    def generator_mode(self, now: float) -> GeneratorMode:
        """The energy manager set V2HSiteCtrlr.Islanded: the house is off the grid, form its island."""
        return GeneratorMode.GRID_FORMING if self.islanded else GeneratorMode.GRID_FOLLOWING

    def set_external_setpoint(self, watts: float | None) -> None:
        """A local energy manager's setpoint (negative discharges), for library users that wire
        one to the charger: applied from the next charge loop, but only while the CSMS's profile
        is in an ExternalSetpoint or ExternalLimits period, and within that period's limits
        (Q05). None withdraws it; a non-finite or absurd value raises ValueError."""
        if watts is not None and (isinstance(watts, bool) or not isinstance(watts, (int, float))
                                  or not math.isfinite(watts) or abs(watts) > MAX_POWER_W):
            raise ValueError(f"an external setpoint must be a finite power within ±{MAX_POWER_W:g} W, got {watts!r}")
        self.external_setpoint = watts

    def power_plan(self, now: float, horizon: float) -> list[tuple[float, float]]:
        """The setpoint's steps over the next ``horizon`` seconds from the charging profiles
        (GetCompositeSchedule's view), for the SECC's Scheduled ScheduleExchangeRes."""
        start = int(self.wall(now))
        periods = self._composite(start, int(horizon))
        bounds = [p["startPeriod"] for p in periods[1:]] + [int(horizon)]
        v2x = self.energy_transfer_allowed(True, now)
        return [(end - p["startPeriod"], p["setpoint"] if p["setpoint"] >= 0 or v2x else 0.0)
                for p, end in zip(periods, bounds)]

    def ev_charging_needs(self, needs: EVChargingNeeds, now: float) -> None:
        """NotifyEVChargingNeeds, once per ScheduleExchange (ChargeParameterDiscovery alone is
        not reported: the schedule exchange completes the picture)."""
        self.needs = needs
        if needs.control_mode is None:
            return
        n = needs
        v2x = {k: v for k, v in (("maxChargePower", n.max_charge_power), ("maxDischargePower", n.max_discharge_power),
                                 ("evTargetEnergyRequest", n.target_energy), ("evMaxEnergyRequest", n.max_energy),
                                 ("evMinEnergyRequest", n.min_energy), ("evMinV2XEnergyRequest", n.min_v2x_energy),
                                 ("evMaxV2XEnergyRequest", n.max_v2x_energy)) if v is not None}
        charging_needs: dict = {"requestedEnergyTransfer": ENERGY_MODES.get(n.service, "DC"),
                                "controlMode": "DynamicControl" if n.control_mode == "Dynamic" else "ScheduledControl",
                                "mobilityNeedsMode": "EVCC"}
        if v2x:
            charging_needs["v2xChargingParameters"] = v2x
        if n.departure_time:
            charging_needs["departureTime"] = iso(int(self.wall(now) + n.departure_time))
        self._enqueue("NotifyEVChargingNeeds", {"evseId": self.evse_id, "chargingNeeds": charging_needs,
                                                "timestamp": iso(self.wall(now))}, now=now)

    def session_event(self, event: SessionEvent, now: float) -> None:
        if isinstance(event, SessionStarted):
            self._started(now)
        elif self.transaction_id is None:
            return
        elif isinstance(event, Authorized):
            token = {"idToken": event.emaid, "type": "eMAID" if event.method == "PnC" else "NoAuthorization"}
            self._tx("Updated", "Authorized", id_token=token, now=now)
        elif isinstance(event, EnergyTransferStarted):
            self._tx("Updated", "ChargingStateChanged", charging_state="Charging", now=now)
            if event.ev_power_profile:
                self._ev_charging_schedule(event.ev_power_profile, event.time_anchor, now)
        elif isinstance(event, SoCChanged):
            self.soc = event.soc
        elif isinstance(event, PowerChanged):
            self._tx("Updated", "ChargingRateChanged", now=now)
        elif isinstance(event, EnergyTransferStopped):
            self._tx("Updated", "ChargingStateChanged", charging_state="EVConnected", now=now)
        elif isinstance(event, SessionEnded):
            self._ended(event, now)

    def _started(self, now: float) -> None:
        if not self.operative:
            return  # Inoperative: no transaction; authorize() refuses the car
        self.transaction_id = str(uuid.uuid4())
        self.tx_start = self.wall(now)
        self.stop_requested_by_csms = False
        self.needs = None
        self.allowed_energy_transfer = None
        self._auth = None
        self.soc = None
        self.station.set_connector_status(self.evse_id, 1, "Occupied", now=self.wall(now))
        remote = self.remote_start
        self.remote_start = None
        extra = {}
        if remote is not None:  # RequestStartTransaction before the car arrived
            extra = {"id_token": remote["idToken"], "remote_start_id": remote["remoteStartId"]}
            if remote.get("chargingProfile"):
                try:
                    self.profiles.set(remote["chargingProfile"], self.transaction_id)
                except ProfileRejected as e:
                    log.warning("the profile of RequestStartTransaction was not applied: %s", e)
        self._tx("Started", "RemoteStart" if remote else "CablePluggedIn", charging_state="EVConnected", now=now,
                 state={"open_transaction": {"id": self.transaction_id, "start": self.tx_start}}, **extra)

    def _ended(self, event: SessionEnded, now: float) -> None:
        if self.stop_requested_by_csms:
            trigger, stopped = "RemoteStop", "Remote"
        elif self.reset_pending == "Immediate":
            trigger, stopped = "ResetCommand", "ImmediateReset"
        else:
            trigger, stopped = END_REASONS[event.reason]
        self._tx("Ended", trigger, stopped_reason=stopped, now=now, state={"open_transaction": None})
        self.transaction_id = None
        self.tx_start = None
        self._next_tx_meter = None
        self.profiles.end_transaction()
        if self.pending_operative is not None:  # ChangeAvailability Scheduled during the session
            self._apply_availability(self.pending_operative)
        self.station.set_connector_status(self.evse_id, 1, "Available" if self.operative else "Unavailable",
                                          now=self.wall(now))
        if self.reset_pending and self.on_reset is not None:
            self.on_reset()  # the process's restart (it stops the SECC after this session has ended)

    # --- internals ----------------------------------------------------------------------------
    def _end_interrupted_transaction(self) -> None:
        """A transaction still open in the database means the process died during it (kill,
        power loss): end it now, before anything new, so the CSMS never sees it hang."""
        open_tx = self.station.store.get("open_transaction")
        if open_tx:
            now = self.station.now
            self.station.enqueue("TransactionEvent", transaction_event(
                "Ended", "AbnormalCondition", open_tx["id"], timestamp=iso(now), evse_id=self.evse_id,
                stopped_reason="PowerLoss"), now=now, state={"open_transaction": None})

    def _meter(self, now: float) -> list:
        m = self.stage.measurements(now)
        values = [{"value": round(m.energy_imported_wh, 3), "measurand": "Energy.Active.Import.Register",
                   "unitOfMeasure": {"unit": "Wh"}},
                  {"value": round(m.energy_exported_wh, 3), "measurand": "Energy.Active.Export.Register",
                   "unitOfMeasure": {"unit": "Wh"}},
                  {"value": round(max(m.power, 0.0), 1), "measurand": "Power.Active.Import",
                   "unitOfMeasure": {"unit": "W"}},
                  {"value": round(max(-m.power, 0.0), 1), "measurand": "Power.Active.Export",
                   "unitOfMeasure": {"unit": "W"}}]
        if self.soc is not None:
            values.append({"value": self.soc, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}})
        return [{"timestamp": iso(self.wall(now)), "sampledValue": values}]

    # --- the station's timers (Unix time): clock-aligned meter values, profile expiry -------------
    def _set_aligned_interval(self, value: str) -> None:
        """AlignedDataCtrlr.Interval (0 = off): MeterValues at every multiple of the interval past
        the hour, whether or not a session runs; a new interval applies at once."""
        self.aligned_interval = float(value)
        self._next_aligned = None
        self.station.changed()

    def next_deadline(self) -> float | None:
        """The station core asks its timer sources (Unix time)."""
        times = []
        if self.aligned_interval > 0:
            if self._next_aligned is None:
                now = self.station.now
                self._next_aligned = (now // self.aligned_interval + 1) * self.aligned_interval
            times.append(self._next_aligned)
        if self._next_tx_meter is not None:
            times.append(self._next_tx_meter)
        expiry = self.profiles.expiry_after()
        if expiry is not None and self.station.offline_since is not None and not self.station.online:
            times.append(self.station.offline_since + expiry + 1e-3)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        if self._next_aligned is not None and now >= self._next_aligned:
            self._next_aligned = None
            meter = self._meter(self.secc_time(now))
            for sample in meter:
                for v in sample["sampledValue"]:
                    v["context"] = "Sample.Clock"
            self._enqueue("MeterValues", {"evseId": self.evse_id, "meterValue": meter}, now=self.secc_time(now))
        if self._next_tx_meter is not None and now >= self._next_tx_meter and self.transaction_id is not None:
            self._tx("Updated", "MeterValuePeriodic", now=self.secc_time(now))
        self.profiles.expire(self.station.offline_for(now))

    def _ev_charging_schedule(self, entries: tuple[tuple[int, float], ...], anchor: int | None, now: float) -> None:
        """NotifyEVChargingSchedule: the power profile the car sent with PowerDelivery(Start)."""
        periods, start = [], 0
        for duration, watts in entries:
            period: dict = {"startPeriod": int(start), "limit": max(watts, 0.0)}
            if watts < 0:
                period["dischargeLimit"] = watts
            periods.append(period)
            start += duration
        anchor = anchor or int(self.wall(now))
        self._enqueue("NotifyEVChargingSchedule", {"timeBase": iso(anchor), "evseId": self.evse_id, "chargingSchedule": {
            "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": periods}}, now=now)

    def _tx(self, kind: str, trigger: str, *, now: float, state: dict | None = None, **kw) -> None:
        """A TransactionEvent with the meter (``now``: the SECC's); the next periodic one
        TxUpdatedInterval later."""
        interval = self.tx_updated_interval
        self._next_tx_meter = self.wall(now) + interval if interval > 0 and kind != "Ended" else None
        self.station.changed()
        self._enqueue("TransactionEvent", transaction_event(
            kind, trigger, self.transaction_id, timestamp=iso(self.wall(now)), evse_id=self.evse_id,
            meter_value=self._meter(now), **kw), now=now, state=state)

    def _enqueue(self, action: str, payload: dict, *, now: float, state: dict | None = None) -> None:
        """Queue for the CSMS (``now``: the SECC's); a payload our own mapping got wrong is logged,
        and the charging session (which called us) goes on."""
        try:
            self.station.enqueue(action, payload, now=self.wall(now), state=state)
        except (OCPPError, ValueError) as e:  # ValueError: a non-finite number (never sent)
            log.error("not queued, %s breaks the OCPP 2.1 schema: %s", action, e)

    # --- CSMS-initiated requests (camelCase payloads, schema-validated by the station) ---------
    def _set_charging_profile(self, payload: dict) -> dict:
        if payload["evseId"] not in (0, self.evse_id):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        try:
            prof = self.profiles.set(payload["chargingProfile"], self.transaction_id)
        except ProfileRejected as e:
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason, "additionalInfo": str(e)[:1024]}}
        if prof.purpose == "TxProfile" and prof.transaction_id is None:
            prof.transaction_id = self.transaction_id
        return {"status": "Accepted"}

    def _composite_schedule(self, payload: dict) -> dict:
        if payload["evseId"] not in (0, self.evse_id) or payload.get("chargingRateUnit", "W") != "W":
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRateUnit"
                                                         if payload["evseId"] in (0, self.evse_id) else "UnknownEvse"}}
        start = int(self.station.now)
        periods = self._composite(start, payload["duration"])
        return {"status": "Accepted", "schedule": {"evseId": payload["evseId"], "duration": payload["duration"],
                                                   "scheduleStart": iso(start), "chargingRateUnit": "W",
                                                   "chargingSchedulePeriod": periods}}

    def _composite(self, start: float, duration: float) -> list[dict]:
        return composite(self.profiles.profiles.values(), start=start, duration=duration, tx_start=self.tx_start,
                         default_w=self.profiles.default_setpoint_w, external=self.external_setpoint)

    def _clear_charging_profile(self, payload: dict) -> dict:
        crit = payload.get("chargingProfileCriteria", {})
        n = self.profiles.clear(payload.get("chargingProfileId"), crit.get("chargingProfilePurpose"),
                                crit.get("stackLevel"))
        return {"status": "Accepted" if n else "Unknown"}

    def _get_charging_profiles(self, payload: dict) -> dict:
        request_id = payload["requestId"]
        found = [p.raw for p in self.profiles.profiles.values()]
        if not found:
            return {"status": "NoProfiles"}
        now = self.secc_time(self.station.now)
        self.station.after_response(lambda: self._enqueue("ReportChargingProfiles", {
            "requestId": request_id, "chargingLimitSource": "CSO", "evseId": self.evse_id,
            "chargingProfile": found}, now=now))
        return {"status": "Accepted"}

    def _allowed_energy_transfer(self, payload: dict) -> dict:
        if self.transaction_id is None or payload["transactionId"] != self.transaction_id:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "TxNotFound"}}
        self.allowed_energy_transfer = list(payload["allowedEnergyTransfer"])
        return {"status": "Accepted"}

    def _reset(self, payload: dict) -> dict:
        """Immediate: end a running session (de-energise, Ended with ImmediateReset), then
        restart; OnIdle: restart once no session runs. The restart itself is the process's
        (``on_reset``); without one, Reset is refused."""
        if self.on_reset is None or payload.get("evseId") not in (None, self.evse_id):
            return {"status": "Rejected"}
        kind = payload["type"]
        self.station.store.set("boot_reason", "RemoteReset")
        if self.transaction_id is None:
            self.station.after_response(self.on_reset)
            return {"status": "Accepted"}
        self.reset_pending = "Immediate" if kind in ("Immediate", "ImmediateAndResume") else "OnIdle"
        return {"status": "Accepted" if self.reset_pending == "Immediate" else "Scheduled"}

    def _change_availability(self, payload: dict) -> dict:
        operative = payload["operationalStatus"] == "Operative"
        if payload.get("evse", {}).get("id", self.evse_id) not in (0, self.evse_id):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        if self.transaction_id is not None and not operative:
            self.pending_operative = operative  # after the session (it is not interrupted)
            return {"status": "Scheduled"}
        self._apply_availability(operative)
        if self.transaction_id is None:
            self.station.set_connector_status(self.evse_id, 1, "Available" if operative else "Unavailable",
                                              now=self.station.now)
        return {"status": "Accepted"}

    def _apply_availability(self, operative: bool) -> None:
        self.operative = operative
        self.pending_operative = None
        self.station.store.set("operative", operative)

    def _request_start(self, payload: dict) -> dict:
        """The car starts an ISO 15118 session itself; a remote start authorizes the next one
        (its idToken and remoteStartId go into TransactionEvent Started, with its profile)."""
        if not self.operative or self.transaction_id is not None:
            return {"status": "Rejected"}
        if payload.get("chargingProfile"):
            try:
                Profile.parse(payload["chargingProfile"])
            except ProfileRejected as e:
                return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason}}
        self.remote_start = payload
        return {"status": "Accepted"}

    def _request_stop(self, payload: dict) -> dict:
        if self.transaction_id is None or payload["transactionId"] != self.transaction_id:
            return {"status": "Rejected"}
        self.stop_requested_by_csms = True
        return {"status": "Accepted"}


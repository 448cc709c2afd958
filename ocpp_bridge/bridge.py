"""The SECC's supervisor over OCPP 2.1: it answers the session's questions (authorization,
consent, setpoint, the plan ahead) from the CSMS and reports the EVSE to it; the power stage
below is the SECC's (the bridge only reads its meter).

The EVSE as OCPP sees it (part 2 E, F, G, J; the behaviour the OCPP 2.0.1 part 6 test cases
check is named by their TC ids):
- the connector: the cable (plugged or not) — from the hardware's control pilot
  (``cable_plugged``/``cable_unplugged``), or, where there is none (``cable_sensor=False``, as
  in `v2h charger`), from the ISO 15118 session (a session means a car on the cable; its end,
  that the car left) — and availability at three levels (station, EVSE, connector, persisted);
  its status Available / Occupied / Unavailable / Faulted follows from both;
- the transaction: started when the first of TxCtrlr.TxStartPoint happens (EVConnected,
  Authorized, PowerPathClosed = connected and authorized, EnergyTransfer), ended when one of
  TxCtrlr.TxStopPoint that held stops holding, and always when the cable goes (E01, E06);
  chargingState Idle / EVConnected / Charging / SuspendedEV follows the cable and the energy
  transfer (the car stopping it itself: SuspendedEV; the station stopping it: EVConnected);
- meter values (J01, J02): Transaction.Begin samples of SampledDataCtrlr.TxStartedMeasurands in
  Started, Sample.Periodic every TxUpdatedInterval, the samples of TxEndedInterval (periodic) and
  AlignedDataCtrlr.TxEndedInterval (clock) with Transaction.End in Ended, clock-aligned
  MeterValues of AlignedDataCtrlr.Measurands (not during a transaction with SendDuringIdle);
  the car's SoC only while a car is there;
- remote control (F01–F06): RequestStartTransaction with or without a car (EVConnectionTimeOut
  for the cable, Authorize first with AuthCtrlr.AuthorizeRemoteStart), RequestStopTransaction,
  TriggerMessage for MeterValues and TransactionEvent, GetTransactionStatus (E14), Reset
  (Immediate: the transaction ends with ImmediateReset; OnIdle: Scheduled, the boot says
  ScheduledReset), ChangeAvailability, UnlockConnector (a fixed cable: UnknownConnector);
- the car's -20 parameters become NotifyEVChargingNeeds (once per schedule exchange) and its
  power profile NotifyEVChargingSchedule; a -2 or DIN car's AC or DC parameters, once per
  ChargeParameterDiscovery (charging only: no V2X parameters);
- SetChargingProfile / ClearChargingProfile / GetChargingProfiles / GetCompositeSchedule feed the
  setpoint the SECC reads every charge loop, through the one arbiter (``arbiter.decide``);
  offline, the profiles' maxOfflineDuration falls back to the safe default (charge, never
  discharge) unless the site is islanded;
- Plug & Charge authorization is a request/answer exchange with the CSMS that the session waits
  on with EVSEProcessing=Ongoing.

Sans-I/O like the core it sits on: times come from the SECC (its monotonic ``now``, turned into
the station's Unix time with ``clock_offset`` and ``clock_scale``) or from the core's timers.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography import x509

from ocpp.exceptions import OCPPError

from iso15118.secc.controller import AuthorizationStatus, PowerStage
from iso15118.secc.events import (Authorized, EndReason, EnergyTransferStarted, EnergyTransferStopped,
                                  EVChargingNeeds, GeneratorMode, PowerChanged, SessionEnded, SessionEvent,
                                  SessionStarted, SoCChanged, StageFault)
from iso15118.secc.supervisor import SupervisorBase

from .arbiter import PowerLimits, SetpointDecision, composite, decide
from .certificates import PlugAndChargeSupervision
from .core import StationCore, iso, transaction_event
from .device_model import RW, Variable
from .firmware import FirmwareManager, Installer
from .profiles import MAX_POWER_W, ProfileRejected, ProfileStore

log = logging.getLogger(__name__)
ENERGY_MODES = {"DC": "DC", "DC_BPT": "DC_BPT", "AC": "AC_three_phase", "AC_BPT": "AC_BPT"}
# ISO 15118-2 / DIN 70121 RequestedEnergyTransferMode → OCPP 2.1 EnergyTransferModeEnumType
ISO2_ENERGY_MODES = {"AC_single_phase_core": "AC_single_phase", "AC_three_phase_core": "AC_three_phase"}


def _iso2_needs(n: EVChargingNeeds) -> dict:
    """requestedEnergyTransfer and acChargingParameters or dcChargingParameters of a -2 or DIN
    car (each block only with its required fields known)."""
    out: dict = {"requestedEnergyTransfer": ISO2_ENERGY_MODES.get(n.energy_transfer_mode or "", "DC")}
    if n.service == "AC":
        ac = {"energyAmount": n.energy_amount, "evMinCurrent": n.min_charge_current,
              "evMaxCurrent": n.max_charge_current, "evMaxVoltage": n.max_voltage}
        if None not in ac.values():
            out["acChargingParameters"] = ac
        return out
    dc = {k: v for k, v in (("evMaxCurrent", n.max_charge_current), ("evMaxVoltage", n.max_voltage),
                            ("evMaxPower", n.max_charge_power), ("evEnergyCapacity", n.energy_capacity),
                            ("energyAmount", n.energy_amount)) if v is not None}
    dc.update({k: int(v) for k, v in (("stateOfCharge", n.present_soc), ("fullSoC", n.full_soc),
                                      ("bulkSoC", n.bulk_soc)) if v is not None})
    if "evMaxCurrent" in dc and "evMaxVoltage" in dc:
        out["dcChargingParameters"] = dc
    return out


# why a session ended → the transaction's stoppedReason (OCPP 2.1 part 2 E); the trigger of the
# Ended event is the cable's (EVCommunicationLost) or the stop point's
STOPPED_REASONS = {
    EndReason.STOPPED_BY_EV: "StoppedByEV",
    EndReason.SEQUENCE_TIMEOUT: "Timeout",
    EndReason.CONNECTION_LOST: "EVDisconnected",
    EndReason.PROTOCOL_ERROR: "Other",
    EndReason.REFUSED: "Other",
    EndReason.FAULT: "Other",
    EndReason.EMERGENCY_STOP: "EmergencyStop",
    EndReason.STOPPED_BY_SUPERVISOR: "Other",
}
# SmartChargingCtrlr's limits: stack levels, periods per schedule (a day of 5-minute steps), profiles
PROFILE_STACK_LEVEL, PERIODS_PER_SCHEDULE, PROFILE_ENTRIES = 10, 288, 64
FLOW_CHECK = 2.0  # s after PowerDelivery(Start): Charging, SuspendedEV or SuspendedEVSE from the meter
FLOW_W = 100.0    # W: less is no flow (the SECC reports power changes beyond max(100 W, 5 %))
MAX_ENDED_SAMPLES = 200  # meter samples kept for TransactionEvent Ended (TxEndedInterval); the oldest go first

# a v2h variable the energy manager sets (SetVariables) while its transfer switch has isolated the
# house from the grid: the charger then forms the island (not persisted: after a restart the
# charger assumes the grid, where the safe default never discharges)
ISLAND = ("V2HSiteCtrlr", "Islanded", None)


@dataclass
class Transaction:
    id: str
    start: float                        # station (Unix) time
    seen: set[str] = field(default_factory=set)   # the TxStopPoint conditions that held during it
    id_token: dict | None = None        # the token reported in its events
    remote_start_id: int | None = None
    stop_reason: str | None = None      # what ended (or will end) it: Remote, StoppedByEV, …
    samples: list[dict] = field(default_factory=list)  # for Ended (TxEndedInterval, clock TxEndedInterval)
    next_periodic: float | None = None  # TxUpdatedInterval
    next_ended: float | None = None     # SampledDataCtrlr.TxEndedInterval
    next_aligned_ended: float | None = None  # AlignedDataCtrlr.TxEndedInterval


class OCPPBridge(PlugAndChargeSupervision, SupervisorBase):
    """The supervisor of one EVSE over a station core: give it to the SECC with the power stage
    (``EVSEController(stage, bridge)``); it reads the stage's meter for OCPP. ``station`` is a
    ``StationCore`` or an adapter holding one (``.core``); ``clock_offset`` turns the SECC's
    ``now`` into Unix time (0 when the SECC already runs on Unix time). ``cable_sensor``: the
    hardware reports the cable (``cable_plugged``/``cable_unplugged``), ``cable`` its state at
    power-up; without one the ISO 15118 session stands for the cable. ``installer`` and
    ``firmware_roots`` (the manufacturer's certificates) make UpdateFirmware possible, with the
    core's ``transfer``."""

    def __init__(self, stage: PowerStage, station, *, evse_id: int = 1,
                 default_setpoint_w: float = 7000.0, tx_updated_interval: float = 60.0,
                 allow_bidirectional: bool = True, clock_offset: float | None = None, clock_scale: float = 1.0,
                 cable_sensor: bool = False, cable: bool = False, installer: Installer | None = None,
                 firmware_roots: Iterable[x509.Certificate] = ()):
        core: StationCore = getattr(station, "core", station)
        if clock_offset is None:  # an adapter knows its clock's offset; a bare core runs on the caller's
            clock_offset = getattr(station, "clock_offset", 0.0)
        self.clock_scale = clock_scale  # station seconds per SECC second (an accelerated demo)
        self.stage = stage
        self.station = core
        self.clock_offset = clock_offset
        self.evse_id = evse_id
        self.cable_sensor = cable_sensor
        # A schedules in W: AC per phase at the nominal voltage, DC at a nominal 400 V output
        limits = stage.limits()
        self.volts, self.phases = (limits.nominal_voltage, 3) if getattr(stage, "kind", "DC") == "AC" else (400.0, 1)
        self.profiles = ProfileStore(default_setpoint_w,
                                     on_change=lambda raws: core.store.set("charging_profiles", raws),
                                     volts=self.volts, phases=self.phases, max_stack_level=PROFILE_STACK_LEVEL,
                                     max_periods=PERIODS_PER_SCHEDULE, max_entries=PROFILE_ENTRIES)
        self.profiles.restore(core.store.get("charging_profiles", []))
        self.allow_bidirectional = allow_bidirectional
        # the EVSE
        self.cable = cable
        self.energy = False
        self._flow_check: float | None = None     # when to look whether energy flows (after PowerDelivery)
        self._reported_state: str | None = None   # the chargingState the transaction's last event said
        self.charging_state = "EVConnected" if cable else "Idle"
        self.authorization: dict | None = None   # the idToken that authorizes charging now
        self._auth_reported = True               # that authorization is in a TransactionEvent already
        self.remote_start: dict | None = None    # RequestStartTransaction waiting for the cable
        self._remote_expires: float | None = None
        self.tx: Transaction | None = None
        self.stop_requested_by_csms = False
        self._station_stop = False               # the station, not the car, ends this energy transfer
        self.soc: float | None = None   # the car's PresentSOC, % (from the charge loop)
        self.external_setpoint: float | None = None
        self.islanded = False
        self.needs: EVChargingNeeds | None = None
        self.allowed_energy_transfer: list[str] | None = None  # None: the CSMS has not said
        # Plug & Charge: the EMAID asked about and the CSMS's answer (None: no answer, offline rule)
        self._auth: tuple[str, bool, dict | None] | None = None
        self.v2x_enabled = True
        self._next_aligned: float | None = None
        self.on_reset: Callable[[], None] | None = None  # the process restarts itself (set by `v2h charger`)
        self.reset_pending: str | None = None  # "Immediate" or "OnIdle" while a session runs
        self._restarting = False               # on_reset was called: the process goes down
        self.firmware_pending = False          # a firmware update waits for the EVSE to be idle
        self.on_idle: list[Callable[[], None]] = []  # run when a transaction ends (a scheduled install)
        saved = core.store.get("availability")
        if saved is None:  # before three levels, one flag for the station
            saved = {"station": core.store.get("operative", True), "evse": True, "connector": True}
        self.availability: dict[str, bool] = saved
        self.pending_availability: dict[str, bool] = {}
        dm = core.device_model
        key = ("SampledDataCtrlr", None, None, "TxUpdatedInterval", None)
        # the start-up setting (it may be under a second, for tests); what the CSMS sets wins
        self.tx_updated_interval = float(dm.values[key]) if key in dm.persisted else tx_updated_interval
        if key not in dm.persisted:
            dm.values[key] = str(max(1, round(tx_updated_interval)) if tx_updated_interval > 0 else 0)
        dm.listen("V2XChargingCtrlr", "Enabled", lambda v: setattr(self, "v2x_enabled", v == "true"))
        dm.add(Variable(*ISLAND[:2], "boolean", RW, "false", persistent=False))
        dm.listen(*ISLAND[:2], lambda v: setattr(self, "islanded", v == "true"))
        dm.listen("AlignedDataCtrlr", "Interval", lambda v: self._rearm())
        dm.listen("SampledDataCtrlr", "TxUpdatedInterval", self._set_tx_interval)
        for name in ("AvailabilityState",):
            dm.get("ChargingStation", name, self._station_state)
            dm.get("EVSE", name, lambda: core.connector_status.get((evse_id, 1), "Available"), evse=evse_id)
            dm.get("Connector", name, lambda: core.connector_status.get((evse_id, 1), "Available"), evse=evse_id,
                   connector=1)
        dm.get("ChargingStation", "Available", lambda: _bool(self.availability["station"]))
        dm.get("EVSE", "Available", lambda: _bool(self.availability["station"] and self.availability["evse"]),
               evse=evse_id)
        dm.get("Connector", "Available", lambda: _bool(self.operative), evse=evse_id, connector=1)
        dm.get("EVSE", "Power", lambda: f"{self.stage.measurements(self.secc_time(core.now)).power:.1f}", evse=evse_id)
        dm.get("SmartChargingCtrlr", "Entries", lambda: str(len(self.profiles.profiles)), instance="ChargingProfiles")
        core.timers.append(self)
        core.outbox_answered.append(self._outbox_answered)
        core.triggers.update({"MeterValues": self._trigger_meter_values, "TransactionEvent": self._trigger_tx})
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
            "GetTransactionStatus": self._transaction_status,
            "UnlockConnector": self._unlock_connector,
        })
        core.connector_status[(evse_id, 1)] = self._status(core.now)
        core.diagnostics.bridge = self
        self.firmware = FirmwareManager(core, self, core.transfer, installer, list(firmware_roots))
        self._init_plug_and_charge()  # Get15118EVCertificate (ocpp_bridge.certificates)

    # --- time -----------------------------------------------------------------------------------------
    def wall(self, now: float) -> float:
        """The SECC's ``now`` as the station's (Unix) time."""
        return now * self.clock_scale + self.clock_offset

    def secc_time(self, wall: float) -> float:
        """The station's time as the SECC's ``now`` (the inverse of ``wall``)."""
        return (wall - self.clock_offset) / self.clock_scale

    # --- the device model's settings, read where they act --------------------------------------------
    def _var(self, component: str, name: str, instance: str | None = None) -> str:
        return self.station.device_model.value(component, name, instance)

    def _points(self, name: str) -> set[str]:
        return {p for p in self._var("TxCtrlr", name).split(",") if p}

    def _seconds(self, component: str, name: str) -> float:
        return float(self._var(component, name))

    @property
    def operative(self) -> bool:
        a = self.availability
        return a["station"] and a["evse"] and a["connector"]

    @property
    def transaction_id(self) -> str | None:
        return self.tx.id if self.tx is not None else None

    @property
    def tx_start(self) -> float | None:
        return self.tx.start if self.tx is not None else None

    # --- the lower half: the SECC's questions ---------------------------------------------------------
    def stop_requested(self, now: float) -> str | None:
        """The CSMS's RequestStopTransaction, a deauthorization or an immediate Reset end the
        session at the next step."""
        if self.stop_requested_by_csms:
            return "stopped by the CSMS (RequestStopTransaction)"
        if self.reset_pending == "Immediate":
            return "reset by the CSMS"
        if self.tx is not None and self.tx.stop_reason == "DeAuthorized":
            return "deauthorized by the CSMS"
        return None

    def authorize(self, method: str, identity: str, now: float) -> AuthorizationStatus:
        """Inoperative refuses; a remote start authorizes the car. EIM has no token at v2h's
        chargers (no reader): with AuthCtrlr.Enabled false it is NoAuthorization at once, like
        C02's start button; with Enabled true the car waits (ONGOING: the SECC repeats
        AuthorizationRes EVSEProcessing=Ongoing) for a RequestStartTransaction. Plug & Charge:
        the CSMS's Authorize for the EMAID (AuthCtrlr.LocalPreAuthorize: the contract the SECC
        validated suffices at once), ONGOING until it answers; no answer (offline, timeout,
        CALLERROR): ISO15118Ctrlr.ContractValidationOffline and AuthCtrlr.LocalAuthorizeOffline
        decide whether the contract the SECC validated itself suffices."""
        if not self.operative or self._new_sessions_blocked():
            return AuthorizationStatus.REJECTED  # ChangeAvailability Inoperative, a pending firmware update
        if self.authorization is not None:
            return AuthorizationStatus.ACCEPTED  # RequestStartTransaction authorized this car
        if method != "PnC":
            required = self._var("AuthCtrlr", "Enabled") == "true"
            return AuthorizationStatus.ONGOING if required else AuthorizationStatus.ACCEPTED
        if self._var("AuthCtrlr", "LocalPreAuthorize") == "true":
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
            offline_ok = self._var("ISO15118Ctrlr", "ContractValidationOffline") == "true" and \
                self._var("AuthCtrlr", "LocalAuthorizeOffline") == "true"
            return AuthorizationStatus.ACCEPTED if offline_ok else AuthorizationStatus.REJECTED
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
        charging_needs: dict = {"requestedEnergyTransfer": ENERGY_MODES.get(n.service, "DC"),
                                "controlMode": "DynamicControl" if n.control_mode == "Dynamic" else "ScheduledControl",
                                "mobilityNeedsMode": "EVCC"}
        if n.protocol in ("iso2", "din"):  # charging only: the AC or DC parameters of ChargeParameterDiscovery
            charging_needs.update(_iso2_needs(n))
        else:
            v2x = {k: v for k, v in (("maxChargePower", n.max_charge_power),
                                     ("maxDischargePower", n.max_discharge_power),
                                     ("evTargetEnergyRequest", n.target_energy), ("evMaxEnergyRequest", n.max_energy),
                                     ("evMinEnergyRequest", n.min_energy), ("evMinV2XEnergyRequest", n.min_v2x_energy),
                                     ("evMaxV2XEnergyRequest", n.max_v2x_energy)) if v is not None}
            if v2x:
                charging_needs["v2xChargingParameters"] = v2x
        if n.departure_time:
            charging_needs["departureTime"] = iso(int(self.wall(now) + n.departure_time))
        self._enqueue("NotifyEVChargingNeeds", {"evseId": self.evse_id, "chargingNeeds": charging_needs,
                                                "timestamp": iso(self.wall(now))}, self.wall(now))

    def session_event(self, event: SessionEvent, now: float) -> None:
        t = self.wall(now)
        if isinstance(event, SessionStarted):
            self._session_started(t)
        elif isinstance(event, Authorized):
            self._authorized({"idToken": event.emaid, "type": "eMAID" if event.method == "PnC" else "NoAuthorization"},
                             t, remote=False)
        elif isinstance(event, EnergyTransferStarted):
            self._energy_started(t)
            if event.ev_power_profile:
                self._ev_charging_schedule(event.ev_power_profile, event.time_anchor, t)
        elif isinstance(event, SoCChanged):
            self.soc = event.soc
        elif isinstance(event, PowerChanged):  # the power moved: the flow's state, or ChargingRateChanged
            if self.tx is not None and not self._check_flow(t):
                self._tx_event("Updated", "ChargingRateChanged", t, meter=self._sample("Other", "TxUpdatedMeasurands", t))
        elif isinstance(event, EnergyTransferStopped):
            self._energy_stopped(t)
        elif isinstance(event, StageFault):
            self._update_status(t)
        elif isinstance(event, SessionEnded):
            self._session_ended(event, t)

    # --- the cable -------------------------------------------------------------------------------------
    def cable_plugged(self, now: float) -> None:
        """The control pilot says a car is on the cable (``now``: the SECC's clock)."""
        self._plugged(self.wall(now))

    def cable_unplugged(self, now: float) -> None:
        """The car left (control pilot state A)."""
        self._unplugged(self.wall(now), "EVDisconnected")

    def _plugged(self, t: float) -> None:
        if self.cable:
            return
        self.cable = True
        self._remote_expires = None
        self.charging_state = "EVConnected"
        self._update_status(t)
        if self.tx is not None:  # started by an authorization before the cable (Authorized start point)
            self._tx_event("Updated", "CablePluggedIn", t, charging_state="EVConnected", with_evse=True)
        self._maybe_start("CablePluggedIn", t)

    def _unplugged(self, t: float, reason: str) -> None:
        if not self.cable:
            return
        self.cable = self.energy = False
        self.charging_state = "Idle"
        self.authorization, self._auth_reported = None, True  # StopTxOnEVSideDisconnect
        self.remote_start = None
        if self.tx is not None:
            self._end("EVCommunicationLost", self.tx.stop_reason or reason, t)
        self.soc = None
        self._update_status(t)
        self._after_transaction(t)

    # --- the session's events ---------------------------------------------------------------------------
    def _session_started(self, t: float) -> None:
        self.needs = None
        self.allowed_energy_transfer = None
        self._auth = None
        self._station_stop = False
        self.stop_requested_by_csms = False
        if not self.cable:
            self._plugged(t)  # a session means a car on the cable (where no sensor says so earlier)
        elif self.tx is None:
            self._maybe_start("CablePluggedIn", t)  # a car left plugged in across a restart starts again

    def _authorized(self, token: dict, t: float, *, remote: bool, remote_start_id: int | None = None) -> None:
        if self.authorization is not None and not remote:
            return  # already authorized (a remote start): no second Authorized event
        self.authorization = token
        self._auth_reported = False
        if self.tx is not None:
            self.tx.seen.add("Authorized")
            trigger = "RemoteStart" if remote else "Authorized"
            self.tx.id_token = token
            self.tx.remote_start_id = remote_start_id
            self._tx_event("Updated", trigger, t, id_token=token, remote_start_id=remote_start_id)
            self._auth_reported = True
            if remote and self.remote_start is not None and self.remote_start.get("chargingProfile"):
                self._apply_remote_profile(self.remote_start)
            self.remote_start = None
        else:
            self._maybe_start("RemoteStart" if remote else "Authorized", t)

    def _energy_started(self, t: float) -> None:
        """PowerDelivery(Start): whether energy flows (Charging), the car takes none of what is
        offered (SuspendedEV: it is not ready, its battery is full) or nothing is offered
        (SuspendedEVSE) shows in the first loops: the state is reported FLOW_CHECK later."""
        self.energy = True
        self._station_stop = False
        self._flow_check = t + FLOW_CHECK
        self.station.changed()
        if self.tx is None:
            self.charging_state = "Charging"
            self._maybe_start("ChargingStateChanged", t)

    def _flow_state(self, t: float) -> str:
        """Charging while power flows (either way), else whose doing the standstill is."""
        now = self.secc_time(t)
        if abs(self.stage.measurements(now).power) >= FLOW_W:
            return "Charging"
        return "SuspendedEVSE" if abs(self.decision(now).power_w) < 1.0 else "SuspendedEV"

    def _check_flow(self, t: float) -> bool:
        """The flow's state now; a ChargingStateChanged if the transaction's events said another.
        True if one was sent."""
        self._flow_check = None
        if not self.energy:
            return False
        self.charging_state = self._flow_state(t)
        if self.tx is None or self.charging_state == self._reported_state:
            return False
        self._tx_event("Updated", "ChargingStateChanged", t, meter=self._sample("Other", "TxUpdatedMeasurands", t))
        return True

    def _energy_stopped(self, t: float) -> None:
        if not self.energy:
            return
        self.energy = False
        self._flow_check = None
        station = self._station_stop or self.stop_requested_by_csms or self.reset_pending == "Immediate" or \
            (self.tx is not None and self.tx.stop_reason == "DeAuthorized")
        self.charging_state = "EVConnected" if station else "SuspendedEV"
        if self.tx is None:
            return
        if "EnergyTransfer" in self._points("TxStopPoint"):
            trigger = "RemoteStop" if self.tx.stop_reason == "Remote" else "ChargingStateChanged"
            self.charging_state = "EVConnected"
            self._end(trigger, self.tx.stop_reason or "StoppedByEV", t)
            self._update_status(t)
            self._after_transaction(t)
            return
        if self.charging_state != self._reported_state:
            self._tx_event("Updated", "ChargingStateChanged", t, charging_state=self.charging_state,
                           meter=self._sample("Other", "TxUpdatedMeasurands", t))

    def _session_ended(self, event: SessionEnded, t: float) -> None:
        if self.energy:  # ended while energised (a lost connection, a fault): the transfer stopped with it
            if event.reason is not EndReason.STOPPED_BY_EV and event.reason is not EndReason.PAUSED:
                self._station_stop = self._station_stop or event.reason in (
                    EndReason.FAULT, EndReason.EMERGENCY_STOP, EndReason.STOPPED_BY_SUPERVISOR)
            self._energy_stopped(t)
        if self.tx is not None and self.tx.stop_reason is None and event.reason in STOPPED_REASONS:
            self.tx.stop_reason = STOPPED_REASONS[event.reason]
        if not self.cable_sensor:  # no control pilot here: the session's end is the car's departure
            reason = STOPPED_REASONS.get(event.reason, "EVDisconnected") if event.reason is not EndReason.PAUSED \
                else "StoppedByEV"
            self._unplugged(t, reason)
            return
        if event.reason is EndReason.PAUSED and self.tx is not None and self.charging_state != "SuspendedEV":
            self.charging_state = "SuspendedEV"  # the car paused the session: it suspends charging
            self._tx_event("Updated", "ChargingStateChanged", t, charging_state="SuspendedEV")
        self._update_status(t)

    # --- transactions (E01, E06) ------------------------------------------------------------------------
    def _holds(self, point: str) -> bool:
        return {"EVConnected": self.cable, "Authorized": self.authorization is not None,
                "PowerPathClosed": self.cable and self.authorization is not None,
                "EnergyTransfer": self.energy}.get(point, False)

    def _maybe_start(self, trigger: str, t: float) -> None:
        """Start the transaction if one of TxStartPoint holds now."""
        if self.tx is not None or not self.operative:
            return
        if not any(self._holds(p) for p in self._points("TxStartPoint")):
            return
        tx = Transaction(str(uuid.uuid4()), t)
        self.tx = tx
        self.stop_requested_by_csms = False
        tx.seen = {p for p in ("EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer") if self._holds(p)}
        token, remote_id = None, None
        if self.authorization is not None and not self._auth_reported:
            token = self.authorization
            self._auth_reported = True
            if self.remote_start is not None:
                trigger, remote_id = "RemoteStart", self.remote_start["remoteStartId"]
        tx.id_token, tx.remote_start_id = token, remote_id
        if self.remote_start is not None and self.remote_start.get("chargingProfile"):
            self._apply_remote_profile(self.remote_start)
        self.remote_start = None if self.cable else self.remote_start
        self._schedule_samples(t)
        self._tx_event("Started", trigger, t, charging_state=self.charging_state, id_token=token,
                       remote_start_id=remote_id, meter=self._sample("Transaction.Begin", "TxStartedMeasurands", t),
                       state={"open_transaction": {"id": tx.id, "start": t}})
        self._update_status(t)

    def _end(self, trigger: str, stopped_reason: str, t: float, *, charging_state: str | None = None) -> None:
        """TransactionEvent Ended with the samples collected for it and a Transaction.End sample."""
        tx = self.tx
        if tx is None:
            return
        meter = list(tx.samples)
        end = self._sample("Transaction.End", "TxEndedMeasurands", t)
        if end:
            meter += end
        self._tx_event("Ended", trigger, t, charging_state=charging_state or self.charging_state,
                       stopped_reason=stopped_reason, meter=meter, state={"open_transaction": None})
        self.tx = None
        self.stop_requested_by_csms = False
        self.profiles.end_transaction()
        self.station.changed()

    def _after_transaction(self, t: float) -> None:
        """What waited for the EVSE to be idle: a scheduled ChangeAvailability, an OnIdle Reset,
        a firmware installation."""
        if self.tx is not None:
            return
        if self.pending_availability:
            for level, operative in self.pending_availability.items():
                self.availability[level] = operative
            self.pending_availability = {}
            self.station.store.set("availability", self.availability)
            self._update_status(t)
        if self.reset_pending == "OnIdle":
            self.station.store.set("boot_reason", "ScheduledReset")
        if self.reset_pending and self.on_reset is not None and not self._restarting:
            self._restarting = True
            self.on_reset()  # the process's restart (it stops the SECC after this session has ended)
            return
        hooks, self.on_idle = self.on_idle, []
        for hook in hooks:
            hook()

    def _end_interrupted_transaction(self) -> None:
        """A transaction still open in the database means the process died during it (kill,
        power loss): end it now, before anything new, so the CSMS never sees it hang."""
        open_tx = self.station.store.get("open_transaction")
        if open_tx:
            now = self.station.now
            self.station.enqueue("TransactionEvent", transaction_event(
                "Ended", "AbnormalCondition", open_tx["id"], timestamp=iso(now), evse_id=self.evse_id,
                stopped_reason="PowerLoss", charging_state=self.charging_state), now=now,
                state={"open_transaction": None})

    def _tx_event(self, kind: str, trigger: str, t: float, *, charging_state: str | None = None,
                  stopped_reason: str | None = None, id_token: dict | None = None,
                  remote_start_id: int | None = None, meter: list | None = None, state: dict | None = None,
                  with_evse: bool | None = None) -> None:
        tx = self.tx
        if tx is None:
            return
        self._reported_state = charging_state or self.charging_state
        self._enqueue("TransactionEvent", transaction_event(
            kind, trigger, tx.id, timestamp=iso(t), evse_id=self.evse_id, meter_value=meter,
            charging_state=charging_state or self.charging_state, stopped_reason=stopped_reason, id_token=id_token,
            remote_start_id=remote_start_id, with_evse=with_evse), t, state=state)

    # --- the connector's status (G01, G03–G05) -------------------------------------------------------------
    def _status(self, t: float) -> str:
        if self.tx is None and (not self.operative or self._new_sessions_blocked() and not self.cable):
            return "Unavailable"
        if self.stage.fault(self.secc_time(t)):
            return "Faulted"
        if self.cable or self.tx is not None:
            return "Occupied"
        return "Unavailable" if not self.operative else "Available"

    def _update_status(self, t: float, force: bool = False) -> None:
        self.station.set_connector_status(self.evse_id, 1, self._status(t), now=t, force=force)

    def _station_state(self) -> str:
        if not self.availability["station"]:
            return "Unavailable"
        return "Occupied" if self.tx is not None or self.cable else "Available"

    def _new_sessions_blocked(self) -> bool:
        """A firmware update waits for the EVSE and ChargingStation.AllowNewSessionsPendingFirmwareUpdate
        is false: no new session starts (L01.FR.07)."""
        return self.firmware_pending and \
            self._var("ChargingStation", "AllowNewSessionsPendingFirmwareUpdate") != "true"

    # --- meter values (J01, J02) ------------------------------------------------------------------------
    def _sample(self, context: str, measurands_of: str | tuple[str, str], t: float) -> list:
        """One meter sample of the measurands a variable lists (SampledDataCtrlr by default), [] if none."""
        component, name = measurands_of if isinstance(measurands_of, tuple) else ("SampledDataCtrlr", measurands_of)
        wanted = [m for m in self._var(component, name).split(",") if m]
        if not wanted:
            return []
        m = self.stage.measurements(self.secc_time(t))
        values = {"Energy.Active.Import.Register": (round(m.energy_imported_wh, 3), "Wh"),
                  "Energy.Active.Export.Register": (round(m.energy_exported_wh, 3), "Wh"),
                  "Power.Active.Import": (round(max(0.0, m.power), 1) + 0.0, "W"),
                  "Power.Active.Export": (round(max(0.0, -m.power), 1) + 0.0, "W")}
        if self.soc is not None and (self.cable or self.tx is not None):
            values["SoC"] = (self.soc, "Percent")
        sampled = [{"value": values[w][0], "context": context, "measurand": w, "unitOfMeasure": {"unit": values[w][1]}}
                   for w in wanted if w in values]
        return [{"timestamp": iso(t), "sampledValue": sampled}] if sampled else []

    def _schedule_samples(self, t: float) -> None:
        tx = self.tx
        if tx is None:
            return
        up = self.tx_updated_interval
        ended = self._seconds("SampledDataCtrlr", "TxEndedInterval")
        aligned = self._seconds("AlignedDataCtrlr", "TxEndedInterval")
        tx.next_periodic = t + up if up > 0 else None
        tx.next_ended = t + ended if ended > 0 else None
        tx.next_aligned_ended = (t // aligned + 1) * aligned if aligned > 0 else None
        self.station.changed()

    def _set_tx_interval(self, value: str) -> None:
        self.tx_updated_interval = float(value)
        self._rearm()

    def _rearm(self) -> None:
        """An interval changed: the timers start again from now."""
        self._next_aligned = None
        if self.tx is not None:
            self._schedule_samples(self.station.now)
        self.station.changed()

    def _keep(self, sample: list) -> None:
        if self.tx is not None and sample:
            self.tx.samples.extend(sample)
            del self.tx.samples[:-MAX_ENDED_SAMPLES]

    # --- the station's timers (Unix time) ------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """The station core asks its timer sources (Unix time). Asked several times per charge
        loop: the earliest is kept as it goes (the comparisons ``min`` would make, in its order)."""
        best = None
        interval = float(self.station.device_model.value("AlignedDataCtrlr", "Interval"))
        if interval > 0:
            if self._next_aligned is None:
                self._next_aligned = (self.station.now // interval + 1) * interval
            best = self._next_aligned
        tx = self.tx
        if tx is not None:
            for x in (tx.next_periodic, tx.next_ended, tx.next_aligned_ended):
                if x and (best is None or x < best):
                    best = x
        for x in (self._remote_expires, self._flow_check):
            if x is not None and (best is None or x < best):
                best = x
        station = self.station
        if station.offline_since is not None and not station.online:  # online: no profile expires
            expiry = self.profiles.expiry_after()
            if expiry is not None:
                x = station.offline_since + expiry + 1e-3
                if best is None or x < best:
                    best = x
        return best

    def handle_timer(self, now: float) -> None:
        t = now
        if self._next_aligned is not None and t >= self._next_aligned:
            at = self._next_aligned
            self._next_aligned = None
            if not (self.tx is not None and self._var("AlignedDataCtrlr", "SendDuringIdle") == "true"):
                meter = self._sample("Sample.Clock", ("AlignedDataCtrlr", "Measurands"), at)
                if meter:
                    self._enqueue("MeterValues", {"evseId": self.evse_id, "meterValue": meter}, t)
        tx = self.tx
        if tx is not None:
            if tx.next_ended is not None and t >= tx.next_ended:
                self._keep(self._sample("Sample.Periodic", "TxEndedMeasurands", tx.next_ended))
                tx.next_ended += self._seconds("SampledDataCtrlr", "TxEndedInterval") or math.inf
            if tx.next_aligned_ended is not None and t >= tx.next_aligned_ended:
                self._keep(self._sample("Sample.Clock", ("AlignedDataCtrlr", "TxEndedMeasurands"),
                                        tx.next_aligned_ended))
                tx.next_aligned_ended += self._seconds("AlignedDataCtrlr", "TxEndedInterval") or math.inf
            if tx.next_periodic is not None and t >= tx.next_periodic:
                at = tx.next_periodic
                tx.next_periodic += self.tx_updated_interval or math.inf
                meter = self._sample("Sample.Periodic", "TxUpdatedMeasurands", at)
                if meter:
                    self._tx_event("Updated", "MeterValuePeriodic", at, meter=meter)
            for attr in ("next_periodic", "next_ended", "next_aligned_ended"):
                if getattr(tx, attr) == math.inf:
                    setattr(tx, attr, None)
        if self._remote_expires is not None and t >= self._remote_expires:
            self._connection_timeout(t)
        if self._flow_check is not None and t >= self._flow_check:
            self._check_flow(t)
        self.profiles.expire(self.station.offline_for(now))

    def _connection_timeout(self, t: float) -> None:
        """TxCtrlr.EVConnectionTimeOut: authorized, but no car came (E03.FR.05, TC_F_04)."""
        self._remote_expires = None
        self.remote_start = None
        self.authorization, self._auth_reported = None, True
        if self.tx is not None:
            self._end("EVConnectTimeout", "Timeout", t)
        self._update_status(t)
        self._after_transaction(t)

    def _ev_charging_schedule(self, entries: tuple[tuple[int, float], ...], anchor: int | None, t: float) -> None:
        """NotifyEVChargingSchedule: the power profile the car sent with PowerDelivery(Start)."""
        periods, start = [], 0
        for duration, watts in entries:
            period: dict = {"startPeriod": int(start), "limit": max(watts, 0.0)}
            if watts < 0:
                period["dischargeLimit"] = watts
            periods.append(period)
            start += duration
        anchor = anchor or int(t)
        self._enqueue("NotifyEVChargingSchedule", {"timeBase": iso(anchor), "evseId": self.evse_id, "chargingSchedule": {
            "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": periods}}, t)

    def _enqueue(self, action: str, payload: dict, t: float, *, state: dict | None = None) -> None:
        """Queue for the CSMS (``t``: station time); a payload our own mapping got wrong is logged,
        and the charging session (which called us) goes on."""
        try:
            self.station.enqueue(action, payload, now=t, state=state)
        except (OCPPError, ValueError) as e:  # ValueError: a non-finite number (never sent)
            log.error("not queued, %s breaks the OCPP 2.1 schema: %s", action, e)

    def _outbox_answered(self, item, payload: dict) -> None:
        """TransactionEventResponse idTokenInfo: a token the CSMS does not accept ends the
        transaction when TxCtrlr.StopTxOnInvalidId is true (E05, C15)."""
        if item.action != "TransactionEvent" or "idTokenInfo" not in payload:
            return
        tx = self.tx
        if tx is None or item.payload["transactionInfo"]["transactionId"] != tx.id:
            return
        if payload["idTokenInfo"]["status"] == "Accepted" or self._var("TxCtrlr", "StopTxOnInvalidId") != "true":
            return
        t = self.station.now
        tx.stop_reason = "DeAuthorized"
        self.authorization = None
        self._station_stop = True
        self._end("Deauthorized", "DeAuthorized", t, charging_state="EVConnected" if self.cable else "Idle")
        self._update_status(t)
        self._after_transaction(t)

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
        """K08: the setpoint over the asked duration, one period per change, in W or A (A: the W
        over the volts and phases A schedules are read with)."""
        if payload["evseId"] not in (0, self.evse_id):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        duration = payload["duration"]
        if not 0 < duration <= 7 * 86400:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue",
                                                         "additionalInfo": "duration must be 1 s to 7 days"}}
        unit = payload.get("chargingRateUnit", "W")
        start = int(self.station.now)
        periods = self._composite(start, duration)
        if unit == "A":
            periods = [{**p, "setpoint": round(p["setpoint"] / (self.volts * self.phases), 1),
                        "numberPhases": self.phases} for p in periods]
        return {"status": "Accepted", "schedule": {"evseId": payload["evseId"], "duration": duration,
                                                   "scheduleStart": iso(start), "chargingRateUnit": unit,
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
        now = self.station.now
        self.station.after_response(lambda: self.station.request("ReportChargingProfiles", {
            "requestId": request_id, "chargingLimitSource": "CSO", "evseId": self.evse_id,
            "chargingProfile": found}, now=now))
        return {"status": "Accepted"}

    def _allowed_energy_transfer(self, payload: dict) -> dict:
        if self.transaction_id is None or payload["transactionId"] != self.transaction_id:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "TxNotFound"}}
        self.allowed_energy_transfer = list(payload["allowedEnergyTransfer"])
        return {"status": "Accepted"}

    def _reset(self, payload: dict) -> dict:
        """The whole station resets (EVSE.AllowReset is false: a Reset for one EVSE is Rejected,
        TC_B_28/29). Immediate: a running transaction ends (ImmediateReset), then the restart;
        OnIdle: Scheduled until the transaction ends, and the boot says ScheduledReset. The restart
        itself is the process's (``on_reset``); without one, Reset is refused."""
        if self.on_reset is None or payload.get("evseId") is not None:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}} \
                if payload.get("evseId") is not None else {"status": "Rejected"}
        kind = payload["type"]
        t = self.station.now
        if self.tx is None:
            self.station.store.set("boot_reason", "RemoteReset")
            self.station.after_response(self.on_reset)
            return {"status": "Accepted"}
        if kind in ("Immediate", "ImmediateAndResume"):
            self.station.store.set("boot_reason", "RemoteReset")
            self.reset_pending = "Immediate"
            self._station_stop = True
            self.tx.stop_reason = "ImmediateReset"

            def end_now() -> None:
                self._end("ResetCommand", "ImmediateReset", t, charging_state="EVConnected" if self.cable else "Idle")
                self._restarting = True
                self.on_reset()
            self.station.after_response(end_now)
            return {"status": "Accepted"}
        self.reset_pending = "OnIdle"
        return {"status": "Scheduled"}

    def _change_availability(self, payload: dict) -> dict:
        """Station, EVSE or connector (G03–G05); Inoperative during a transaction is Scheduled for
        its end. Every accepted change reports the connector's status, changed or not."""
        operative = payload["operationalStatus"] == "Operative"
        evse = payload.get("evse")
        if evse is None or evse["id"] == 0:
            level = "station"
        elif evse["id"] != self.evse_id or evse.get("connectorId", 1) != 1:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        else:
            level = "connector" if "connectorId" in evse else "evse"
        t = self.station.now
        if self.tx is not None and not operative:
            self.pending_availability[level] = operative  # after the transaction (it is not interrupted)
            return {"status": "Scheduled"}
        self.pending_availability.pop(level, None)
        self.availability[level] = operative
        self.station.store.set("availability", self.availability)
        self.station.after_response(lambda: self._update_status(t, force=True))
        return {"status": "Accepted"}

    def _request_start(self, payload: dict) -> dict:
        """F01/F02: authorizes the car on the cable, or the next one within EVConnectionTimeOut
        (its idToken and remoteStartId go into the transaction's next event, triggerReason
        RemoteStart, with its profile). With AuthCtrlr.AuthorizeRemoteStart the idToken is
        authorized first (Authorize). Refused while the registration is not Accepted (B02),
        when inoperative, when already authorized."""
        if self.station.registration != "Accepted" or not self.operative or self._new_sessions_blocked():
            return {"status": "Rejected"}
        free = self.authorization is not None and self.authorization["type"] == "NoAuthorization"
        if payload.get("evseId", self.evse_id) != self.evse_id or (self.authorization is not None and not free):
            return {"status": "Rejected"}
        if payload.get("chargingProfile"):
            try:
                self.profiles.parse(payload["chargingProfile"])
            except ProfileRejected as e:
                return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason}}
        answer: dict = {"status": "Accepted"}
        if self.tx is not None:
            answer["transactionId"] = self.tx.id
        t = self.station.now

        def go() -> None:
            self.remote_start = payload
            if not self.cable:
                self._remote_expires = t + self._seconds("TxCtrlr", "EVConnectionTimeOut")
                self.station.changed()
            self._authorized(payload["idToken"], self.station.now, remote=True,
                             remote_start_id=payload["remoteStartId"])
            self._update_status(self.station.now)

        if self._var("AuthCtrlr", "AuthorizeRemoteStart") == "true":
            def answered(result: dict | None) -> None:
                if result is not None and result["idTokenInfo"]["status"] == "Accepted":
                    go()
            self.station.after_response(lambda: self.station.request(
                "Authorize", {"idToken": payload["idToken"]}, now=self.station.now, on_answer=answered))
        else:
            self.station.after_response(go)
        return answer

    def _apply_remote_profile(self, remote: dict) -> None:
        try:
            self.profiles.set(remote["chargingProfile"], self.transaction_id)
        except ProfileRejected as e:
            log.warning("the profile of RequestStartTransaction was not applied: %s", e)

    def _request_stop(self, payload: dict) -> dict:
        """F03: the energy transfer stops at the next loop; the transaction ends at once where
        TxStopPoint has Authorized or PowerPathClosed, when the energy stops with EnergyTransfer,
        else with the cable (the event now says RemoteStop)."""
        tx = self.tx
        if tx is None or payload["transactionId"] != tx.id:
            return {"status": "Rejected"}
        t = self.station.now
        self.stop_requested_by_csms = True
        self._station_stop = True
        tx.stop_reason = "Remote"
        self.authorization, self._auth_reported = None, True
        stops = self._points("TxStopPoint")

        def report() -> None:
            if self.tx is not tx:
                return
            if stops & {"Authorized", "PowerPathClosed"}:
                self._end("RemoteStop", "Remote", t, charging_state="EVConnected" if self.cable else "Idle")
                self._update_status(t)
                self._after_transaction(t)
            elif not ("EnergyTransfer" in stops and self.energy):
                self._tx_event("Updated", "RemoteStop", t)
        self.station.after_response(report)
        return {"status": "Accepted"}

    def _transaction_status(self, payload: dict) -> dict:
        """E14: whether the transaction runs, and whether its (or any) TransactionEvents wait."""
        tx_id = payload.get("transactionId")
        answer: dict = {"messagesInQueue": self.station.transaction_messages(tx_id)}
        if tx_id is not None:
            answer["ongoingIndicator"] = self.tx is not None and self.tx.id == tx_id
        return answer

    def _unlock_connector(self, payload: dict) -> dict:
        """F05: a fixed cable has no lock to release (UnlockOnEVSideDisconnect is false)."""
        return {"status": "UnknownConnector"}

    # --- TriggerMessage (F06) -------------------------------------------------------------------------
    def _trigger_meter_values(self, evse: dict | None, now: float) -> str:
        def send() -> None:
            meter = self._sample("Trigger", ("AlignedDataCtrlr", "Measurands"), self.station.now) or \
                self._sample("Trigger", "TxUpdatedMeasurands", self.station.now)
            if meter:
                self.station.request("MeterValues", {"evseId": self.evse_id, "meterValue": meter},
                                     now=self.station.now, while_pending=True)
        self.station.after_response(send)
        return "Accepted"

    def _trigger_tx(self, evse: dict | None, now: float) -> str:
        if self.tx is None:
            return "Rejected"

        def send() -> None:
            t = self.station.now
            self._tx_event("Updated", "Trigger", t, meter=self._sample("Trigger", "TxUpdatedMeasurands", t),
                           with_evse=True)
        self.station.after_response(send)
        return "Accepted"


def _bool(b: bool) -> str:
    return "true" if b else "false"

"""A real charger, seen by the site controller through OCPP 2.1: the ``ChargerDriver`` (and the
simulated charger's surface, so ``hems.sim.Site`` can drive it) over the house's CSMS core.

What the charger reports becomes ``ChargerState``: link up (the station is connected), car
plugged (a transaction runs), SoC and power (meter values), the car's limits and minimum SoC
(NotifyEVChargingNeeds). What the controller commands becomes OCPP (part 2, Q04 central
setpoint; v2h's island variable):

- OFF: a TxDefaultProfile in operationMode Idle;
- GRID_FOLLOWING: CentralSetpoint ``power_w`` with ``limit``/``dischargeLimit`` and
  ``maxOfflineDuration`` (the charger falls back to its safe default if the manager goes away);
- GRID_FORMING: SetVariables V2HSiteCtrlr.Islanded=true, then CentralSetpoint following the
  island's load within ``dischargeLimit`` (a grid-forming stage supplies the load itself; the
  setpoint is what a simulated stage without a house behind it follows).

A new profile is sent only when the wanted power moves beyond a dead band or the mode or a limit
changes, and only one request is in flight at a time; the mode is reported as running once the
charger has accepted it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .csms import CSMSCore, central_setpoint
from .model import CHARGER_OFF, ChargerCommand, ChargerMode, ChargerState, charger_state

ISLANDED = {"component": {"name": "V2HSiteCtrlr"}, "variable": {"name": "Islanded"}}


@dataclass
class OCPPCar:
    """The car as the charger reports it (None/defaults until it has)."""

    soc: float | None = None       # % (None until the charger has reported it)
    min_soc: float = 10.0
    plugged: bool = False
    charge_max_w: float = 0.0
    discharge_max_w: float = 0.0
    capacity_kwh: float | None = None


@dataclass(frozen=True)
class Sent:
    """What the charger last accepted (or was last asked)."""

    mode: ChargerMode
    power_w: float
    charge_limit_w: float
    discharge_limit_w: float


class OCPPCharger:
    """One charging station of the house, driven over OCPP."""

    def __init__(self, csms: CSMSCore, station_id: str, *, max_charge_w: float = 11000.0,
                 max_discharge_w: float = 11000.0, deadband_w: float = 200.0, max_offline_duration: int = 60,
                 car_min_soc: float = 10.0, decision: Callable[[float, str, dict], None] | None = None,
                 time_offset: float = 0.0, retry_s: float = 5.0, meter_interval_s: int = 10):
        """``time_offset``: added to the times the site gives (seconds since the manager started)
        to make the CSMS's Unix time; ``retry_s``: the wait after a refused request;
        ``meter_interval_s``: the charger's TxUpdatedInterval, set at every connection (the site
        controller reads the car's SoC and the charger's power from these meter values)."""
        self.csms = csms
        self.station_id = station_id
        self.max_charge_w, self.max_discharge_w = max_charge_w, max_discharge_w
        self.deadband_w = deadband_w
        self.max_offline_duration = max_offline_duration
        self.default_min_soc = car_min_soc
        self.decision = decision           # (now, reason, details): every request the manager sends, and why
        self.car = OCPPCar(min_soc=car_min_soc)
        self.cmd: ChargerCommand = CHARGER_OFF
        self.accepted: Sent | None = None  # what the charger runs now, as far as we know
        self.asked: Sent | None = None     # a request in flight
        self.islanded: bool | None = None  # what V2HSiteCtrlr.Islanded holds at the charger
        self.power_w = 0.0
        self.rate = 0.0                    # the SoC's rate is the car's business: no prediction here
        self.ignores_limit = False         # (a simulator's fault switch; meaningless for a real charger)
        self.failures = 0                  # requests the charger refused or did not answer
        self.time_offset = time_offset
        self.retry_s = retry_s
        self._retry_at = -1.0
        self.meter_interval_s = meter_interval_s
        self._needs_read: dict | None = None     # the NotifyEVChargingNeeds last read
        self._needs_pending: dict | None = None  # ... whose minimum SoC waits for the car's SoC
        self._configured = False           # TxUpdatedInterval set on this connection

    # --- the state ------------------------------------------------------------------------------------
    @property
    def link_up(self) -> bool:
        link = self.csms.links.get(self.station_id)
        st = self.csms.stations.get(self.station_id)
        return link is not None and not link.closed and st is not None and st.boot is not None

    @link_up.setter
    def link_up(self, value: bool) -> None:
        raise ValueError("a real charger's link is up or down by itself")

    @property
    def mode(self) -> ChargerMode:
        """What the charger runs as far as we know: what it accepted, while its link is up and a car
        is plugged in (without the car there is nothing to follow or to form an island from)."""
        if self.accepted is None or not self.link_up or not self.car.plugged:
            return ChargerMode.OFF
        return self.accepted.mode

    def advance(self, now: float) -> None:
        """Take in what the station reported since the last call."""
        st = self.csms.stations.get(self.station_id)
        car = self.car
        if st is None:
            return
        car.plugged = st.transaction is not None and st.transaction.ended is None
        if st.meter is not None:
            if st.meter.soc is not None:
                car.soc = st.meter.soc
            if st.meter.power_w is not None:
                self.power_w = st.meter.power_w if car.plugged else 0.0
        if not car.plugged:
            self.power_w = 0.0
        needs = (st.charging_needs or {}).get("v2xChargingParameters", {})
        car.charge_max_w = float(needs.get("maxChargePower", self.max_charge_w))
        car.discharge_max_w = float(needs.get("maxDischargePower", self.max_discharge_w if needs else 0.0))
        if st.charging_needs is not self._needs_read:
            self._needs_read, self._needs_pending = st.charging_needs, needs
            car.min_soc = self.default_min_soc
        if self._needs_pending is not None and car.soc is not None:
            # the energies are relative to the SoC when they were reported: the first SoC after them
            car.min_soc = self._min_soc(self._needs_pending, car.soc)
            self._needs_pending = None

    def _min_soc(self, needs: dict, soc: float | None) -> float:
        """The car's own minimum SoC for V2X from its energy requests (-20 EVMinimumV2XEnergyRequest:
        Wh to the V2X minimum, positive below it; EVMaximumEnergyRequest: Wh to 100 %, which gives
        the capacity): min = soc + min_v2x_wh ÷ capacity. Without them: the configured minimum."""
        to_max, to_min = needs.get("evMaxEnergyRequest"), needs.get("evMinV2XEnergyRequest")
        if to_max is None or to_min is None or soc is None or soc >= 100.0 or to_max <= 0:
            return self.default_min_soc
        wh_per_pct = to_max / (100.0 - soc)
        self.car.capacity_kwh = wh_per_pct / 10.0
        return min(100.0, max(0.0, soc + to_min / wh_per_pct, self.default_min_soc))

    def read_state(self) -> ChargerState:
        return charger_state(self)

    def deadline(self) -> float | None:
        return None

    def set_soc(self, soc: float, now: float) -> None:
        raise ValueError("the car's SoC is the car's: set it in the car (v2h evcc --soc)")

    # --- the command ------------------------------------------------------------------------------------
    def send(self, cmd: ChargerCommand) -> None:
        self.cmd = cmd

    def resolve(self, now: float, grid_live: bool, island_load_w: float | None) -> None:
        """Turn the command into OCPP requests when it differs from what the charger runs."""
        self.advance(now)
        if not grid_live and self.mode is ChargerMode.GRID_FOLLOWING:
            # the grid-tie port ceases to energise a dead grid by itself (anti-islanding, UL 1741 /
            # IEEE 1547-2018 clause 8.1, within 2 s); the meter shows it at its next report
            self.power_w = 0.0
        now += self.time_offset
        cmd = self.cmd
        if cmd.mode is ChargerMode.GRID_FORMING:
            load = island_load_w or 0.0
            want = Sent(cmd.mode, -min(load, cmd.discharge_limit_w), 0.0, cmd.discharge_limit_w)
        elif cmd.mode is ChargerMode.GRID_FOLLOWING:
            want = Sent(cmd.mode, cmd.power_w, cmd.charge_limit_w, cmd.discharge_limit_w)
        else:
            want = Sent(ChargerMode.OFF, 0.0, 0.0, 0.0)
        if not self.link_up:
            self.accepted = self.asked = None
            self.islanded = None  # a reconnected charger has forgotten (not persisted)
            self._configured = False
            return
        if self.asked is not None or now < self._retry_at:
            return
        if not self._configured:
            self._configure(now)
            return
        if self._close_enough(want):
            return
        islanded = want.mode is ChargerMode.GRID_FORMING
        if self.islanded is not islanded:
            self._set_islanded(islanded, want, now)
        else:
            self._set_profile(want, now)

    def _close_enough(self, want: Sent) -> bool:
        have = self.accepted
        return (have is not None and have.mode is want.mode and abs(have.power_w - want.power_w) <= self.deadband_w
                and have.charge_limit_w == want.charge_limit_w and have.discharge_limit_w == want.discharge_limit_w)

    def _configure(self, now: float) -> None:
        """Meter values often enough for the site controller (SampledDataCtrlr.TxUpdatedInterval)."""
        self.asked = Sent(ChargerMode.OFF, 0.0, 0.0, 0.0)

        def answered(payload: dict | None) -> None:
            self.asked = None
            if payload is not None and payload["setVariableResult"][0]["attributeStatus"] == "Accepted":
                self._configured = True
            else:
                self._failed(now, "TxUpdatedInterval not accepted", payload)
        self._note(now, f"meter values every {self.meter_interval_s} s", {})
        self.csms.call(self.station_id, "SetVariables", {"setVariableData": [{
            "component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"},
            "attributeValue": str(self.meter_interval_s)}]}, now=now, on_answer=answered)

    def _set_islanded(self, islanded: bool, want: Sent, now: float) -> None:
        self.asked = want
        value = "true" if islanded else "false"

        def answered(payload: dict | None) -> None:
            ok = payload is not None and payload["setVariableResult"][0]["attributeStatus"] == "Accepted"
            self.asked = None
            if ok:
                self.islanded = islanded
                self._set_profile(want, now)
            else:
                self._failed(now, f"V2HSiteCtrlr.Islanded={value} not accepted", payload)
        self._note(now, f"island mode {'on' if islanded else 'off'}", {"Islanded": value})
        self.csms.call(self.station_id, "SetVariables", {"setVariableData": [{**ISLANDED, "attributeValue": value}]},
                       now=now, on_answer=answered)

    def _set_profile(self, want: Sent, now: float) -> None:
        self.asked = want
        if want.mode is ChargerMode.OFF:
            request = central_setpoint(0.0)
        else:
            request = central_setpoint(want.power_w, discharge_limit_w=-want.discharge_limit_w,
                                       max_offline_duration=None if want.mode is ChargerMode.GRID_FORMING
                                       else self.max_offline_duration)
            period = request["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            period["limit"] = float(want.charge_limit_w)

        def answered(payload: dict | None) -> None:
            self.asked = None
            if payload is not None and payload.get("status") == "Accepted":
                self.accepted = want
            else:
                self._failed(now, "SetChargingProfile not accepted", payload)
        self._note(now, f"{want.mode.value} {want.power_w:+.0f} W", {
            "mode": want.mode.value, "setpoint_w": want.power_w, "charge_limit_w": want.charge_limit_w,
            "discharge_limit_w": want.discharge_limit_w})
        self.csms.call(self.station_id, "SetChargingProfile", request, now=now, on_answer=answered)

    def _failed(self, now: float, what: str, payload: dict | None) -> None:
        self.failures += 1
        self.accepted = None  # unknown: ask again, after a while
        self._retry_at = now + self.retry_s
        self._note(now, what, {"answer": payload})

    def _note(self, now: float, reason: str, details: dict) -> None:
        if self.decision is not None:
            self.decision(now, reason, {"station": self.station_id, **details})

"""The car's response handlers, one per -20 response (the table that dispatches to them is
``iso15118.evcc.iso20``). A handler takes (session, response, now), updates the car, and returns
the next request, or None after scheduling it (Ongoing repetitions, the loop period) or ending."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from iso15118.messages import CM, DC, SERVICE_IDS
from iso15118.units import val

from .context import CONTROL_MODES, EVCCError

if TYPE_CHECKING:
    from .session import EVCCSession

# --- response handlers: (session, response, now) → next request or None --------------------------

def on_session_setup(s: EVCCSession, res, now: float):
    code = str(res.ResponseCode)
    if s.config.resume_session_id is not None:
        s.resumed = code == "OK_OldSessionJoined"
    s.session_id = res.Header.SessionID
    s.setup_deadline = None
    return CM.AuthorizationSetupReq(Header=s.header(now))


def on_authorization_setup(s: EVCCSession, res, now: float):
    s.auth_services = [str(x) for x in res.AuthorizationServices]
    want = "PnC" if s.config.auth == "pnc" else "EIM"
    if want not in s.auth_services:
        raise EVCCError(f"the charger does not offer {want} (offers {', '.join(s.auth_services)})")
    if want == "PnC":
        if res.PnC_ASResAuthorizationMode is None:
            raise EVCCError("PnC offered without a GenChallenge")
        s.gen_challenge = res.PnC_ASResAuthorizationMode.GenChallenge
    return s.authorization_req(now)


def on_authorization(s: EVCCSession, res, now: float):
    code, processing = str(res.ResponseCode), str(res.EVSEProcessing)
    if code.startswith("WARNING"):
        raise EVCCError(f"authorization refused: {code}")
    if processing != "Finished":
        s._repeat(now, s.config.timers.ongoing, "Authorization", lambda t: s.authorization_req(t))
        return None
    s._phase_done()
    if s.resumed:
        return s.cpd_req(now)
    return s.service_discovery_req(now)


def on_service_discovery(s: EVCCSession, res, now: float):
    offered = [sv.ServiceID for sv in res.EnergyTransferServiceList.Service]
    sid = SERVICE_IDS[s.service]
    if sid not in offered:
        raise EVCCError(f"the charger does not offer {s.service}")
    return CM.ServiceDetailReq(Header=s.header(now), ServiceID=sid)


def on_service_detail(s: EVCCSession, res, now: float):
    s.parameter_sets = {}
    for ps in res.ServiceParameterList.ParameterSet:
        values = {}
        for p in ps.Parameter:
            for attr in ("intValue", "shortValue", "byteValue", "boolValue", "finiteString"):
                v = getattr(p, attr)
                if v is not None:
                    values[p.Name] = v
            if p.rationalNumber is not None:
                values[p.Name] = val(p.rationalNumber)
        s.parameter_sets[ps.ParameterSetID] = values
    want = CONTROL_MODES[s.config.control_mode]
    chosen = next((i for i, v in s.parameter_sets.items() if v.get("ControlMode") == want), None)
    if chosen is None:
        raise EVCCError(f"the charger offers no {s.config.control_mode} parameter set for {s.service}")
    return CM.ServiceSelectionReq(Header=s.header(now), SelectedEnergyTransferService=CM.SelectedService(
        ServiceID=res.ServiceID, ParameterSetID=chosen))


def on_service_selection(s: EVCCSession, res, now: float):
    return s.cpd_req(now)


def on_charge_parameter_discovery(s: EVCCSession, res, now: float):
    return s.schedule_exchange_req(now)


def on_schedule_exchange(s: EVCCSession, res, now: float):
    if str(res.EVSEProcessing) != "Finished":
        s._repeat(now, s.config.timers.ongoing, "ScheduleExchange", lambda t: s.schedule_exchange_req(t))
        return None
    s._phase_done()
    if s.config.control_mode == "scheduled":
        mode = res.Scheduled_SEResControlMode
        if mode is None:
            raise EVCCError("ScheduleExchangeRes without a schedule")
        t = mode.ScheduleTuple[0]
        s.schedule_charge_w = max(0.0, val(t.ChargingSchedule.PowerSchedule.PowerScheduleEntries.PowerScheduleEntry[0].Power))
        if t.DischargingSchedule is not None:
            entry = t.DischargingSchedule.PowerSchedule.PowerScheduleEntries.PowerScheduleEntry[0]
            s.schedule_discharge_w = abs(val(entry.Power))
    if s.config.channel != "auto":
        s.channel = s.config.channel
    else:
        s.channel = "Discharge" if s.bpt and s.schedule_discharge_w > 0 and s.schedule_charge_w == 0 else "Charge"
    if s.kind == "DC":
        return DC.DC_CableCheckReq(Header=s.header_et(now))
    s.contactors_closed = True
    return s.power_delivery_req(now, "Start")


def on_cable_check(s: EVCCSession, res, now: float):
    if str(res.EVSEProcessing) != "Finished":
        s._repeat(now, s.config.timers.cable_check, "CableCheck", lambda t: DC.DC_CableCheckReq(Header=s.header_et(t)))
        return None
    s._phase_done()
    return s.precharge_req(now)


PRECHARGE_TOLERANCE = 10.0  # V between the battery and the EVSE output before closing the contactors


def on_precharge(s: EVCCSession, res, now: float):
    if s.phase_started is None:
        s.phase_started = now
    if now - s.phase_started > s.config.timers.precharge:
        raise EVCCError("PreCharge did not reach the battery voltage in time")
    if abs(val(res.EVSEPresentVoltage) - s.battery.voltage()) <= PRECHARGE_TOLERANCE:
        if s.precharge_finished:
            s._phase_done()
            s.precharge_finished = False
            s.contactors_closed = True
            return s.power_delivery_req(now, "Start")
        s.precharge_finished = True
        return s.precharge_req(now, "Finished")
    s._later(now + s.config.poll_interval, lambda t: s.precharge_req(t))
    return None


def on_power_delivery(s: EVCCSession, res, now: float):
    if s.stopping:
        if s.kind == "DC":
            s.open_contactors()
            return DC.DC_WeldingDetectionReq(Header=s.header_et(now), EVProcessing="Ongoing")
        s.open_contactors()
        return s.session_stop_req(now)
    s.last_loop_time = now
    s.loop_started = now
    return s.charge_loop_req(now)


WELDING_SAFE_VOLTAGE = 60.0


def on_welding_detection(s: EVCCSession, res, now: float):
    if val(res.EVSEPresentVoltage) > WELDING_SAFE_VOLTAGE:
        s._repeat(now, s.config.timers.message * 5, "WeldingDetection",
                  lambda t: DC.DC_WeldingDetectionReq(Header=s.header_et(t), EVProcessing="Ongoing"))
        return None
    s._phase_done()
    return s.session_stop_req(now)


DISCHARGE_TOLERANCE = 1.05  # the car stops if the charger takes more than its limit +5 %


def on_charge_loop(s: EVCCSession, res, now: float):
    if s.kind == "DC":
        s.evse_power_w = val(res.EVSEPresentCurrent) * val(res.EVSEPresentVoltage)
    else:
        mode = next(getattr(res, n) for n in ("BPT_Dynamic_AC_CLResControlMode", "BPT_Scheduled_AC_CLResControlMode",
                                              "Dynamic_AC_CLResControlMode", "Scheduled_AC_CLResControlMode",
                                              "CLResControlMode") if getattr(res, n) is not None)
        present = getattr(mode, "EVSEPresentActivePower", None)
        target = getattr(mode, "EVSETargetActivePower", None)
        s.evse_power_w = val(present if present is not None else target) if (present or target) is not None else 0.0
    s.loops_done += 1
    b = s.battery
    too_much = s.evse_power_w < 0 and -s.evse_power_w > b.discharge_limit() * DISCHARGE_TOLERANCE + 100.0
    if too_much or (s.evse_power_w < 0 and b.soc <= b.min_soc):
        s.stop_reason = "the charger discharges beyond the car's limit" if too_much else "minimum SoC reached"
        s.stopping = True
        return s.power_delivery_req(now, "Stop")
    if s.loops_done >= s.config.loops:
        s._account(now)
        s.stopping = True
        return s.power_delivery_req(now, "Stop")
    s._later(max(now, s.loop_started + s.loops_done * s.config.loop_period), lambda t: s.charge_loop_req(t))
    return None


def on_session_stop(s: EVCCSession, res, now: float):
    if s.config.end == "ServiceRenegotiation":
        if s.config.renegotiate_to:
            s.service = s.config.renegotiate_to
            s.bpt = s.service.endswith("BPT")
        s.config = replace(s.config, end="Terminate")
        s.stopping = False
        s.loops_done = 0
        s.schedule_charge_w = s.schedule_discharge_w = 0.0
        return s.service_discovery_req(now)
    s._finish(now, True, s.stop_reason or f"SessionStop {s.config.end}")
    return None

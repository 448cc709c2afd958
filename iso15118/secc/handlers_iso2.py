"""The SECC's request handlers for ISO 15118-2 and DIN SPEC 70121 (the tables that dispatch to
them are ``iso15118.secc.iso2`` and ``iso15118.secc.din``).

DIN SPEC 70121 is, message by message, the DC part of ISO 15118-2 under other names in places
(ServicePaymentSelection for PaymentServiceSelection, ContractAuthentication for Authorization,
PowerDelivery's ReadyToChargeState for ChargeProgress) and with fewer fields, so one handler
serves both and reads ``s.protocol``. Both protocols charge only: the car cannot discharge over
them, whatever the setpoint says (a negative setpoint gives 0 W).

Handlers take the message element (the V2G_Message is unwrapped by the session) and return a
``Reply`` with a message element, which the session wraps. A FAILED response code ends the
session in both standards (the car stops), so every FAILED reply terminates.
"""

from __future__ import annotations

import math

from iso15118.protocols import element_name
from iso15118.units import clamp, pv, pval

from .context import Reply, SequenceError, State
from .controller import AuthorizationStatus, IsolationStatus, PowerCommand
from .events import (POWER_CHANGE, Authorized, EndReason, EnergyTransferStarted, EnergyTransferStopped,
                     EVChargingNeeds, PowerChanged, SessionStarted, SoCChanged, StageFault)
from .iso2_common import (AC_MODES, CERTIFICATE_SERVICE_ID, CHARGE_SERVICE_ID, DC_MODES, DIN_PMAX_LIMIT,
                          PROFILE_TOLERANCE, RESUMABLE, SA_TUPLE_ID, SCHEDULE_HORIZON, ZERO_SESSION, ac_status,
                          certificate_service_offered, dc_status, evse_id, failure, is_din, pnc_offered, status, wall)
from .pnc_iso2 import authorization_signature_error


# --- session -------------------------------------------------------------------------------------

def session_setup(req, s, now) -> Reply:
    ctx = s.ctx
    ctx.evcc_id = req.EVCCID.hex().upper()
    if not s.connector.acquire(s):
        owner = s.connector.owner
        busy = owner.ctx.session_id.hex() if owner.ctx.session_id else "being set up"
        return failure(s, now, "SessionSetupReq", "FAILED",
                     reason=f"SessionSetupRes FAILED: the connector is in use (session {busy})")
    s.established = True
    old = s.request_header.SessionID
    paused = s.resume_store.pop(old, None) if old != ZERO_SESSION else None
    if paused is not None and paused["protocol"] == ctx.protocol:
        for k in RESUMABLE:
            setattr(ctx, k, paused[k])
        ctx.session_id, ctx.resumed, code = old, True, "OK_OldSessionJoined"
    else:
        ctx.session_id, code = s.rng(8), "OK_NewSessionEstablished"
    s.supervisor.session_event(SessionStarted(evcc_id=ctx.evcc_id, session_id=ctx.session_id.hex(),
                                              resumed=ctx.resumed), now)
    stamp = {"DateTimeNow" if is_din(s) else "EVSETimeStamp": wall(s, now)}
    return Reply(s.msgs.SessionSetupRes(ResponseCode=code, EVSEID=evse_id(s), **stamp), State.WAIT_SERVICE_DISCOVERY)


def _modes(s) -> list[str]:
    from .sap import kinds_offered
    kinds = kinds_offered(s.config)
    return [*(DC_MODES if "DC" in kinds else ()), *(AC_MODES if "AC" in kinds and not is_din(s) else ())]


def service_discovery(req, s, now) -> Reply:
    m = s.msgs
    payment = (["ExternalPayment", "Contract"] if pnc_offered(s) else ["ExternalPayment"]) \
        if "EIM" in s.config.auth_methods else ["Contract"] if pnc_offered(s) else []
    if not payment:
        return failure(s, now, "ServiceDiscoveryReq", "FAILED", reason="no payment option to offer over this connection")
    if is_din(s):
        return Reply(m.ServiceDiscoveryRes(
            ResponseCode="OK", PaymentOptions=m.PaymentOptions(PaymentOption=["ExternalPayment"]),
            ChargeService=m.ServiceCharge(ServiceTag=m.ServiceTag(ServiceID=CHARGE_SERVICE_ID, ServiceCategory="EVCharging"),
                                          FreeService=False, EnergyTransferType="DC_extended")),
            State.WAIT_SERVICE_SELECTION)
    services = None
    if certificate_service_offered(s, now):
        services = m.ServiceList(Service=[m.Service(ServiceID=CERTIFICATE_SERVICE_ID, ServiceName="Certificate",
                                                    ServiceCategory="ContractCertificate", FreeService=True)])
    charge = m.ChargeService(ServiceID=CHARGE_SERVICE_ID, ServiceName="AC_DC_Charging", ServiceCategory="EVCharging",
                             FreeService=False, SupportedEnergyTransferMode=m.SupportedEnergyTransferMode(
                                 EnergyTransferMode=_modes(s)))
    return Reply(m.ServiceDiscoveryRes(ResponseCode="OK", PaymentOptionList=m.PaymentOptionList(PaymentOption=payment),
                                       ChargeService=charge, ServiceList=services), State.WAIT_SERVICE_SELECTION)


def service_detail(req, s, now) -> Reply:
    """-2: the certificate service's parameter sets (1 Installation, 2 Update); the charge
    service has none."""
    m = s.msgs
    if req.ServiceID == CHARGE_SERVICE_ID:
        return Reply(m.ServiceDetailRes(ResponseCode="OK", ServiceID=req.ServiceID), State.WAIT_SERVICE_SELECTION)
    if req.ServiceID == CERTIFICATE_SERVICE_ID and certificate_service_offered(s, now):
        sets = [m.ParameterSet(ParameterSetID=i, Parameter=[m.Parameter(Name="Service", stringValue=name)])
                for i, name in ((1, "Installation"), (2, "Update"))]
        return Reply(m.ServiceDetailRes(ResponseCode="OK", ServiceID=req.ServiceID,
                                        ServiceParameterList=m.ServiceParameterList(ParameterSet=sets)),
                     State.WAIT_SERVICE_SELECTION)
    return Reply(m.ServiceDetailRes(ResponseCode="FAILED_ServiceIDInvalid", ServiceID=req.ServiceID), State.ENDED, True)


def payment_service_selection(req, s, now) -> Reply:
    """-2 PaymentServiceSelection: the payment option (EIM = ExternalPayment, Plug & Charge =
    Contract) and the services, the charge service among them."""
    refused = _payment_selection_refused(req, s, now, "PaymentServiceSelectionReq")
    if refused is not None:
        return refused
    pnc = s.ctx.auth_method == "PnC"
    return Reply(s.msgs.PaymentServiceSelectionRes(ResponseCode="OK"),
                 State.WAIT_PAYMENT_DETAILS if pnc else State.WAIT_AUTH)


def service_payment_selection(req, s, now) -> Reply:
    """DIN ServicePaymentSelection: ExternalPayment (EIM) and the charge service."""
    refused = _payment_selection_refused(req, s, now, "ServicePaymentSelectionReq")
    if refused is not None:
        return refused
    return Reply(s.msgs.ServicePaymentSelectionRes(ResponseCode="OK"), State.WAIT_AUTH)


def _payment_selection_refused(req, s, now, name: str) -> Reply | None:
    option = str(req.SelectedPaymentOption)
    pnc = option == "Contract"
    if (pnc and not pnc_offered(s)) or (not pnc and "EIM" not in s.config.auth_methods):
        return failure(s, now, name, "FAILED_PaymentSelectionInvalid")
    ids = [sv.ServiceID for sv in req.SelectedServiceList.SelectedService]
    known = {CHARGE_SERVICE_ID} | ({CERTIFICATE_SERVICE_ID} if certificate_service_offered(s, now) else set())
    if any(i not in known for i in ids):
        return failure(s, now, name, "FAILED_ServiceSelectionInvalid")
    if CHARGE_SERVICE_ID not in ids:
        return failure(s, now, name, "FAILED_ServiceSelectionInvalid" if is_din(s) else "FAILED_NoChargeServiceSelected")
    s.ctx.auth_method = "PnC" if pnc else "EIM"
    return None


def authorization(req, s, now) -> Reply:
    """-2 Authorization / DIN ContractAuthentication, repeated while EVSEProcessing=Ongoing. With
    Plug & Charge the first request carries the challenge of PaymentDetailsRes, signed with the
    contract key."""
    ctx = s.ctx
    name = "ContractAuthenticationReq" if is_din(s) else "AuthorizationReq"

    def res(processing: str, state: State):
        return Reply(getattr(s.msgs, name[:-3] + "Res")(ResponseCode="OK", EVSEProcessing=processing), state)

    if ctx.auth_method == "PnC" and not ctx.authorized and ctx.ongoing_since is None:
        code = authorization_signature_error(req, s)
        if code is not None:
            return failure(s, now, name, code)
    status = s.supervisor.authorize(ctx.auth_method, ctx.emaid, now)
    if status is AuthorizationStatus.ONGOING:
        if ctx.ongoing_since is None:
            ctx.ongoing_since = now
        if now - ctx.ongoing_since > s.config.ongoing_timeout:
            return failure(s, now, name, "FAILED", reason=f"authorization still ongoing after {s.config.ongoing_timeout:g} s")
        return res("Ongoing", State.WAIT_AUTH)
    ctx.ongoing_since = None
    if status is AuthorizationStatus.REJECTED:
        return failure(s, now, name, "FAILED", reason=f"{name[:-3]}Res FAILED: {ctx.auth_method} authorization rejected")
    ctx.authorized = True
    s.supervisor.session_event(Authorized(method=ctx.auth_method, emaid=ctx.emaid), now)
    return res("Finished", State.WAIT_CPD)


# --- charge parameters and schedules --------------------------------------------------------------

def charge_parameter_discovery(req, s, now) -> Reply:
    """-2: the car's parameters, the schedule; then CableCheck (DC; straight to PowerDelivery
    when renegotiating with the output still at the battery's voltage) or PowerDelivery (AC)."""
    res = _discover(req, s, now)
    if isinstance(res, Reply):
        return res
    nxt = State.WAIT_POWER_DELIVERY if s.ctx.kind == "AC" or s.ctx.precharge_done else State.WAIT_CABLE_CHECK
    return Reply(res, nxt)


def din_charge_parameter_discovery(req, s, now) -> Reply:
    """DIN: the car's parameters, the schedule; then CableCheck."""
    res = _discover(req, s, now)
    if isinstance(res, Reply):
        return res
    return Reply(res, State.WAIT_CABLE_CHECK)


def _discover(req, s, now):
    """The ChargeParameterDiscoveryRes, or a failure Reply."""
    ctx, lim, m = s.ctx, s.stage.limits(), s.msgs
    mode = str(req.EVRequestedEnergyTransferType if is_din(s) else req.RequestedEnergyTransferMode)
    if mode not in _modes(s) and not (is_din(s) and mode in ("DC_core", "DC_extended", "DC_combo_core", "DC_unique")):
        return failure(s, now, "ChargeParameterDiscoveryReq", "FAILED_WrongEnergyTransferType" if is_din(s)
                     else "FAILED_WrongEnergyTransferMode")
    kind = "AC" if mode.startswith("AC") else "DC"
    if (kind == "DC" and req.DC_EVChargeParameter is None) or (kind == "AC" and req.AC_EVChargeParameter is None):
        return failure(s, now, "ChargeParameterDiscoveryReq", "FAILED_WrongChargeParameter")
    ctx.kind, ctx.energy_mode = kind, mode
    ctx.phases = 1 if mode == "AC_single_phase_core" else 3
    if kind == "DC":
        p = req.DC_EVChargeParameter
        ctx.ev.update(max_charge_current=pval(p.EVMaximumCurrentLimit), max_voltage=pval(p.EVMaximumVoltageLimit),
                      max_charge_power=pval(p.EVMaximumPowerLimit) if p.EVMaximumPowerLimit is not None else None,
                      energy_amount=pval(p.EVEnergyRequest), energy_capacity=pval(p.EVEnergyCapacity),
                      full_soc=p.FullSOC, bulk_soc=p.BulkSOC, present_soc=p.DC_EVStatus.EVRESSSOC,
                      departure_time=getattr(p, "DepartureTime", None))
        _update_soc(s, p.DC_EVStatus, now)
        if ctx.ev["max_voltage"] < lim.min_voltage:
            return failure(s, now, "ChargeParameterDiscoveryReq", "FAILED_WrongChargeParameter",
                         reason=f"the car's maximum voltage {ctx.ev['max_voltage']:g} V is below the charger's "
                                f"{lim.min_voltage:g} V")
    else:
        p = req.AC_EVChargeParameter
        i_max = pval(p.EVMaxCurrent)
        ctx.ev.update(max_charge_current=i_max, min_charge_current=pval(p.EVMinCurrent),
                      max_voltage=pval(p.EVMaxVoltage), energy_amount=pval(p.EAmount),
                      max_charge_power=ctx.phases * lim.nominal_voltage * max(0.0, i_max),
                      departure_time=p.DepartureTime)
    ctx.sa_tuple_id = 0
    ctx.schedule_start = now
    schedules = _sa_schedule_list(s, now, SCHEDULE_HORIZON, getattr(req, "MaxEntriesSAScheduleTuple", None))
    s.supervisor.ev_charging_needs(_needs(s), now)
    if kind == "DC":
        params = {"DC_EVSEChargeParameter": m.DC_EVSEChargeParameter(
            DC_EVSEStatus=dc_status(s, code="EVSE_Ready"),
            EVSEMaximumCurrentLimit=pv(s.protocol.schema, lim.max_charge_current, "A"),
            EVSEMaximumPowerLimit=pv(s.protocol.schema, lim.max_charge_power, "W"),
            EVSEMaximumVoltageLimit=pv(s.protocol.schema, lim.max_voltage, "V"),
            EVSEMinimumCurrentLimit=pv(s.protocol.schema, lim.min_charge_current, "A"),
            EVSEMinimumVoltageLimit=pv(s.protocol.schema, lim.min_voltage, "V"),
            EVSEPeakCurrentRipple=pv(s.protocol.schema, 1.0, "A"))}
    else:
        per_phase = min(lim.max_charge_current, lim.max_charge_power / (ctx.phases * lim.nominal_voltage))
        params = {"AC_EVSEChargeParameter": m.AC_EVSEChargeParameter(
            AC_EVSEStatus=ac_status(s), EVSENominalVoltage=pv("iso2", lim.nominal_voltage, "V"),
            EVSEMaxCurrent=pv("iso2", per_phase, "A"))}
    ctx.renegotiate = False
    return m.ChargeParameterDiscoveryRes(ResponseCode="OK", EVSEProcessing="Finished", SAScheduleList=schedules,
                                         **params)


def _sa_schedule_list(s, now: float, horizon: int, max_entries: int | None):
    """One SAScheduleTuple: the PMaxSchedule from the supervisor's plan (or the setpoint) over
    ``horizon`` seconds — charging only, within the charger's limit — and, with a configured
    tariff, its SalesTariff (EPriceLevel per interval)."""
    ctx, lim, m, schema = s.ctx, s.stage.limits(), s.msgs, s.protocol.schema
    cap = min(max_entries or 1024, 1024)
    steps = s.supervisor.power_plan(now, horizon) or [(horizon, s.supervisor.setpoint(now))]
    entries, start = [], 0
    for duration, watts in steps[:cap]:
        if start >= horizon:
            break
        entries.append((start, clamp(watts, 0.0, lim.max_charge_power)))
        start += int(duration)
    ctx.pmax = tuple(entries)

    def interval(i: int, starts: list[int], end: int):
        last = i == len(starts) - 1
        return m.RelativeTimeInterval(start=starts[i], duration=min(end - starts[i], SCHEDULE_HORIZON) if last else None)

    starts = [t for t, _ in entries]
    if is_din(s):
        pmax = m.PMaxSchedule(PMaxScheduleID=1, PMaxScheduleEntry=[
            m.PMaxScheduleEntry(RelativeTimeInterval=interval(i, starts, horizon), PMax=int(min(w, DIN_PMAX_LIMIT)))
            for i, (_, w) in enumerate(entries)])
    else:
        pmax = m.PMaxSchedule(PMaxScheduleEntry=[
            m.PMaxScheduleEntry(RelativeTimeInterval=interval(i, starts, horizon), PMax=pv(schema, w, "W"))
            for i, (_, w) in enumerate(entries)])
    tariff = None
    if s.config.price_levels:
        t_starts, t = [], 0
        for d, _ in s.config.price_levels[:cap]:
            t_starts.append(t)
            t += d
        levels = [lv for _, lv in s.config.price_levels[:cap]]
        tariff = m.SalesTariff(Id="SalesTariff1", SalesTariffID=1, NumEPriceLevels=max(levels) + 1, SalesTariffEntry=[
            m.SalesTariffEntry(RelativeTimeInterval=m.RelativeTimeInterval(
                start=t_starts[i], duration=min(d, SCHEDULE_HORIZON) if i == len(levels) - 1 else None), EPriceLevel=lv)
            for i, ((d, _), lv) in enumerate(zip(s.config.price_levels[:cap], levels))])
    return m.SAScheduleList(SAScheduleTuple=[m.SAScheduleTuple(SAScheduleTupleID=SA_TUPLE_ID, PMaxSchedule=pmax,
                                                               SalesTariff=tariff)])


def _pmax_at(s, t: float) -> float:
    """The offered PMax at ``t`` seconds after the schedule's start (after the last entry: 0)."""
    if t >= SCHEDULE_HORIZON:
        return 0.0
    limit = 0.0
    for start, watts in s.ctx.pmax:
        if start <= t:
            limit = watts
    return limit


def _needs(s) -> EVChargingNeeds:
    ctx, ev = s.ctx, s.ctx.ev
    return EVChargingNeeds(service=ctx.kind, control_mode="Scheduled", protocol=ctx.protocol,
                           energy_transfer_mode=ctx.energy_mode, max_charge_power=ev.get("max_charge_power"),
                           max_charge_current=ev.get("max_charge_current"), min_charge_current=ev.get("min_charge_current"),
                           max_voltage=ev.get("max_voltage"), departure_time=ev.get("departure_time"),
                           energy_amount=ev.get("energy_amount"), energy_capacity=ev.get("energy_capacity"),
                           present_soc=ev.get("present_soc"), full_soc=ev.get("full_soc"), bulk_soc=ev.get("bulk_soc"))


def _update_soc(s, status, now: float) -> None:
    """The car's state of charge from DC_EVStatus; a change is reported upward."""
    soc = float(status.EVRESSSOC)
    if soc != s.ctx.ev_soc:
        s.supervisor.session_event(SoCChanged(soc=soc), now)
    s.ctx.ev_soc = soc


def _ev_error(status) -> str | None:
    code = str(status.EVErrorCode)
    return None if code == "NO_ERROR" else code


# --- DC preparation ---------------------------------------------------------------------------------

def cable_check(req, s, now) -> Reply:
    ctx, c = s.ctx, s.stage
    error = _ev_error(req.DC_EVStatus)
    if error is not None:
        return failure(s, now, "CableCheckReq", "FAILED", reason=f"CableCheckReq: the car reports {error}")

    def res(processing, state, isolation, code="EVSE_Ready"):
        return Reply(s.msgs.CableCheckRes(ResponseCode="OK", DC_EVSEStatus=dc_status(s, code, isolation),
                                          EVSEProcessing=processing), state)

    if ctx.ongoing_since is None:
        ctx.ongoing_since = now
        if not c.close_contactors(now):
            return failure(s, now, "CableCheckReq", "FAILED", reason="CableCheckReq: the contactors did not close")
        c.start_isolation_check(now)
    status = c.isolation_status(now)
    if status is IsolationStatus.FAULT:
        return failure(s, now, "CableCheckReq", "FAILED", reason="CableCheckReq: isolation fault", end=EndReason.FAULT)
    if status is IsolationStatus.ONGOING:
        if now - ctx.ongoing_since > s.config.cable_check_timeout:
            return failure(s, now, "CableCheckReq", "FAILED",
                         reason=f"cable check not finished in {s.config.cable_check_timeout:g} s")
        return res("Ongoing", State.WAIT_CABLE_CHECK, "Invalid", "EVSE_IsolationMonitoringActive")
    ctx.ongoing_since = None
    return res("Finished", State.WAIT_PRECHARGE, "Valid")


def precharge(req, s, now) -> Reply:
    """The output driven to the car's battery voltage (EVTargetVoltage), voltage only; the car
    ends pre-charge by sending PowerDelivery(Start), which checks the voltages match."""
    ctx, c, lim = s.ctx, s.stage, s.stage.limits()
    error = _ev_error(req.DC_EVStatus)
    target = pval(req.EVTargetVoltage)
    if error is not None or not (lim.min_voltage <= target <= lim.max_voltage) or target > ctx.ev.get("max_voltage", 0):
        return failure(s, now, "PreChargeReq", "FAILED", reason=f"PreChargeReq: {error or f'target {target:g} V refused'}")
    if ctx.ongoing_since is None:
        ctx.ongoing_since = now
    if now - ctx.ongoing_since > s.config.precharge_timeout:
        return failure(s, now, "PreChargeReq", "FAILED", reason=f"pre-charge not finished in {s.config.precharge_timeout:g} s")
    ctx.ev_voltage = target
    c.set_target(PowerCommand(voltage=target, current=0.0), now)
    ctx.precharge_done = True
    m = c.measurements(now)
    return Reply(s.msgs.PreChargeRes(ResponseCode="OK", DC_EVSEStatus=dc_status(s, isolation="Valid"),
                                     EVSEPresentVoltage=pv(s.protocol.schema, m.voltage, "V")),
                 State.WAIT_POWER_DELIVERY)


# --- power delivery and the charge loop ---------------------------------------------------------------

def power_delivery(req, s, now) -> Reply:
    """-2, before the loop: Start (or Stop)."""
    if str(req.ChargeProgress) == "Start":
        return _power_delivery_start(req, s, now)
    return _power_delivery_end(req, s, now)


def power_delivery_in_loop(req, s, now) -> Reply:
    """-2, in the loop: Stop or Renegotiate; a second Start is out of sequence."""
    if str(req.ChargeProgress) == "Start":
        raise SequenceError
    return _power_delivery_end(req, s, now)


def din_power_delivery(req, s, now) -> Reply:
    """DIN, before the loop: ReadyToChargeState true starts, false stops (DC: on to welding
    detection or SessionStop)."""
    if req.ReadyToChargeState:
        return _power_delivery_start(req, s, now)
    return _din_stop(req, s, now)


def din_power_delivery_in_loop(req, s, now) -> Reply:
    """DIN, in the loop: ReadyToChargeState false stops; true again is out of sequence."""
    if req.ReadyToChargeState:
        raise SequenceError
    return _din_stop(req, s, now)


def _din_stop(req, s, now) -> Reply:
    _stop_power(s, now, open_contactors=False)
    return Reply(s.msgs.PowerDeliveryRes(ResponseCode="OK", DC_EVSEStatus=dc_status(s, notification="None")),
                 State.WAIT_WELDING)


def _power_delivery_start(req, s, now) -> Reply:
    ctx, c = s.ctx, s.stage
    ctx.ongoing_since = None
    if not ctx.authorized or (ctx.kind == "DC" and not ctx.precharge_done) or \
            not s.supervisor.energy_transfer_allowed(False, now):
        return failure(s, now, "PowerDeliveryReq", "FAILED_PowerDeliveryNotApplied")
    profile = req.ChargingProfile
    tuple_id = profile.SAScheduleTupleID if is_din(s) and profile is not None else \
        SA_TUPLE_ID if is_din(s) else req.SAScheduleTupleID
    if tuple_id != SA_TUPLE_ID:
        return failure(s, now, "PowerDeliveryReq", "FAILED_TariffSelectionInvalid")
    entries = []
    if profile is not None:
        for e in profile.ProfileEntry:
            watts = float(e.ChargingProfileEntryMaxPower) if is_din(s) else pval(e.ChargingProfileEntryMaxPower)
            limit = _pmax_at(s, e.ChargingProfileEntryStart)
            if watts > (min(limit, DIN_PMAX_LIMIT) if is_din(s) else limit) + PROFILE_TOLERANCE:
                return failure(s, now, "PowerDeliveryReq", "FAILED_ChargingProfileInvalid",
                             reason=f"PowerDeliveryRes FAILED_ChargingProfileInvalid: {watts:g} W at "
                                    f"{e.ChargingProfileEntryStart} s above the offered {limit:g} W")
            entries.append((e.ChargingProfileEntryStart, watts))
    if ctx.kind == "AC" and not c.close_contactors(now):
        return failure(s, now, "PowerDeliveryReq", "FAILED_ContactorError")
    if ctx.kind == "DC":
        present, ev_v = c.measurements(now).voltage, ctx.ev_voltage
        if ev_v is None or abs(present - ev_v) > s.config.precharge_tolerance:
            return failure(s, now, "PowerDeliveryReq", "FAILED_PowerDeliveryNotApplied",
                         reason=f"PowerDeliveryRes FAILED_PowerDeliveryNotApplied: output at {present:.0f} V, the car "
                                f"at {'?' if ev_v is None else f'{ev_v:.0f}'} V (tolerance "
                                f"{s.config.precharge_tolerance:g} V)")
        c.set_target(PowerCommand(voltage=present, current=0.0, ev_voltage=ev_v), now)
    ctx.sa_tuple_id = tuple_id
    ctx.channel = "Charge"
    ctx.energized = True
    profile_steps = None
    if entries:
        ends = [t for t, _ in entries[1:]] + [max(entries[-1][0] + 1, SCHEDULE_HORIZON)]
        profile_steps = tuple((int(end - t), w) for (t, w), end in zip(entries, ends))
    s.supervisor.session_event(EnergyTransferStarted(channel="Charge", control_mode="Scheduled",
                                                     ev_power_profile=profile_steps,
                                                     time_anchor=wall(s, now) if profile_steps else None), now)
    return Reply(s.msgs.PowerDeliveryRes(ResponseCode="OK", **status(s)), State.CHARGE_LOOP)


def _power_delivery_end(req, s, now) -> Reply:
    ctx, progress = s.ctx, str(req.ChargeProgress)
    if progress == "Renegotiate":
        if not ctx.energized:  # only while charging
            raise SequenceError
        _stop_power(s, now, open_contactors=False)
        return Reply(s.msgs.PowerDeliveryRes(ResponseCode="OK", **status(s)), State.WAIT_CPD)
    _stop_power(s, now, open_contactors=ctx.kind == "AC")
    return Reply(s.msgs.PowerDeliveryRes(ResponseCode="OK", **status(s, notification="None")),
                 State.WAIT_WELDING if ctx.kind == "DC" else State.WAIT_SESSION_STOP)


def _stop_power(s, now: float, open_contactors: bool) -> None:
    c = s.stage
    m = c.measurements(now)
    if m.contactors_closed:
        c.set_target(PowerCommand(voltage=m.voltage if not open_contactors else 0.0,
                                  ev_voltage=s.ctx.ev_voltage if s.ctx.energized and not open_contactors else None), now)
    if open_contactors:
        c.open_contactors(now)
    if s.ctx.energized:
        s.supervisor.session_event(EnergyTransferStopped(), now)
    s.ctx.energized = False


def _allowed_power(s, now: float, ev_max: float | None) -> float:
    """The setpoint within the charger's and the car's limits and the offered schedule; never
    negative (neither protocol can discharge the car)."""
    lim = s.stage.limits()
    p = clamp(s.supervisor.setpoint(now), 0.0, lim.max_charge_power)
    if ev_max is not None:
        p = min(p, max(0.0, ev_max))
    return p


def _scheduled(s, now: float, power: float) -> float:
    """-2: within the PMax the car agreed to. A setpoint above it asks the car to renegotiate
    (EVSENotification ReNegotiation in this response) for a schedule that allows it. DIN's PMax
    has no stated unit here, so DIN power follows the setpoint alone."""
    if is_din(s):
        return power
    limit = _pmax_at(s, now - s.ctx.schedule_start)
    if power > limit + PROFILE_TOLERANCE:
        s.ctx.renegotiate = True
    return min(power, limit)


def _report_power(s, power: float, now: float) -> None:
    """PowerChanged when the flow moved beyond max(100 W, 5 %) of what was last reported."""
    last = s.ctx.reported_power
    watts, share = POWER_CHANGE
    if abs(power - last) > max(watts, share * abs(last)):
        s.ctx.reported_power = power
        s.supervisor.session_event(PowerChanged(power_w=power), now)


def _meter(s, now: float):
    m = s.stage.measurements(now)
    return s.msgs.MeterInfo(MeterID=s.config.meter_id, MeterReading=int(m.energy_imported_wh), TMeter=wall(s, now))


def _receipt(s) -> bool:
    """Plug & Charge: ask for a MeteringReceipt every ``receipt_interval`` loop responses."""
    n = s.config.receipt_interval
    return s.ctx.auth_method == "PnC" and n > 0 and s.ctx.loops % n == 0


def current_demand(req, s, now) -> Reply:
    """-2 DC loop: the current within every limit; a MeteringReceipt asked for now and then
    (Plug & Charge)."""
    res = _current_demand(req, s, now)
    if isinstance(res, Reply):
        return res
    return Reply(res, State.WAIT_METERING_RECEIPT if s.ctx.receipt_due else State.CHARGE_LOOP)


def din_current_demand(req, s, now) -> Reply:
    """DIN loop: the current within every limit."""
    res = _current_demand(req, s, now)
    if isinstance(res, Reply):
        return res
    return Reply(res, State.CHARGE_LOOP)


def _current_demand(req, s, now):
    """The CurrentDemandRes, or a failure Reply. The battery holds the output at its voltage;
    the current is the least of the car's request and every limit."""
    ctx, c, lim, schema = s.ctx, s.stage, s.stage.limits(), s.protocol.schema
    error = _ev_error(req.DC_EVStatus)
    if error is not None:
        return failure(s, now, "CurrentDemandReq", "FAILED", reason=f"CurrentDemandReq: the car reports {error}")
    _update_soc(s, req.DC_EVStatus, now)
    ev_max_v = pval(req.EVMaximumVoltageLimit) if req.EVMaximumVoltageLimit is not None else ctx.ev.get("max_voltage")
    target_v = min(pval(req.EVTargetVoltage), lim.max_voltage, ev_max_v or lim.max_voltage)
    ev_max_p = pval(req.EVMaximumPowerLimit) if req.EVMaximumPowerLimit is not None else ctx.ev.get("max_charge_power")
    power = _scheduled(s, now, _allowed_power(s, now, ev_max_p)) if req.DC_EVStatus.EVReady else 0.0
    # the battery holds the output: the current follows from the highest voltage in play
    present = c.measurements(now).voltage
    v = max(ctx.ev_voltage or 0.0, present, 1.0)
    ev_max_i = pval(req.EVMaximumCurrentLimit) if req.EVMaximumCurrentLimit is not None else ctx.ev.get("max_charge_current")
    current = min(max(0.0, pval(req.EVTargetCurrent)), power / v, lim.max_charge_current,
                  ev_max_i if ev_max_i is not None else math.inf)
    current = clamp(current, 0.0, lim.max_charge_current)
    c.set_target(PowerCommand(voltage=target_v, current=current, ev_voltage=ctx.ev_voltage), now)
    m = c.measurements(now)
    _report_power(s, m.power, now)
    ctx.loops += 1
    receipt = _receipt(s)
    flags = dict(EVSECurrentLimitAchieved=current >= lim.max_charge_current,
                 EVSEVoltageLimitAchieved=target_v >= lim.max_voltage,
                 EVSEPowerLimitAchieved=power >= lim.max_charge_power,
                 EVSEMaximumVoltageLimit=pv(schema, lim.max_voltage, "V"),
                 EVSEMaximumCurrentLimit=pv(schema, lim.max_charge_current, "A"),
                 EVSEMaximumPowerLimit=pv(schema, lim.max_charge_power, "W"))
    extra = {} if is_din(s) else dict(EVSEID=evse_id(s), SAScheduleTupleID=ctx.sa_tuple_id, MeterInfo=_meter(s, now),
                                    ReceiptRequired=receipt)
    ctx.receipt_due = receipt and not is_din(s)
    return s.msgs.CurrentDemandRes(ResponseCode="OK", DC_EVSEStatus=dc_status(s, isolation="Valid"),
                                   EVSEPresentVoltage=pv(schema, m.voltage, "V"),
                                   EVSEPresentCurrent=pv(schema, m.current, "A"), **flags, **extra)


def charging_status(req, s, now) -> Reply:
    """-2 AC: the power within the limits, the car told as EVSEMaxCurrent per phase."""
    ctx, c, lim = s.ctx, s.stage, s.stage.limits()
    power = _scheduled(s, now, _allowed_power(s, now, ctx.ev.get("max_charge_power")))
    c.set_target(PowerCommand(power=power), now)
    _report_power(s, c.measurements(now).power, now)
    ctx.loops += 1
    receipt = _receipt(s)
    ctx.receipt_due = receipt
    per_phase = power / (ctx.phases * lim.nominal_voltage)
    return Reply(s.msgs.ChargingStatusRes(ResponseCode="OK", EVSEID=evse_id(s), SAScheduleTupleID=ctx.sa_tuple_id,
                                          EVSEMaxCurrent=pv("iso2", per_phase, "A"), MeterInfo=_meter(s, now),
                                          ReceiptRequired=receipt, AC_EVSEStatus=ac_status(s)),
                 State.WAIT_METERING_RECEIPT if receipt else State.CHARGE_LOOP)


def welding_detection(req, s, now) -> Reply:
    c = s.stage
    c.open_contactors(now)  # the output goes dead so that the car can test its own contactors
    m = c.measurements(now)
    return Reply(s.msgs.WeldingDetectionRes(ResponseCode="OK", DC_EVSEStatus=dc_status(s, notification="None"),
                                            EVSEPresentVoltage=pv(s.protocol.schema, m.voltage, "V")),
                 State.WAIT_WELDING)


def session_stop(req, s, now) -> Reply:
    ctx = s.ctx
    _stop_power(s, now, open_contactors=True)
    kind = "Terminate" if is_din(s) else str(req.ChargingSession)
    if kind == "Pause":
        if not s.config.pause_allowed:
            return failure(s, now, "SessionStopReq", "FAILED", reason="SessionStopRes FAILED: pausing is not allowed")
        store = s.resume_store
        while len(store) >= s.config.max_paused_sessions:  # bounded: the oldest pause is forgotten first
            store.pop(next(iter(store)))
        store[ctx.session_id] = {k: getattr(ctx, k) for k in RESUMABLE}
        return Reply(s.msgs.SessionStopRes(ResponseCode="OK"), State.ENDED, True, end=EndReason.PAUSED)
    return Reply(s.msgs.SessionStopRes(ResponseCode="OK"), State.ENDED, True)


def fault_guard(handler):
    """Before CableCheck, PreCharge, PowerDelivery and every loop: a hardware fault or a stop
    asked from above ends the session with FAILED, the EVSE status EVSE_Shutdown (or
    EVSE_EmergencyShutdown) and EVSENotification StopCharging (de-energised by the session)."""
    def guarded(req, s, now) -> Reply:
        fault, why = s.stage.fault(now), EndReason.FAULT
        if fault is not None and getattr(s.stage, "estopped", None):
            why = EndReason.EMERGENCY_STOP
        if fault is None:
            fault, why = s.supervisor.stop_requested(now), EndReason.STOPPED_BY_SUPERVISOR
        if fault is None:
            return handler(req, s, now)
        s.supervisor.session_event(StageFault(reason=fault, emergency=why is EndReason.EMERGENCY_STOP), now)
        name = element_name(s.protocol.schema, req)
        return failure(s, now, name, "FAILED", reason=f"{name}: {fault}", end=why,
                     status_code="EVSE_EmergencyShutdown" if why is EndReason.EMERGENCY_STOP else "EVSE_Shutdown")
    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    guarded.__wrapped__ = handler
    return guarded


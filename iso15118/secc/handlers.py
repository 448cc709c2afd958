"""The SECC's request handlers, one per -20 request (the table that dispatches to them is
``iso15118.secc.iso20``).

A handler takes (request, session, now) and returns a ``Reply``: the response (mandatory fields
always filled), the next state (one the table declares for it), and whether the session ends.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache

from iso15118.messages import (AC, BPT_SERVICES, CM, DC, SERVICE_AC, SERVICE_AC_BPT, SERVICE_DC, SERVICE_DC_BPT,
                               filled, name_of, response_class)
from iso15118.units import clamp, rn, val

from .controller import AuthorizationStatus, ContractStatus, IsolationStatus, PowerCommand
from .events import (POWER_CHANGE, Authorized, EndReason, EnergyTransferStarted, EnergyTransferStopped,
                     EVChargingNeeds, GeneratorMode, PowerChanged, SessionStarted, SoCChanged, StageFault)
from .context import Reply, SequenceError, State
from .pnc import installation_offered

ZERO_SESSION = bytes(8)
PARAMETER_SETS = {1: "Scheduled", 2: "Dynamic"}  # our ParameterSetID = the ControlMode value
SCHEDULE_HORIZON = 86400  # s: how far ahead a Scheduled ScheduleExchangeRes plans


# --- handshake and session --------------------------------------------------------------------

RESUMABLE = ("protocol", "kind", "service_id", "parameter_set_id", "control_mode", "bpt", "ev", "auth_methods")


def session_setup(req, s, now) -> Reply:
    ctx = s.ctx
    ctx.evcc_id = req.EVCCID
    if not s.connector.acquire(s):
        # one power stage, one session. The -20 responseCodeType has no code for a busy or
        # unavailable EVSE (its FAILED_* codes each name another fault), so the generic FAILED:
        # the car ends its attempt, and the owner's session is not touched
        owner = s.connector.owner
        busy = owner.ctx.session_id.hex() if owner.ctx.session_id else "being set up"
        return Reply(filled(CM.SessionSetupRes, Header=s.header(now), ResponseCode="FAILED", EVSEID=s.config.evse_id),
                     State.ENDED, True, reason=f"SessionSetupRes FAILED: the connector is in use (session {busy})")
    s.established = True
    old = req.Header.SessionID
    paused = s.resume_store.pop(old, None) if old != ZERO_SESSION else None
    if paused is not None and paused["protocol"] == ctx.protocol and paused["kind"] == ctx.kind:
        for k in RESUMABLE:
            setattr(ctx, k, paused[k])
        ctx.session_id, ctx.resumed, code = old, True, "OK_OldSessionJoined"
    else:
        ctx.session_id, code = s.rng(8), "OK_NewSessionEstablished"
    s.supervisor.session_event(SessionStarted(evcc_id=req.EVCCID, session_id=ctx.session_id.hex(),
                                              resumed=ctx.resumed), now)
    return Reply(CM.SessionSetupRes(Header=s.header(now), ResponseCode=code, EVSEID=s.config.evse_id),
                 State.WAIT_AUTH_SETUP)


def authorization_setup(req, s, now) -> Reply:
    ctx = s.ctx
    methods = [m for m in s.config.auth_methods if m != "PnC" or (s.tls and s.config.contract_roots)]
    ctx.auth_methods = tuple(methods)
    kwargs = {}
    if "PnC" in methods:
        ctx.gen_challenge = s.rng(16)
        kwargs["PnC_ASResAuthorizationMode"] = CM.PnC_ASResAuthorizationMode(GenChallenge=ctx.gen_challenge)
    else:
        kwargs["EIM_ASResAuthorizationMode"] = CM.EIM_ASResAuthorizationMode()
    return Reply(CM.AuthorizationSetupRes(Header=s.header(now), ResponseCode="OK", AuthorizationServices=methods,
                                          CertificateInstallationService=installation_offered(s, now), **kwargs),
                 State.WAIT_AUTH)


def authorization(req, s, now) -> Reply:
    ctx = s.ctx
    method = str(req.SelectedAuthorizationService)
    done = State.WAIT_CPD if ctx.resumed else State.WAIT_SERVICE_DISCOVERY

    def res(code, processing="Finished", state=State.WAIT_SESSION_STOP, end=False):
        return Reply(CM.AuthorizationRes(Header=s.header(now), ResponseCode=code, EVSEProcessing=processing),
                     state, end)

    if method not in ctx.auth_methods:
        return res("WARNING_AuthorizationSelectionInvalid")
    if method == "PnC":
        if ctx.auth_method != "PnC":  # the first PnC request: challenge, contract, signature
            code = _check_pnc(req, s, now)
            if code is not None:
                return res(code, end=code.startswith("FAILED"))
            ctx.auth_method = "PnC"
        if not ctx.contract_checked:  # its revocation status (OCSP through the CSMS), Ongoing until known
            code = _contract_status(s, now)
            if code == "Ongoing":
                return _ongoing(s, now, res)
            if code is not None:
                return res(code)
            ctx.contract_checked = True
    elif req.EIM_AReqAuthorizationMode is None:
        return res("FAILED", end=True)
    else:
        ctx.auth_method = "EIM"
    status = s.supervisor.authorize(method, ctx.emaid, now)
    if status is AuthorizationStatus.ONGOING:
        return _ongoing(s, now, res)
    ctx.ongoing_since = None
    if status is AuthorizationStatus.REJECTED:
        return res("WARNING_EIMAuthorizationFailure" if method == "EIM" else "WARNING_GeneralPnCAuthorizationError")
    ctx.authorized = True
    s.supervisor.session_event(Authorized(method=method, emaid=ctx.emaid), now)
    return res("OK", state=done)


def _ongoing(s, now: float, res) -> Reply:
    """EVSEProcessing=Ongoing, at most ``ongoing_timeout`` s from the first (then FAILED)."""
    ctx = s.ctx
    if ctx.ongoing_since is None:
        ctx.ongoing_since = now
    if now - ctx.ongoing_since > s.config.ongoing_timeout:
        return res("FAILED", end=True)
    return res("OK", "Ongoing", State.WAIT_AUTH)


def _contract_status(s, now: float) -> str | None:
    """'Ongoing' while the supervisor asks; the refusal's response code for a revoked contract
    (WARNING_CertificateRevoked) or one of unknown status when ``contract_status_unknown`` is
    'reject' (WARNING_CertificateValidationError: its validity could not be established); None
    when the contract may be used."""
    status = s.supervisor.contract_status(s.ctx.contract_chain, now)
    if status is ContractStatus.ONGOING:
        return "Ongoing"
    if status is ContractStatus.REVOKED:
        return "WARNING_CertificateRevoked"
    if status is ContractStatus.UNKNOWN and s.config.contract_status_unknown == "reject":
        return "WARNING_CertificateValidationError"
    return None


def _check_pnc(req, s, now) -> str | None:
    """Challenge (single use), contract chain and the signature over the PnC element."""
    from iso15118 import pki, xmldsig

    ctx = s.ctx
    mode = req.PnC_AReqAuthorizationMode
    challenge, ctx.gen_challenge = ctx.gen_challenge, None  # used once, whatever the outcome
    if mode is None or challenge is None or mode.GenChallenge != challenge:
        return "WARNING_ChallengeInvalid"
    chain = [mode.ContractCertificateChain.Certificate]
    if mode.ContractCertificateChain.SubCertificates is not None:
        chain += list(mode.ContractCertificateChain.SubCertificates.Certificate)
    wall = dt.datetime.fromtimestamp(now + s.clock_offset, dt.timezone.utc)
    try:
        path = pki.validate_chain(chain, list(s.config.contract_roots), now=wall, purpose="contract",
                                  profile="iso20")
    except pki.ChainError as e:
        if "expired" in e.reason:
            return "WARNING_CertificateExpired"
        if "not yet valid" in e.reason:
            return "WARNING_CertificateNotYetValid"
        return "WARNING_CertificateValidationError"
    sig = req.Header.Signature
    if sig is None:
        return "FAILED_SignatureError"
    try:
        xmldsig.verify(sig, [xmldsig.SignedElement(mode, "PnC_AReqAuthorizationMode", "iso20_cm")],
                       path[0].public_key())
    except xmldsig.SignatureError:
        return "FAILED_SignatureError"
    from cryptography.x509.oid import NameOID
    ctx.emaid = path[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    ctx.contract_chain, ctx.contract_checked = tuple(chain), False
    return None


# --- services -------------------------------------------------------------------------------

def _offered(s) -> list[int]:
    kind_services = (SERVICE_DC, SERVICE_DC_BPT) if s.ctx.kind == "DC" else (SERVICE_AC, SERVICE_AC_BPT)
    return [sv for sv in s.config.services if sv in kind_services]


def service_discovery(req, s, now) -> Reply:
    offered = _offered(s)
    if req.SupportedServiceIDs is not None:
        wanted = set(req.SupportedServiceIDs.ServiceID)
        offered = [sv for sv in offered if sv in wanted] or offered
    services = CM.ServiceList(Service=[CM.Service(ServiceID=sv, FreeService=True) for sv in offered])
    return Reply(CM.ServiceDiscoveryRes(Header=s.header(now), ResponseCode="OK", ServiceRenegotiationSupported=True,
                                        EnergyTransferServiceList=services), State.WAIT_SERVICE_SELECTION)


def _parameter_sets(s, service_id: int) -> list:
    lim = s.stage.limits()
    sets = []
    for mode in s.config.control_modes:
        params = [CM.Parameter(Name="Connector", intValue=2 if s.ctx.kind == "DC" else 1),
                  CM.Parameter(Name="ControlMode", intValue=mode),
                  CM.Parameter(Name="EVSENominalVoltage", rationalNumber=rn(lim.nominal_voltage if s.ctx.kind == "AC"
                                                                           else lim.max_voltage)),
                  CM.Parameter(Name="MobilityNeedsMode", intValue=1),
                  CM.Parameter(Name="Pricing", intValue=2 if s.config.price_levels else 0)]  # 2: price levels
        if service_id in BPT_SERVICES:
            params += [CM.Parameter(Name="BPTChannel", intValue=1),     # Unified
                       CM.Parameter(Name="GeneratorMode", intValue=s.config.generator_mode.value)]
            if service_id == SERVICE_AC_BPT:
                params.append(CM.Parameter(Name="GridCodeIslandingDetectionMethod",
                                           intValue=s.config.islanding_detection_method))
        sets.append(CM.ParameterSet(ParameterSetID=mode, Parameter=params))
    return sets


def service_detail(req, s, now) -> Reply:
    if req.ServiceID not in _offered(s):
        return Reply(filled(CM.ServiceDetailRes, Header=s.header(now), ResponseCode="FAILED_ServiceIDInvalid",
                            ServiceID=req.ServiceID), State.WAIT_SERVICE_SELECTION)
    return Reply(CM.ServiceDetailRes(Header=s.header(now), ResponseCode="OK", ServiceID=req.ServiceID,
                                     ServiceParameterList=CM.ServiceParameterList(ParameterSet=_parameter_sets(
                                         s, req.ServiceID))), State.WAIT_SERVICE_SELECTION)


def service_selection(req, s, now) -> Reply:
    sel = req.SelectedEnergyTransferService
    if sel.ServiceID not in _offered(s) or sel.ParameterSetID not in s.config.control_modes:
        return Reply(CM.ServiceSelectionRes(Header=s.header(now), ResponseCode="FAILED_ServiceSelectionInvalid"),
                     State.ENDED, True)
    ctx = s.ctx
    ctx.service_id, ctx.parameter_set_id = sel.ServiceID, sel.ParameterSetID
    ctx.control_mode = PARAMETER_SETS[sel.ParameterSetID]
    ctx.bpt = sel.ServiceID in BPT_SERVICES
    return Reply(CM.ServiceSelectionRes(Header=s.header(now), ResponseCode="OK"), State.WAIT_CPD)


# --- charge parameters and schedule ------------------------------------------------------------

def dc_charge_parameter_discovery(req, s, now) -> Reply:
    ctx, lim = s.ctx, s.stage.limits()
    mode = req.BPT_DC_CPDReqEnergyTransferMode if ctx.bpt else req.DC_CPDReqEnergyTransferMode
    if ctx.kind != "DC" or mode is None:
        return _cpd_failure(s, now, DC.DC_ChargeParameterDiscoveryRes, "BPT_DC_CPDResEnergyTransferMode"
                            if ctx.bpt else "DC_CPDResEnergyTransferMode")
    ev = {"max_charge_power": val(mode.EVMaximumChargePower), "min_charge_power": val(mode.EVMinimumChargePower),
          "max_charge_current": val(mode.EVMaximumChargeCurrent), "max_voltage": val(mode.EVMaximumVoltage),
          "min_voltage": val(mode.EVMinimumVoltage), "target_soc": mode.TargetSOC}
    if ctx.bpt:
        ev.update(max_discharge_power=val(mode.EVMaximumDischargePower),
                  max_discharge_current=val(mode.EVMaximumDischargeCurrent))
    ctx.ev.update(ev)
    if ev["max_voltage"] < lim.min_voltage or ev["min_voltage"] > lim.max_voltage:
        return _cpd_failure(s, now, DC.DC_ChargeParameterDiscoveryRes, "BPT_DC_CPDResEnergyTransferMode"
                            if ctx.bpt else "DC_CPDResEnergyTransferMode")
    s.supervisor.ev_charging_needs(_needs(s, _service(ctx)), now)
    common = dict(EVSEMaximumChargePower=rn(lim.max_charge_power), EVSEMinimumChargePower=rn(lim.min_charge_power),
                  EVSEMaximumChargeCurrent=rn(lim.max_charge_current), EVSEMinimumChargeCurrent=rn(lim.min_charge_current),
                  EVSEMaximumVoltage=rn(lim.max_voltage), EVSEMinimumVoltage=rn(lim.min_voltage))
    if ctx.bpt:
        out = {"BPT_DC_CPDResEnergyTransferMode": DC.BPT_DC_CPDResEnergyTransferMode(
            **common, EVSEMaximumDischargePower=rn(lim.max_discharge_power),
            EVSEMinimumDischargePower=rn(lim.min_discharge_power),
            EVSEMaximumDischargeCurrent=rn(lim.max_discharge_current),
            EVSEMinimumDischargeCurrent=rn(lim.min_discharge_current))}
    else:
        out = {"DC_CPDResEnergyTransferMode": DC.DC_CPDResEnergyTransferMode(**common)}
    return Reply(DC.DC_ChargeParameterDiscoveryRes(Header=s.header(now), ResponseCode="OK", **out), State.WAIT_SCHEDULE)


def ac_charge_parameter_discovery(req, s, now) -> Reply:
    ctx, lim = s.ctx, s.stage.limits()
    mode = req.BPT_AC_CPDReqEnergyTransferMode if ctx.bpt else req.AC_CPDReqEnergyTransferMode
    if ctx.kind != "AC" or mode is None:
        return _cpd_failure(s, now, AC.AC_ChargeParameterDiscoveryRes, "BPT_AC_CPDResEnergyTransferMode"
                            if ctx.bpt else "AC_CPDResEnergyTransferMode")
    ev = {"max_charge_power": val(mode.EVMaximumChargePower), "min_charge_power": val(mode.EVMinimumChargePower)}
    if ctx.bpt:
        ev.update(max_discharge_power=val(mode.EVMaximumDischargePower),
                  min_discharge_power=val(mode.EVMinimumDischargePower))
    ctx.ev.update(ev)
    s.supervisor.ev_charging_needs(_needs(s, _service(ctx)), now)
    common = dict(EVSEMaximumChargePower=rn(lim.max_charge_power), EVSEMinimumChargePower=rn(lim.min_charge_power),
                  EVSENominalFrequency=rn(lim.nominal_frequency))
    if ctx.bpt:
        out = {"BPT_AC_CPDResEnergyTransferMode": AC.BPT_AC_CPDResEnergyTransferMode(
            **common, EVSEMaximumDischargePower=rn(lim.max_discharge_power),
            EVSEMinimumDischargePower=rn(lim.min_discharge_power))}
    else:
        out = {"AC_CPDResEnergyTransferMode": AC.AC_CPDResEnergyTransferMode(**common)}
    return Reply(AC.AC_ChargeParameterDiscoveryRes(Header=s.header(now), ResponseCode="OK", **out), State.WAIT_SCHEDULE)


def _cpd_failure(s, now, cls, mode_field: str) -> Reply:
    return Reply(filled(cls, Header=s.header(now), ResponseCode="FAILED_WrongChargeParameter",
                        **{mode_field: filled(getattr(DC if cls.__name__.startswith("DC") else AC,
                                                      mode_field))}), State.ENDED, True)


def _needs(s, service: str, control_mode: str | None = None) -> EVChargingNeeds:
    """The car's parameters the session holds, for the supervisor."""
    ev = s.ctx.ev
    return EVChargingNeeds(service=service, control_mode=control_mode, min_soc=s.ctx.ev_min_soc,
                           **{k: ev.get(k) for k in _NEEDS_FIELDS})


_NEEDS_FIELDS = ("max_charge_power", "min_charge_power", "max_discharge_power", "min_discharge_power",
                 "max_charge_current", "max_discharge_current", "max_voltage", "min_voltage", "target_soc",
                 "departure_time", "target_energy", "max_energy", "min_energy", "min_v2x_energy", "max_v2x_energy")


def _service(ctx) -> str:
    return f"{ctx.kind}_BPT" if ctx.bpt else ctx.kind


def schedule_exchange(req, s, now) -> Reply:
    ctx = s.ctx
    dynamic = ctx.control_mode == "Dynamic"
    if (req.Dynamic_SEReqControlMode is None) == dynamic:
        return Reply(filled(CM.ScheduleExchangeRes, Header=s.header(now), ResponseCode="FAILED",
                            EVSEProcessing="Finished"), State.ENDED, True)
    wall = int(now + s.clock_offset)
    prices = _price_level_schedule(s.config.price_levels, wall)
    if dynamic:
        d = req.Dynamic_SEReqControlMode
        ctx.ev.update(departure_time=d.DepartureTime, target_energy=val(d.EVTargetEnergyRequest),
                      max_energy=val(d.EVMaximumEnergyRequest), min_energy=val(d.EVMinimumEnergyRequest),
                      min_v2x_energy=val(d.EVMinimumV2XEnergyRequest), max_v2x_energy=val(d.EVMaximumV2XEnergyRequest))
        if d.MinimumSOC is not None:
            ctx.ev_min_soc = float(d.MinimumSOC)
        mode = {"Dynamic_SEResControlMode": CM.Dynamic_SEResControlMode(
            DepartureTime=d.DepartureTime, MinimumSOC=d.MinimumSOC, TargetSOC=d.TargetSOC, PriceLevelSchedule=prices)}
    else:
        lim = s.stage.limits()
        steps = s.supervisor.power_plan(now, SCHEDULE_HORIZON) or [(SCHEDULE_HORIZON, s.supervisor.setpoint(now))]
        steps = steps[:1024]  # PowerScheduleEntryList maxOccurs

        def schedule(power_of):
            return CM.ChargingSchedule(PowerSchedule=CM.PowerSchedule(
                TimeAnchor=wall, PowerScheduleEntries=CM.PowerScheduleEntryList(PowerScheduleEntry=[
                    CM.PowerScheduleEntry(Duration=int(d), Power=rn(power_of(w))) for d, w in steps])),
                PriceLevelSchedule=prices)
        tuple_kwargs = {}
        if ctx.bpt:
            tuple_kwargs["DischargingSchedule"] = schedule(lambda w: -max(0.0, min(-w, lim.max_discharge_power)))
        mode = {"Scheduled_SEResControlMode": CM.Scheduled_SEResControlMode(ScheduleTuple=[CM.ScheduleTuple(
            ScheduleTupleID=1, ChargingSchedule=schedule(lambda w: max(0.0, min(w, lim.max_charge_power))),
            **tuple_kwargs)])}
    s.supervisor.ev_charging_needs(_needs(s, _service(ctx), ctx.control_mode), now)
    nxt = State.WAIT_CABLE_CHECK if ctx.kind == "DC" and not ctx.precharge_done else State.WAIT_POWER_DELIVERY
    return Reply(CM.ScheduleExchangeRes(Header=s.header(now), ResponseCode="OK", EVSEProcessing="Finished", **mode), nxt)


def _price_level_schedule(levels: tuple[tuple[int, int], ...], wall: int):
    """The configured tariff as a PriceLevelSchedule anchored now, or None without pricing."""
    if not levels:
        return None
    return CM.PriceLevelSchedule(TimeAnchor=wall, PriceScheduleID=1,
                                 NumberOfPriceLevels=max(level for _, level in levels) + 1,
                                 PriceLevelScheduleEntries=CM.PriceLevelScheduleEntryList(
                                     PriceLevelScheduleEntry=[CM.PriceLevelScheduleEntry(Duration=d, PriceLevel=lv)
                                                              for d, lv in levels]))


# --- DC preparation ---------------------------------------------------------------------------

def dc_cable_check(req, s, now) -> Reply:
    ctx, c = s.ctx, s.stage

    def res(code, processing, state, end=False):
        return Reply(DC.DC_CableCheckRes(Header=s.header(now), ResponseCode=code, EVSEProcessing=processing), state, end)

    if ctx.ongoing_since is None:
        ctx.ongoing_since = now
        if not c.close_contactors(now):
            return res("FAILED_ContactorError", "Finished", State.ENDED, True)
        c.start_isolation_check(now)
    status = c.isolation_status(now)
    if status is IsolationStatus.FAULT:
        return res("FAILED", "Finished", State.ENDED, True)
    if status is IsolationStatus.ONGOING:
        if now - ctx.ongoing_since > s.config.cable_check_timeout:
            return res("FAILED", "Finished", State.ENDED, True)
        return res("OK", "Ongoing", State.WAIT_CABLE_CHECK)
    ctx.ongoing_since = None
    return res("OK", "Finished", State.WAIT_PRECHARGE)


def dc_precharge(req, s, now) -> Reply:
    ctx, c, lim = s.ctx, s.stage, s.stage.limits()
    target = val(req.EVTargetVoltage)
    if not (lim.min_voltage <= target <= lim.max_voltage) or not ctx.ev or target > ctx.ev.get("max_voltage", 0):
        return Reply(filled(DC.DC_PreChargeRes, Header=s.header(now), ResponseCode="FAILED",
                            EVSEPresentVoltage=rn(0)), State.ENDED, True)
    if ctx.ongoing_since is None:
        ctx.ongoing_since = now
    if now - ctx.ongoing_since > s.config.precharge_timeout:
        return Reply(DC.DC_PreChargeRes(Header=s.header(now), ResponseCode="FAILED", EVSEPresentVoltage=rn(0)),
                     State.ENDED, True)
    ctx.ev_voltage = val(req.EVPresentVoltage)
    c.set_target(PowerCommand(voltage=target, current=0.0), now)  # precharge: voltage only, no current
    if str(req.EVProcessing) == "Finished":
        ctx.precharge_done = True
        ctx.ongoing_since = None
    m = c.measurements(now)
    return Reply(DC.DC_PreChargeRes(Header=s.header(now), ResponseCode="OK", EVSEPresentVoltage=rn(m.voltage)),
                 State.WAIT_POWER_DELIVERY if ctx.precharge_done else State.WAIT_PRECHARGE)


# --- power delivery and the charge loop --------------------------------------------------------

def power_delivery(req, s, now) -> Reply:
    """Before the loop: Start (or Stop, ScheduleRenegotiation)."""
    if str(req.ChargeProgress) == "Start":
        return _power_delivery_start(req, s, now)
    return _power_delivery_end(req, s, now)


def power_delivery_in_loop(req, s, now) -> Reply:
    """In the loop: Stop or ScheduleRenegotiation; a second Start is out of sequence."""
    if str(req.ChargeProgress) == "Start":
        raise SequenceError
    return _power_delivery_end(req, s, now)


def _power_delivery_start(req, s, now) -> Reply:
    ctx, c = s.ctx, s.stage

    def res(code, state, end=False):
        return Reply(CM.PowerDeliveryRes(Header=s.header(now), ResponseCode=code), state, end)

    if not ctx.authorized or (ctx.kind == "DC" and not ctx.precharge_done):
        return res("FAILED_PowerDeliveryNotApplied", State.ENDED, True)
    if str(req.EVProcessing) != "Finished":
        return res("OK", State.WAIT_POWER_DELIVERY)
    channel = str(req.BPT_ChannelSelection) if req.BPT_ChannelSelection is not None else "Charge"
    if channel == "Discharge" and (not ctx.bpt or not s.supervisor.energy_transfer_allowed(True, now)):
        return res("FAILED_PowerDeliveryNotApplied", State.ENDED, True)
    if ctx.control_mode == "Scheduled":
        prof = req.EVPowerProfile
        if prof is None or prof.Scheduled_EVPPTControlMode is None:
            return res("FAILED_EVPowerProfileInvalid", State.ENDED, True)
        if prof.Scheduled_EVPPTControlMode.SelectedScheduleTupleID != 1:
            return res("FAILED_ScheduleSelectionInvalid", State.ENDED, True)
    if ctx.kind == "AC" and not c.close_contactors(now):
        return res("FAILED_ContactorError", State.ENDED, True)
    if ctx.kind == "DC":
        # the car closes its contactors on this answer: the output must already be at the
        # battery's voltage, or the difference drives an inrush through the cable
        present, ev_v = c.measurements(now).voltage, ctx.ev_voltage
        if ev_v is None or abs(present - ev_v) > s.config.precharge_tolerance:
            return Reply(CM.PowerDeliveryRes(Header=s.header(now), ResponseCode="FAILED_PowerDeliveryNotApplied"),
                         State.ENDED, True, reason=f"PowerDeliveryRes FAILED_PowerDeliveryNotApplied: output at "
                         f"{present:.0f} V, the car at {'?' if ev_v is None else f'{ev_v:.0f}'} V (tolerance "
                         f"{s.config.precharge_tolerance:g} V)")
        # from now on the battery holds the output at its voltage (the stage controls current)
        c.set_target(PowerCommand(voltage=present, current=0.0, ev_voltage=ev_v), now)
    ctx.channel = channel
    ctx.energized = True
    prof = req.EVPowerProfile
    planned = prof is not None and prof.EVPowerProfileEntries is not None  # what the car plans (for OCPP)
    s.supervisor.session_event(EnergyTransferStarted(
        channel=channel, control_mode=ctx.control_mode, time_anchor=prof.TimeAnchor if planned else None,
        ev_power_profile=tuple((e.Duration, val(e.Power)) for e in prof.EVPowerProfileEntries.EVPowerProfileEntry)
        if planned else None), now)
    return res("OK", State.CHARGE_LOOP)


def _power_delivery_end(req, s, now) -> Reply:
    ctx, progress = s.ctx, str(req.ChargeProgress)

    def res(code, state, end=False):
        return Reply(CM.PowerDeliveryRes(Header=s.header(now), ResponseCode=code), state, end)

    if progress == "Stop":
        _stop_power(s, now, open_contactors=ctx.kind == "AC")
        return res("OK", State.WAIT_WELDING if ctx.kind == "DC" else State.WAIT_SESSION_STOP)
    if progress == "ScheduleRenegotiation":
        _stop_power(s, now, open_contactors=False)
        return res("OK", State.WAIT_SCHEDULE)
    return res("WARNING_StandbyNotAllowed", s.state)


def _stop_power(s, now: float, open_contactors: bool) -> None:
    c = s.stage
    m = c.measurements(now)
    if m.contactors_closed:
        c.set_target(PowerCommand(voltage=m.voltage if not open_contactors else 0.0), now)
    if open_contactors:
        c.open_contactors(now)
    if s.ctx.energized:
        s.supervisor.session_event(EnergyTransferStopped(), now)
    s.ctx.energized = False


def _allowed_power(s, now: float, ev_max_charge: float | None, ev_max_discharge: float | None) -> float:
    """The setpoint within the charger's, the car's and the session's limits; discharge never
    below the car's minimum state of charge."""
    ctx, lim = s.ctx, s.stage.limits()
    p = clamp(s.supervisor.setpoint(now), -math.inf, math.inf)  # a non-finite setpoint is 0 W, never a bound
    if not ctx.bpt or ctx.control_mode == "Scheduled" and ctx.channel == "Charge":
        p = max(0.0, p)
    if ctx.control_mode == "Scheduled" and ctx.channel == "Discharge":
        p = min(0.0, p)
    if p < 0 and not s.supervisor.energy_transfer_allowed(True, now):
        p = 0.0  # discharge withdrawn (e.g. by the CSMS) after PowerDelivery: hold at zero
    if _forming(s, now):
        p = min(0.0, p)  # an island is fed from the car, never the car from the island
    max_c = min(lim.max_charge_power, ev_max_charge if ev_max_charge is not None else ctx.ev.get("max_charge_power", 0))
    max_d = min(lim.max_discharge_power,
                ev_max_discharge if ev_max_discharge is not None else ctx.ev.get("max_discharge_power", 0) or 0)
    if ctx.ev_soc is not None and ctx.ev_min_soc is not None and ctx.ev_soc <= ctx.ev_min_soc:
        max_d = 0.0
    return clamp(p, -max(0.0, max_d), max(0.0, max_c))


def _report_power(s, power: float, now: float) -> None:
    """PowerChanged when the flow moved beyond max(100 W, 5 %) of what was last reported."""
    last = s.ctx.reported_power
    watts, share = POWER_CHANGE
    if abs(power - last) > max(watts, share * abs(last)):
        s.ctx.reported_power = power
        s.supervisor.session_event(PowerChanged(power_w=power), now)


def _forming(s, now: float) -> bool:
    """The supervisor wants an island formed (GeneratorMode GridForming) and the session can discharge."""
    return s.ctx.bpt and s.supervisor.generator_mode(now) is GeneratorMode.GRID_FORMING


def _update_soc(s, display, now: float) -> None:
    """The car's state of charge from DisplayParameters; a change is reported upward (OCPP
    meter values) as session event 'ev_soc'."""
    ctx = s.ctx
    if display is not None:
        if display.PresentSOC is not None:
            soc = float(display.PresentSOC)
            if soc != ctx.ev_soc:
                s.supervisor.session_event(SoCChanged(soc=soc), now)
            ctx.ev_soc = soc
        if display.MinimumSOC is not None:
            ctx.ev_min_soc = max(ctx.ev_min_soc or 0.0, float(display.MinimumSOC))


DC_MODES = {("Scheduled", False): "Scheduled_DC_CLReqControlMode", ("Dynamic", False): "Dynamic_DC_CLReqControlMode",
            ("Scheduled", True): "BPT_Scheduled_DC_CLReqControlMode", ("Dynamic", True): "BPT_Dynamic_DC_CLReqControlMode"}
AC_MODES = {k: v.replace("_DC_", "_AC_") for k, v in DC_MODES.items()}


def _meter(s, now, requested: bool):
    if not requested:
        return None
    m = s.stage.measurements(now)
    mod = DC if s.ctx.kind == "DC" else AC  # each -20 schema has its own MeterInfo class
    return mod.MeterInfo(MeterID=s.config.meter_id, ChargedEnergyReadingWh=int(m.energy_imported_wh),
                        BPT_DischargedEnergyReadingWh=int(m.energy_exported_wh) if s.ctx.bpt else None,
                        MeterTimestamp=int(now + s.clock_offset))


_RES_FIELD = {v: v.replace("CLReq", "CLRes") for v in (*DC_MODES.values(), *AC_MODES.values())}


def dc_charge_loop(req, s, now) -> Reply:
    ctx, c = s.ctx, s.stage
    lim = c.limits()
    field_name = DC_MODES[(ctx.control_mode, ctx.bpt)]
    mode = getattr(req, field_name)
    res_field = _RES_FIELD[field_name]
    if mode is None:
        return Reply(filled(DC.DC_ChargeLoopRes, Header=s.header(now), ResponseCode="FAILED",
                            **{res_field: filled(getattr(DC, res_field))}), State.ENDED, True)
    _update_soc(s, req.DisplayParameters, now)
    # the output follows the battery, within both sides' voltage limits; the current comes
    # from the highest voltage in play, so a car under-reporting its voltage gets no extra power
    ev_v = ctx.ev_voltage = val(req.EVPresentVoltage)
    target_v = min(max(ev_v, lim.min_voltage), lim.max_voltage, ctx.ev.get("max_voltage") or lim.max_voltage)
    v_ev = max(ev_v, c.measurements(now).voltage, target_v, 1.0)
    ev_max_c = val(mode.EVMaximumChargePower)  # None stays None
    ev_max_d = val(getattr(mode, "EVMaximumDischargePower", None))
    power = _allowed_power(s, now, ev_max_c, ev_max_d)
    current = power / v_ev
    r = mode.EVMaximumChargeCurrent
    ev_i_c = val(r) if r is not None else ctx.ev.get("max_charge_current")
    r = getattr(mode, "EVMaximumDischargeCurrent", None)
    ev_i_d = val(r) if r is not None else ctx.ev.get("max_discharge_current")
    if ctx.control_mode == "Scheduled":  # the car asks for its current; we never exceed the setpoint
        wanted = val(mode.EVTargetCurrent)
        current = max(min(wanted, current), 0.0) if wanted >= 0 else min(max(wanted, current), 0.0)
    current = min(current, lim.max_charge_current, ev_i_c if ev_i_c is not None else current)
    current = max(current, -lim.max_discharge_current, -(ev_i_d if ev_i_d is not None else 0.0) if ctx.bpt else 0.0)
    c.set_target(PowerCommand(voltage=target_v, current=current, ev_voltage=ev_v, grid_forming=_forming(s, now)), now)
    m = c.measurements(now)
    _report_power(s, m.power, now)
    ctx.loops += 1
    # each flag against the charger's own limit in the direction of the flow (discharge has its own)
    discharging = power < 0 or current < 0
    return Reply(DC.DC_ChargeLoopRes(
        Header=s.header(now), ResponseCode="OK", MeterInfo=_meter(s, now, req.MeterInfoRequested),
        EVSEPresentCurrent=rn(m.current), EVSEPresentVoltage=rn(m.voltage),
        EVSEPowerLimitAchieved=abs(power) >= (lim.max_discharge_power if discharging else lim.max_charge_power),
        EVSECurrentLimitAchieved=abs(current) >= (lim.max_discharge_current if discharging else lim.max_charge_current),
        EVSEVoltageLimitAchieved=not lim.min_voltage <= ev_v <= lim.max_voltage,
        **{res_field: _dc_res_mode(res_field, lim)}), State.CHARGE_LOOP)


_LAST_RES_MODE: list = [None, None, None]  # (res_field, limits object, mode): the same limits object every loop


def _dc_res_mode(res_field: str, lim):
    """The charge-loop response's control mode: the EVSE limits (immutable, so cached; the last
    one by identity first, which saves hashing the limits every loop)."""
    last = _LAST_RES_MODE
    if last[1] is lim and last[0] == res_field:
        return last[2]
    mode = _dc_res_mode_of(res_field, lim)
    last[:] = [res_field, lim, mode]
    return mode


@lru_cache(maxsize=64)
def _dc_res_mode_of(res_field: str, lim):
    cls = getattr(DC, res_field)
    if "Dynamic" not in res_field:
        return cls()
    kwargs = dict(EVSEMaximumChargePower=rn(lim.max_charge_power), EVSEMinimumChargePower=rn(lim.min_charge_power),
                  EVSEMaximumChargeCurrent=rn(lim.max_charge_current), EVSEMaximumVoltage=rn(lim.max_voltage))
    if res_field.startswith("BPT"):
        kwargs.update(EVSEMaximumDischargePower=rn(lim.max_discharge_power),
                      EVSEMinimumDischargePower=rn(lim.min_discharge_power),
                      EVSEMaximumDischargeCurrent=rn(lim.max_discharge_current), EVSEMinimumVoltage=rn(lim.min_voltage))
    return cls(**kwargs)


def ac_charge_loop(req, s, now) -> Reply:
    ctx, c = s.ctx, s.stage
    field_name = AC_MODES[(ctx.control_mode, ctx.bpt)]
    mode = getattr(req, field_name)
    res_field = field_name.replace("CLReq", "CLRes")
    if mode is None:
        return Reply(filled(AC.AC_ChargeLoopRes, Header=s.header(now), ResponseCode="FAILED",
                            **{res_field: filled(getattr(AC, res_field))}), State.ENDED, True)
    _update_soc(s, req.DisplayParameters, now)
    ev_max_c = val(mode.EVMaximumChargePower) if mode.EVMaximumChargePower is not None else None
    ev_max_d = val(getattr(mode, "EVMaximumDischargePower", None)) if getattr(mode, "EVMaximumDischargePower", None) \
        is not None else None
    power = _allowed_power(s, now, ev_max_c, ev_max_d)  # AC: the EVSE meters, the car follows the schedule
    c.set_target(PowerCommand(power=power, grid_forming=_forming(s, now)), now)
    m = c.measurements(now)
    _report_power(s, m.power, now)
    ctx.loops += 1
    res_mode_cls = getattr(AC, res_field)
    res_mode = res_mode_cls(EVSETargetActivePower=rn(power)) if ctx.control_mode == "Dynamic" else \
        res_mode_cls(EVSEPresentActivePower=rn(m.power))
    return Reply(AC.AC_ChargeLoopRes(Header=s.header(now), ResponseCode="OK",
                                     MeterInfo=_meter(s, now, req.MeterInfoRequested), **{res_field: res_mode}),
                 State.CHARGE_LOOP)


def dc_welding_detection(req, s, now) -> Reply:
    c = s.stage
    c.open_contactors(now)  # the output goes dead so that the car can test its own contactors
    m = c.measurements(now)
    return Reply(DC.DC_WeldingDetectionRes(Header=s.header(now), ResponseCode="OK", EVSEPresentVoltage=rn(m.voltage)),
                 State.WAIT_WELDING)


def session_stop(req, s, now) -> Reply:
    ctx = s.ctx
    kind = str(req.ChargingSession)
    _stop_power(s, now, open_contactors=True)
    if kind == "ServiceRenegotiation":
        ctx.precharge_done = False
        return Reply(CM.SessionStopRes(Header=s.header(now), ResponseCode="OK"), State.WAIT_SERVICE_DISCOVERY)
    if kind == "Pause":
        if not s.config.pause_allowed:
            return Reply(CM.SessionStopRes(Header=s.header(now), ResponseCode="FAILED_PauseNotAllowed"), State.ENDED, True)
        store = s.resume_store
        while len(store) >= s.config.max_paused_sessions:  # bounded: the oldest pause is forgotten first
            store.pop(next(iter(store)))
        store[ctx.session_id] = {k: getattr(ctx, k) for k in RESUMABLE}
        return Reply(CM.SessionStopRes(Header=s.header(now), ResponseCode="OK"), State.ENDED, True,
                     end=EndReason.PAUSED)
    return Reply(CM.SessionStopRes(Header=s.header(now), ResponseCode="OK"), State.ENDED, True)


def fault_guard(handler):
    """Before PreCharge, PowerDelivery and every charge loop: a hardware fault ends the
    session with FAILED and EVSENotification=Terminate (de-energised by the session)."""
    def guarded(req, s, now) -> Reply:
        fault, why = s.stage.fault(now), EndReason.FAULT
        if fault is not None and getattr(s.stage, "estopped", None):
            why = EndReason.EMERGENCY_STOP
        if fault is None:
            fault, why = s.supervisor.stop_requested(now), EndReason.STOPPED_BY_SUPERVISOR
        if fault is None:
            return handler(req, s, now)
        s.supervisor.session_event(StageFault(reason=fault, emergency=why is EndReason.EMERGENCY_STOP), now)
        cls = response_class(name_of(req))
        status_cls = {f.name: f.cls for f in cls._exi.fields}.get("EVSEStatus")  # the schema's own class
        extra = {"EVSEStatus": status_cls(NotificationMaxDelay=0, EVSENotification="Terminate")} if status_cls else {}
        mode_fields = {f.name: filled(f.cls) for f in cls._exi.fields if f.name.endswith("CLResControlMode")
                       and f.name == _res_mode_field(s, name_of(req))}
        return Reply(filled(cls, Header=s.header(now), ResponseCode="FAILED", **extra, **mode_fields),
                     State.ENDED, True, reason=f"{name_of(req)}: {fault}", end=why)
    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded


def _res_mode_field(s, request_name: str) -> str | None:
    if request_name == "DC_ChargeLoopReq":
        return DC_MODES[(s.ctx.control_mode, s.ctx.bpt)].replace("CLReq", "CLRes")
    if request_name == "AC_ChargeLoopReq":
        return AC_MODES[(s.ctx.control_mode, s.ctx.bpt)].replace("CLReq", "CLRes")
    return None

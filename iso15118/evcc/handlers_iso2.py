"""The car's requests and response handlers for ISO 15118-2 and DIN SPEC 70121 (the tables that
dispatch to them are ``iso15118.evcc.iso2`` and ``iso15118.evcc.din``). As on the charger, one
handler serves both protocols and reads ``s.protocol``; DIN is DC and EIM only.

Requests are built by the functions ``*_req(s, now)`` (message elements; the session puts them
in their V2G_Message). A handler takes (session, response element, now), updates the car, and
returns the next request, or None after scheduling it (Ongoing repetitions, the loop period) or
ending. Neither protocol can discharge the car: it only ever asks to charge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iso15118.units import pv, pval

from .context import EVCCError
from .handlers import provisioning_service

if TYPE_CHECKING:
    from .session import EVCCSession

PRECHARGE_TOLERANCE = 10.0     # V between the battery and the EVSE output before closing the contactors
WELDING_SAFE_VOLTAGE = 60.0
PRECHARGE_CURRENT = 1.0        # A the car asks for while the charger pre-charges (at most 2 A)
MAX_SCHEDULE_ENTRIES = 24      # MaxEntriesSAScheduleTuple; also the -2 ChargingProfile's limit
CERTIFICATE_SERVICE_ID = 2     # -2: the certificate service (parameter set 1 Installation, 2 Update)
# what the provisioning service signs in CertificateInstallationRes / CertificateUpdateRes
SIGNED_CONTRACT_PARTS = ("ContractSignatureCertChain", "ContractSignatureEncryptedPrivateKey", "DHpublickey", "eMAID")


def _din(s: EVCCSession) -> bool:
    return s.protocol.name == "din"


def _v(s: EVCCSession, value: float, unit: str):
    return pv(s.protocol.schema, value, unit)


def _evcc_id(s: EVCCSession) -> bytes:
    """EVCCID is hexBinary in DIN and -2 (the car's MAC address, 6 bytes)."""
    text = s.config.evcc_id
    try:
        return bytes.fromhex(text)[:6]
    except ValueError:
        return text.encode()[:6]


def _ev_status(s: EVCCSession, ready: bool = True):
    return s.msgs.DC_EVStatus(EVReady=ready, EVErrorCode="NO_ERROR", EVRESSSOC=int(min(100, max(0, s.battery.soc))))


def _pmax_now(s: EVCCSession, now: float) -> float:
    """The offered PMax in force (no schedule: no limit of its own). DIN's PMax is an xs:short
    with no multiplier whose scale implementations read differently (one independent charger
    sends 200 for a charger of kilowatts), so a DIN car does not limit itself by it: the
    charger's current limits and its own do."""
    if not s.pmax or _din(s):
        return float("inf")
    t = now - s.schedule_start
    limit = 0.0
    for start, watts in s.pmax:
        if start <= t:
            limit = watts
    return limit


def _charge_power(s: EVCCSession, now: float) -> float:
    """What the car asks for: its battery's limit within the schedule."""
    return max(0.0, min(s.battery.charge_limit(), _pmax_now(s, now)))


# --- requests ---------------------------------------------------------------------------------------

def session_setup_req(s: EVCCSession, now: float):
    sid = s.config.resume_session_id
    s.session_id = sid if sid is not None else bytes(8)
    return s.msgs.SessionSetupReq(EVCCID=_evcc_id(s))


def service_discovery_req(s: EVCCSession, now: float):
    return s.msgs.ServiceDiscoveryReq(ServiceCategory="EVCharging") if _din(s) else s.msgs.ServiceDiscoveryReq()


def _certificate_action(s: EVCCSession) -> int:
    """-2 Plug & Charge: 1 to install a contract (the car has none), 2 to update it, 0 neither."""
    if s.config.auth != "pnc" or _din(s):
        return 0
    if not s.contract_chain or s.config.install_contract and not s.result.contract:
        return 1
    return 2 if s.config.contract_update and not s.result.contract else 0


def payment_selection_req(s: EVCCSession, now: float):
    m = s.msgs
    option = "Contract" if s.config.auth == "pnc" else "ExternalPayment"
    selected = [m.SelectedService(ServiceID=s.charge_service_id)]
    action = _certificate_action(s)
    if action:  # the certificate service, parameter set 1 Installation or 2 Update
        selected.append(m.SelectedService(ServiceID=CERTIFICATE_SERVICE_ID, ParameterSetID=action))
    services = m.SelectedServiceList(SelectedService=selected)
    if _din(s):
        return m.ServicePaymentSelectionReq(SelectedPaymentOption=option, SelectedServiceList=services)
    return m.PaymentServiceSelectionReq(SelectedPaymentOption=option, SelectedServiceList=services)


def _root_ids(s: EVCCSession):
    """ListOfRootCertificateIDs: the V2G roots the car trusts, by issuer and serial number."""
    from cryptography import x509

    m = s.msgs
    ids = []
    for der in s.config.v2g_roots[:20]:
        cert = x509.load_der_x509_certificate(der)
        ids.append(m.X509IssuerSerial(X509IssuerName=cert.issuer.rfc4514_string(), X509SerialNumber=cert.serial_number))
    return m.ListOfRootCertificateIDs(RootCertificateID=ids)


def certificate_installation_req(s: EVCCSession, now: float):
    """-2: the OEM provisioning certificate asks for a contract, signed with its key."""
    from iso15118 import xmldsig

    req = s.msgs.CertificateInstallationReq(Id="ID1", OEMProvisioningCert=s.config.oem_chain[0],
                                            ListOfRootCertificateIDs=_root_ids(s))
    s.signature = xmldsig.sign([xmldsig.SignedElement(req, "CertificateInstallationReq", "iso2")], s.config.oem_key)
    return req


def certificate_update_req(s: EVCCSession, now: float):
    """-2: the contract the car has asks for its successor, signed with its key."""
    from iso15118 import xmldsig

    m, chain = s.msgs, s.contract_chain
    req = m.CertificateUpdateReq(Id="ID1", ContractSignatureCertChain=m.CertificateChain(
        Certificate=chain[0], SubCertificates=m.SubCertificates(Certificate=list(chain[1:])) if chain[1:] else None),
        eMAID=s.config.emaid or _common_name(chain[0]), ListOfRootCertificateIDs=_root_ids(s))
    s.signature = xmldsig.sign([xmldsig.SignedElement(req, "CertificateUpdateReq", "iso2")], s.contract_key)
    return req


def payment_details_req(s: EVCCSession, now: float):
    """-2 Plug & Charge: the contract certificate chain and its EMAID."""
    m, chain = s.msgs, s.contract_chain
    emaid = s.config.emaid if s.config.emaid and s.result.contract != "installed" else _common_name(chain[0])
    return m.PaymentDetailsReq(eMAID=emaid, ContractSignatureCertChain=m.CertificateChain(
        Certificate=chain[0], SubCertificates=m.SubCertificates(Certificate=list(chain[1:])) if chain[1:] else None))


def _common_name(der: bytes) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def authorization_req(s: EVCCSession, now: float):
    """DIN ContractAuthentication / -2 Authorization; with Plug & Charge the challenge of
    PaymentDetailsRes, signed with the contract key (the first request only)."""
    m = s.msgs
    if _din(s):
        return m.ContractAuthenticationReq()
    if s.config.auth == "pnc" and s.gen_challenge is not None:
        from iso15118 import xmldsig
        req = m.AuthorizationReq(Id="ID1", GenChallenge=s.gen_challenge)
        s.signature = xmldsig.sign([xmldsig.SignedElement(req, "AuthorizationReq", "iso2")], s.contract_key)
        s.gen_challenge = None
        return req
    return m.AuthorizationReq()


def cpd_req(s: EVCCSession, now: float):
    m, b = s.msgs, s.battery
    if s.kind == "DC":
        params = dict(DC_EVStatus=_ev_status(s), EVMaximumCurrentLimit=_v(s, b.max_charge_current, "A"),
                      EVMaximumPowerLimit=_v(s, b.max_charge_power, "W"),
                      EVMaximumVoltageLimit=_v(s, b.voltage_max, "V"),
                      EVEnergyCapacity=_v(s, b.capacity_kwh * 1000.0, "Wh"),
                      EVEnergyRequest=_v(s, max(0.0, b.energy_to(b.target_soc)), "Wh"),
                      FullSOC=100, BulkSOC=int(round(b.target_soc)))
        if _din(s):
            return m.ChargeParameterDiscoveryReq(EVRequestedEnergyTransferType=s.energy_mode,
                                                 DC_EVChargeParameter=m.DC_EVChargeParameter(**params))
        return m.ChargeParameterDiscoveryReq(
            MaxEntriesSAScheduleTuple=MAX_SCHEDULE_ENTRIES, RequestedEnergyTransferMode=s.energy_mode,
            DC_EVChargeParameter=m.DC_EVChargeParameter(DepartureTime=s.config.departure_in, **params))
    per_phase = b.max_charge_power / (s.phases * s.evse_nominal_voltage)
    return m.ChargeParameterDiscoveryReq(
        MaxEntriesSAScheduleTuple=MAX_SCHEDULE_ENTRIES, RequestedEnergyTransferMode=s.energy_mode,
        AC_EVChargeParameter=m.AC_EVChargeParameter(
            DepartureTime=s.config.departure_in, EAmount=_v(s, max(0.0, b.energy_to(b.target_soc)), "Wh"),
            EVMaxVoltage=_v(s, s.evse_nominal_voltage, "V"), EVMaxCurrent=_v(s, per_phase, "A"),
            EVMinCurrent=_v(s, 0, "A")))


def cable_check_req(s: EVCCSession, now: float):
    return s.msgs.CableCheckReq(DC_EVStatus=_ev_status(s))


def precharge_req(s: EVCCSession, now: float):
    return s.msgs.PreChargeReq(DC_EVStatus=_ev_status(s), EVTargetVoltage=_v(s, s.battery.voltage(), "V"),
                               EVTargetCurrent=_v(s, PRECHARGE_CURRENT, "A"))


def power_delivery_req(s: EVCCSession, now: float, progress: str):
    """Start (with the car's ChargingProfile within the offered PMaxSchedule), Stop, or -2
    Renegotiate."""
    m, b = s.msgs, s.battery
    dc = {}
    if s.kind == "DC":
        dc["DC_EVPowerDeliveryParameter"] = m.DC_EVPowerDeliveryParameter(
            DC_EVStatus=_ev_status(s, ready=progress != "Stop"), ChargingComplete=b.soc >= b.target_soc)
    profile = None
    if progress == "Start" and s.pmax:
        entries = [(start, min(watts, b.max_charge_power)) for start, watts in s.pmax[:MAX_SCHEDULE_ENTRIES]]
        if _din(s):
            profile = m.ChargingProfile(SAScheduleTupleID=s.sa_tuple_id, ProfileEntry=[
                m.ProfileEntry(ChargingProfileEntryStart=t, ChargingProfileEntryMaxPower=int(w)) for t, w in entries])
        else:
            profile = m.ChargingProfile(ProfileEntry=[
                m.ProfileEntry(ChargingProfileEntryStart=t, ChargingProfileEntryMaxPower=_v(s, w, "W"))
                for t, w in entries])
    if _din(s):
        return m.PowerDeliveryReq(ReadyToChargeState=progress == "Start", ChargingProfile=profile, **dc)
    return m.PowerDeliveryReq(ChargeProgress=progress, SAScheduleTupleID=s.sa_tuple_id, ChargingProfile=profile, **dc)


def loop_req(s: EVCCSession, now: float):
    """CurrentDemand (DC) or ChargingStatus (-2 AC), after accounting the energy since the last."""
    s._account(now)
    m, b = s.msgs, s.battery
    if s.kind == "AC":
        return m.ChargingStatusReq()
    v = b.voltage()
    target = min(_charge_power(s, now) / v, b.max_charge_current if b.charge_limit() > 0 else 0.0)
    return m.CurrentDemandReq(DC_EVStatus=_ev_status(s), EVTargetCurrent=_v(s, target, "A"),
                              EVMaximumVoltageLimit=_v(s, b.voltage_max, "V"),
                              EVMaximumCurrentLimit=_v(s, b.max_charge_current, "A"),
                              EVMaximumPowerLimit=_v(s, b.charge_limit(), "W"),
                              BulkChargingComplete=b.soc >= b.target_soc, ChargingComplete=b.soc >= 100.0,
                              EVTargetVoltage=_v(s, b.voltage_max, "V"))


def metering_receipt_req(s: EVCCSession, now: float):
    """-2 Plug & Charge: the meter reading the charger sent, signed with the contract key."""
    from iso15118 import xmldsig

    req = s.msgs.MeteringReceiptReq(Id="ID1", SessionID=s.session_id, SAScheduleTupleID=s.sa_tuple_id,
                                    MeterInfo=s.receipt_meter)
    s.signature = xmldsig.sign([xmldsig.SignedElement(req, "MeteringReceiptReq", "iso2")], s.contract_key)
    s.receipt_meter = None
    return req


def welding_detection_req(s: EVCCSession, now: float):
    return s.msgs.WeldingDetectionReq(DC_EVStatus=_ev_status(s, ready=False))


def session_stop_req(s: EVCCSession, now: float):
    if _din(s):
        return s.msgs.SessionStop()
    return s.msgs.SessionStopReq(ChargingSession="Pause" if s.config.end == "Pause" else "Terminate")


# --- response handlers: (session, response, now) → next request or None ---------------------------

def on_session_setup(s: EVCCSession, res, now: float):
    if s.config.resume_session_id is not None:
        s.resumed = str(res.ResponseCode) == "OK_OldSessionJoined"
    s.session_id = s.last_header.SessionID
    s.setup_deadline = None
    return service_discovery_req(s, now)


def on_service_discovery(s: EVCCSession, res, now: float):
    want = "Contract" if s.config.auth == "pnc" else "ExternalPayment"
    if _din(s):
        options = [str(o) for o in res.PaymentOptions.PaymentOption]
        offered = [str(res.ChargeService.EnergyTransferType)]
        s.charge_service_id = res.ChargeService.ServiceTag.ServiceID
        modes = [o for o in offered if o.startswith("DC")]
        s.energy_mode = "DC_extended" if "DC_extended" in modes or not modes else modes[0]
        if not modes:
            raise EVCCError(f"the charger offers no DC charging (offers {', '.join(offered)})")
    else:
        options = [str(o) for o in res.PaymentOptionList.PaymentOption]
        offered = [str(m) for m in res.ChargeService.SupportedEnergyTransferMode.EnergyTransferMode]
        s.charge_service_id = res.ChargeService.ServiceID
        prefs = ("DC_extended", "DC_core", "DC_combo_core", "DC_unique") if s.kind == "DC" else \
            ("AC_three_phase_core", "AC_single_phase_core")
        mode = next((m for m in prefs if m in offered), None)
        if mode is None:
            raise EVCCError(f"the charger offers no {s.kind} charging (offers {', '.join(offered)})")
        s.energy_mode = mode
        s.phases = 1 if mode == "AC_single_phase_core" else 3
        s.certificate_service = res.ServiceList is not None and \
            any(sv.ServiceID == CERTIFICATE_SERVICE_ID for sv in res.ServiceList.Service)
        if _certificate_action(s) and not s.certificate_service:
            raise EVCCError("the car needs a contract (installation or update) and the charger offers no certificate "
                            "service")
    if want not in options:
        raise EVCCError(f"the charger does not offer {want} (offers {', '.join(options)})")
    return payment_selection_req(s, now)


def on_payment_selection(s: EVCCSession, res, now: float):
    action = _certificate_action(s)
    if action == 1:
        return certificate_installation_req(s, now)
    if action == 2:
        return certificate_update_req(s, now)
    if s.config.auth == "pnc":
        return payment_details_req(s, now)
    return authorization_req(s, now)


def on_certificate_installation(s: EVCCSession, res, now: float):
    _take_contract(s, res, now, s.config.oem_key, "installed")
    return payment_details_req(s, now)


def on_certificate_update(s: EVCCSession, res, now: float):
    _take_contract(s, res, now, s.contract_key, "updated")
    return payment_details_req(s, now)


def _take_contract(s: EVCCSession, res, now: float, own_key, what: str) -> None:
    """The provisioning service's chain against the car's V2G roots, its signature over the
    four elements, the key decrypted with ``own_key`` and matching the new certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from iso15118 import xmldsig
    from iso15118.pki import contract_key

    path = provisioning_service(s, res.SAProvisioningCertificateChain, now, "iso2")
    found = {e.name.rsplit("}", 1)[-1]: e for e in xmldsig.identified_elements(res, "iso2")}
    signed = [found[n] for n in SIGNED_CONTRACT_PARTS if n in found]
    sig = s.last_header.Signature
    if sig is None or len(signed) != len(SIGNED_CONTRACT_PARTS) or \
            {r.URI for r in sig.SignedInfo.Reference} != {"#" + e.id for e in signed}:
        raise EVCCError("the new contract is not signed by the provisioning service (all four parts, nothing else)")
    try:
        xmldsig.verify(sig, signed, path[0].public_key())
    except xmldsig.SignatureError as e:
        raise EVCCError(f"the provisioning service's signature does not verify: {e}") from None
    try:
        key = contract_key.decrypt(res.ContractSignatureEncryptedPrivateKey.value, res.DHpublickey.value, own_key)
    except contract_key.ContractKeyError as e:
        raise EVCCError(f"the new contract key cannot be decrypted: {e}") from None
    new = res.ContractSignatureCertChain
    leaf = x509.load_der_x509_certificate(new.Certificate)
    raw = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    if leaf.public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise EVCCError("the decrypted key does not belong to the new contract certificate")
    s.contract_chain = (new.Certificate, *(new.SubCertificates.Certificate if new.SubCertificates is not None else ()))
    s.contract_key = key
    s.result.contract = what
    s.result.contract_chain, s.result.contract_key = s.contract_chain, key


def on_payment_details(s: EVCCSession, res, now: float):
    s.gen_challenge = res.GenChallenge
    return authorization_req(s, now)


def on_authorization(s: EVCCSession, res, now: float):
    if str(res.EVSEProcessing) != "Finished":
        s._repeat(now, s.config.timers.ongoing, "Authorization", lambda t: authorization_req(s, t))
        return None
    s._phase_done()
    return cpd_req(s, now)


def on_charge_parameter_discovery(s: EVCCSession, res, now: float):
    """-2: the schedule; DC goes on to CableCheck (or, renegotiating, straight to PowerDelivery),
    AC to PowerDelivery."""
    if not _schedule_received(s, res, now):
        return None
    if s.renegotiating or s.kind == "AC":
        s.renegotiating = False
        s.contactors_closed = True
        return power_delivery_req(s, now, "Start")
    return cable_check_req(s, now)


def on_din_charge_parameter_discovery(s: EVCCSession, res, now: float):
    """DIN: the schedule, then CableCheck (DC only, no renegotiation)."""
    if not _schedule_received(s, res, now):
        return None
    return cable_check_req(s, now)


def _schedule_received(s: EVCCSession, res, now: float) -> bool:
    """False while the charger is still Ongoing (the request is repeated); else the
    SAScheduleTuple's PMaxSchedule is kept."""
    if str(res.EVSEProcessing) != "Finished":
        s._repeat(now, s.config.timers.ongoing, "ChargeParameterDiscovery", lambda t: cpd_req(s, t))
        return False
    s._phase_done()
    if res.SAScheduleList is None or not res.SAScheduleList.SAScheduleTuple:
        raise EVCCError("ChargeParameterDiscoveryRes without an SAScheduleList")
    tup = res.SAScheduleList.SAScheduleTuple[0]
    s.sa_tuple_id = tup.SAScheduleTupleID
    s.schedule_start = now
    s.pmax = [(e.RelativeTimeInterval.start, float(e.PMax) if _din(s) else pval(e.PMax))
              for e in tup.PMaxSchedule.PMaxScheduleEntry if e.RelativeTimeInterval is not None]
    if s.kind == "AC":
        s.evse_nominal_voltage = pval(res.AC_EVSEChargeParameter.EVSENominalVoltage) or s.evse_nominal_voltage
    return True


def on_cable_check(s: EVCCSession, res, now: float):
    if str(res.EVSEProcessing) != "Finished":
        s._repeat(now, s.config.timers.cable_check, "CableCheck", lambda t: cable_check_req(s, t))
        return None
    s._phase_done()
    return precharge_req(s, now)


def on_precharge(s: EVCCSession, res, now: float):
    if s.phase_started is None:
        s.phase_started = now
    if now - s.phase_started > s.config.timers.precharge_iso2:
        raise EVCCError("PreCharge did not reach the battery voltage in time")
    if abs(pval(res.EVSEPresentVoltage) - s.battery.voltage()) <= PRECHARGE_TOLERANCE:
        s._phase_done()
        s.contactors_closed = True
        return power_delivery_req(s, now, "Start")
    s._later(now + s.config.poll_interval, lambda t: precharge_req(s, t))
    return None


def on_power_delivery(s: EVCCSession, res, now: float):
    """-2: after Stop, WeldingDetection (DC) or SessionStop (AC); after Renegotiate,
    ChargeParameterDiscovery; after Start, the loop."""
    if s.stopping:
        s.open_contactors()
        return welding_detection_req(s, now) if s.kind == "DC" else session_stop_req(s, now)
    if s.renegotiating:
        return cpd_req(s, now)
    return _start_loop(s, now)


def on_din_power_delivery(s: EVCCSession, res, now: float):
    """DIN: after ReadyToChargeState=false, WeldingDetection; else the loop."""
    if s.stopping:
        s.open_contactors()
        return welding_detection_req(s, now)
    return _start_loop(s, now)


def _start_loop(s: EVCCSession, now: float):
    s.last_loop_time = now
    s.loop_started = now - s.loops_done * s.config.loop_period  # a renegotiated loop keeps its pace
    return loop_req(s, now)


DISCHARGE_TOLERANCE = 100.0  # W: a charger that takes this much out of the car is stopped


def on_charge_loop(s: EVCCSession, res, now: float):
    b = s.battery
    if s.kind == "DC":
        s.evse_power_w = pval(res.EVSEPresentCurrent) * pval(res.EVSEPresentVoltage)
        status = res.DC_EVSEStatus
    else:
        per_phase = pval(res.EVSEMaxCurrent) if res.EVSEMaxCurrent is not None else 0.0
        s.evse_power_w = min(max(0.0, per_phase) * s.phases * s.evse_nominal_voltage, b.charge_limit())
        status = res.AC_EVSEStatus
    s.loops_done += 1
    notification = str(status.EVSENotification)
    code = str(getattr(status, "EVSEStatusCode", "EVSE_Ready"))
    if s.evse_power_w < -DISCHARGE_TOLERANCE:
        s.stop_reason = "the charger discharges a car that only charges"
        return _stop(s, now)
    if notification == "StopCharging" or code in ("EVSE_Shutdown", "EVSE_EmergencyShutdown"):
        s.stop_reason = f"the charger asked to stop ({notification}, {code})"
        return _stop(s, now)
    if getattr(res, "ReceiptRequired", None):
        if s.config.auth != "pnc":
            raise EVCCError("the charger asks for a metering receipt in an EIM session")
        s.receipt_meter = res.MeterInfo
        if s.receipt_meter is None:
            raise EVCCError("the charger asks for a metering receipt without a meter reading")
        return metering_receipt_req(s, now)
    return _next_loop(s, now, notification)


def on_metering_receipt(s: EVCCSession, res, now: float):
    status = res.DC_EVSEStatus if s.kind == "DC" else res.AC_EVSEStatus
    return _next_loop(s, now, str(status.EVSENotification) if status is not None else "None")


def _next_loop(s: EVCCSession, now: float, notification: str):
    if s.loops_done >= s.config.loops:
        s._account(now)
        return _stop(s, now)
    renegotiate = not _din(s) and (notification == "ReNegotiation" or (
        s.config.renegotiate_after and s.loops_done == s.config.renegotiate_after and not s.renegotiated))
    if renegotiate:
        s._account(now)
        s.renegotiating = s.renegotiated = True
        return power_delivery_req(s, now, "Renegotiate")
    s._later(max(now, s.loop_started + s.loops_done * s.config.loop_period), lambda t: loop_req(s, t))
    return None


def _stop(s: EVCCSession, now: float):
    s.stopping = True
    return power_delivery_req(s, now, "Stop")


def on_welding_detection(s: EVCCSession, res, now: float):
    if pval(res.EVSEPresentVoltage) > WELDING_SAFE_VOLTAGE:
        s._repeat(now, s.config.timers.message * 5, "WeldingDetection", lambda t: welding_detection_req(s, t))
        return None
    s._phase_done()
    return session_stop_req(s, now)


def on_session_stop(s: EVCCSession, res, now: float):
    s._finish(now, True, s.stop_reason or f"SessionStop {s.config.end if not _din(s) else 'Terminate'}")
    return None

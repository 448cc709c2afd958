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
        if not s.contract_chain or s.config.install_contract:  # none yet (or a new one wanted): install first
            if not res.CertificateInstallationService:
                raise EVCCError("the car has no contract and the charger offers no CertificateInstallation")
            return s.certificate_installation_req(now)
    return s.authorization_req(now)


def on_certificate_installation(s: EVCCSession, res, now: float):
    """-20: Ongoing → the same request again; a refusal ends the session (the car keeps what it
    had); otherwise the new contract, checked and decrypted, authorizes this session."""
    if _waiting(s, res, now, "contract installation refused: CertificateInstallationRes", "CertificateInstallation",
                lambda t: s.certificate_installation_req(t)):
        return None
    _take_contract(s, res, now)
    return s.authorization_req(now)


def _waiting(s: EVCCSession, res, now: float, refused: str, what: str, again) -> bool:
    """A WARNING ends the session (EVCCError ``refused`` CODE); EVSEProcessing not Finished
    sends ``again`` after the poll interval (within the Ongoing timer): True; Finished: False."""
    code = str(res.ResponseCode)
    if code.startswith("WARNING"):
        raise EVCCError(f"{refused} {code}" if refused.endswith("Res") else f"{refused}: {code}")
    if str(res.EVSEProcessing) != "Finished":
        s._repeat(now, s.config.timers.ongoing, what, again)
        return True
    s._phase_done()
    return False


def _take_contract(s: EVCCSession, res, now: float) -> None:
    """The provisioning service's chain against the car's V2G roots, its signature over exactly
    SignedInstallationData, the key decrypted with the OEM provisioning key ([V2G20-2505]) and
    belonging to the new certificate ([V2G20-2507]); only then is the contract the car's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    from iso15118 import xmldsig
    from iso15118.pki import contract_key

    path = provisioning_service(s, res.CPSCertificateChain, now, "iso20")
    data, sig = res.SignedInstallationData, res.Header.Signature
    if sig is None or [r.URI for r in sig.SignedInfo.Reference] != ["#" + (data.Id or "")]:
        raise EVCCError("the new contract is not signed by the provisioning service (SignedInstallationData, "
                        "nothing else)")
    try:
        xmldsig.verify(sig, [xmldsig.SignedElement(data, "SignedInstallationData", "iso20_cm")], path[0].public_key())
    except xmldsig.SignatureError as e:
        raise EVCCError(f"the provisioning service's signature does not verify: {e.reason}") from None
    new = data.ContractCertificateChain
    try:
        leaf = x509.load_der_x509_certificate(new.Certificate)
        ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (ValueError, x509.ExtensionNotFound) as e:
        raise EVCCError(f"the new contract certificate is unusable: {e}") from None
    if str(data.ECDHCurve) != "SECP521" or data.SECP521_EncryptedPrivateKey is None:
        raise EVCCError(f"the contract key comes for {data.ECDHCurve}, not for this car's secp521r1 key")
    oem_leaf = x509.load_der_x509_certificate(s.config.oem_chain[0])
    pcid = oem_leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    try:
        key = contract_key.decrypt_iso20(data.SECP521_EncryptedPrivateKey, data.DHPublicKey, s.config.oem_key,
                                         pcid, ski)
    except contract_key.ContractKeyError as e:
        raise EVCCError(f"the new contract key cannot be decrypted: {e}") from None
    raw = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    if leaf.public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise EVCCError("the decrypted key does not belong to the new contract certificate")
    s.contract_chain = (new.Certificate, *new.SubCertificates.Certificate)
    s.contract_key = key
    s.result.contract = "installed"
    s.result.contract_chain, s.result.contract_key = s.contract_chain, key


def provisioning_service(s: EVCCSession, cps, now: float, profile: str) -> list:
    """The provisioning service's chain (a CertificateChain message) validated against the car's
    V2G roots (the path, leaf first), or EVCCError."""
    import datetime as dt

    from iso15118 import pki

    chain = [cps.Certificate] + (list(cps.SubCertificates.Certificate) if cps.SubCertificates is not None else [])
    wall = dt.datetime.fromtimestamp(now + s.clock_offset, dt.timezone.utc)
    try:
        return pki.validate_chain(chain, list(s.config.v2g_roots), now=wall, profile=profile)
    except pki.ChainError as e:
        raise EVCCError(f"the provisioning service's certificate is refused: {e.reason}") from None


def root_certificate_ids(roots: tuple[bytes, ...]):
    """ListOfRootCertificateIDs: the V2G roots the car trusts, by issuer and serial number (at most 20)."""
    from cryptography import x509

    ids = []
    for der in roots[:20]:
        cert = x509.load_der_x509_certificate(der)
        ids.append(CM.X509IssuerSerial(X509IssuerName=cert.issuer.rfc4514_string(),
                                       X509SerialNumber=cert.serial_number))
    return CM.ListOfRootCertificateIDs(RootCertificateID=ids)


def on_authorization(s: EVCCSession, res, now: float):
    if _waiting(s, res, now, "authorization refused", "Authorization", lambda t: s.authorization_req(t)):
        return None
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

"""Every failure response code the charger sends, each provoked by a real car session whose
request was changed on the wire (or whose charger was configured to refuse)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from iso15118 import exi, pki
from iso15118.evcc import Battery
from iso15118.messages import name_of, payload_type_of, schema_of_message, schema_of_payload
from iso15118.secc import SECCConfig, simulated_charger
from iso15118.v2gtp import V2GTPFrame

from .helpers import EPOCH, make_pair


def rewrite(request_name: str, change, nth: int = 1):
    """A tamper function applying ``change(message) -> message`` to the nth ``request_name``."""
    seen = {"n": 0}

    def tamper(direction, frame, now):
        if direction != "ev→evse":
            return None
        schema = schema_of_payload(frame.payload_type, frame.payload_type != 0x8001)
        msg = exi.decode(frame.payload, schema)
        if name_of(msg) != request_name:
            return None
        seen["n"] += 1
        if seen["n"] != nth:
            return None
        msg = change(msg)
        schema = schema_of_message(msg)
        return [V2GTPFrame(payload_type_of(schema), exi.encode(msg, schema))]

    return tamper


def responses(pair, name: str) -> list:
    return [m for _, d, n, m in pair.secc_log if d == "tx" and n == name]


def code_of(pair, name: str) -> str:
    return str(responses(pair, name)[-1].ResponseCode)


def assert_ended_safely(pair):
    assert pair.secc.closed and not pair.ev.result.ok
    m = pair.stage.measurements(1e9)
    assert not m.contactors_closed and m.current == 0


def test_no_common_protocol():
    from iso15118.messages import APP
    p = make_pair()
    p.run(tamper=rewrite("supportedAppProtocolReq", lambda m: APP.supportedAppProtocolReq(AppProtocol=[
        APP.AppProtocol(ProtocolNamespace="urn:din:70121:2012:MsgDef", VersionNumberMajor=2, VersionNumberMinor=0,
                        SchemaID=1, Priority=1)])))
    assert code_of(p, "supportedAppProtocolRes") == "Failed_NoNegotiation"
    assert_ended_safely(p)


def test_iso20_never_without_tls():
    p = make_pair()
    p.secc.tls = False
    p.run()
    assert code_of(p, "supportedAppProtocolRes") == "Failed_NoNegotiation"
    assert_ended_safely(p)


def test_minor_version_deviation_is_accepted():
    p = make_pair(loops=1)
    p.run(tamper=rewrite("supportedAppProtocolReq", lambda m: replace(m, AppProtocol=[
        replace(m.AppProtocol[0], VersionNumberMinor=3)])))
    assert code_of(p, "supportedAppProtocolRes") == "OK_SuccessfulNegotiationWithMinorDeviation"
    assert p.ev.result.ok


def test_selecting_an_authorization_service_not_offered():
    p = make_pair()  # no contract roots: PnC is not offered
    p.run(tamper=rewrite("AuthorizationReq", lambda m: replace(m, SelectedAuthorizationService="PnC")))
    assert code_of(p, "AuthorizationRes") == "WARNING_AuthorizationSelectionInvalid"
    assert_ended_safely(p)


def test_eim_rejected_by_the_backend():
    charger = simulated_charger(kind="DC", accepted_identities={"someone else"})
    p = make_pair(charger=charger)
    p.run()
    assert code_of(p, "AuthorizationRes") == "WARNING_EIMAuthorizationFailure"
    assert_ended_safely(p)


def test_authorization_ongoing_too_long():
    charger = simulated_charger(kind="DC", authorization_delay=1e6)
    p = make_pair(charger=charger)
    p.run()
    res = responses(p, "AuthorizationRes")
    assert str(res[-1].ResponseCode) == "FAILED" and str(res[-2].EVSEProcessing) == "Ongoing"
    first = next(t for t, d, n, _ in p.secc_log if n == "AuthorizationReq")
    last = [t for t, d, n, _ in p.secc_log if n == "AuthorizationRes"][-1]
    assert 60.0 < last - first <= 60.2
    assert_ended_safely(p)


# --- Plug & Charge -------------------------------------------------------------------------------

def _pnc_mode(change):
    return lambda m: replace(m, PnC_AReqAuthorizationMode=change(m.PnC_AReqAuthorizationMode))


def test_pnc_challenge_must_match(v2g_pki):
    p = make_pair("DC_BPT", auth="pnc", pki_dir=v2g_pki)
    p.run(tamper=rewrite("AuthorizationReq", _pnc_mode(lambda a: replace(a, GenChallenge=bytes(16)))))
    assert code_of(p, "AuthorizationRes") == "WARNING_ChallengeInvalid"
    assert_ended_safely(p)


def test_pnc_challenge_is_single_use(v2g_pki):
    """A recorded AuthorizationReq replayed in a new session carries the old challenge."""
    first = make_pair("DC_BPT", auth="pnc", pki_dir=v2g_pki, loops=1)
    first.run()
    assert first.ev.result.ok
    old = next(m for _, d, n, m in first.secc_log if n == "AuthorizationReq")
    second = make_pair("DC_BPT", auth="pnc", pki_dir=v2g_pki)
    second.run(tamper=rewrite("AuthorizationReq", lambda m: replace(old, Header=replace(
        old.Header, SessionID=m.Header.SessionID))))
    assert code_of(second, "AuthorizationRes") == "WARNING_ChallengeInvalid"


def test_pnc_signature_over_a_changed_element_fails(v2g_pki):
    """The car signs, then someone swaps the contract chain: the digest no longer matches."""
    other = pki.contract_credentials(v2g_pki, "iso20-secp521r1")[0]
    p = make_pair("DC_BPT", auth="pnc", pki_dir=v2g_pki)

    def swap(a):
        return replace(a, Id="id1", ContractCertificateChain=replace(
            a.ContractCertificateChain, SubCertificates=replace(a.ContractCertificateChain.SubCertificates,
                                                                Certificate=list(reversed(other[1:])))))
    p.run(tamper=rewrite("AuthorizationReq", _pnc_mode(swap)))
    # reversed sub-CAs: the chain itself no longer validates
    assert code_of(p, "AuthorizationRes") == "WARNING_CertificateValidationError"


def test_pnc_bad_signature(v2g_pki):
    def corrupt(m):
        sig = m.Header.Signature
        value = bytearray(sig.SignatureValue.value)
        value[5] ^= 1
        return replace(m, Header=replace(m.Header, Signature=replace(sig, SignatureValue=replace(
            sig.SignatureValue, value=bytes(value)))))
    p = make_pair("DC_BPT", auth="pnc", pki_dir=v2g_pki)
    p.run(tamper=rewrite("AuthorizationReq", corrupt))
    assert code_of(p, "AuthorizationRes") == "FAILED_SignatureError"
    assert_ended_safely(p)


def test_pnc_without_signature(v2g_pki):
    p = make_pair("DC_BPT", auth="pnc", pki_dir=v2g_pki)
    p.run(tamper=rewrite("AuthorizationReq", lambda m: replace(m, Header=replace(m.Header, Signature=None))))
    assert code_of(p, "AuthorizationRes") == "FAILED_SignatureError"


def test_pnc_contract_from_an_untrusted_mo(v2g_pki, tmp_path):
    stranger = tmp_path / "stranger"
    pki.init_pki(stranger, profiles=["iso20-secp521r1"])
    p = make_pair("DC_BPT", auth="pnc", pki_dir=stranger,
                  secc_config=SECCConfig(contract_roots=pki.contract_roots(v2g_pki)))
    p.run()
    assert code_of(p, "AuthorizationRes") == "WARNING_CertificateValidationError"
    assert_ended_safely(p)


@pytest.mark.parametrize("years,code", [(30, "WARNING_CertificateExpired"), (-1, "WARNING_CertificateNotYetValid")])
def test_pnc_contract_validity(v2g_pki, years, code):
    p = make_pair("DC_BPT", auth="pnc", pki_dir=v2g_pki)
    p.secc.clock_offset = EPOCH + years * 365.25 * 86400
    p.run()
    assert code_of(p, "AuthorizationRes") == code


# --- services, parameters, schedules ----------------------------------------------------------------

def test_service_detail_for_a_service_not_offered_keeps_the_session():
    p = make_pair(loops=1)
    p.run(tamper=rewrite("ServiceDetailReq", lambda m: replace(m, ServiceID=3)))
    res = responses(p, "ServiceDetailRes")[0]
    assert str(res.ResponseCode) == "FAILED_ServiceIDInvalid" and res.ServiceID == 3
    # FAILED_ServiceIDInvalid ends the car's session, not the charger's protocol state
    assert not p.ev.result.ok


def test_service_selection_invalid():
    p = make_pair()
    p.run(tamper=rewrite("ServiceSelectionReq", lambda m: replace(m, SelectedEnergyTransferService=replace(
        m.SelectedEnergyTransferService, ParameterSetID=9))))
    assert code_of(p, "ServiceSelectionRes") == "FAILED_ServiceSelectionInvalid"
    assert_ended_safely(p)


def test_wrong_charge_parameters():
    battery = Battery(voltage_min=20.0, voltage_max=60.0)  # a 48 V car on a 150–500 V charger
    p = make_pair(battery=battery)
    p.run()
    res = responses(p, "DC_ChargeParameterDiscoveryRes")[0]
    assert str(res.ResponseCode) == "FAILED_WrongChargeParameter"
    assert res.BPT_DC_CPDResEnergyTransferMode is not None  # mandatory choice filled
    assert_ended_safely(p)


def test_schedule_exchange_in_the_wrong_control_mode():
    from iso15118.messages import CM
    p = make_pair("DC_BPT", "dynamic")
    p.run(tamper=rewrite("ScheduleExchangeReq", lambda m: replace(m, Dynamic_SEReqControlMode=None,
                                                                  Scheduled_SEReqControlMode=CM.Scheduled_SEReqControlMode())))
    assert code_of(p, "ScheduleExchangeRes") == "FAILED"
    assert_ended_safely(p)


# --- DC preparation ---------------------------------------------------------------------------

def test_isolation_fault_fails_cable_check():
    p = make_pair(charger=simulated_charger(kind="DC", isolation_fault=True))
    p.run()
    assert code_of(p, "DC_CableCheckRes") == "FAILED"
    assert_ended_safely(p)


def test_cable_check_timeout():
    p = make_pair(charger=simulated_charger(kind="DC", isolation_time=1e6))
    p.run()
    res = responses(p, "DC_CableCheckRes")
    assert str(res[-1].ResponseCode) == "FAILED"
    t = [t for t, d, n, _ in p.secc_log if n == "DC_CableCheckReq"]
    assert 40.0 < t[-1] - t[0] <= 40.2
    assert_ended_safely(p)


def test_contactor_failure():
    charger = simulated_charger(kind="DC")
    charger.stage.emergency_stop("test", 0.0)
    p = make_pair(charger=charger)
    p.run()
    assert code_of(p, "DC_CableCheckRes") == "FAILED"
    assert_ended_safely(p)


def test_precharge_timeout():
    p = make_pair(charger=simulated_charger(kind="DC", voltage_ramp=5.0))
    p.run()
    t = [t for t, d, n, _ in p.secc_log if n == "DC_PreChargeReq"]
    assert str(responses(p, "DC_PreChargeRes")[-1].ResponseCode) == "FAILED" or \
        "PreCharge" in p.ev.result.reason
    assert t[-1] - t[0] <= 10.2
    assert_ended_safely(p)


def test_precharge_target_above_the_cars_maximum():
    from iso15118.units import rn
    p = make_pair()
    p.run(tamper=rewrite("DC_PreChargeReq", lambda m: replace(m, EVTargetVoltage=rn(450))))
    assert code_of(p, "DC_PreChargeRes") == "FAILED"
    assert_ended_safely(p)


# --- power delivery and the loop --------------------------------------------------------------------

def test_discharge_refused_when_bidirectional_transfer_is_not_allowed():
    charger = simulated_charger(kind="DC", setpoint_w=-5000, allow_bidirectional=False)
    p = make_pair("DC_BPT", "scheduled", charger=charger)
    p.run()
    assert code_of(p, "PowerDeliveryRes") == "FAILED_PowerDeliveryNotApplied"
    assert_ended_safely(p)


def test_power_delivery_before_precharge_finished():
    """PowerDelivery(Start) while PreCharge is still running (EVProcessing=Ongoing)."""
    from iso15118.messages import CM
    p = make_pair()
    p.run(tamper=rewrite("DC_PreChargeReq", lambda m: CM.PowerDeliveryReq(
        Header=m.Header, EVProcessing="Finished", ChargeProgress="Start"), nth=2))
    assert code_of(p, "PowerDeliveryRes") in ("FAILED_SequenceError", "FAILED_PowerDeliveryNotApplied")
    assert not any(e.kind == "target" and (e.value.current or e.value.power) for e in p.stage.history.events)
    assert_ended_safely(p)


def test_power_profile_missing_in_scheduled_mode():
    p = make_pair("DC_BPT", "scheduled")
    p.run(tamper=rewrite("PowerDeliveryReq", lambda m: replace(m, EVPowerProfile=None)))
    assert code_of(p, "PowerDeliveryRes") == "FAILED_EVPowerProfileInvalid"
    assert_ended_safely(p)


def test_unknown_schedule_tuple():
    p = make_pair("DC_BPT", "scheduled")
    p.run(tamper=rewrite("PowerDeliveryReq", lambda m: replace(m, EVPowerProfile=replace(
        m.EVPowerProfile, Scheduled_EVPPTControlMode=replace(m.EVPowerProfile.Scheduled_EVPPTControlMode,
                                                             SelectedScheduleTupleID=7)))))
    assert code_of(p, "PowerDeliveryRes") == "FAILED_ScheduleSelectionInvalid"


def test_charge_loop_in_the_wrong_control_mode():
    from iso15118.messages import DC
    from iso15118.units import rn
    p = make_pair("DC_BPT", "dynamic", loops=5)
    p.run(tamper=rewrite("DC_ChargeLoopReq", lambda m: replace(
        m, BPT_Dynamic_DC_CLReqControlMode=None,
        Scheduled_DC_CLReqControlMode=DC.Scheduled_DC_CLReqControlMode(EVTargetCurrent=rn(10), EVTargetVoltage=rn(400))),
        nth=3))
    res = responses(p, "DC_ChargeLoopRes")[-1]
    assert str(res.ResponseCode) == "FAILED" and res.BPT_Dynamic_DC_CLResControlMode is not None
    assert_ended_safely(p)


@pytest.mark.parametrize("service", ["DC_BPT", "AC_BPT"])
def test_emergency_stop_during_the_charge_loop(service):
    charger = simulated_charger(kind=service[:2], setpoint_w=-7000)
    p = make_pair(service, charger=charger, loops=20)

    def press(direction, frame, now):
        if now > 3.0 and not charger.stage.estopped:
            charger.stage.emergency_stop("button", now)
        return None
    p.run(tamper=press)
    name = f"{service[:2]}_ChargeLoopRes"
    res = responses(p, name)[-1]
    assert str(res.ResponseCode) == "FAILED" and str(res.EVSEStatus.EVSENotification) == "Terminate"
    assert_ended_safely(p)
    assert charger.stage.history.events[-1].kind in ("deenergise", "contactors")

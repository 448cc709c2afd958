"""Complete -20 sessions, charger against simulated car, in memory on a simulated clock:
every service, both control modes, EIM and Plug & Charge, charging and discharging."""

from __future__ import annotations

import pytest

from iso15118.evcc import Battery
from iso15118.secc import State

from .helpers import make_pair, names

SERVICES = ["DC", "DC_BPT", "AC", "AC_BPT"]
MODES = ["scheduled", "dynamic"]

DC_FLOW = ["supportedAppProtocolReq", "SessionSetupReq", "AuthorizationSetupReq", "AuthorizationReq",
           "ServiceDiscoveryReq", "ServiceDetailReq", "ServiceSelectionReq", "DC_ChargeParameterDiscoveryReq",
           "ScheduleExchangeReq", "DC_CableCheckReq", "DC_PreChargeReq", "PowerDeliveryReq", "DC_ChargeLoopReq",
           "PowerDeliveryReq", "DC_WeldingDetectionReq", "SessionStopReq"]
AC_FLOW = [n.replace("DC_", "AC_") for n in DC_FLOW if n not in ("DC_CableCheckReq", "DC_PreChargeReq",
                                                                   "DC_WeldingDetectionReq")]


def _collapse(seq):
    out = []
    for n in seq:
        if not out or out[-1] != n:
            out.append(n)
    return out


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("setpoint", [6000.0, -6000.0])
def test_complete_session(service, mode, setpoint):
    p = make_pair(service, mode, setpoint=setpoint, loops=12)
    p.run()
    r = p.ev.result
    assert r.ok, r.reason
    assert r.loops == 12
    assert p.secc.end_reason == "SessionStopRes OK"
    assert p.secc.state is State.ENDED
    flow = DC_FLOW if service.startswith("DC") else AC_FLOW
    assert _collapse(names(p.ev_log, "tx")) == flow
    # every response the charger sent carried OK (or the handshake's success code)
    assert all(str(getattr(m, "ResponseCode", "OK")).startswith("OK") for _, d, _, m in p.secc_log if d == "tx")
    bpt = service.endswith("BPT")
    # 12 loops at 0.25 s: 11 intervals of 6 kW ≈ 4.6 Wh (precharge ramps aside)
    if setpoint > 0:
        assert r.charged_wh == pytest.approx(6000 * 11 * 0.25 / 3600, rel=0.15) and r.discharged_wh == 0
    elif bpt:
        assert r.discharged_wh == pytest.approx(6000 * 11 * 0.25 / 3600, rel=0.15) and r.charged_wh == 0
    else:  # a unidirectional service never discharges, whatever the setpoint says
        assert r.charged_wh == 0 and r.discharged_wh == 0
    m = p.stage.measurements(1e6)
    assert not m.contactors_closed and m.current == 0 and m.power == 0
    if bpt and setpoint < 0:
        assert m.energy_exported_wh == pytest.approx(r.discharged_wh, rel=0.05)


@pytest.mark.parametrize("service", ["DC_BPT", "AC_BPT"])
@pytest.mark.parametrize("profile", ["iso20-secp521r1", "iso20-ed448"])
def test_plug_and_charge(v2g_pki, service, profile):
    p = make_pair(service, "scheduled", "pnc", pki_dir=v2g_pki, profile=profile)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    assert p.secc.ctx.auth_method == "PnC" and p.secc.ctx.emaid == "DEV2HC1234567X9"
    assert p.ev.result.discharged_wh > 0
    # the signature travelled in the AuthorizationReq header
    auth = next(m for _, d, n, m in p.secc_log if n == "AuthorizationReq")
    assert auth.Header.Signature is not None


def test_scheduled_discharge_selects_the_discharge_channel():
    p = make_pair("DC_BPT", "scheduled", setpoint=-4000)
    p.run()
    pd = next(m for _, d, n, m in p.secc_log if n == "PowerDeliveryReq")
    assert str(pd.BPT_ChannelSelection) == "Discharge"
    st = next(m for _, d, n, m in p.secc_log if n == "ScheduleExchangeRes")
    tup = st.Scheduled_SEResControlMode.ScheduleTuple[0]
    assert tup.DischargingSchedule is not None


def test_setpoint_changes_during_the_charge_loop():
    """The energy manager turns a charge into a discharge mid-session (Dynamic BPT)."""
    p = make_pair("DC_BPT", "dynamic", loops=20, setpoint=lambda now: 5000.0 if now < 4.0 else -5000.0)
    p.run()
    currents = [m.EVSEPresentCurrent.Value * 10.0 ** m.EVSEPresentCurrent.Exponent
                for _, d, n, m in p.secc_log if n == "DC_ChargeLoopRes"]
    assert currents[0] > 0 and currents[-1] < 0
    assert p.ev.result.charged_wh > 0 and p.ev.result.discharged_wh > 0


def test_discharge_stops_at_the_minimum_soc():
    """A car just above its minimum SoC: its discharge limit tapers to zero and the charger
    follows; the battery never goes below the minimum."""
    battery = Battery(capacity_kwh=1.0, soc=20.3, min_soc=20.0, max_discharge_power=11000)
    p = make_pair("DC_BPT", "dynamic", setpoint=-11000, battery=battery, loops=40)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    assert battery.soc >= 20.0 - 0.01
    powers = [m.EVSEPresentCurrent.Value * 10.0 ** m.EVSEPresentCurrent.Exponent for _, d, n, m in p.secc_log
              if n == "DC_ChargeLoopRes"]
    assert powers[-1] == pytest.approx(0, abs=0.5)


def test_charger_limits_bound_the_setpoint():
    p = make_pair("AC_BPT", "dynamic", setpoint=-50_000)
    p.run()
    targets = [m.BPT_Dynamic_AC_CLResControlMode.EVSETargetActivePower for _, d, n, m in p.secc_log
               if n == "AC_ChargeLoopRes"]
    assert all(t.Value * 10.0 ** t.Exponent == pytest.approx(-11000) for t in targets)


def test_pause_and_resume():
    store: dict = {}
    first = make_pair("DC_BPT", "dynamic", resume_store=store, end="Pause", loops=3)
    first.run()
    assert first.ev.result.ok and first.ev.result.reason == "SessionStop Pause"
    sid = first.ev.result.session_id
    assert sid in store
    second = make_pair("DC_BPT", "dynamic", charger=first.charger, resume_store=store, resume_session_id=sid, loops=3,
                       now=100.0)
    second.run(start=100.0)
    assert second.ev.result.ok, second.ev.result.reason
    setup = next(m for _, d, n, m in second.secc_log if n == "SessionSetupRes")
    assert str(setup.ResponseCode) == "OK_OldSessionJoined" and setup.Header.SessionID == sid
    # a resumed session skips service discovery and selection
    assert "ServiceDiscoveryReq" not in names(second.secc_log, "rx")
    assert "DC_ChargeParameterDiscoveryReq" in names(second.secc_log, "rx")
    assert sid not in store  # a pause is resumed once


def test_resume_of_an_unknown_session_starts_a_new_one():
    p = make_pair("DC_BPT", "dynamic", resume_session_id=bytes.fromhex("0102030405060708"), loops=2)
    p.run()
    assert p.ev.result.ok
    setup = next(m for _, d, n, m in p.secc_log if n == "SessionSetupRes")
    assert str(setup.ResponseCode) == "OK_NewSessionEstablished"
    assert "ServiceDiscoveryReq" in names(p.secc_log, "rx")


def test_pause_refused_when_not_allowed():
    from iso15118.secc import SECCConfig

    p = make_pair("DC_BPT", "dynamic", end="Pause", loops=2, secc_config=SECCConfig(pause_allowed=False))
    p.run()
    assert not p.ev.result.ok and "FAILED_PauseNotAllowed" in p.ev.result.reason
    assert not p.stage.measurements(1e6).contactors_closed


def test_service_renegotiation_from_dc_to_dc_bpt():
    p = make_pair("DC", "dynamic", setpoint=-5000, end="ServiceRenegotiation", renegotiate_to="DC_BPT", loops=4)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    sel = [m.SelectedEnergyTransferService.ServiceID for _, d, n, m in p.secc_log if n == "ServiceSelectionReq"]
    assert sel == [2, 6]
    stops = [str(m.ChargingSession) for _, d, n, m in p.secc_log if n == "SessionStopReq"]
    assert stops == ["ServiceRenegotiation", "Terminate"]
    # the DC part could not discharge; after renegotiation to DC_BPT the car gives energy
    assert p.ev.result.discharged_wh > 0
    # cable check and precharge run again after renegotiation
    assert names(p.secc_log, "rx").count("DC_CableCheckReq") >= 2


def test_authorization_ongoing_then_accepted():
    from iso15118.secc import simulated_charger

    stage = simulated_charger(kind="DC", setpoint_w=3000, authorization_delay=1.0)
    p = make_pair("DC_BPT", "dynamic", charger=stage, loops=2)
    p.run()
    assert p.ev.result.ok
    auth = [str(m.EVSEProcessing) for _, d, n, m in p.secc_log if n == "AuthorizationRes"]
    assert auth[0] == "Ongoing" and auth[-1] == "Finished" and len(auth) >= 5


def test_session_ids_are_random_and_eight_bytes():
    a, b = make_pair(loops=1), make_pair(loops=1)
    a.run()
    b.run()
    assert len(a.ev.result.session_id) == 8 and a.ev.result.session_id != b.ev.result.session_id


@pytest.mark.parametrize("service", SERVICES)
def test_every_session_message_takes_the_c_encoder(service):
    """Messages the sessions build must not fall back to the pure-Python encoder (the C path
    wants, e.g., the MessageHeader class of the message's own schema)."""
    from iso15118 import exi
    from iso15118.exi import _backend
    from iso15118.messages import schema_of_message

    cext = _backend.cext
    if cext is None:
        pytest.skip("C extension not built")
    p = make_pair(service, "scheduled" if "AC" in service else "dynamic", loops=2)
    p.run()
    assert p.ev.result.ok
    for _, _, name, msg in p.secc_log:
        mod = exi._module_for(msg, schema_of_message(msg))
        try:
            cext.encode_document(cext.universe(mod), msg, None)
        except cext.Fallback:
            pytest.fail(f"{name} fell back to the pure-Python encoder")


@pytest.mark.parametrize("service", ["DC_BPT", "AC"])
@pytest.mark.parametrize("mode", MODES)
def test_a_configured_tariff_is_published_as_price_levels(service, mode):
    """SECCConfig.price_levels: ServiceDetail says Pricing=2 and ScheduleExchangeRes carries
    the PriceLevelSchedule (in every schedule of the tuple for Scheduled)."""
    from iso15118.secc import SECCConfig
    levels = ((21600, 0), (10800, 3), (54000, 1))
    p = make_pair(service, mode, secc_config=SECCConfig(price_levels=levels), loops=3)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    detail = next(m for _, d, n, m in p.secc_log if n == "ServiceDetailRes")
    pricing = {q.Name: q.intValue for ps in detail.ServiceParameterList.ParameterSet for q in ps.Parameter}
    assert pricing["Pricing"] == 2
    res = next(m for _, d, n, m in p.secc_log if n == "ScheduleExchangeRes")
    if mode == "dynamic":
        schedules = [res.Dynamic_SEResControlMode.PriceLevelSchedule]
    else:
        tup = res.Scheduled_SEResControlMode.ScheduleTuple[0]
        schedules = [s.PriceLevelSchedule for s in (tup.ChargingSchedule, tup.DischargingSchedule) if s is not None]
        assert len(schedules) == (2 if service.endswith("BPT") else 1)
    for pls in schedules:
        assert pls.NumberOfPriceLevels == 4
        assert [(e.Duration, e.PriceLevel) for e in pls.PriceLevelScheduleEntries.PriceLevelScheduleEntry] == list(levels)


def test_without_a_tariff_no_price_schedule_is_sent():
    p = make_pair("DC", "scheduled", loops=2)
    p.run()
    res = next(m for _, d, n, m in p.secc_log if n == "ScheduleExchangeRes")
    assert res.Scheduled_SEResControlMode.ScheduleTuple[0].ChargingSchedule.PriceLevelSchedule is None
    detail = next(m for _, d, n, m in p.secc_log if n == "ServiceDetailRes")
    assert {q.Name: q.intValue for q in detail.ServiceParameterList.ParameterSet[0].Parameter}["Pricing"] == 0


@pytest.mark.parametrize("levels", [((0, 1),), ((60, 256),), ((60, -1),), tuple((60, 0) for _ in range(1025))])
def test_an_impossible_tariff_is_refused_at_configuration(levels):
    from iso15118.secc import SECCConfig
    with pytest.raises(ValueError, match="price level|1024"):
        SECCConfig(price_levels=levels)


@pytest.mark.parametrize("soc, complete", [(60.0, False), (80.0, True)])
def test_the_car_reports_charging_complete(soc, complete):
    p = make_pair("DC", "dynamic", setpoint=0.0, battery=Battery(soc=soc), loops=2)
    p.run()
    loop = next(m for _, d, n, m in p.secc_log if n == "DC_ChargeLoopReq")
    assert loop.DisplayParameters.ChargingComplete is complete


def test_a_controller_with_a_power_plan_gives_the_scheduled_steps():
    """``power_plan`` (e.g. OCPP charging profiles) becomes the Scheduled ScheduleExchangeRes:
    charge steps in the ChargingSchedule, discharge steps in the DischargingSchedule, each
    bounded by the charger's limits."""
    from iso15118.secc import EVSEController, LocalSupervisor, SimulatedPowerStage

    class Planned(LocalSupervisor):
        def power_plan(self, now, horizon):
            return [(3600, 6000.0), (7200, -4000.0), (horizon - 10800, 99000.0)]

    stage = SimulatedPowerStage(kind="DC")
    p = make_pair("DC_BPT", "scheduled", charger=EVSEController(stage, Planned(setpoint_w=6000.0)), loops=2)
    p.run()
    res = next(m for _, d, n, m in p.secc_log if n == "ScheduleExchangeRes")
    tup = res.Scheduled_SEResControlMode.ScheduleTuple[0]

    def steps(sched):
        return [(e.Duration, e.Power.Value * 10 ** e.Power.Exponent)
                for e in sched.PowerSchedule.PowerScheduleEntries.PowerScheduleEntry]
    cap = stage.limits().max_charge_power
    assert steps(tup.ChargingSchedule) == [(3600, 6000), (7200, 0), (75600, cap)]
    assert steps(tup.DischargingSchedule) == [(3600, 0), (7200, -4000), (75600, 0)]


def test_paused_sessions_kept_for_resumption_are_bounded():
    """Every Pause leaves an entry for a later resume: a car (or many) pausing again and again
    must not grow the charger's memory without end; the oldest pause is forgotten first."""
    from iso15118.secc import SECCConfig

    store: dict = {}
    sids = []
    for i in range(5):
        p = make_pair("DC_BPT", "dynamic", resume_store=store, end="Pause", loops=1,
                      secc_config=SECCConfig(max_paused_sessions=3), now=10.0 * i)
        p.run(start=10.0 * i)
        assert p.ev.result.ok, p.ev.result.reason
        sids.append(p.ev.result.session_id)
    assert list(store) == sids[2:]

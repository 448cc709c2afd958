"""ISO 15118-2 and DIN SPEC 70121 sessions, charger against simulated car, in memory on a
simulated clock: the protocol choice in SupportedAppProtocol, complete DC and AC sessions, the
schedule (PMaxSchedule, SalesTariff), pause and resume, renegotiation from either side, the
charging profile checked against the schedule, and every response schema-valid."""

from __future__ import annotations

import pytest

from iso15118 import exi
from iso15118.evcc import Battery
from iso15118.messages import schema_of_message
from iso15118.secc import SECCConfig, State, simulated_charger
from iso15118.units import pval

from .helpers import make_pair, names

DIN_FLOW = ["supportedAppProtocolReq", "SessionSetupReq", "ServiceDiscoveryReq", "ServicePaymentSelectionReq",
            "ContractAuthenticationReq", "ChargeParameterDiscoveryReq", "CableCheckReq", "PreChargeReq",
            "PowerDeliveryReq", "CurrentDemandReq", "PowerDeliveryReq", "WeldingDetectionReq", "SessionStopReq"]
ISO2_DC_FLOW = ["supportedAppProtocolReq", "SessionSetupReq", "ServiceDiscoveryReq", "PaymentServiceSelectionReq",
                "AuthorizationReq", "ChargeParameterDiscoveryReq", "CableCheckReq", "PreChargeReq", "PowerDeliveryReq",
                "CurrentDemandReq", "PowerDeliveryReq", "WeldingDetectionReq", "SessionStopReq"]
ISO2_AC_FLOW = ["supportedAppProtocolReq", "SessionSetupReq", "ServiceDiscoveryReq", "PaymentServiceSelectionReq",
                "AuthorizationReq", "ChargeParameterDiscoveryReq", "PowerDeliveryReq", "ChargingStatusReq",
                "PowerDeliveryReq", "SessionStopReq"]
CASES = [("din", "DC", "tcp", DIN_FLOW), ("iso2", "DC", "tcp", ISO2_DC_FLOW), ("iso2", "DC", "tls1.2", ISO2_DC_FLOW),
         ("iso2", "AC", "tcp", ISO2_AC_FLOW), ("iso2", "AC", "tls1.2", ISO2_AC_FLOW)]


def _collapse(seq):
    out = []
    for n in seq:
        if not out or out[-1] != n:
            out.append(n)
    return out


def _schema_valid(log) -> None:
    """Every message on the log encodes and decodes back to itself in its own schema."""
    for _, _, name, msg in log:
        schema = schema_of_message(msg)
        assert exi.decode(exi.encode(msg, schema), schema) == msg, name


def pair(protocol: str, kind: str = "DC", transport: str = "tcp", **kw):
    kw.setdefault("loops", 12)
    return make_pair(kind, protocols=(protocol,), transport=transport, **kw)


@pytest.mark.parametrize("protocol,kind,transport,flow", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_complete_charging_session(protocol, kind, transport, flow):
    p = pair(protocol, kind, transport, setpoint=6000.0)
    p.run()
    r = p.ev.result
    assert r.ok, r.reason
    assert r.protocol == protocol and p.secc.ctx.protocol == protocol
    assert r.loops == 12 and p.secc.end_reason == "SessionStopRes OK" and p.secc.state is State.ENDED
    assert _collapse(names(p.ev_log, "tx")) == flow
    assert all(str(getattr(m.Body, n, None) and getattr(getattr(m.Body, n), "ResponseCode", "OK")).startswith("OK")
               for _, d, n, m in p.secc_log if d == "tx" and n != "supportedAppProtocolRes")
    # 12 loops at 0.25 s: 11 intervals of 6 kW (precharge aside)
    assert r.charged_wh == pytest.approx(6000 * 11 * 0.25 / 3600, rel=0.15) and r.discharged_wh == 0
    m = p.stage.measurements(1e6)
    assert not m.contactors_closed and m.current == 0 and m.power == 0
    assert m.energy_imported_wh == pytest.approx(r.charged_wh, rel=0.1)
    _schema_valid(p.secc_log)
    _schema_valid(p.ev_log)


@pytest.mark.parametrize("protocol,kind", [("din", "DC"), ("iso2", "DC"), ("iso2", "AC")])
def test_a_discharge_setpoint_never_discharges(protocol, kind):
    """Neither protocol can discharge the car: a negative setpoint gives 0 W, never less."""
    p = pair(protocol, kind, setpoint=-7000.0, loops=6)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    assert p.ev.result.discharged_wh == 0 and p.ev.result.charged_wh == 0
    assert all(e.value.current >= 0 and e.value.power >= 0 for e in p.stage.history.events if e.kind == "target")
    assert p.stage.measurements(1e6).energy_exported_wh == 0


# --- the protocol choice ---------------------------------------------------------------------------

@pytest.mark.parametrize("offered,transport,chosen", [
    (("iso20", "iso2", "din"), "tls", "iso20"),
    (("din", "iso2", "iso20"), "tcp", "din"),
    (("iso2", "din"), "tcp", "iso2"),
    (("din", "iso2"), "tls1.2", "iso2"),      # DIN has no TLS: the car's next choice
    (("iso20", "iso2"), "tcp", "iso2"),       # -20 only over TLS
    (("iso20", "din"), "tcp", "din"),
    (("iso2", "iso20"), "tls1.3", "iso20"),   # -2 not over TLS 1.3
])
def test_the_cars_priority_within_what_the_connection_allows(offered, transport, chosen):
    p = make_pair("DC", protocols=offered, transport=transport, loops=3, setpoint=5000.0)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    assert p.ev.result.protocol == chosen == p.secc.ctx.protocol
    res = next(m for _, d, n, m in p.secc_log if n == "supportedAppProtocolRes")
    assert res.SchemaID == offered.index(chosen) + 1 and str(res.ResponseCode) == "OK_SuccessfulNegotiation"


def test_the_chargers_configuration_restricts_the_choice():
    p = make_pair("DC", protocols=("din", "iso2"), transport="tcp", loops=2, setpoint=5000.0,
                  secc_config=SECCConfig(protocols=("iso20", "iso2")))
    p.run()
    assert p.ev.result.ok and p.ev.result.protocol == "iso2"


@pytest.mark.parametrize("offered,transport,config", [
    (("din",), "tls1.2", SECCConfig()),
    (("iso2",), "tls1.3", SECCConfig()),
    (("iso20",), "tcp", SECCConfig()),
    (("din",), "tcp", SECCConfig(protocols=("iso20", "iso2"))),
    (("din",), "tcp", SECCConfig(services=(1, 5))),  # an AC charger cannot speak DIN
])
def test_no_protocol_in_common_is_refused_unenergised(offered, transport, config):
    p = make_pair("DC", protocols=offered, transport=transport, loops=2, secc_config=config)
    p.run()
    res = next(m for _, d, n, m in p.secc_log if n == "supportedAppProtocolRes")
    assert str(res.ResponseCode) == "Failed_NoNegotiation"
    assert not p.ev.result.ok and p.secc.closed
    assert not any(e.kind == "contactors" and e.value for e in p.stage.history.events)


def test_a_minor_version_deviation_is_accepted_and_said():
    from dataclasses import replace

    from iso15118.messages import APP
    from iso15118.v2gtp import PayloadType, V2GTPFrame

    p = pair("din")

    def tamper(direction, frame, now):
        if direction == "ev→evse" and frame.payload_type == PayloadType.EXI and p.secc.state is State.WAIT_SAP:
            req = exi.decode(frame.payload, "apphand")
            entry = replace(req.AppProtocol[0], VersionNumberMinor=1)
            return [V2GTPFrame(PayloadType.EXI, exi.encode(APP.supportedAppProtocolReq(AppProtocol=[entry]), "apphand"))]
        return None
    p.run(tamper=tamper)
    res = next(m for _, d, n, m in p.secc_log if n == "supportedAppProtocolRes")
    assert str(res.ResponseCode) == "OK_SuccessfulNegotiationWithMinorDeviation"
    assert p.ev.result.ok


def test_an_ac_car_cannot_offer_din():
    from iso15118.evcc import EVCCConfig, EVCCSession
    with pytest.raises(ValueError, match="DC only"):
        EVCCSession(Battery(), EVCCConfig(service="AC", protocols=("din",)))


def test_a_bpt_car_charges_over_iso2():
    """A bidirectional car that gets -2 or DIN charges; its discharge needs -20."""
    p = make_pair("DC_BPT", protocols=("iso2",), transport="tcp", setpoint=4000.0, loops=4)
    p.run()
    assert p.ev.result.ok and p.ev.result.charged_wh > 0 and not p.secc.ctx.bpt


# --- the schedule -------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["din", "iso2"])
def test_the_schedule_and_a_configured_tariff(protocol):
    levels = ((21600, 0), (10800, 3), (54000, 1))
    p = pair(protocol, secc_config=SECCConfig(price_levels=levels), setpoint=5000.0, loops=3)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    cpd = next(m for _, d, n, m in p.secc_log if n == "ChargeParameterDiscoveryRes").Body.ChargeParameterDiscoveryRes
    tup = cpd.SAScheduleList.SAScheduleTuple[0]
    entries = tup.PMaxSchedule.PMaxScheduleEntry
    assert [e.RelativeTimeInterval.start for e in entries] == [0]
    assert entries[-1].RelativeTimeInterval.duration == 86400
    assert (entries[0].PMax if protocol == "din" else pval(entries[0].PMax)) == 5000
    tariff = tup.SalesTariff
    assert tariff.NumEPriceLevels == 4
    assert [(e.RelativeTimeInterval.start, e.EPriceLevel) for e in tariff.SalesTariffEntry] == \
        [(0, 0), (21600, 3), (32400, 1)]


def test_a_plan_becomes_the_pmax_schedule_within_the_cars_limit():
    from iso15118.secc import EVSEController, LocalSupervisor, SimulatedPowerStage

    class Planner(LocalSupervisor):
        def power_plan(self, now, horizon):
            return [(3600, 3000.0), (3600, -2000.0)] + [(900, 1000.0)] * 100

    charger = EVSEController(SimulatedPowerStage(kind="DC"), Planner(setpoint_w=3000.0))
    p = pair("iso2", charger=charger, loops=3)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    cpd = next(m for _, d, n, m in p.secc_log if n == "ChargeParameterDiscoveryRes").Body.ChargeParameterDiscoveryRes
    entries = cpd.SAScheduleList.SAScheduleTuple[0].PMaxSchedule.PMaxScheduleEntry
    assert len(entries) == 24  # the car's MaxEntriesSAScheduleTuple
    assert [pval(e.PMax) for e in entries[:3]] == [3000, 0, 1000]  # never a discharge
    pd = next(m for _, d, n, m in p.secc_log if n == "PowerDeliveryReq").Body.PowerDeliveryReq
    assert [pval(e.ChargingProfileEntryMaxPower) for e in pd.ChargingProfile.ProfileEntry[:3]] == [3000, 0, 1000]


def test_a_charging_profile_above_the_schedule_is_refused():
    p = pair("iso2", setpoint=3000.0)
    car = p.ev
    car.responses["ChargeParameterDiscoveryRes"] = _greedy_schedule
    p.run()
    assert not p.ev.result.ok and "FAILED_ChargingProfileInvalid" in p.ev.result.reason
    assert not any(e.kind == "target" and (e.value.current or e.value.power) for e in p.stage.history.events)


def _greedy_schedule(s, res, now):
    """A car that plans twice the offered power."""
    from iso15118.evcc import handlers_iso2 as h
    out = h.on_charge_parameter_discovery(s, res, now)
    s.pmax = [(t, w * 2) for t, w in s.pmax]
    return out


def test_an_unknown_schedule_tuple_is_refused():
    from iso15118.evcc import handlers_iso2 as h

    p = pair("iso2", kind="AC", setpoint=3000.0)

    def other_tuple(s, res, now):
        out = h.on_charge_parameter_discovery(s, res, now)
        return out.__class__(**{**{f.name: getattr(out, f.name) for f in type(out)._exi.fields}, "SAScheduleTupleID": 7})
    p.ev.responses["ChargeParameterDiscoveryRes"] = other_tuple
    p.run()
    assert not p.ev.result.ok and "FAILED_TariffSelectionInvalid" in p.ev.result.reason
    assert not p.stage.measurements(1e6).contactors_closed


# --- pause, resume, renegotiation ---------------------------------------------------------------------

def test_iso2_pause_and_resume():
    store: dict = {}
    first = pair("iso2", resume_store=store, end="Pause", loops=3, setpoint=5000.0)
    first.run()
    assert first.ev.result.ok and first.ev.result.reason == "SessionStop Pause"
    sid = first.ev.result.session_id
    assert sid in store and not first.stage.measurements(50.0).contactors_closed
    second = pair("iso2", charger=first.charger, resume_store=store, resume_session_id=sid, loops=3, now=100.0,
                  setpoint=5000.0)
    second.run(start=100.0)
    assert second.ev.result.ok, second.ev.result.reason
    setup = next(m for _, d, n, m in second.secc_log if n == "SessionSetupRes")
    assert str(setup.Body.SessionSetupRes.ResponseCode) == "OK_OldSessionJoined" and setup.Header.SessionID == sid
    assert sid not in store
    # a resumed -2 session authorises and discovers the charge parameters again, and pre-charges again
    assert {"AuthorizationReq", "ChargeParameterDiscoveryReq", "CableCheckReq"} <= set(names(second.secc_log, "rx"))


def test_din_has_no_pause():
    p = pair("din", end="Pause", loops=2)
    p.run()
    assert p.ev.result.ok and p.secc.end_reason == "SessionStopRes OK"
    assert not p.secc.resume_store


def test_iso2_pause_refused_when_not_allowed():
    p = pair("iso2", end="Pause", loops=2, secc_config=SECCConfig(pause_allowed=False))
    p.run()
    assert not p.ev.result.ok and "SessionStopRes FAILED" in p.ev.result.reason
    assert not p.stage.measurements(1e6).contactors_closed


@pytest.mark.parametrize("kind", ["DC", "AC"])
def test_the_car_renegotiates(kind):
    p = pair("iso2", kind, renegotiate_after=4, loops=10, setpoint=5000.0)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    rx = names(p.secc_log, "rx")
    assert rx.count("ChargeParameterDiscoveryReq") == 2
    progress = [str(m.Body.PowerDeliveryReq.ChargeProgress) for _, d, n, m in p.secc_log if n == "PowerDeliveryReq"]
    assert progress == ["Start", "Renegotiate", "Start", "Stop"]
    assert _collapse(rx).count("CableCheckReq") == (1 if kind == "DC" else 0)  # the DC output stays at the battery's voltage
    assert p.ev.result.loops == 10


def test_the_charger_asks_for_renegotiation_when_the_setpoint_rises_above_the_schedule():
    """The supervisor raises the setpoint above the PMax the car agreed to: the charger holds
    the PMax and says ReNegotiation; the car renegotiates and gets the new power."""
    p = pair("iso2", "DC", loops=16, setpoint=lambda now: 2000.0 if now < 3.5 else 6000.0)
    p.run()
    assert p.ev.result.ok, p.ev.result.reason
    notes = [str(m.Body.CurrentDemandRes.DC_EVSEStatus.EVSENotification) for _, d, n, m in p.secc_log
             if n == "CurrentDemandRes"]
    assert "ReNegotiation" in notes
    pmax = [pval(m.Body.ChargeParameterDiscoveryRes.SAScheduleList.SAScheduleTuple[0].PMaxSchedule
                 .PMaxScheduleEntry[0].PMax) for _, d, n, m in p.secc_log if n == "ChargeParameterDiscoveryRes"]
    assert pmax == [2000, 6000]
    powers = [pval(m.Body.CurrentDemandRes.EVSEPresentCurrent) * pval(m.Body.CurrentDemandRes.EVSEPresentVoltage)
              for _, d, n, m in p.secc_log if n == "CurrentDemandRes"]
    assert max(powers[:notes.index("ReNegotiation") + 1]) <= 2000 + 5 and powers[-1] == pytest.approx(6000, rel=0.02)


def test_authorization_ongoing_then_accepted():
    charger = simulated_charger(kind="DC", setpoint_w=3000, authorization_delay=1.0)
    p = pair("din", charger=charger, loops=2)
    p.run()
    assert p.ev.result.ok
    auth = [str(m.Body.ContractAuthenticationRes.EVSEProcessing) for _, d, n, m in p.secc_log
            if n == "ContractAuthenticationRes"]
    assert auth[0] == "Ongoing" and auth[-1] == "Finished" and len(auth) >= 5


def test_rejected_authorization_ends_unenergised():
    charger = simulated_charger(kind="DC", setpoint_w=3000, accepted_identities={"somebody"})
    p = pair("iso2", charger=charger, loops=2)
    p.run()
    assert not p.ev.result.ok and "AuthorizationRes FAILED" in p.ev.result.reason
    assert not any(e.kind == "contactors" and e.value for e in p.stage.history.events)


@pytest.mark.parametrize("protocol,kind", [("din", "DC"), ("iso2", "DC"), ("iso2", "AC")])
def test_the_cars_needs_reach_the_supervisor(protocol, kind):
    p = pair(protocol, kind, loops=2, battery=Battery(soc=40.0, capacity_kwh=50.0))
    p.run()
    n = p.supervisor.needs
    assert n.protocol == protocol and n.control_mode == "Scheduled" and n.service == kind
    assert n.max_charge_current and n.max_voltage and n.energy_amount == pytest.approx(20000, rel=0.01)
    if kind == "DC":
        assert n.energy_transfer_mode == "DC_extended" and n.present_soc == 40 and n.energy_capacity == 50000
    else:
        assert n.energy_transfer_mode == "AC_three_phase_core" and n.departure_time == 8 * 3600
        assert n.max_charge_power == pytest.approx(11000, rel=0.01)


def test_session_events_for_ocpp():
    p = pair("iso2", "AC", loops=3, setpoint=4000.0)
    p.run()
    kinds = p.supervisor.kinds()
    assert [k for k in kinds if k != "PowerChanged"] == ["SessionStarted", "Authorized", "EnergyTransferStarted",
                                                          "EnergyTransferStopped", "SessionEnded"]
    powers = [e.power_w for _, e in p.supervisor.events if type(e).__name__ == "PowerChanged"]
    assert powers and powers[0] == pytest.approx(4000, rel=0.01)  # reported as the loop applies it


def test_every_session_message_takes_the_c_encoder():
    from iso15118.exi import _backend

    cext = _backend.cext
    if cext is None:
        pytest.skip("C extension not built")
    for protocol, kind in (("din", "DC"), ("iso2", "DC"), ("iso2", "AC")):
        p = pair(protocol, kind, loops=2)
        p.run()
        for _, _, name, msg in p.secc_log + p.ev_log:
            mod = exi._module_for(msg, schema_of_message(msg))
            try:
                cext.encode_document(cext.universe(mod), msg, None)
            except cext.Fallback:
                pytest.fail(f"{protocol} {name} fell back to the pure-Python encoder")

"""Hypothesis drives the charger with arbitrary sequences of -20 requests (right and wrong
order, right and wrong SessionID, any numbers), timer expiries, lost connections and junk.
After every step the power stage must satisfy the safety invariants:

- power flows only in a live, authorised session, and (DC) only after a finished PreCharge;
- (DC) the car's battery is connected to the output only when the output is within the
  precharge tolerance of the car's voltage (no inrush);
- a unidirectional service never discharges;
- discharge never exceeds the car's declared discharge power or current, and never happens
  while the car reports a state of charge at or below its minimum;
- a closed session leaves the stage de-energised (contactors open, no current).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from iso15118 import exi
from iso15118.messages import AC, APP, CM, DC, NS_ISO20_AC, NS_ISO20_DC, name_of, payload_type_of, schema_of_message
from iso15118.secc import SECCConfig, SECCSession, simulated_charger, State
from iso15118.units import rn, val
from iso15118.v2gtp import PayloadType, V2GTPFrame

TOLERANCE_W = 1.0  # rounding of RationalNumbers

watts = st.floats(min_value=0, max_value=20000, allow_nan=False)
amps = st.floats(min_value=0, max_value=300, allow_nan=False)
volts = st.floats(min_value=0, max_value=600, allow_nan=False)
soc = st.integers(min_value=0, max_value=100)

REQUEST_KINDS = ["sap", "setup", "auth_setup", "auth", "discovery", "detail", "selection", "cpd", "schedule",
                 "cable_check", "precharge", "power_delivery", "loop", "welding", "stop"]


def _sap(kind: str):
    return APP.supportedAppProtocolReq(AppProtocol=[APP.AppProtocol(
        ProtocolNamespace=NS_ISO20_DC if kind == "DC" else NS_ISO20_AC, VersionNumberMajor=1, VersionNumberMinor=0,
        SchemaID=1, Priority=1)])


class SECCSafety(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.kind = "DC"
        self.charger = simulated_charger(kind="DC", setpoint_w=-8000.0, isolation_time=0.2)
        self.stage = self.charger.stage
        self.secc = SECCSession(self.charger, SECCConfig(), now=0.0)
        self.now = 0.0
        self.max_discharge_w: float | None = None   # what the car declared last
        self.max_discharge_a: float | None = None
        self.present_soc: int | None = None
        self.min_soc: int | None = None

    # --- building requests ---------------------------------------------------------------------
    def header(self, right_id: bool):
        sid = self.secc.ctx.session_id if right_id and self.secc.ctx.session_id else bytes(8)
        return CM.MessageHeader(SessionID=sid, TimeStamp=int(self.now))

    def build(self, kind: str, d, good: bool = False) -> object:
        """A request of ``kind``; ``good`` keeps it consistent with what was negotiated (so
        that deep states are reached) while the car's numbers stay arbitrary."""
        right = good or d.draw(st.sampled_from([True, True, True, False]), label="right_id")  # mostly right
        h = self.header(right)
        dc = self.kind == "DC"
        ctx = self.secc.ctx
        if good:
            made = self.build_good(kind, d, h, dc, ctx)
            if made is not None:
                return made
        if kind == "sap":
            return _sap(self.kind)
        if kind == "setup":
            return CM.SessionSetupReq(Header=h, EVCCID="0200000000A1")
        if kind == "auth_setup":
            return CM.AuthorizationSetupReq(Header=h)
        if kind == "auth":
            return CM.AuthorizationReq(Header=h, SelectedAuthorizationService="EIM",
                                       EIM_AReqAuthorizationMode=CM.EIM_AReqAuthorizationMode())
        if kind == "discovery":
            return CM.ServiceDiscoveryReq(Header=h)
        if kind == "detail":
            return CM.ServiceDetailReq(Header=h, ServiceID=d.draw(st.sampled_from([1, 2, 5, 6]), label="service"))
        if kind == "selection":
            return CM.ServiceSelectionReq(Header=h, SelectedEnergyTransferService=CM.SelectedService(
                ServiceID=d.draw(st.sampled_from([1, 2, 5, 6]), label="service"),
                ParameterSetID=d.draw(st.sampled_from([1, 2]), label="set")))
        if kind == "cpd":
            p_c, p_d, i_c, i_d = d.draw(watts), d.draw(watts), d.draw(amps), d.draw(amps)
            if dc:
                return DC.DC_ChargeParameterDiscoveryReq(
                    Header=h, BPT_DC_CPDReqEnergyTransferMode=DC.BPT_DC_CPDReqEnergyTransferMode(
                        EVMaximumChargePower=rn(p_c), EVMinimumChargePower=rn(0), EVMaximumChargeCurrent=rn(i_c),
                        EVMinimumChargeCurrent=rn(0), EVMaximumVoltage=rn(d.draw(volts)),
                        EVMinimumVoltage=rn(d.draw(volts)), EVMaximumDischargePower=rn(p_d),
                        EVMinimumDischargePower=rn(0), EVMaximumDischargeCurrent=rn(i_d),
                        EVMinimumDischargeCurrent=rn(0))) if d.draw(st.booleans()) else \
                    DC.DC_ChargeParameterDiscoveryReq(Header=h, DC_CPDReqEnergyTransferMode=DC.DC_CPDReqEnergyTransferMode(
                        EVMaximumChargePower=rn(p_c), EVMinimumChargePower=rn(0), EVMaximumChargeCurrent=rn(i_c),
                        EVMinimumChargeCurrent=rn(0), EVMaximumVoltage=rn(d.draw(volts)),
                        EVMinimumVoltage=rn(d.draw(volts))))
            return AC.AC_ChargeParameterDiscoveryReq(Header=h, BPT_AC_CPDReqEnergyTransferMode=AC.BPT_AC_CPDReqEnergyTransferMode(
                EVMaximumChargePower=rn(p_c), EVMinimumChargePower=rn(0), EVMaximumDischargePower=rn(p_d),
                EVMinimumDischargePower=rn(0)))
        if kind == "schedule":
            if d.draw(st.booleans(), label="dynamic"):
                return CM.ScheduleExchangeReq(Header=h, MaximumSupportingPoints=24,
                                              Dynamic_SEReqControlMode=CM.Dynamic_SEReqControlMode(
                                                  DepartureTime=3600, MinimumSOC=d.draw(soc), TargetSOC=d.draw(soc),
                                                  EVTargetEnergyRequest=rn(1000), EVMaximumEnergyRequest=rn(2000),
                                                  EVMinimumEnergyRequest=rn(-1000)))
            return CM.ScheduleExchangeReq(Header=h, MaximumSupportingPoints=24,
                                          Scheduled_SEReqControlMode=CM.Scheduled_SEReqControlMode())
        if kind == "cable_check":
            return DC.DC_CableCheckReq(Header=h)
        if kind == "precharge":
            v = rn(d.draw(volts))
            return DC.DC_PreChargeReq(Header=h, EVProcessing=d.draw(st.sampled_from(["Ongoing", "Finished"])),
                                      EVPresentVoltage=v, EVTargetVoltage=v)
        if kind == "power_delivery":
            progress = d.draw(st.sampled_from(["Start", "Stop", "ScheduleRenegotiation", "Standby"]))
            prof = None
            if d.draw(st.booleans(), label="profile"):
                ctrl = {"Scheduled_EVPPTControlMode": CM.Scheduled_EVPPTControlMode(SelectedScheduleTupleID=1)} \
                    if d.draw(st.booleans()) else {"Dynamic_EVPPTControlMode": CM.Dynamic_EVPPTControlMode()}
                prof = CM.EVPowerProfile(TimeAnchor=0, EVPowerProfileEntries=CM.EVPowerProfileEntryList(
                    EVPowerProfileEntry=[CM.PowerScheduleEntry(Duration=60, Power=rn(1000))]), **ctrl)
            return CM.PowerDeliveryReq(Header=h, EVProcessing="Finished", ChargeProgress=progress, EVPowerProfile=prof,
                                       BPT_ChannelSelection=d.draw(st.sampled_from([None, "Charge", "Discharge"])))
        if kind == "loop":
            return self.loop(h, d)
        if kind == "welding":
            return DC.DC_WeldingDetectionReq(Header=h, EVProcessing="Finished")
        return CM.SessionStopReq(Header=h, ChargingSession=d.draw(st.sampled_from(
            ["Terminate", "Pause", "ServiceRenegotiation"])))

    def build_good(self, kind, d, h, dc, ctx):
        services = [6, 2] if dc else [5, 1]
        if kind == "detail":
            self.service = d.draw(st.sampled_from(services), label="service")
            return CM.ServiceDetailReq(Header=h, ServiceID=self.service)
        if kind == "selection":
            return CM.ServiceSelectionReq(Header=h, SelectedEnergyTransferService=CM.SelectedService(
                ServiceID=getattr(self, "service", services[0]), ParameterSetID=d.draw(st.sampled_from([1, 2]))))
        if kind == "cpd":
            bpt = ctx.bpt
            p_c, p_d, i_c, i_d = d.draw(watts), d.draw(watts), d.draw(amps), d.draw(amps)
            if dc:
                common = dict(EVMaximumChargePower=rn(p_c), EVMinimumChargePower=rn(0), EVMaximumChargeCurrent=rn(i_c),
                              EVMinimumChargeCurrent=rn(0), EVMaximumVoltage=rn(d.draw(st.floats(300, 500))),
                              EVMinimumVoltage=rn(d.draw(st.floats(150, 300))))
                if bpt:
                    return DC.DC_ChargeParameterDiscoveryReq(Header=h, BPT_DC_CPDReqEnergyTransferMode=
                                                             DC.BPT_DC_CPDReqEnergyTransferMode(
                        **common, EVMaximumDischargePower=rn(p_d), EVMinimumDischargePower=rn(0),
                        EVMaximumDischargeCurrent=rn(i_d), EVMinimumDischargeCurrent=rn(0)))
                return DC.DC_ChargeParameterDiscoveryReq(Header=h, DC_CPDReqEnergyTransferMode=
                                                         DC.DC_CPDReqEnergyTransferMode(**common))
            common = dict(EVMaximumChargePower=rn(p_c), EVMinimumChargePower=rn(0))
            if bpt:
                return AC.AC_ChargeParameterDiscoveryReq(Header=h, BPT_AC_CPDReqEnergyTransferMode=
                                                         AC.BPT_AC_CPDReqEnergyTransferMode(
                    **common, EVMaximumDischargePower=rn(p_d), EVMinimumDischargePower=rn(0)))
            return AC.AC_ChargeParameterDiscoveryReq(Header=h, AC_CPDReqEnergyTransferMode=
                                                     AC.AC_CPDReqEnergyTransferMode(**common))
        if kind == "schedule":
            if ctx.control_mode == "Dynamic":
                return CM.ScheduleExchangeReq(Header=h, MaximumSupportingPoints=24,
                                              Dynamic_SEReqControlMode=CM.Dynamic_SEReqControlMode(
                                                  DepartureTime=3600, MinimumSOC=d.draw(soc), TargetSOC=d.draw(soc),
                                                  EVTargetEnergyRequest=rn(1000), EVMaximumEnergyRequest=rn(2000),
                                                  EVMinimumEnergyRequest=rn(-1000)))
            return CM.ScheduleExchangeReq(Header=h, MaximumSupportingPoints=24,
                                          Scheduled_SEReqControlMode=CM.Scheduled_SEReqControlMode())
        if kind == "precharge":  # a real car: Finished once the output is within 10 V; sometimes a car ends early
            v = min(350.0, ctx.ev.get("max_voltage") or 350.0)
            near = self.secc.state is not State.ENDED and abs(self.stage.measurements(self.now).voltage - v) <= 10
            early = d.draw(st.sampled_from([False, False, False, True]), label="ends precharge early")
            return DC.DC_PreChargeReq(Header=h, EVProcessing="Finished" if near or early else "Ongoing",
                                      EVPresentVoltage=rn(v), EVTargetVoltage=rn(v))
        if kind == "power_delivery":
            ctrl = {"Scheduled_EVPPTControlMode": CM.Scheduled_EVPPTControlMode(SelectedScheduleTupleID=1)} \
                if ctx.control_mode == "Scheduled" else {"Dynamic_EVPPTControlMode": CM.Dynamic_EVPPTControlMode()}
            prof = CM.EVPowerProfile(TimeAnchor=0, EVPowerProfileEntries=CM.EVPowerProfileEntryList(
                EVPowerProfileEntry=[CM.PowerScheduleEntry(Duration=60, Power=rn(1000))]), **ctrl)
            return CM.PowerDeliveryReq(Header=h, EVProcessing="Finished", ChargeProgress="Start", EVPowerProfile=prof,
                                       BPT_ChannelSelection=d.draw(st.sampled_from(["Charge", "Discharge"]))
                                       if ctx.bpt else None)
        if kind == "loop" and ctx.control_mode:
            return self.loop(h, d, ("BPT_" if ctx.bpt else "") + ctx.control_mode)
        return None

    def loop(self, h, d, mode: str | None = None):
        mode = mode or d.draw(st.sampled_from(["Scheduled", "Dynamic", "BPT_Scheduled", "BPT_Dynamic"]), label="mode")
        p_c, p_d, i_c, i_d = d.draw(watts), d.draw(watts), d.draw(amps), d.draw(amps)
        display = CM.DisplayParameters(PresentSOC=d.draw(soc), MinimumSOC=d.draw(soc)) \
            if d.draw(st.booleans(), label="display") else None
        bpt = {"EVMaximumDischargePower": rn(p_d), "EVMinimumDischargePower": rn(0)} if mode.startswith("BPT") else {}
        energy = dict(EVTargetEnergyRequest=rn(1000), EVMaximumEnergyRequest=rn(2000), EVMinimumEnergyRequest=rn(-500))
        if self.kind == "DC":
            if mode.startswith("BPT"):
                bpt["EVMaximumDischargeCurrent"] = rn(i_d)
            common = dict(EVMaximumChargePower=rn(p_c), EVMinimumChargePower=rn(0), EVMaximumChargeCurrent=rn(i_c),
                          EVMaximumVoltage=rn(450), EVMinimumVoltage=rn(200))
            cls = getattr(DC, mode + "_DC_CLReqControlMode")
            if mode.endswith("Scheduled"):
                body = cls(EVTargetCurrent=rn(d.draw(st.floats(-300, 300))), EVTargetVoltage=rn(d.draw(volts)),
                           **common, **bpt)
            else:
                body = cls(**energy, **common, **bpt)
            return DC.DC_ChargeLoopReq(Header=h, DisplayParameters=display, MeterInfoRequested=d.draw(st.booleans()),
                                       EVPresentVoltage=rn(d.draw(volts)), **{mode + "_DC_CLReqControlMode": body})
        cls = getattr(AC, mode + "_AC_CLReqControlMode")
        if mode.endswith("Scheduled"):
            body = cls(EVPresentActivePower=rn(0), EVMaximumChargePower=rn(p_c), **bpt)
        else:
            body = cls(**energy, EVMaximumChargePower=rn(p_c), EVMinimumChargePower=rn(0), EVPresentActivePower=rn(0),
                       EVPresentReactivePower=rn(0), **bpt)
        return AC.AC_ChargeLoopReq(Header=h, DisplayParameters=display, MeterInfoRequested=False,
                                   **{mode + "_AC_CLReqControlMode": body})

    # --- the oracle's view of what the car declared ------------------------------------------------
    def note_declarations(self, req) -> None:
        n = name_of(req)
        if n.endswith("ChargeParameterDiscoveryReq"):
            mode = getattr(req, "BPT_DC_CPDReqEnergyTransferMode", None) or getattr(req, "BPT_AC_CPDReqEnergyTransferMode", None)
            self.max_discharge_w = val(mode.EVMaximumDischargePower) if mode is not None else 0.0
            self.max_discharge_a = val(getattr(mode, "EVMaximumDischargeCurrent", None)) \
                if mode is not None and getattr(mode, "EVMaximumDischargeCurrent", None) is not None else None
        if n == "ScheduleExchangeReq" and req.Dynamic_SEReqControlMode is not None:
            ms = req.Dynamic_SEReqControlMode.MinimumSOC
            if ms is not None:
                self.min_soc = max(self.min_soc or 0, ms)
        if n.endswith("ChargeLoopReq"):
            fields = [f.name for f in type(req)._exi.fields]
            body = next(getattr(req, f) for f in fields if f.endswith("CLReqControlMode") and getattr(req, f) is not None)
            if getattr(body, "EVMaximumDischargePower", None) is not None:
                self.max_discharge_w = val(body.EVMaximumDischargePower)
            if getattr(body, "EVMaximumDischargeCurrent", None) is not None:
                self.max_discharge_a = val(body.EVMaximumDischargeCurrent)
            dp = req.DisplayParameters
            if dp is not None:
                if dp.PresentSOC is not None:
                    self.present_soc = dp.PresentSOC
                if dp.MinimumSOC is not None:
                    self.min_soc = max(self.min_soc or 0, dp.MinimumSOC)

    # --- rules ---------------------------------------------------------------------------------------
    @rule(kind=st.sampled_from(["DC", "AC"]))
    def new_car(self, kind):
        """The previous session (if any) ends with the cable; a new one starts."""
        self.secc.on_connection_lost(self.now)
        self.kind = kind
        self.charger = simulated_charger(kind=kind, setpoint_w=self.charger.supervisor.setpoint_w, isolation_time=0.2)
        self.stage = self.charger.stage
        self.secc = SECCSession(self.charger, SECCConfig(), now=self.now)
        self.max_discharge_w = self.max_discharge_a = self.present_soc = self.min_soc = None

    @rule(kind=st.sampled_from(REQUEST_KINDS), data=st.data(), dt=st.floats(0, 0.6), good=st.booleans())
    def send(self, kind, data, dt, good=False):
        self.now += dt
        req = self.build(kind, data, good)
        self.note_declarations(req)
        schema = schema_of_message(req)
        self.secc.on_frame(V2GTPFrame(payload_type_of(schema), exi.encode(req, schema)), self.now)

    @rule(data=st.data(), kind=st.sampled_from(["DC", "AC"]))
    def happy_path(self, data, kind):
        """A new car sends the requests of a good session in order (its numbers arbitrary), so
        that deep states are reached often; the other rules then disturb it."""
        self.new_car(kind)
        order = ["sap", "setup", "auth_setup", "auth", "discovery", "detail", "selection", "cpd", "schedule"]
        precharges = data.draw(st.integers(1, 5), label="precharge requests")
        order += ["cable_check", "cable_check"] + ["precharge"] * precharges if self.kind == "DC" else []
        order += ["power_delivery", "loop", "loop"]
        for kind in order:
            self.send(kind, data, 0.3, good=True)

    @rule(data=st.data(), n=st.integers(1, 8), dt=st.floats(0.05, 0.5))
    def keep_looping(self, data, n, dt):
        for _ in range(n):
            self.send("loop", data, dt, good=True)

    @rule(payload=st.binary(max_size=40), ptype=st.sampled_from([0x8001, 0x8002, 0x8003, 0x8004, 0x9000]))
    def junk(self, payload, ptype):
        self.secc.on_frame(V2GTPFrame(PayloadType(ptype), payload), self.now)

    @rule(dt=st.floats(0, 90))
    def wait(self, dt):
        self.now += dt
        deadline = self.secc.next_deadline()
        if deadline is not None and self.now >= deadline:
            self.secc.handle_timer(self.now)

    @rule()
    def unplug(self):
        self.secc.on_connection_lost(self.now)

    @rule(setpoint=st.floats(-20000, 20000))
    def new_setpoint(self, setpoint):
        self.charger.supervisor.setpoint_w = setpoint

    # --- invariants ------------------------------------------------------------------------------------
    @invariant()
    def power_only_in_an_authorised_precharged_session(self):
        m = self.stage.measurements(self.now)
        if m.current or m.power:
            ctx = self.secc.ctx
            assert not self.secc.closed and ctx.authorized and ctx.energized
            assert self.kind == "AC" or ctx.precharge_done

    @invariant()
    def discharge_within_the_cars_limits(self):
        m = self.stage.measurements(self.now)
        if m.power >= 0 and m.current >= 0:
            return
        assert self.secc.ctx.bpt, "a unidirectional service discharged"
        assert self.max_discharge_w is not None
        assert -m.power <= self.max_discharge_w + TOLERANCE_W
        if self.kind == "DC" and self.max_discharge_a is not None:
            assert -m.current <= self.max_discharge_a + 0.01
        if self.present_soc is not None and self.min_soc is not None:
            assert self.present_soc > self.min_soc

    @invariant()
    def battery_connected_only_after_precharge(self):
        tolerance = self.secc.config.precharge_tolerance
        for e in self.stage.history.events:
            if e.kind == "ev_connected":
                output, battery = e.value
                assert abs(output - battery) <= tolerance, f"inrush: output {output} V, battery {battery} V"

    @invariant()
    def closed_means_de_energised(self):
        if self.secc.closed:
            m = self.stage.measurements(self.now)
            assert not m.contactors_closed and m.current == 0 and m.power == 0


TestSECCSafety = SECCSafety.TestCase
TestSECCSafety.settings = settings(max_examples=300, stateful_step_count=40, deadline=None,
                                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

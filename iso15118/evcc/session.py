"""The simulated car's session (EVCC), sans-I/O: ISO 15118-20, ISO 15118-2 or DIN SPEC 70121.

``EVCCSession`` produces request frames and consumes response frames; time is passed in. The
car offers its protocols in SupportedAppProtocol (``EVCCConfig.protocols``, priority 1 first);
the charger's choice brings that protocol's table (``iso20``, ``iso2``, ``din``), which maps each
awaited response to its handler, which updates the car and returns the next request (or
schedules it: Ongoing repetitions and the charge-loop period). Every EV timer of the standards
runs here: 2 s per message (5 s for -20 ServiceDetail and the -2 messages that take longer,
0.5 s in the -20 charge loop, 0.25 s for -2/DIN CurrentDemand), 60 s of Ongoing, 40 s of
CableCheck, 10 s (-20) or 7 s (-2, DIN) of PreCharge, 20 s to SessionSetupRes. A timeout, a
failed response code, an unexpected or undecodable message ends the session with the car's
contactors open.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from iso15118 import exi
from iso15118.driver import SessionDriver
from iso15118.messages import AC, APP, CM, DC, NS_ISO20_AC, NS_ISO20_DC, Observer, name_of, schema_of_message
from iso15118.protocols import ISO20, PROTOCOLS, AppProtocol, element_name, payload_schemas, unwrap, wrap
from iso15118.statetable import StateTable, Transition
from iso15118.units import header, rn
from iso15118.v2gtp import V2GTPFrame

from . import handlers_iso2
from .battery import Battery
from .context import CONTROL_MODES, EVCCConfig, EVCCError, EVCCResult, EVState, EVTimers  # noqa: F401
from .din import TABLE as DIN_TABLE
from .handlers import root_certificate_ids
from .iso2 import TABLE as ISO2_TABLE
from .iso20 import TABLE as ISO20_TABLE
from .sap import on_supported_app_protocol

TABLES = {"iso20": ISO20_TABLE, "iso2": ISO2_TABLE, "din": DIN_TABLE}
HANDSHAKE = StateTable("EVCC SupportedAppProtocol", {
    "supportedAppProtocolRes": Transition(on_supported_app_protocol, "SessionSetupRes")}, end="End")
# -2 requests answered within 5 s rather than 2 s (the others; DIN: all 2 s but CurrentDemand)
ISO2_SLOW = frozenset({"ServiceDetailReq", "PaymentDetailsReq", "CertificateInstallationReq", "CertificateUpdateReq",
                       "PowerDeliveryReq"})


class EVCCSession(SessionDriver):
    """One car, one connection. ``start`` gives the first frame; then feed ``on_frame`` and
    call ``handle_timer`` at ``next_deadline``."""

    def __init__(self, battery: Battery, config: EVCCConfig | None = None, *, clock_offset: float = 0.0,
                 tls: bool = True, rng: Callable[[int], bytes] = os.urandom, observer: Observer | None = None):
        self.battery = battery
        self.config = config or EVCCConfig()
        if self.config.service not in ("DC_BPT", "AC_BPT", "DC", "AC"):
            raise ValueError(f"unknown service {self.config.service!r}")
        if self.config.control_mode not in CONTROL_MODES:
            raise ValueError(f"unknown control mode {self.config.control_mode!r}")
        if not (isinstance(self.config.time_scale, (int, float)) and 0 < self.config.time_scale <= 1e6):
            raise ValueError(f"time_scale must be a number in (0, 1e6], got {self.config.time_scale!r}")
        if self.config.auth not in ("eim", "pnc"):
            raise ValueError(f"unknown authorization {self.config.auth!r}")
        installs = self.config.oem_chain and self.config.oem_key and {"iso2", "iso20"} & set(self.config.protocols)
        if self.config.auth == "pnc" and not (self.config.contract_chain and self.config.contract_key) and not installs:
            raise ValueError("Plug & Charge needs a contract certificate chain and key (or, for "
                             "CertificateInstallation, the OEM provisioning certificate and key)")
        bad = [p for p in self.config.protocols if p not in PROTOCOLS]
        if bad or not self.config.protocols:
            raise ValueError(f"protocols are {', '.join(PROTOCOLS)}; got {self.config.protocols!r}")
        if "din" in self.config.protocols and self.config.service.startswith("AC"):
            raise ValueError("DIN SPEC 70121 carries DC only: an AC car cannot offer it")
        if "din" in self.config.protocols and self.config.auth == "pnc" and len(self.config.protocols) == 1:
            raise ValueError("DIN SPEC 70121 has no Plug & Charge")
        super().__init__(observer)

        self.table = HANDSHAKE                    # the chosen protocol's after SupportedAppProtocol
        self.protocol: AppProtocol | None = None
        self.msgs = None                          # DIN/-2: the generated classes of its schema
        self.offered: dict[int, AppProtocol] = {}  # SchemaID → protocol, as offered
        self.last_header = None                   # the header of the response being handled
        self.signature = None                     # DIN/-2: the next request's header signature
        self.responses: dict = {}  # response name → a handler replacing the table's (a test car may swap one)
        self.clock_offset = clock_offset
        self.tls = tls
        self.rng = rng
        self.state = EVState.INIT
        self.service = self.config.service
        self.kind = self.service[:2]
        self.bpt = self.service.endswith("BPT")
        self.session_id = bytes(8)
        self.expected: str | None = None
        self.response_deadline: float | None = None
        self.setup_deadline: float | None = None
        self.phase_started: float | None = None   # first request of a repeated (Ongoing) phase
        self.pending: tuple[float, object, str | None] | None = None  # (when, request, the response it follows)
        self._origin: str | None = None
        self.result = EVCCResult()
        self.contactors_closed = False
        self.gen_challenge: bytes | None = None
        self.auth_services: list[str] = []
        self.parameter_sets: dict[int, dict[str, object]] = {}
        self.schedule_charge_w = 0.0
        self.schedule_discharge_w = 0.0
        self.channel = "Charge"
        self.evse_power_w = 0.0
        self.last_loop_time: float | None = None
        self.loops_done = 0
        self.stopping = False
        self.stop_reason: str | None = None
        self.resumed = False
        self.precharge_finished = False
        self.loop_started = 0.0
        # ISO 15118-2 and DIN 70121
        self.energy_mode = ""
        self.charge_service_id = 1
        self.pmax: list[tuple[int, float]] = []  # the SAScheduleTuple's PMaxSchedule: (start s, watts)
        self.schedule_start = 0.0
        self.sa_tuple_id = 1
        self.phases = 3
        self.evse_nominal_voltage = 230.0
        self.renegotiating = False
        self.renegotiated = False
        self.receipt_meter = None                # MeterInfo of the loop response that asked for a receipt
        self.contract_chain = tuple(self.config.contract_chain)  # replaced by an installation or update
        self.contract_key = self.config.contract_key
        self.certificate_service = False         # -2: the charger offers CertificateInstallation/Update
        self.installation_req = None             # -20: the CertificateInstallationReq, resent unaltered

    def use(self, protocol: AppProtocol) -> None:
        """Run ``protocol`` from the next request on (the charger chose it)."""
        self.protocol = protocol
        self.result.protocol = protocol.name
        self.table = TABLES[protocol.name]
        self.msgs = exi.messages(protocol.schema) if protocol.wrapped else None
        if protocol.wrapped:
            self.bpt = False  # neither DIN nor -2 discharges the car

    def first_request(self, now: float):
        """The protocol's first request after the handshake: SessionSetupReq."""
        if self.protocol is ISO20:
            return self.session_setup_req(now)
        return handlers_iso2.session_setup_req(self, now)

    # --- FrameHandler interface ----------------------------------------------------------------
    def start(self, now: float) -> list[V2GTPFrame]:
        """The first request: supportedAppProtocolReq offering the car's protocols in its order
        (-20 as DC or AC, by the car's service), SchemaID and Priority 1, 2, …"""
        self.setup_deadline = now + self.config.timers.communication_setup
        entries = []
        for i, name in enumerate(self.config.protocols, start=1):
            p = PROTOCOLS[name]
            ns = (NS_ISO20_DC if self.kind == "DC" else NS_ISO20_AC) if p is ISO20 else p.namespaces[0]
            self.offered[i] = p
            entries.append(APP.AppProtocol(ProtocolNamespace=ns, VersionNumberMajor=p.major,
                                           VersionNumberMinor=p.minor, SchemaID=i, Priority=i))
        return self._send(APP.supportedAppProtocolReq(AppProtocol=entries), now)

    def next_deadline(self) -> float | None:
        if self.closed:
            return None
        best = self.response_deadline
        if self.state is not EVState.DONE:  # the earliest, with the comparisons min() would make
            t = self.setup_deadline
            if t is not None and (best is None or t < best):
                best = t
        if self.pending:
            t = self.pending[0]
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, now: float) -> list[V2GTPFrame]:
        if self.closed:
            return []
        if self.pending is not None and now >= self.pending[0]:
            _, req, origin = self.pending
            self.pending = None
            return self._send(req(now) if callable(req) else req, now, origin)
        if self.response_deadline is not None and now >= self.response_deadline:
            self._fail(now, f"timeout waiting for {self.expected}")
        elif self.setup_deadline is not None and now >= self.setup_deadline:
            self._fail(now, "communication setup timeout (no SessionSetupRes in 20 s)")
        return []

    def on_connection_lost(self, now: float) -> None:
        if not self.closed:
            self._fail(now, "connection lost")

    def _abort(self, now: float, detail: str) -> None:
        self._fail(now, detail)

    def on_frame(self, frame: V2GTPFrame, now: float) -> list[V2GTPFrame]:
        if self.closed:
            return []
        if self.expected is None:
            self._fail(now, "a message arrived while no request was outstanding")
            return []
        handshake = self.expected == "supportedAppProtocolRes"
        read = self._read(frame, now, payload_schemas(None if handshake else self.protocol, self.kind))
        if read is None:
            return []
        _, name, msg = read
        if name != self.expected:
            self._fail(now, f"expected {self.expected}, got {name}")
            return []
        _, res, hdr = unwrap(msg)
        self.last_header = hdr
        if hdr is not None and name != "SessionSetupRes" and hdr.SessionID != self.session_id:
            self._fail(now, f"{name} carries another SessionID")
            return []
        code = str(res.ResponseCode)
        if code.startswith("FAILED") or code.startswith("Failed"):
            self._fail(now, f"{name} {code}")
            return []
        self.expected = None
        self.response_deadline = None
        self._origin = name  # what the requests sent or scheduled now follow (checked against the table)
        try:
            entry = self.table.get(name)
            if entry is None:
                raise EVCCError(f"{name} is not in the table of {self.table.name}")
            nxt = self.responses.get(name, entry.handler)(self, res, now)
        except EVCCError as e:
            self._fail(now, str(e))
            return []
        if nxt is None:
            return []
        return self._send(nxt, now)

    # --- sending -----------------------------------------------------------------------------------
    def _send(self, req, now: float, origin: str | None = None) -> list[V2GTPFrame]:
        wrapped = self.protocol is not None and self.protocol.wrapped and type(req) is not APP.supportedAppProtocolReq
        if wrapped:  # DIN/-2: the element in its V2G_Message, with the session's ID
            schema = self.protocol.schema
            name = element_name(schema, req)
            req = wrap(schema, req, self.session_id, self.signature, name)
            self.signature = None
        else:
            name, schema = name_of(req), schema_of_message(req)
        self.expected = name[:-3] + "Res"
        origin = origin or self._origin
        if origin is not None:
            self.table.check(origin, self.expected)  # UndeclaredTransition: a bug in the car's handlers
        self.response_deadline = now + self._timeout(name)
        self.state = EVState.WAITING
        self._origin = None
        return [self._write(now, req, schema)]

    def _timeout(self, name: str) -> float:
        """The message timeout of the standard for the request ``name``."""
        t = self.config.timers
        if self.protocol is None or self.protocol is ISO20:
            return t.service_detail if name in ("ServiceDetailReq", "CertificateInstallationReq") else \
                t.charge_loop if name.endswith("ChargeLoopReq") else t.message
        if name == "CurrentDemandReq":
            return t.current_demand
        return t.service_detail if self.protocol.name == "iso2" and name in ISO2_SLOW else t.message

    def _later(self, when: float, req) -> None:
        """Send ``req`` (or ``req()``, built at send time) at ``when``."""
        self.pending = (when, req, self._origin)
        self.state = EVState.SCHEDULED_SEND

    def _repeat(self, now: float, limit: float, what: str, req) -> None:
        if self.phase_started is None:
            self.phase_started = now
        if now - self.phase_started > limit:
            raise EVCCError(f"{what} still ongoing after {limit:g} s")
        self._later(now + self.config.poll_interval, req)

    def _phase_done(self) -> None:
        self.phase_started = None

    def header(self, now: float, signature=None, schema: str = "iso20_cm"):
        return header(self.session_id, now + self.clock_offset, signature, schema)

    def header_et(self, now: float):
        """The header for the energy-transfer schema of this session (-20 DC or AC)."""
        return header(self.session_id, now + self.clock_offset, None, "iso20_dc" if self.kind == "DC" else "iso20_ac")

    def _finish(self, now: float, ok: bool, reason: str) -> None:
        self.open_contactors()
        self.closed = True
        self.pending = None
        self.response_deadline = None
        self.expected = None
        self.state = EVState.DONE if ok else EVState.FAILED
        self.result.ok, self.result.reason = ok, reason
        self.result.session_id = self.session_id
        self.result.loops = self.loops_done
        self.result.channel = self.channel

    def _fail(self, now: float, reason: str) -> None:
        self._finish(now, False, reason)

    def open_contactors(self) -> None:
        self.contactors_closed = False
        self.evse_power_w = 0.0

    # --- the car's numbers ------------------------------------------------------------------------
    def _account(self, now: float) -> None:
        """Energy through the inlet since the last loop, at the power the EVSE reported."""
        if self.last_loop_time is not None and self.contactors_closed:
            dt = (now - self.last_loop_time) * self.config.time_scale
            p = self.evse_power_w
            self.battery.apply(p, dt)
            if p >= 0:
                self.result.charged_wh += p * dt / 3600.0
            else:
                self.result.discharged_wh -= p * dt / 3600.0
        self.last_loop_time = now

    def _display(self):
        b = self.battery
        return CM.DisplayParameters(PresentSOC=int(b.soc), MinimumSOC=int(round(b.min_soc)),
                                    TargetSOC=int(round(b.target_soc)), MaximumSOC=100,
                                    ChargingComplete=b.soc >= b.target_soc,
                                    BatteryEnergyCapacity=rn(b.capacity_kwh * 1000.0))

    def _energy(self) -> dict:
        b = self.battery
        return dict(EVTargetEnergyRequest=rn(max(0.0, b.energy_to(b.target_soc))),
                    EVMaximumEnergyRequest=rn(max(0.0, b.energy_to(100.0))),
                    EVMinimumEnergyRequest=rn(b.energy_to(b.min_soc)))

    def _v2x_energy(self) -> dict:
        b = self.battery
        return dict(EVMaximumV2XEnergyRequest=rn(max(0.0, b.energy_to(100.0))),
                    EVMinimumV2XEnergyRequest=rn(b.energy_to(b.min_soc)))

    # --- requests --------------------------------------------------------------------------------------
    def session_setup_req(self, now: float):
        sid = self.config.resume_session_id
        self.session_id = sid if sid is not None else bytes(8)
        return CM.SessionSetupReq(Header=self.header(now), EVCCID=self.config.evcc_id)

    def certificate_installation_req(self, now: float):
        """-20 Plug & Charge without a contract: the OEM provisioning chain (signed with its key)
        and the V2G roots the car trusts; a repetition (Ongoing) resends the same request."""
        if self.installation_req is None:
            from iso15118 import xmldsig
            chain = self.config.oem_chain
            prov = CM.SignedCertificateChain(Id="id1", Certificate=chain[0], SubCertificates=CM.SubCertificates(
                Certificate=list(chain[1:])) if chain[1:] else None)
            sig = xmldsig.sign([xmldsig.SignedElement(prov, "OEMProvisioningCertificateChain", "iso20_cm")],
                               self.config.oem_key)
            self.installation_req = CM.CertificateInstallationReq(
                Header=self.header(now, sig), OEMProvisioningCertificateChain=prov,
                ListOfRootCertificateIDs=root_certificate_ids(self.config.v2g_roots),
                MaximumContractCertificateChains=1)
        return self.installation_req

    def authorization_req(self, now: float):
        if self.config.auth == "pnc":
            mode = CM.PnC_AReqAuthorizationMode(
                Id="id1", GenChallenge=self.gen_challenge,
                ContractCertificateChain=CM.ContractCertificateChain(
                    Certificate=self.contract_chain[0],
                    SubCertificates=CM.SubCertificates(Certificate=list(self.contract_chain[1:]))))
            from iso15118 import xmldsig
            sig = xmldsig.sign([xmldsig.SignedElement(mode, "PnC_AReqAuthorizationMode", "iso20_cm")],
                               self.contract_key)
            return CM.AuthorizationReq(Header=self.header(now, sig), SelectedAuthorizationService="PnC",
                                       PnC_AReqAuthorizationMode=mode)
        return CM.AuthorizationReq(Header=self.header(now), SelectedAuthorizationService="EIM",
                                   EIM_AReqAuthorizationMode=CM.EIM_AReqAuthorizationMode())

    def service_discovery_req(self, now: float):
        return CM.ServiceDiscoveryReq(Header=self.header(now))

    def cpd_req(self, now: float):
        b = self.battery
        common = dict(EVMaximumChargePower=rn(b.max_charge_power), EVMinimumChargePower=rn(0))
        if self.kind == "DC":
            common.update(EVMaximumChargeCurrent=rn(b.max_charge_current), EVMinimumChargeCurrent=rn(0),
                          EVMaximumVoltage=rn(b.voltage_max), EVMinimumVoltage=rn(b.voltage_min),
                          TargetSOC=int(round(b.target_soc)))
            if self.bpt:
                mode = DC.BPT_DC_CPDReqEnergyTransferMode(
                    **common, EVMaximumDischargePower=rn(b.max_discharge_power), EVMinimumDischargePower=rn(0),
                    EVMaximumDischargeCurrent=rn(b.max_discharge_current), EVMinimumDischargeCurrent=rn(0))
                return DC.DC_ChargeParameterDiscoveryReq(Header=self.header_et(now), BPT_DC_CPDReqEnergyTransferMode=mode)
            return DC.DC_ChargeParameterDiscoveryReq(Header=self.header_et(now),
                                                     DC_CPDReqEnergyTransferMode=DC.DC_CPDReqEnergyTransferMode(**common))
        if self.bpt:
            mode = AC.BPT_AC_CPDReqEnergyTransferMode(**common, EVMaximumDischargePower=rn(b.max_discharge_power),
                                                      EVMinimumDischargePower=rn(0))
            return AC.AC_ChargeParameterDiscoveryReq(Header=self.header_et(now), BPT_AC_CPDReqEnergyTransferMode=mode)
        return AC.AC_ChargeParameterDiscoveryReq(Header=self.header_et(now),
                                                 AC_CPDReqEnergyTransferMode=AC.AC_CPDReqEnergyTransferMode(**common))

    def schedule_exchange_req(self, now: float):
        b = self.battery
        departure = self.config.departure_in
        if self.config.control_mode == "dynamic":
            mode = CM.Dynamic_SEReqControlMode(DepartureTime=departure, MinimumSOC=int(round(b.min_soc)),
                                               TargetSOC=int(round(b.target_soc)), **self._energy(),
                                               **(self._v2x_energy() if self.bpt else {}))
            return CM.ScheduleExchangeReq(Header=self.header(now), MaximumSupportingPoints=24,
                                          Dynamic_SEReqControlMode=mode)
        return CM.ScheduleExchangeReq(Header=self.header(now), MaximumSupportingPoints=24,
                                      Scheduled_SEReqControlMode=CM.Scheduled_SEReqControlMode(
                                          DepartureTime=departure, **self._energy()))

    def precharge_req(self, now: float, processing: str = "Ongoing"):
        v = rn(self.battery.voltage())
        return DC.DC_PreChargeReq(Header=self.header_et(now), EVProcessing=processing, EVPresentVoltage=v,
                                  EVTargetVoltage=v)

    def power_delivery_req(self, now: float, progress: str):
        kwargs = {}
        if progress == "Start":
            power = self._wanted_power()
            entries = CM.EVPowerProfileEntryList(EVPowerProfileEntry=[CM.PowerScheduleEntry(
                Duration=self.config.departure_in, Power=rn(power))])
            if self.config.control_mode == "scheduled":
                ctrl = {"Scheduled_EVPPTControlMode": CM.Scheduled_EVPPTControlMode(SelectedScheduleTupleID=1)}
            else:
                ctrl = {"Dynamic_EVPPTControlMode": CM.Dynamic_EVPPTControlMode()}
            kwargs["EVPowerProfile"] = CM.EVPowerProfile(TimeAnchor=int(now + self.clock_offset),
                                                         EVPowerProfileEntries=entries, **ctrl)
            if self.bpt:
                kwargs["BPT_ChannelSelection"] = self.channel
        return CM.PowerDeliveryReq(Header=self.header(now), EVProcessing="Finished", ChargeProgress=progress,
                                   **kwargs)

    def _wanted_power(self) -> float:
        """Scheduled mode: the schedule's power within the battery's limits (negative = discharge)."""
        b = self.battery
        if self.channel == "Discharge":
            return -min(self.schedule_discharge_w, b.discharge_limit())
        return min(self.schedule_charge_w, b.charge_limit())

    def charge_loop_req(self, now: float):
        b = self.battery
        self._account(now)
        meter = self.loops_done + 1 >= self.config.loops
        scheduled = self.config.control_mode == "scheduled"
        prefix = ("BPT_" if self.bpt else "") + ("Scheduled_" if scheduled else "Dynamic_")
        v = b.voltage()
        charge_limit = b.charge_limit()  # each limit once: the battery does not change while the request is built
        discharge_limit = b.discharge_limit() if self.bpt else 0.0
        zero = rn(0)
        limits = dict(EVMaximumChargePower=rn(charge_limit), EVMinimumChargePower=zero)
        if self.bpt:
            limits.update(EVMaximumDischargePower=rn(discharge_limit), EVMinimumDischargePower=zero)
        if self.kind == "DC":
            limits.update(EVMaximumChargeCurrent=rn(b.max_charge_current if charge_limit > 0 else 0),
                          EVMaximumVoltage=rn(b.voltage_max), EVMinimumVoltage=rn(b.voltage_min))
            if self.bpt:
                limits["EVMaximumDischargeCurrent"] = rn(b.max_discharge_current if discharge_limit > 0 else 0)
            if scheduled:
                mode = getattr(DC, prefix + "DC_CLReqControlMode")(
                    EVTargetCurrent=rn(self._wanted_power() / v), EVTargetVoltage=rn(b.voltage_max), **limits)
            else:
                mode = getattr(DC, prefix + "DC_CLReqControlMode")(
                    **self._energy(), **limits, **(self._v2x_energy() if self.bpt else {}))
            return DC.DC_ChargeLoopReq(Header=self.header_et(now), DisplayParameters=self._display(),
                                       MeterInfoRequested=meter, EVPresentVoltage=rn(v),
                                       **{prefix + "DC_CLReqControlMode": mode})
        present = rn(self.evse_power_w)
        if scheduled:
            mode = getattr(AC, prefix + "AC_CLReqControlMode")(EVPresentActivePower=present, **limits)
        else:
            mode = getattr(AC, prefix + "AC_CLReqControlMode")(
                **self._energy(), **limits, EVPresentActivePower=present, EVPresentReactivePower=rn(0),
                **(self._v2x_energy() if self.bpt else {}))
        return AC.AC_ChargeLoopReq(Header=self.header_et(now), DisplayParameters=self._display(),
                                   MeterInfoRequested=meter, **{prefix + "AC_CLReqControlMode": mode})

    def session_stop_req(self, now: float):
        return CM.SessionStopReq(Header=self.header(now), ChargingSession=self.config.end)

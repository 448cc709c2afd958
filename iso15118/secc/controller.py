"""The SECC's view of the hardware below it and the systems above it, as two interfaces:

- ``PowerStage``: the power electronics a hardware driver implements — limits, measurements,
  contactors, isolation monitoring, targets, de-energise, emergency stop, faults;
- ``Supervisor``: what decides above the charger — authorization, consent to discharge, the
  setpoint (and the plan ahead), what to do with the car's needs and the session's events. The
  OCPP bridge is one (``ocpp_bridge.OCPPBridge``), ``supervisor.LocalSupervisor`` a standalone
  one with a fixed or scripted setpoint.

``EVSEController`` puts one of each together for the SECC. ``iso15118.secc.power_stage`` ships
simulated DC and AC stages. All calls take ``now`` (seconds, monotonic) so that the session
stays sans-I/O and testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from .events import EVChargingNeeds, GeneratorMode, SessionEvent


class AuthorizationStatus(Enum):
    ACCEPTED = "Accepted"
    ONGOING = "Ongoing"
    REJECTED = "Rejected"


class ContractStatus(Enum):
    """A contract certificate's revocation status as the supervisor learnt it (OCSP through the CSMS)."""

    GOOD = "Good"
    REVOKED = "Revoked"
    UNKNOWN = "Unknown"    # no answer: SECCConfig.contract_status_unknown decides
    ONGOING = "Ongoing"    # asked, not answered yet: the car waits (EVSEProcessing=Ongoing)


@dataclass(frozen=True)
class EVCertificateRequest:
    """A car's CertificateInstallation (or -2 CertificateUpdate) for the CSMS, as OCPP
    Get15118EVCertificate carries it: the request message's namespace (iso15118SchemaVersion),
    the action (Install, Update), the whole request message as EXI, and a key that is the same
    for a repetition of the same request (its signature value)."""

    namespace: str
    action: str
    exi: bytes
    key: bytes


@dataclass(frozen=True)
class EVCertificateAnswer:
    """The CSMS's answer: the response message as EXI (None: the CSMS had none to give), or
    ``ongoing`` while it is awaited."""

    exi: bytes | None = None
    ongoing: bool = False


class IsolationStatus(Enum):
    ONGOING = "Ongoing"
    VALID = "Valid"
    FAULT = "Fault"


@dataclass(frozen=True)
class EVSELimits:
    """What the power stage can do (positive numbers; discharge limits are magnitudes)."""

    max_charge_power: float = 11000.0
    min_charge_power: float = 0.0
    max_charge_current: float = 32.0
    min_charge_current: float = 0.0
    max_discharge_power: float = 11000.0
    min_discharge_power: float = 0.0
    max_discharge_current: float = 32.0
    min_discharge_current: float = 0.0
    max_voltage: float = 500.0
    min_voltage: float = 150.0
    nominal_voltage: float = 230.0   # AC: phase voltage
    nominal_frequency: float = 50.0  # AC
    bidirectional: bool = True


@dataclass(frozen=True)
class PowerCommand:
    """What the SECC asks of the power stage: a voltage target and a current (negative =
    current out of the battery, i.e. discharge). DC uses both; AC uses ``power``.

    ``ev_voltage`` (DC) is the car's present voltage as it reports it (EVPresentVoltage), given
    from PowerDelivery(Start) until Stop, while the car's contactors are closed and its battery
    holds the output; None before (CableCheck, PreCharge: the stage controls its voltage into an
    open circuit). A hardware stage measures its output instead and may use it as a plausibility
    check; the simulated stage takes it as the battery's voltage."""

    voltage: float = 0.0
    current: float = 0.0
    power: float = 0.0
    ev_voltage: float | None = None
    grid_forming: bool = False  # the AC side forms an island: the current/power bound what it may give

    def __init__(self, voltage: float = 0.0, current: float = 0.0, power: float = 0.0, ev_voltage: float | None = None,
                 grid_forming: bool = False) -> None:
        """The fields in their order, with their defaults (the generated frozen __init__ sets each
        through object.__setattr__, several times slower, and a command is made every charge loop)."""
        self.__dict__.update(voltage=voltage, current=current, power=power, ev_voltage=ev_voltage,
                             grid_forming=grid_forming)


@dataclass
class Measurements:
    voltage: float = 0.0
    current: float = 0.0
    power: float = 0.0
    energy_imported_wh: float = 0.0   # into the car
    energy_exported_wh: float = 0.0   # out of the car (V2H)
    contactors_closed: bool = False


class PowerStage(Protocol):
    """The charger's power electronics, as the SECC drives them."""

    def limits(self) -> EVSELimits: ...
    def measurements(self, now: float) -> Measurements: ...
    def close_contactors(self, now: float) -> bool: ...
    def open_contactors(self, now: float) -> None: ...
    def start_isolation_check(self, now: float) -> None: ...
    def isolation_status(self, now: float) -> IsolationStatus: ...
    def set_target(self, command: PowerCommand, now: float) -> None: ...
    def de_energise(self, now: float) -> None:
        """Current to zero, then contactors open: every abort path ends here."""
    def emergency_stop(self, reason: str, now: float) -> None: ...
    def fault(self, now: float) -> str | None:
        """A hardware fault that forbids energy transfer (emergency stop, isolation fault,
        overtemperature), or None. The SECC checks it before and during energy transfer."""


class Supervisor(Protocol):
    """What decides above the charger (OCPP, an energy manager, a fixed configuration)."""

    def authorize(self, method: str, identity: str, now: float) -> AuthorizationStatus:
        """EIM or PnC (``identity``: the EMAID); ONGOING keeps the car waiting (EVSEProcessing)."""
    def energy_transfer_allowed(self, bidirectional: bool, now: float) -> bool: ...
    def setpoint(self, now: float) -> float:
        """The power wanted now, watts: positive charges the car, negative discharges it."""
    def generator_mode(self, now: float) -> GeneratorMode:
        """GRID_FORMING while the charger must form an island for the house (the stage then
        supplies the house load, within the setpoint's magnitude); GRID_FOLLOWING otherwise."""
    def power_plan(self, now: float, horizon: float) -> list[tuple[float, float]] | None:
        """The setpoint's steps ahead, [(duration s, watts), …], for a Scheduled
        ScheduleExchangeRes; None: the present setpoint for the whole horizon."""
    def stop_requested(self, now: float) -> str | None:
        """Why the session must end now (a CSMS's RequestStopTransaction, a reset), or None."""
    def forwards_certificates(self, now: float) -> bool:
        """Whether ``ev_certificate`` forwards car certificate requests (to a CSMS) now."""
    def ev_certificate(self, request: EVCertificateRequest, now: float) -> EVCertificateAnswer | None:
        """The CSMS's answer to a car's certificate request (ongoing until it comes); None: not
        forwarded (the SECC answers from its own provisioning service, if it has one)."""
    def contract_status(self, chain: tuple[bytes, ...], now: float) -> ContractStatus:
        """The revocation status of a contract chain (DER, leaf first) the SECC validated."""
    def ev_charging_needs(self, needs: EVChargingNeeds, now: float) -> None:
        """The car's parameters from ChargeParameterDiscovery/ScheduleExchange (for OCPP)."""
    def session_event(self, event: SessionEvent, now: float) -> None:
        """Started, authorized, energy transfer, SoC, faults, ended: for logging and OCPP."""


@dataclass(frozen=True)
class EVSEController:
    """One charger as the SECC sees it: its power stage and its supervisor."""

    stage: PowerStage
    supervisor: Supervisor


@dataclass
class PowerEvent:
    """One change at the power stage, kept by the simulators for safety tests."""

    time: float
    kind: str  # 'contactors' | 'target' | 'deenergise' | 'estop' | 'ev_connected' (output V, battery V)
    value: object = None


@dataclass
class StageHistory:
    events: list[PowerEvent] = field(default_factory=list)

    def add(self, now: float, kind: str, value=None) -> None:
        self.events.append(PowerEvent(now, kind, value))

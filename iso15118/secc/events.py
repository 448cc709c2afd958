"""What the charger's session tells its supervisor (the OCPP bridge, an energy manager, a log):
typed, frozen events, the car's charging needs, and why a session ended — an enum, so nobody
above has to read a message's text to know what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class EndReason(Enum):
    """Why a charging session ended (the detail text says more, for people)."""

    STOPPED_BY_EV = "StoppedByEV"            # SessionStop Terminate
    PAUSED = "Paused"                        # SessionStop Pause (the session may be resumed)
    SEQUENCE_TIMEOUT = "SequenceTimeout"     # the car went silent (a session or setup timer)
    CONNECTION_LOST = "ConnectionLost"       # TCP/TLS closed under us
    PROTOCOL_ERROR = "ProtocolError"         # undecodable, out of order, wrong session, wrong payload type
    REFUSED = "Refused"                      # a request answered with a FAILED response code
    FAULT = "Fault"                          # the power stage reported a fault
    EMERGENCY_STOP = "EmergencyStop"         # the stage's emergency stop
    STOPPED_BY_SUPERVISOR = "StoppedBySupervisor"  # the CSMS or the charger's operator asked to stop


class GeneratorMode(Enum):
    """ISO 15118-20 ServiceDetail parameter GeneratorMode: how the charger's inverter behaves on
    the AC side while it discharges the car."""

    GRID_FOLLOWING = 1   # follows a grid that is there (current source)
    GRID_FORMING = 2     # forms the grid itself (voltage source): an island for the house


@dataclass(frozen=True, kw_only=True)
class EVChargingNeeds:
    """The car's parameters, in SI units, as far as the session knows them: from -20
    ChargeParameterDiscovery (``control_mode`` None) and again after ScheduleExchange; from DIN
    70121 and ISO 15118-2 ChargeParameterDiscovery (Scheduled: their only control mode; again
    after each renegotiation)."""

    service: str                             # DC | DC_BPT | AC | AC_BPT
    control_mode: str | None = None          # Scheduled | Dynamic (after ScheduleExchange)
    protocol: str = "iso20"                  # iso20 | iso2 | din
    energy_transfer_mode: str | None = None  # -2/DIN RequestedEnergyTransferMode (DC_extended, AC_three_phase_core…)
    max_charge_power: float | None = None    # W
    min_charge_power: float | None = None
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None
    max_charge_current: float | None = None  # A (DC)
    max_discharge_current: float | None = None
    max_voltage: float | None = None         # V (DC)
    min_voltage: float | None = None
    target_soc: float | None = None          # %
    min_soc: float | None = None             # % the car keeps for itself (Dynamic MinimumSOC)
    departure_time: int | None = None        # s from now
    target_energy: float | None = None       # Wh to the target SoC
    max_energy: float | None = None          # Wh to the maximum SoC
    min_energy: float | None = None          # Wh to the minimum SoC
    min_v2x_energy: float | None = None      # Wh to the lower end of the V2X range (positive: below it)
    max_v2x_energy: float | None = None      # Wh to the upper end of the V2X range
    # -2/DIN: AC_EVChargeParameter (per phase) and DC_EVChargeParameter
    min_charge_current: float | None = None  # A (-2 AC EVMinCurrent)
    energy_amount: float | None = None       # Wh the car asks for (-2 AC EAmount, DC EVEnergyRequest)
    energy_capacity: float | None = None     # Wh (DC EVEnergyCapacity)
    present_soc: float | None = None         # % (DC_EVStatus EVRESSSOC)
    full_soc: float | None = None            # % (DC FullSOC)
    bulk_soc: float | None = None            # % (DC BulkSOC)


@dataclass(frozen=True, kw_only=True)
class SessionEvent:
    """Base of the events; ``SessionEnded`` is always the last of a session."""


@dataclass(frozen=True, kw_only=True)
class SessionStarted(SessionEvent):
    evcc_id: str
    session_id: str
    resumed: bool


@dataclass(frozen=True, kw_only=True)
class Authorized(SessionEvent):
    method: str          # EIM | PnC
    emaid: str           # the contract's EMAID ("" for EIM)


@dataclass(frozen=True, kw_only=True)
class EnergyTransferStarted(SessionEvent):
    channel: str         # Charge | Discharge
    control_mode: str
    ev_power_profile: tuple[tuple[int, float], ...] | None = None  # (duration s, W) the car plans
    time_anchor: int | None = None


@dataclass(frozen=True, kw_only=True)
class EnergyTransferStopped(SessionEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class SoCChanged(SessionEvent):
    soc: float           # % the car's PresentSOC


@dataclass(frozen=True, kw_only=True)
class PowerChanged(SessionEvent):
    """The power flowing moved by more than ``POWER_CHANGE`` since it was last reported (OCPP 2.1
    TransactionEvent triggerReason ChargingRateChanged): a manager sees a new rate at once, not at
    the next periodic meter value."""

    power_w: float       # measured, + into the car / − out of it


POWER_CHANGE = (100.0, 0.05)  # W and share: a change beyond max(100 W, 5 %) is reported


@dataclass(frozen=True, kw_only=True)
class StageFault(SessionEvent):
    reason: str
    emergency: bool = False


@dataclass(frozen=True, kw_only=True)
class SessionEnded(SessionEvent):
    reason: EndReason
    detail: str          # e.g. "SessionStopRes OK", "sequence timeout in WaitChargeLoop"
    state: str           # the state the session was in

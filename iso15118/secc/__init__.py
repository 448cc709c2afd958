"""The charger side (SECC) of ISO 15118-20, ISO 15118-2 and DIN SPEC 70121: the sans-I/O session
(SupportedAppProtocol chooses the protocol and its table), the two interfaces below and above it (``PowerStage``, ``Supervisor``), typed session events, simulated power stages and a
standalone supervisor."""

from .connector import Connector, StageNotOwned
from .controller import (AuthorizationStatus, EVSEController, EVSELimits, IsolationStatus, Measurements,
                         PowerCommand, PowerStage, Supervisor)
from .events import (Authorized, EndReason, EnergyTransferStarted, EnergyTransferStopped, EVChargingNeeds,
                     GeneratorMode, SessionEnded, SessionEvent, SessionStarted, SoCChanged, StageFault)
from .power_stage import SimulatedPowerStage
from .session import SECCConfig, SECCSession, State
from .supervisor import LocalSupervisor, SupervisorBase, simulated_charger

__all__ = ["AuthorizationStatus", "Authorized", "Connector", "EVChargingNeeds", "EVSEController", "EVSELimits",
           "EndReason", "EnergyTransferStarted", "EnergyTransferStopped", "GeneratorMode", "IsolationStatus",
           "LocalSupervisor", "Measurements", "PowerCommand", "PowerStage", "SECCConfig", "SECCSession",
           "SessionEnded", "SessionEvent", "SessionStarted", "SimulatedPowerStage", "SoCChanged", "StageFault",
           "StageNotOwned", "State", "Supervisor", "SupervisorBase", "simulated_charger"]

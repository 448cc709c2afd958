"""The charger side of ISO 15118-20 (SECC): sans-I/O session, EVSEController interface,
simulated power stages."""

from .connector import Connector, StageNotOwned
from .controller import (AuthorizationStatus, EVSEController, EVSELimits, IsolationStatus, Measurements,
                         PowerCommand)
from .power_stage import SimulatedPowerStage
from .session import SECCConfig, SECCSession, State

__all__ = ["AuthorizationStatus", "Connector", "EVSEController", "EVSELimits", "IsolationStatus", "Measurements",
           "PowerCommand", "SECCConfig", "SECCSession", "SimulatedPowerStage", "StageNotOwned", "State"]

"""The simulated car (EVCC): battery model and sans-I/O session (ISO 15118-20, ISO 15118-2 or DIN
SPEC 70121, offered with priorities in SupportedAppProtocol)."""

from .battery import Battery
from .session import EVCCConfig, EVCCError, EVCCResult, EVCCSession, EVTimers

__all__ = ["Battery", "EVCCConfig", "EVCCError", "EVCCResult", "EVCCSession", "EVTimers"]

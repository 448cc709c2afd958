"""The simulated car (EVCC): battery model and sans-I/O ISO 15118-20 session."""

from .battery import Battery
from .session import EVCCConfig, EVCCError, EVCCResult, EVCCSession, EVTimers

__all__ = ["Battery", "EVCCConfig", "EVCCError", "EVCCResult", "EVCCSession", "EVTimers"]

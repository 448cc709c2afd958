"""Supervisors for the SECC: ``SupervisorBase`` with the defaults of the optional parts, and
``LocalSupervisor``, a charger that decides on its own (a fixed or scripted setpoint, a list of
accepted contracts) — what `v2h secc` runs and what the session tests use. It keeps every event
and the car's needs for inspection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .controller import (
    AuthorizationStatus,
    ContractStatus,
    EVCertificateAnswer,
    EVCertificateRequest,
    EVSEController,
)
from .events import EVChargingNeeds, GeneratorMode, SessionEnded, SessionEvent
from .power_stage import SimulatedPowerStage


class SupervisorBase:
    """The parts of ``Supervisor`` a simple supervisor may leave as they are."""

    def generator_mode(self, now: float) -> GeneratorMode:
        return GeneratorMode.GRID_FOLLOWING

    def power_plan(self, now: float, horizon: float) -> list[tuple[float, float]] | None:
        return None

    def stop_requested(self, now: float) -> str | None:
        return None

    def forwards_certificates(self, now: float) -> bool:
        return False

    def ev_certificate(self, request: EVCertificateRequest, now: float) -> EVCertificateAnswer | None:
        return None

    def contract_status(self, chain: tuple[bytes, ...], now: float) -> ContractStatus:
        return ContractStatus.UNKNOWN

    def ev_charging_needs(self, needs: EVChargingNeeds, now: float) -> None:
        pass

    def session_event(self, event: SessionEvent, now: float) -> None:
        pass


@dataclass
class LocalSupervisor(SupervisorBase):
    """A charger's own management: accept (optionally after ``authorization_delay`` s, and only
    ``accepted_identities`` if given), allow discharge if ``allow_bidirectional``, and hold
    ``setpoint_w`` (a number, or a function of ``now``)."""

    setpoint_w: float | Callable[[float], float] = 7000.0
    authorization_delay: float = 0.0
    accepted_identities: set[str] | None = None  # None: accept everyone
    allow_bidirectional: bool = True
    island: bool = False                          # form an island for the house (GeneratorMode 2)
    needs: EVChargingNeeds | None = None
    events: list[tuple[float, SessionEvent]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._auth_started: float | None = None

    def authorize(self, method: str, identity: str, now: float) -> AuthorizationStatus:
        if self._auth_started is None:
            self._auth_started = now
        if now - self._auth_started < self.authorization_delay:
            return AuthorizationStatus.ONGOING
        if self.accepted_identities is not None and identity not in self.accepted_identities:
            return AuthorizationStatus.REJECTED
        return AuthorizationStatus.ACCEPTED

    def energy_transfer_allowed(self, bidirectional: bool, now: float) -> bool:
        return self.allow_bidirectional or not bidirectional

    def setpoint(self, now: float) -> float:
        return self.setpoint_w(now) if callable(self.setpoint_w) else float(self.setpoint_w)

    def generator_mode(self, now: float) -> GeneratorMode:
        return GeneratorMode.GRID_FORMING if self.island else GeneratorMode.GRID_FOLLOWING

    def ev_charging_needs(self, needs: EVChargingNeeds, now: float) -> None:
        self.needs = needs

    def session_event(self, event: SessionEvent, now: float) -> None:
        self.events.append((now, event))
        if isinstance(event, SessionEnded):
            self._auth_started = None

    def kinds(self) -> list[str]:
        """The events' class names in order (for tests and logs)."""
        return [type(e).__name__ for _, e in self.events]


STAGE_FIELDS = ("kind", "stage_limits", "isolation_time", "voltage_ramp", "isolation_fault", "history", "time_scale")


def simulated_charger(kind: str = "DC", **kw) -> EVSEController:
    """A simulated power stage (``kind``, ``stage_limits``, ``isolation_time``, ``voltage_ramp``,
    ``isolation_fault``) under a ``LocalSupervisor`` (``setpoint_w``, ``authorization_delay``,
    ``accepted_identities``, ``allow_bidirectional``, ``island``)."""
    stage_kw = {k: kw.pop(k) for k in list(kw) if k in STAGE_FIELDS}
    return EVSEController(SimulatedPowerStage(kind=kind, **stage_kw), LocalSupervisor(**kw))

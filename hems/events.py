"""The controller's typed event log: every decision it takes, with the reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    t: float
    reason: str

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict:
        d = {"kind": self.kind}
        d.update({k: getattr(self, k) for k in self.__slots__ if k != "__weakref__"})
        d["t"] = self.t
        d["reason"] = self.reason
        return d


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseChanged(Event):
    old: str
    new: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CircuitSwitched(Event):
    circuit: str
    on: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class AlarmRaised(Event):
    code: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AlarmCleared(Event):
    code: str

"""A simulated contactor or relay: travel time, auxiliary feedback, failure modes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ContactSim:
    closed: bool = False                 # where the contact physically is
    travel_s: float = 0.05               # from command to the new position
    stuck: str = ""                      # "closed": cannot open; "open": cannot close
    feedback_lost: bool = False          # the auxiliary contact's wire is cut: reads nothing
    target: bool = False
    move_at: float | None = None

    def __post_init__(self) -> None:
        self.target = self.closed

    def command(self, close: bool, now: float) -> None:
        if close != self.target:
            self.target = close
            self.move_at = now + self.travel_s if close != self.closed else None

    def advance(self, now: float) -> None:
        if self.move_at is not None and now >= self.move_at:
            self.move_at = None
            if self.target and self.stuck != "open":
                self.closed = True
            elif not self.target and self.stuck != "closed":
                self.closed = False

    def clear(self, now: float) -> None:
        self.stuck, self.feedback_lost = "", False
        if self.closed != self.target:
            self.move_at = now + self.travel_s

    def feedback(self) -> bool | None:
        return None if self.feedback_lost else self.closed

    def deadline(self) -> float | None:
        return self.move_at

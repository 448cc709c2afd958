"""One connector and its power stage: at most one session owns it at a time.

A charger has one power stage per connector. Many TCP/TLS connections may reach the charger at
once (a second car's controller, a stale connection, an attacker with a valid certificate), but
only one of them is the car on the cable: the first session whose SessionSetup is accepted owns
the stage until it ends; a SessionSetup while it is owned is refused (see
``handlers.session_setup``). A session that does not own the stage cannot reach it at all
(``SECCSession.controller`` raises ``StageNotOwned``), so its timeouts, its lost connection and
its de-energise path leave the owner's power alone.

A ``Connector`` made by a session for itself (a controller given directly to ``SECCSession``,
as in-memory pairs and one-stage-per-connection simulations do) is owned by that session from
the start.
"""

from __future__ import annotations

from .controller import EVSEController


class StageNotOwned(RuntimeError):
    """A session touched a power stage it does not own: a bug, never a peer's doing."""


class Connector:
    """The power stage of one connector and the session that owns it, if any."""

    def __init__(self, controller: EVSEController):
        self.controller = controller
        self.owner = None  # the SECCSession that holds the stage

    @property
    def busy(self) -> bool:
        return self.owner is not None

    def acquire(self, session) -> bool:
        """Take the stage for ``session``; False if another session owns it."""
        if self.owner is None or self.owner is session:
            self.owner = session
            return True
        return False

    def release(self, session) -> None:
        """Give the stage back (only its owner can); the caller has de-energised it."""
        if self.owner is session:
            self.owner = None

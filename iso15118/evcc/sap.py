"""SupportedAppProtocol on the car: the charger chose one of the protocols the car offered
(by its SchemaID); that protocol's table takes over and its first request goes out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .context import EVCCError

if TYPE_CHECKING:
    from .session import EVCCSession


def on_supported_app_protocol(s: EVCCSession, res, now: float):
    protocol = s.offered.get(res.SchemaID) if res.SchemaID is not None else None
    if protocol is None:
        raise EVCCError(f"the charger chose SchemaID {res.SchemaID}, which the car did not offer")
    s.use(protocol)
    return s.first_request(now)

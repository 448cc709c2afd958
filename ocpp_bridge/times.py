"""OCPP dateTime values (RFC 3339, UTC) to and from Unix seconds."""

from __future__ import annotations

import math
from datetime import datetime, timezone


def iso(t: float) -> str:
    """Unix seconds as an OCPP dateTime (UTC, milliseconds)."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float | None:
    """An OCPP dateTime as Unix seconds, None if it is not one (or out of range); a time without
    its offset is read as UTC."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError, TypeError):
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    try:
        value = t.timestamp()
    except (OverflowError, ValueError):
        return None
    return value if math.isfinite(value) else None

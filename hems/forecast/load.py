"""The house's consumption, learned from its own history (SQLite), as a forecast per 15-min slot.

The history holds one mean power per quarter-hour (UTC epoch seconds of the slot's start). The
forecast of a future slot is the mean of the same local weekday and quarter-hour over the last
``weeks`` weeks (the evcc / Predbat / OpenEMS approach), blended for the near term with the mean of
the last hour: weight exp(−lead/τ) on the last hour, τ = 1 h by default, lead = time from now to
the middle of the slot. A weekday × quarter-hour with no history yet takes the BDEW H0 profile
(``hems.forecast.h0``), scaled to the history's level where there is some history, else to
``annual_kwh``. Time is passed in; the caller owns the connection and the clock.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Collection

from ..config import number
from ..errors import ConfigError
from .h0 import h0_w

SLOT_S = 900
_SCHEMA = "CREATE TABLE IF NOT EXISTS house_load (slot INTEGER PRIMARY KEY, w REAL NOT NULL)"


def _epoch(key: str, t: datetime) -> int:
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ConfigError(key, f"want a datetime with a UTC offset, got {t!r}")
    return int(math.floor(t.timestamp()))


class LoadHistory:
    """Quarter-hour means of the house's load in SQLite, and the forecast learned from them.

    ``tz`` is the house's time zone (weekday and quarter-hour are local: people cook at 18:00 local
    time in summer and winter alike)."""

    def __init__(self, db: sqlite3.Connection | str, tz: tzinfo) -> None:
        self.db = db if isinstance(db, sqlite3.Connection) else sqlite3.connect(db)
        self.tz = tz
        self.db.execute(_SCHEMA)
        self.db.commit()

    def record(self, slot_start: datetime, mean_w: float) -> None:
        """Store the mean W of the quarter-hour that starts at ``slot_start`` (replaces a value
        already there). ``slot_start`` must be on a quarter-hour; ``mean_w`` finite, 0-1 MW."""
        ts = _epoch("slot_start", slot_start)
        if ts % SLOT_S:
            raise ConfigError("slot_start", f"{slot_start.isoformat()} is not on a quarter-hour")
        w = number("mean_w", mean_w, 0.0, 1e6)
        self.db.execute("INSERT OR REPLACE INTO house_load (slot, w) VALUES (?, ?)", (ts, w))

    def commit(self) -> None:
        self.db.commit()

    def prune(self, before: datetime) -> int:
        """Forget the slots before ``before``; the number removed."""
        cur = self.db.execute("DELETE FROM house_load WHERE slot < ?", (_epoch("before", before),))
        self.db.commit()
        return cur.rowcount

    def _rows(self, since: int, until: int) -> list[tuple[int, float]]:
        return self.db.execute("SELECT slot, w FROM house_load WHERE slot >= ? AND slot < ? ORDER BY slot",
                               (since, until)).fetchall()

    def forecast(self, now: datetime, slots: int, *, weeks: int = 4, tau_h: float = 1.0, annual_kwh: float = 3500.0,
                 holidays: Collection[date] = ()) -> list[float]:
        """Mean W for each of ``slots`` quarter-hours from the one containing ``now``."""
        t_now = _epoch("now", now)
        number("slots", slots, 1, 7 * 96, integer=True)
        number("weeks", weeks, 1, 52, integer=True)
        number("tau_h", tau_h, 0.0, 48.0)
        number("annual_kwh", annual_kwh, 0.0, 1e6)
        first = t_now - t_now % SLOT_S
        rows = self._rows(first - weeks * 7 * 86400, first)
        by_key: dict[tuple[int, int], list[float]] = {}
        for ts, w in rows:
            by_key.setdefault(self._key(ts), []).append(w)
        # H0 scaled to the history's own level over the keys it covers
        scale = 1.0
        if by_key:
            hist = [sum(v) / len(v) for v in by_key.values()]
            ref = [h0_w(self._local_of_key(first, k), annual_kwh, holidays) for k in by_key]
            if sum(ref) > 0:
                scale = (sum(hist) / len(hist)) / (sum(ref) / len(ref))
        recent = [w for ts, w in rows if ts >= t_now - 3600]
        last_hour = sum(recent) / len(recent) if recent else None
        out = []
        for k in range(slots):
            ts = first + k * SLOT_S
            vals = by_key.get(self._key(ts))
            if vals:
                base = sum(vals) / len(vals)
            else:
                local = datetime.fromtimestamp(ts, tz=timezone.utc).astimezone(self.tz)
                base = h0_w(local, annual_kwh, holidays) * scale
            if last_hour is not None and tau_h > 0:
                lead_h = (ts + SLOT_S / 2 - t_now) / 3600.0
                wgt = math.exp(-max(lead_h, 0.0) / tau_h)
                base = wgt * last_hour + (1.0 - wgt) * base
            out.append(base)
        return out

    def _key(self, ts: int) -> tuple[int, int]:
        local = datetime.fromtimestamp(ts, tz=timezone.utc).astimezone(self.tz)
        return local.weekday(), local.hour * 4 + local.minute // 15

    def _local_of_key(self, first: int, key: tuple[int, int]) -> datetime:
        """A local time in the coming week with this weekday and quarter-hour (for the H0 level)."""
        local = datetime.fromtimestamp(first, tz=timezone.utc).astimezone(self.tz)
        day = local.date() + timedelta(days=(key[0] - local.weekday()) % 7)
        return datetime(day.year, day.month, day.day, key[1] // 4, (key[1] % 4) * 15)

"""The energy manager's database (SQLite): every transaction and meter value the chargers report,
the settings a user changed (reserve, departure, circuit priorities), and the house's load
history (``hems.forecast.load.LoadHistory`` shares the connection).

Writes are batched per step (``commit``) with WAL, so a crash loses at most the last step's
records and never corrupts the file.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from .csms import meter_sample

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    id TEXT PRIMARY KEY, station TEXT NOT NULL, started TEXT, ended TEXT, stopped_reason TEXT,
    id_token TEXT, events INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meter_values (
    station TEXT NOT NULL, transaction_id TEXT, t REAL NOT NULL, power_w REAL, imported_wh REAL,
    exported_wh REAL, soc REAL
);
CREATE INDEX IF NOT EXISTS meter_values_t ON meter_values (station, t);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ManagerStore:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None if self.path == ":memory:" else "DEFERRED",
                                  check_same_thread=False)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    # --- what the stations report (the CSMS core's observer) ---------------------------------------------
    def record(self, station: str, action: str, payload: dict, now: float) -> None:
        if action == "TransactionEvent":
            info = payload["transactionInfo"]
            tx_id = info["transactionId"]
            self.db.execute("INSERT OR IGNORE INTO transactions (id, station, started) VALUES (?, ?, ?)",
                            (tx_id, station, payload["timestamp"]))
            self.db.execute("UPDATE transactions SET events = events + 1 WHERE id = ?", (tx_id,))
            if "idToken" in payload:
                self.db.execute("UPDATE transactions SET id_token = ? WHERE id = ?",
                                (json.dumps(payload["idToken"]), tx_id))
            if payload["eventType"] == "Ended":
                self.db.execute("UPDATE transactions SET ended = ?, stopped_reason = ? WHERE id = ?",
                                (payload["timestamp"], info.get("stoppedReason"), tx_id))
            self._meter(station, tx_id, payload.get("meterValue"), now)
        elif action == "MeterValues":
            self._meter(station, None, payload.get("meterValue"), now)

    def _meter(self, station: str, tx_id: str | None, meter_value: list | None, now: float) -> None:
        sample = meter_sample(meter_value or [], now)
        if sample is not None:
            self.db.execute("INSERT INTO meter_values (station, transaction_id, t, power_w, imported_wh, exported_wh, "
                            "soc) VALUES (?, ?, ?, ?, ?, ?, ?)", (station, tx_id, sample.time, sample.power_w,
                                                                 sample.imported_wh, sample.exported_wh, sample.soc))

    def transactions(self, station: str | None = None) -> list[dict]:
        rows = self.db.execute("SELECT id, station, started, ended, stopped_reason, id_token, events FROM transactions"
                               + (" WHERE station = ?" if station else "") + " ORDER BY started",
                               (station,) if station else ()).fetchall()
        return [dict(zip(("id", "station", "started", "ended", "stopped_reason", "id_token", "events"), r)) for r in rows]

    def meter_values(self, station: str, since: float = 0.0) -> list[dict]:
        rows = self.db.execute("SELECT t, power_w, imported_wh, exported_wh, soc FROM meter_values WHERE station = ? "
                               "AND t >= ? ORDER BY t", (station, since)).fetchall()
        return [dict(zip(("t", "power_w", "imported_wh", "exported_wh", "soc"), r)) for r in rows]

    # --- settings -------------------------------------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))
        self.commit()

    def commit(self) -> None:
        if self.db.in_transaction:
            self.db.commit()

    def close(self) -> None:
        self.commit()
        self.db.close()

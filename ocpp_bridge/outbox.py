"""The charging station's outbox: every message that must reach the CSMS (TransactionEvent,
MeterValues, NotifyEVChargingNeeds, SecurityEventNotification, …) is written to SQLite before
it is sent, and leaves only when the CSMS has answered it.

Durability: WAL journal with ``synchronous=FULL``, one transaction per message, so a message
either exists completely (with its seqNo) or not at all, whenever the process is killed. The
TransactionEvent seqNo counter lives in the same transaction as the message, so seqNo is
contiguous per transaction across crashes. A message keeps the OCPP-J message id of its first
send: a resend after a crash carries the same id, which lets the CSMS recognise a duplicate.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path

from .store import QueuedMessage

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tx_seq (
    transaction_id TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Outbox:
    """The durable ``Store``: a FIFO of OCPP requests in SQLite, plus a small key-value store for
    state that must survive a restart (the open transaction, the device model's persisted
    values, the charging profiles)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def put(self, action: str, payload: dict, *, now: float, state: dict | None = None) -> QueuedMessage:
        """Append a message. A TransactionEvent gets the next seqNo of its transaction here,
        in the same database transaction as the message itself; ``state`` (key → value, None
        deletes) is written in that transaction too, so state and message never disagree."""
        payload = dict(payload)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if action == "TransactionEvent":
                    tx_id = payload["transactionInfo"]["transactionId"]
                    row = self._db.execute("SELECT next_seq FROM tx_seq WHERE transaction_id = ?", (tx_id,)).fetchone()
                    seq = row[0] if row else 0
                    payload["seqNo"] = seq
                    self._db.execute("INSERT OR REPLACE INTO tx_seq (transaction_id, next_seq) VALUES (?, ?)",
                                     (tx_id, seq + 1))
                message_id = str(uuid.uuid4())
                cur = self._db.execute("INSERT INTO outbox (action, payload, message_id, created) VALUES (?, ?, ?, ?)",
                                       (action, json.dumps(payload, separators=(",", ":"), allow_nan=False), message_id, now))
                for key, value in (state or {}).items():
                    self._set(key, value)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return QueuedMessage(cur.lastrowid, action, payload, message_id, now)

    def head(self) -> QueuedMessage | None:
        """The oldest message not yet answered by the CSMS."""
        with self._lock:
            row = self._db.execute("SELECT id, action, payload, message_id, created FROM outbox "
                                   "ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return QueuedMessage(row[0], row[1], json.loads(row[2]), row[3], row[4])

    def done(self, item_id: int) -> None:
        """The CSMS answered: the message leaves the outbox. Not synced to disk (WAL keeps it
        consistent): after a power cut the message may come back and be resent with its
        original message id, which is harmless; a lost message is not."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def next_seq(self, transaction_id: str) -> int:
        """The seqNo the transaction's next TransactionEvent will get (0 for a new one)."""
        with self._lock:
            row = self._db.execute("SELECT next_seq FROM tx_seq WHERE transaction_id = ?", (transaction_id,)).fetchone()
        return row[0] if row else 0

    def has_transaction_messages(self, transaction_id: str | None = None) -> bool:
        """Whether TransactionEvents wait to be answered (of ``transaction_id``, or any)."""
        with self._lock:
            if transaction_id is None:
                row = self._db.execute("SELECT 1 FROM outbox WHERE action = 'TransactionEvent' LIMIT 1").fetchone()
            else:
                row = self._db.execute("SELECT 1 FROM outbox WHERE action = 'TransactionEvent' AND "
                                       "json_extract(payload, '$.transactionInfo.transactionId') = ? LIMIT 1",
                                       (transaction_id,)).fetchone()
        return row is not None

    # --- persisted state --------------------------------------------------------------------
    def get(self, key: str, default=None):
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value) -> None:
        """Store ``value`` (JSON) under ``key``; None deletes it."""
        with self._lock:
            self._set(key, value)

    def _set(self, key: str, value) -> None:
        if value is None:
            self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def close(self) -> None:
        with self._lock:
            self._db.close()

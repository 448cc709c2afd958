"""What the station keeps: the outbox of messages that must reach the CSMS, the TransactionEvent
sequence numbers, and a small key-value store (open transaction, device model, profiles).

``Store`` is the interface the core uses; ``ocpp_bridge.outbox.Outbox`` is the durable SQLite
implementation a charger runs, ``MemoryStore`` the one for simulations (same behaviour, nothing
survives the process).
"""

from __future__ import annotations

import copy
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class QueuedMessage:
    """One message waiting for the CSMS, oldest first."""

    id: int
    action: str
    payload: dict
    message_id: str
    created: float


class Store(Protocol):
    """The station's memory. ``put`` gives a TransactionEvent its seqNo in the same step as the
    message and writes ``state`` with it (all or nothing); a message leaves with ``done``."""

    def put(self, action: str, payload: dict, *, now: float, state: dict | None = None) -> QueuedMessage: ...
    def head(self) -> QueuedMessage | None: ...
    def done(self, item_id: int) -> None: ...
    def __len__(self) -> int: ...
    def next_seq(self, transaction_id: str) -> int: ...
    def has_transaction_messages(self, transaction_id: str | None = None) -> bool: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def close(self) -> None: ...


class MemoryStore:
    """``Store`` in memory: the simulations' station (values are copied in and out, as the
    SQLite store's JSON round trip does, so callers cannot alias what is stored)."""

    def __init__(self) -> None:
        self._queue: deque[QueuedMessage] = deque()
        self._seq: dict[str, int] = {}
        self._kv: dict[str, Any] = {}
        self._next_id = 1

    def put(self, action: str, payload: dict, *, now: float, state: dict | None = None) -> QueuedMessage:
        payload = copy.deepcopy(payload)
        if action == "TransactionEvent":
            tx_id = payload["transactionInfo"]["transactionId"]
            payload["seqNo"] = self._seq.get(tx_id, 0)
            self._seq[tx_id] = payload["seqNo"] + 1
        item = QueuedMessage(self._next_id, action, payload, str(uuid.uuid4()), now)
        self._next_id += 1
        self._queue.append(item)
        for key, value in (state or {}).items():
            self.set(key, value)
        return item

    def head(self) -> QueuedMessage | None:
        return self._queue[0] if self._queue else None

    def done(self, item_id: int) -> None:
        if self._queue and self._queue[0].id == item_id:
            self._queue.popleft()
        else:
            self._queue = deque(m for m in self._queue if m.id != item_id)

    def __len__(self) -> int:
        return len(self._queue)

    def next_seq(self, transaction_id: str) -> int:
        return self._seq.get(transaction_id, 0)

    def has_transaction_messages(self, transaction_id: str | None = None) -> bool:
        """Whether TransactionEvents wait to be answered (of ``transaction_id``, or any)."""
        return any(m.action == "TransactionEvent" and (transaction_id is None or
                                                       m.payload["transactionInfo"]["transactionId"] == transaction_id)
                   for m in self._queue)

    def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self._kv[key]) if key in self._kv else default

    def set(self, key: str, value: Any) -> None:
        if value is None:
            self._kv.pop(key, None)
        else:
            self._kv[key] = copy.deepcopy(value)

    def close(self) -> None:
        pass

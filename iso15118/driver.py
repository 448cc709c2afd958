"""What every session shares, charger or car, whatever the protocol (-20, -2, DIN): reading a V2GTP
frame (which schema its payload type allows now, decoding, recording), writing a message
(recording, encoding, framing), the bounded trace and the observer. The protocol logic — the
state table and its handlers — sits on top (``secc.session``, ``evcc.session``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from iso15118 import exi
from iso15118.messages import TRACE_LENGTH, Observer, name_of, payload_type_of
from iso15118.v2gtp import PayloadType, V2GTPFrame


class SessionDriver:
    """The sans-I/O plumbing of one session. A subclass defines ``_abort(now, detail)``: how it
    ends when a frame cannot be read (the charger de-energises first)."""

    def __init__(self, observer: Observer | None = None):
        self.closed = False
        self.trace: deque[tuple[float, str, str, object]] = deque(maxlen=TRACE_LENGTH)  # (time, 'rx'|'tx', name, msg)
        self.observer = observer

    def _abort(self, now: float, detail: str) -> None:
        raise NotImplementedError

    def _record(self, now: float, direction: str, name: str, message) -> None:
        self.trace.append((now, direction, name, message))
        if self.observer is not None:
            self.observer(now, direction, name, message)

    def _read(self, frame: V2GTPFrame, now: float,
              schemas: Mapping[PayloadType, str]) -> tuple[str, str, object] | None:
        """(schema, message name, message) of a frame, recorded; None when the payload type is not
        allowed now (``schemas``: the schema of each payload type the protocol allows now, see
        ``protocols.payload_schemas``) or the payload cannot be decoded (the session is then
        aborted). A DIN/-2 V2G_Message is named by its Body's element."""
        schema = schemas.get(frame.payload_type)
        if schema is None:
            self._abort(now, f"payload type {frame.payload_type:#06x} not allowed now")
            return None
        try:
            message = exi.decode(frame.payload, schema)
        except exi.ExiDecodeError as e:
            self._abort(now, f"undecodable {schema} message: {e}")
            return None
        name = name_of(message)
        self._record(now, "rx", name, message)
        return schema, name, message

    def _write(self, now: float, message, schema: str) -> V2GTPFrame:
        """``message`` recorded, encoded in ``schema`` and framed."""
        self._record(now, "tx", name_of(message), message)
        return V2GTPFrame(payload_type_of(schema), exi.encode(message, schema))

"""Message traces: one readable line per message for people, one JSON object per message for
machines (``--log FILE``: ``time``, ``direction``, ``name``, ``message`` in ``to_dict`` form)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import IO

from iso15118 import exi
from iso15118.messages import schema_of_message
from iso15118.units import val

_QUANTITIES = ("EVPresentVoltage", "EVSEPresentVoltage", "EVSEPresentCurrent", "EVTargetVoltage")
_MODE_QUANTITIES = ("EVTargetCurrent", "EVSETargetActivePower", "EVSEPresentActivePower", "EVPresentActivePower",
                    "EVMaximumDischargePower", "EVMaximumChargePower")
_WORDS = ("ResponseCode", "EVSEProcessing", "EVProcessing", "ChargeProgress", "BPT_ChannelSelection",
          "SelectedAuthorizationService", "ChargingSession", "SchemaID")


def describe(message) -> str:
    """A short summary of a message: its codes and the quantities people look at."""
    parts = []
    for f in _WORDS:
        v = getattr(message, f, None)
        if v is not None:
            parts.append(f"{f}={v}")
    for f in _QUANTITIES:
        v = getattr(message, f, None)
        if v is not None:
            parts.append(f"{f}={val(v):g}")
    for spec in getattr(type(message), "_exi", None).fields if hasattr(type(message), "_exi") else ():
        if spec.name.endswith("ControlMode") and getattr(message, spec.name, None) is not None:
            mode = getattr(message, spec.name)
            parts.append(spec.name.split("_CL")[0].split("_SE")[0])
            for q in _MODE_QUANTITIES:
                v = getattr(mode, q, None)
                if v is not None and hasattr(v, "Exponent"):
                    parts.append(f"{q}={val(v):g}")
    dp = getattr(message, "DisplayParameters", None)
    if dp is not None and dp.PresentSOC is not None:
        parts.append(f"SOC={dp.PresentSOC}%")
    return " ".join(parts)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MessageLog:
    """An ``Observer`` for sessions: prints the readable trace to ``stream`` and appends JSON
    lines to ``path``. ``clock_offset`` turns the session clock into Unix time."""

    def __init__(self, who: str, *, path: str | None = None, stream: IO[str] | None = None,
                 clock_offset: float | None = None):
        self.who = who
        self.stream = stream
        self.clock_offset = clock_offset
        self.file = open(path, "a", buffering=1, encoding="utf-8") if path else None  # line-buffered

    def __call__(self, now: float, direction: str, name: str, message) -> None:
        epoch = now + self.clock_offset if self.clock_offset is not None else time.time()
        if self.stream is not None:
            arrow = "→" if direction == "tx" else "←"
            print(f"{_iso(epoch)[11:23]} {self.who} {arrow} {name} {describe(message)}", file=self.stream, flush=True)
        if self.file is not None:
            doc = {"time": _iso(epoch), "direction": direction, "name": name,
                   "message": exi.to_dict(message, schema_of_message(message))}
            self.file.write(json.dumps(doc, ensure_ascii=False) + "\n")

    def note(self, text: str) -> None:
        """A line of context (connection, session end): in the readable trace, and in the JSON
        lines as ``{"time": ..., "note": text}``."""
        stamp = _iso(time.time())
        if self.stream is not None:
            print(f"{stamp[11:23]} {self.who} {text}", file=self.stream, flush=True)
        if self.file is not None:
            self.file.write(json.dumps({"time": stamp, "note": text}, ensure_ascii=False) + "\n")

    def handler(self, level: int = logging.INFO) -> logging.Handler:
        """A logging handler that notes each record here (the listener's refused handshakes,
        accept errors), so that they land in the same log as the sessions."""
        return _NoteHandler(self, level)

    def ocpp(self, direction: str, name: str, frame) -> None:
        """An OCPP-J frame: ``{"time", "direction", "name": action, "ocpp": frame}``."""
        stamp = _iso(time.time())
        if self.stream is not None:
            arrow = "→" if direction == "tx" else "←"
            print(f"{stamp[11:23]} OCPP {arrow} {name}", file=self.stream, flush=True)
        if self.file is not None:
            self.file.write(json.dumps({"time": stamp, "direction": direction, "name": name, "ocpp": frame},
                                       ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class _NoteHandler(logging.Handler):
    def __init__(self, log: MessageLog, level: int):
        super().__init__(level)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.note(record.getMessage())

"""OCPP-J frames (OCPP 2.1 part 4, §4): strict JSON in and out.

Python's ``json`` accepts what RFC 8259 does not — ``NaN``, ``Infinity``, numbers that overflow
to infinity (``1e400``) — and recurses once per nesting level. A frame from the network is
therefore read with non-finite numbers refused and its nesting bounded, and every frame we
write is plain JSON (``allow_nan=False``): a non-finite number can neither come in nor go out.
"""

from __future__ import annotations

import json
import math
import re

MAX_DEPTH = 32  # OCPP 2.1 payloads nest at most ~8 levels; anything deeper is an attack or a bug

CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND = 2, 3, 4, 5, 6
# the start of a CALL, to answer a frame whose JSON is broken further on with its own message id
_CALL_HEAD = re.compile(r'\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')


class FrameError(ValueError):
    """A frame that cannot be read: ``code`` is the OCPP-J error code to answer with and
    ``unique_id`` the message id when one could be recovered ("-1" otherwise)."""

    def __init__(self, code: str, detail: str, unique_id: str = "-1"):
        super().__init__(detail)
        self.code = code
        self.unique_id = unique_id


def _constant(name: str):
    raise ValueError(f"{name} is not JSON (RFC 8259 has no non-finite numbers)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows to infinity")
    return value


def _depth(obj) -> int:
    """Nesting depth, iteratively (a recursive walk could itself overflow)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                return d
            stack.extend((v, d + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads(text: str | bytes):
    """Strict JSON: ValueError for anything RFC 8259 refuses, non-finite numbers and nesting
    deeper than MAX_DEPTH."""
    try:
        obj = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than the parser's limit (> {MAX_DEPTH} allowed)") from None
    if _depth(obj) > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return obj


def dumps(obj) -> str:
    """Compact JSON; ValueError for a non-finite number (it must never reach the wire)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def parse(text: str | bytes) -> list:
    """An OCPP-J frame as a list [type, id, ...]; FrameError (FormationViolation) otherwise."""
    try:
        frame = loads(text)
    except ValueError as e:  # includes UnicodeDecodeError and over-long integers
        head = _CALL_HEAD.match(text if isinstance(text, str) else text[:64].decode("utf-8", "replace"))
        raise FrameError("FormationViolation", str(e), head.group(1) if head else "-1") from None
    if not isinstance(frame, list) or not frame or frame[0] not in (CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND):
        raise FrameError("FormationViolation", "not an OCPP-J frame")
    unique_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str) else "-1"
    if frame[0] == CALL and (len(frame) != 4 or not isinstance(frame[1], str) or not isinstance(frame[2], str)
                             or not isinstance(frame[3], dict)):
        raise FrameError("FormationViolation", "a CALL is [2, id, action, {payload}]", unique_id)
    if len(unique_id) > 36:  # OCPP-J: the message id is at most 36 characters
        raise FrameError("FormationViolation", "message id longer than 36 characters", "-1")
    return frame

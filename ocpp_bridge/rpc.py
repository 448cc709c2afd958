"""OCPP-J remote procedure calls, either side of the link (OCPP 2.1 part 4 §4): answering a CALL
with a handler, and waiting for the answer to our own CALL. The station core and the CSMS core
(``hems.csms``) both use these, so a CALL is answered the same way whoever receives it.

Payloads are the OCPP 2.1 JSON shapes (camelCase), validated against the 2.1 schemas of the
``ocpp`` package in both directions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import ocpp.v21 as ocpp_v21
from ocpp.exceptions import FormationViolationError, InternalError, NotImplementedError, NotSupportedError, \
    OCPPError
from ocpp.messages import Call, CallResult, MessageType, _validate_payload, get_validator

from . import frames
from .schemacheck import Check, compile_validator

log = logging.getLogger(__name__)
_SCHEMAS = Path(ocpp_v21.__file__).parent / "schemas"

Handler = Callable[[dict], dict]
Answer = Callable[[dict | None], None]


def schema_check(action: str, payload: dict, kind: str = "Request") -> None:
    """The OCPP 2.1 JSON schema of ``action``'s request or response; raises the package's OCPPError.
    A payload the compiled schema (``schemacheck``) finds valid is valid; anything else is judged
    by the package's jsonschema validator, which raises the error."""
    if not isinstance(payload, dict):
        raise FormationViolationError(f"{action}{kind} payload is not an object")
    fast = _compiled(action, kind)
    if fast is not None:
        try:
            valid = fast(payload)
        except (TypeError, ValueError, RecursionError):
            valid = False  # an odd value the compiled check cannot compare: jsonschema below decides
        if valid:
            return
    message = Call(unique_id="0", action=action, payload=payload) if kind == "Request" \
        else CallResult(unique_id="0", action=action, payload=payload)
    _validate_payload(message, "2.1")


@lru_cache(maxsize=256)  # our own actions and those with a handler: a few dozen
def _compiled(action: str, kind: str) -> Check | None:
    """The compiled predicate of the schema the package validates ``action``'s ``kind`` with
    (None: no such schema, or one ``schemacheck`` does not compile: jsonschema alone)."""
    try:
        validator = get_validator(MessageType.Call if kind == "Request" else MessageType.CallResult, action, "2.1")
        return compile_validator(validator)
    except (OSError, ValueError):  # no schema (unknown action: the package's error), or Unsupported
        return None


def known_action(action: str) -> bool:
    """An action of OCPP 2.1 (whether or not anyone here handles it)."""
    return (_SCHEMAS / f"{action}Request.json").exists()


class HandlerFailed(InternalError):
    """A handler raised something other than an OCPPError: a bug, answered InternalError."""


def answer_call(frame: list, handlers: dict[str, Handler]) -> list:
    """The answer to a CALL ``[2, id, action, payload]``: a CALLRESULT from ``handlers[action]``
    (request and response schema-checked), else raises the OCPPError to answer with
    (NotImplemented for an unknown action, NotSupported for a known one without a handler, the
    schema's error, HandlerFailed for a failing handler — logged with its traceback)."""
    _, unique_id, action, payload = frame
    handler = handlers.get(action)
    if handler is None:
        raise (NotSupportedError if known_action(action) else NotImplementedError)(f"{action} is not handled")
    schema_check(action, payload)
    try:
        result = handler(payload)
    except OCPPError:
        raise
    except Exception as e:  # a handler bug: answered InternalError, logged with its traceback
        log.exception("handling %s %s failed", action, unique_id)
        raise HandlerFailed(f"{action} could not be handled: {type(e).__name__}") from e
    schema_check(action, result, "Response")
    answer = [frames.CALLRESULT, unique_id, result]
    try:
        frames.dumps(answer)
    except ValueError as e:  # a non-finite number in our own answer: never sent
        raise InternalError(str(e)) from None
    return answer


def error_frame(unique_id: str, error: OCPPError) -> list:
    return [frames.CALLERROR, unique_id, error.code, str(error)[:255], {}]


@dataclass
class Outstanding:
    """Our CALL waiting for its answer."""

    message_id: str
    action: str
    deadline: float
    on_answer: Answer | None = None


def read_answer(call: Outstanding, frame: list) -> tuple[dict | None, str | None]:
    """(payload, None) for a schema-valid CALLRESULT, (None, error code) for a CALLERROR or a
    CALLRESULT that breaks the schema."""
    if frame[0] == frames.CALLRESULT:
        payload = frame[2] if len(frame) > 2 else None
        try:
            schema_check(call.action, payload, "Response")
        except OCPPError as e:
            log.warning("answer to %s breaks the schema: %s", call.action, e)
            return None, "FormatViolation"
        return payload, None
    return None, frame[2] if len(frame) > 2 and isinstance(frame[2], str) else "GenericError"

"""``v2h trace show``: JSON-lines records (from ``--log``, the demo or ``v2h trace decode``) as
the readable trace, filtered by name and time (pure: records in, lines out)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
from collections.abc import Iterable, Iterator

from iso15118.aio.trace import Line, TraceRenderer, parse_time


class LogError(ValueError):
    """A line of the log that is not a JSON object."""


def load(lines: Iterable[str], name: str = "log") -> Iterator[dict]:
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise LogError(f"{name} line {n}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise LogError(f"{name} line {n}: not a JSON object")
        yield rec


def parse_when(text: str, reference: float | None) -> float:
    """An ISO 8601 time ('Z', an offset, or none for UTC), or a time of day HH:MM[:SS[.fff]]
    (UTC, as the trace prints it) on the date of ``reference`` (the log's first record)."""
    text = text.strip()
    try:
        if "T" in text or (len(text) >= 10 and text[4] == "-"):
            return parse_time(text)
        day = dt.datetime.fromtimestamp(reference if reference is not None else 0, dt.timezone.utc).date()
        tod = dt.time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"want a time like 10:02:35, 10:02:35.250 or 2026-11-30T10:02:35Z; got {text!r}") from None
    return dt.datetime.combine(day, tod, dt.timezone.utc).timestamp()


def _time(rec: dict) -> float | None:
    try:
        return parse_time(rec["time"]) if isinstance(rec.get("time"), str) else None
    except ValueError:
        return None


def select(records: Iterable[dict], *, names: list[str] | None = None, since: str | None = None,
           until: str | None = None, both_sides: bool = False) -> Iterator[dict]:
    """The records whose name matches one of ``names`` (shell patterns, any case; notes are
    left out when names are given) and whose time is within [since, until]. A message logged
    by both ends (a charger's and a car's log merged, as ``v2h demo`` writes them) is kept once,
    as its sender logged it, unless ``both_sides``."""
    pats = [p.lower() for p in names or []]
    lo = hi = None
    reference = None
    recent: dict[str, tuple[float | None, str]] = {}  # the last copy of each message: time, direction
    for rec in records:
        if not both_sides and isinstance(rec.get("message"), dict):
            key = json.dumps([rec.get("name"), rec["message"]], sort_keys=True)
            seen = recent.get(key)
            t = _time(rec)
            if seen is not None and seen[1] != rec.get("direction") and \
                    (t is None or seen[0] is None or abs(t - seen[0]) <= 2.0):
                del recent[key]
                continue
            recent[key] = (t, str(rec.get("direction")))
            if len(recent) > 256:
                recent.pop(next(iter(recent)))
        t = _time(rec)
        if reference is None and t is not None:
            reference = t
            lo = parse_when(since, reference) if since else None
            hi = parse_when(until, reference) if until else None
        if pats:
            name = rec.get("name")
            if not isinstance(name, str) or not any(fnmatch.fnmatchcase(name.lower(), p) for p in pats):
                continue
        if t is not None and ((lo is not None and t < lo) or (hi is not None and t > hi)):
            continue
        yield rec


def side_of(rec: dict) -> str:
    """Who logged a V2G record: the car sends requests and receives responses, the charger the
    other way round ('' for anything else)."""
    name, direction = rec.get("name"), rec.get("direction")
    if not isinstance(name, str) or direction not in ("tx", "rx") or not ("message" in rec or "sdp" in rec):
        return ""
    request = name.endswith(("Req", "Request"))
    response = name.endswith(("Res", "Response"))
    if not (request or response):
        return ""
    return "EVCC" if (request == (direction == "tx")) else "SECC"


def render(records: Iterable[dict], *, mode: str = "full", who: str | None = None,
           verbose: bool = False) -> Iterator[Line]:
    """The readable trace; ``who`` labels the V2G lines (None: the side that logged each one,
    told by its name and direction)."""
    v2g = TraceRenderer(who or "", mode, verbose=verbose)
    ocpp = TraceRenderer("", mode, verbose=verbose)
    for rec in records:
        if "ocpp" in rec:
            yield from ocpp.record(rec)
            continue
        if who is None:
            v2g.who = side_of(rec)
        yield from v2g.record(rec)

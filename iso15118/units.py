"""ISO 15118-20 RationalNumber (Value × 10^Exponent) and DIN/-2 PhysicalValue (Value ×
10^Multiplier, with a unit) ↔ float, and the -20 message header."""

from __future__ import annotations

import math
from functools import lru_cache

from iso15118 import exi

_RN = exi.messages("iso20_cm").RationalNumber


_RN_SEEN: dict = {}  # value → its RationalNumber: the limits repeat every loop (immutable, so shared)
_RN_SEEN_MAX = 4096


def rn(value: float, exponent: int | None = None):
    """A RationalNumber close to ``value`` whose Value fits xs:short (|Value| ≤ 32767)."""
    if exponent is not None:
        v = round(value / 10 ** exponent)
        if abs(v) <= 32767:
            return _RN(Exponent=exponent, Value=int(v))
    # equal numbers hash alike and convert to the same float: a value seen before needs no call
    found = _RN_SEEN.get(value)
    if found is not None:
        return found
    found = _rn_auto(float(value))
    if len(_RN_SEEN) >= _RN_SEEN_MAX:
        _RN_SEEN.clear()  # bounded; the values of the present loop come back at once
    _RN_SEEN[value] = found
    return found


def _rn_auto(value: float):
    exponent = 0
    v = value
    # use decimals while they fit (up to milli-units), larger exponents for big values
    while exponent > -3 and abs(v * 10) <= 32767 and round(v) != v:
        v *= 10
        exponent -= 1
    while abs(round(v)) > 32767:
        v /= 10
        exponent += 1
    return _RN(Exponent=exponent, Value=int(round(v)))


def val(r) -> float:
    """The float value of a RationalNumber (None stays None)."""
    if r is None:
        return None  # type: ignore[return-value]
    return r.Value * 10.0 ** r.Exponent


_HEADERS: dict[str, type] = {}  # filled on first use: a DC charger never imports the AC schema


def header(session_id: bytes, now_epoch: float, signature=None, schema: str = "iso20_cm"):
    """-20 MessageHeader of ``schema``'s own class (each -20 schema has one; the C encoder
    wants the exact class); TimeStamp is seconds since the Unix epoch."""
    cls = _HEADERS.get(schema)
    if cls is None:
        cls = _HEADERS[schema] = exi.messages(schema).MessageHeader
    return cls(SessionID=session_id, TimeStamp=max(0, int(now_epoch)), Signature=signature)


def clamp(value: float, lo: float, hi: float) -> float:
    """``value`` within [lo, hi]. A non-finite value (NaN, ±Infinity) gives 0 (within the
    bounds), never a bound: Python's ``min``/``max`` pass NaN through or pick a bound depending
    on argument order, and a broken number must never become full power."""
    if not math.isfinite(value):
        value = 0.0
    return max(lo, min(hi, value))


def pv(schema: str, value: float, unit: str):
    """A DIN/-2 PhysicalValue (Value × 10^Multiplier, Multiplier -3..3, Value an xs:short) close
    to ``value``, with its unit; a non-finite value is 0."""
    return _pv(schema, float(value) if math.isfinite(value) else 0.0, unit)


@lru_cache(maxsize=4096)
def _pv(schema: str, value: float, unit: str):
    m, v = 0, value
    while m > -3 and abs(v * 10) <= 32767 and round(v) != v:
        v *= 10
        m -= 1
    while abs(round(v)) > 32767 and m < 3:
        v /= 10
        m += 1
    return exi.messages(schema).PhysicalValue(Multiplier=m, Unit=unit, Value=int(max(-32768, min(32767, round(v)))))


def pval(p) -> float:
    """The float value of a DIN/-2 PhysicalValue (None stays None)."""
    if p is None:
        return None  # type: ignore[return-value]
    return p.Value * 10.0 ** p.Multiplier

"""ISO 15118-20 RationalNumber (Value × 10^Exponent) ↔ float, and the message header."""

from __future__ import annotations

from iso15118 import exi

_TYPES = exi.messages("iso20_cm")


def rn(value: float, exponent: int | None = None):
    """A RationalNumber close to ``value`` whose Value fits xs:short (|Value| ≤ 32767)."""
    if exponent is None:
        exponent = 0
        v = value
        # use decimals while they fit, fall back to larger exponents for big values
        while exponent > -3 and abs(v * 10) <= 32767 and round(v) != v:
            v *= 10
            exponent -= 1
        while abs(round(v)) > 32767:
            v /= 10
            exponent += 1
        return _TYPES.RationalNumber(Exponent=exponent, Value=int(round(v)))
    v = round(value / 10 ** exponent)
    if abs(v) > 32767:
        return rn(value)
    return _TYPES.RationalNumber(Exponent=exponent, Value=int(v))


def val(r) -> float:
    """The float value of a RationalNumber (None stays None)."""
    if r is None:
        return None  # type: ignore[return-value]
    return r.Value * 10.0 ** r.Exponent


def header(session_id: bytes, now_epoch: float, signature=None):
    """-20 MessageHeader; TimeStamp is seconds since the Unix epoch."""
    return _TYPES.MessageHeader(SessionID=session_id, TimeStamp=max(0, int(now_epoch)), Signature=signature)

"""Bit-level primitives of the pure-Python backend (EXI 1.0 §7.1, bit-packed).

Encoding accumulates into one Python int that starts with a sentinel 1 bit, so a write is a
shift and an or; decoding reads from the whole stream held as one int ``D`` of ``L`` bits, at
bit position ``p``. Reading past the end makes the shift count negative, which raises
``ValueError`` — the generated code turns that into ``ExiTruncatedError`` at no cost on the
good path.
"""

from __future__ import annotations

from .errors import (ExiDecodeError, ExiEncodeError, ExiInvalidEventError, ExiTruncatedError,
                     ExiUnsupportedError, ExiValueError)

UNBOUNDED_INT_BITS = 1024  # cap for xs:integer without bounds (ds:X509SerialNumber …)
MAX_LENGTH_FIELD = 1 << 32  # cap for string/binary length prefixes without maxLength


BOOL = {True: 1, False: 0}  # also rejects anything that is not a boolean (KeyError)


class Invalid(Exception):
    """Raised by encoder primitives; the top level turns it into ExiEncodeError with a path."""


# --- encoding -----------------------------------------------------------------------------

def w_uint(a: int, v: int) -> int:
    """Append an EXI Unsigned Integer: 7-bit groups, least significant first (§7.1.6)."""
    if v < 0:
        raise Invalid(f"{v} is negative")
    while v >= 128:
        a = (a << 8) | 0x80 | (v & 0x7F)
        v >>= 7
    return (a << 8) | v


def w_int(a: int, v: int) -> int:
    """Append an EXI Integer: sign bit, then the magnitude (negative: -(v + 1)) (§7.1.5)."""
    if v < 0:
        return w_uint((a << 1) | 1, -v - 1)
    return w_uint(a << 1, v)


def _xml_char_ok(s: str) -> bool:
    for ch in s:
        c = ord(ch)
        if c < 0x20:
            if c not in (9, 10, 13):
                return False
        elif 0xD800 <= c <= 0xDFFF or c in (0xFFFE, 0xFFFF):
            return False
    return True


def w_str(a: int, s: str, min_len: int, max_len: int | None) -> int:
    """Append a string as a value-table miss: length + 2, then code points (§7.1.10, §7.3.3)."""
    if s.__class__ is not str:
        if not isinstance(s, str):
            raise Invalid(f"expected str, got {type(s).__name__}")
    n = len(s)
    if n < min_len:
        raise Invalid(f"length {n} is below minLength {min_len}")
    if max_len is not None and n > max_len:
        raise Invalid(f"length {n} is above maxLength {max_len}")
    if s.isascii():
        b = s.encode("ascii")
        if b and min(b) < 32 and not _xml_char_ok(s):
            raise Invalid("contains a character XML does not allow")
        a = w_uint(a, n + 2)
        return (a << (8 * n)) | int.from_bytes(b, "big")
    if not _xml_char_ok(s):
        raise Invalid("contains a character XML does not allow")
    a = w_uint(a, n + 2)
    for ch in s:
        a = w_uint(a, ord(ch))
    return a


def w_bin(a: int, b: bytes, min_len: int, max_len: int | None) -> int:
    """Append binary data: length, then the bytes (§7.1.1 base64Binary / hexBinary)."""
    if not isinstance(b, (bytes, bytearray)):
        raise Invalid(f"expected bytes, got {type(b).__name__}")
    n = len(b)
    if n < min_len:
        raise Invalid(f"length {n} is below the minimum {min_len}")
    if max_len is not None and n > max_len:
        raise Invalid(f"length {n} is above the maximum {max_len}")
    a = w_uint(a, n)
    return (a << (8 * n)) | int.from_bytes(b, "big")


def finish(a: int) -> bytes:
    """Pad the accumulated bits to a byte boundary and drop the sentinel bit."""
    nbits = a.bit_length() - 1
    pad = -nbits % 8
    a <<= pad
    nbytes = (nbits + pad) // 8
    return (a ^ (1 << (nbits + pad))).to_bytes(nbytes, "big")


# --- decoding -----------------------------------------------------------------------------

def r_uint(D: int, L: int, p: int, max_bits: int) -> tuple[int, int]:
    """Read an Unsigned Integer of at most ``max_bits`` significant bits."""
    p += 8
    b = (D >> (L - p)) & 0xFF
    if b < 128:
        return b, p
    v = b & 0x7F
    shift = 7
    while True:
        p += 8
        b = (D >> (L - p)) & 0xFF
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 128:
            return v, p
        if shift >= max_bits:
            raise ExiValueError(f"unsigned integer longer than {max_bits} bits", p)


def r_int(D: int, L: int, p: int, max_bits: int) -> tuple[int, int]:
    p += 1
    neg = (D >> (L - p)) & 1
    v, p = r_uint(D, L, p, max_bits)
    return (-v - 1 if neg else v), p


def r_len(D: int, L: int, p: int, min_len: int, max_len: int | None, unit_bits: int,
          what: str) -> tuple[int, int]:
    """Read a length prefix and check it against the facets and the remaining input."""
    n, p = r_uint(D, L, p, 64)
    if n < min_len:
        raise ExiValueError(f"{what} length {n} is below the minimum {min_len}", p)
    if max_len is not None and n > max_len:
        raise ExiValueError(f"{what} length {n} is above the maximum {max_len}", p)
    if p + n * unit_bits > L:
        raise ExiTruncatedError(f"{what} of length {n} runs past the end of the stream", p)
    return n, p


def r_str(D: int, L: int, p: int, min_len: int, max_len: int | None) -> tuple[str, int]:
    n, p = r_uint(D, L, p, 64)
    if n < 2:
        raise ExiValueError("string table hit, but V2G streams keep no string table", p)
    n -= 2
    if n < min_len:
        raise ExiValueError(f"string length {n} is below minLength {min_len}", p)
    if max_len is not None and n > max_len:
        raise ExiValueError(f"string length {n} is above maxLength {max_len}", p)
    if p + 8 * n > L:
        raise ExiTruncatedError(f"string of length {n} runs past the end of the stream", p)
    if n == 0:
        return "", p
    q = p + 8 * n
    b = ((D >> (L - q)) & ((1 << (8 * n)) - 1)).to_bytes(n, "big")
    if b.isascii():
        s = b.decode("ascii")
        if min(b) < 32 and not _xml_char_ok(s):
            raise ExiValueError("string contains a character XML does not allow", q)
        return s, q
    chars = []
    for _ in range(n):
        c, p = r_uint(D, L, p, 21)
        if c > 0x10FFFF:
            raise ExiValueError(f"code point {c:#x} is beyond Unicode", p)
        chars.append(chr(c))
    s = "".join(chars)
    if not _xml_char_ok(s):
        raise ExiValueError("string contains a character XML does not allow", p)
    return s, p


def r_bin(D: int, L: int, p: int, min_len: int, max_len: int | None) -> tuple[bytes, int]:
    n, p = r_len(D, L, p, min_len, max_len, 8, "binary")
    q = p + 8 * n
    return ((D >> (L - q)) & ((1 << (8 * n)) - 1)).to_bytes(n, "big"), q


# --- errors raised from generated code ----------------------------------------------------

def fault(exc: Exception, p: int, L: int, element: str) -> ExiDecodeError:
    """Turn an exception caught in a generated decoder into a typed decode error."""
    if isinstance(exc, ExiDecodeError):
        exc.push(element)
        return exc
    if p > L:
        return ExiTruncatedError("unexpected end of stream", L, (element,))
    return ExiValueError(f"invalid value ({exc})", p, (element,))


def bad_event(ev: int, p: int) -> ExiDecodeError:
    if ev == -1:
        return ExiUnsupportedError(
            "second-level event (xsi:type, xsi:nil, undeclared content), wildcard or mixed "
            "text: not used by V2G and not supported", p)
    return ExiInvalidEventError("event code not allowed by the grammar here", p)


def out_of_range(v: int, lo: int, hi: int, p: int) -> ExiDecodeError:
    return ExiValueError(f"value {v} outside [{lo}, {hi}]", p)


def bad_enum(i: int, n: int, p: int) -> ExiDecodeError:
    return ExiValueError(f"enumeration index {i} beyond the {n} values", p)


def too_many(n: int, mx: int, p: int) -> ExiDecodeError:
    return ExiValueError(f"more than maxOccurs {mx} items", p)


def missing(field: str) -> Invalid:
    return Invalid(f"required field {field} is missing")


__all__ = [
    "ExiDecodeError", "ExiEncodeError", "Invalid", "w_uint", "w_int", "w_str", "w_bin",
    "finish", "BOOL", "r_uint", "r_int", "r_str", "r_bin", "fault", "bad_event", "out_of_range",
    "bad_enum", "too_many", "missing", "UNBOUNDED_INT_BITS", "MAX_LENGTH_FIELD",
]

"""Bit-level primitives of the pure-Python backend (EXI 1.0 §7.1, bit-packed).

Encoding accumulates into one Python int that starts with a sentinel 1 bit, so a write is a
shift and an or; decoding reads from the whole stream held as one int ``D`` of ``L`` bits, at
bit position ``p``. Reading past the end makes the shift count negative, which raises
``ValueError`` — the generated code turns that into ``ExiTruncatedError`` at no cost on the
good path.

Both tricks cost time proportional to the size of the int on every event: a read
``D >> (L - p)`` builds an int of ``p`` bits, a write ``(a << n) | v`` copies the accumulator.
That is nothing for a V2G message of a few hundred bytes, and quadratic for a long one (60,000
empty xmldsig ``KeyName`` elements, 61 KB: 0.9 s). Long inputs therefore get stand-ins with the
same operators and bounded cost per event: ``LongStream`` (a sliding window over the bytes, for
``D``) and ``LongAccumulator`` (whole bytes go to a buffer, for ``a``), so both directions are
linear in the input (benchmarks/bench_exi.py --worst-case).
"""

from __future__ import annotations

from .errors import (ExiDecodeError, ExiEncodeError, ExiInvalidEventError, ExiTruncatedError,
                     ExiUnsupportedError, ExiValueError)

UNBOUNDED_INT_BITS = 1024  # cap for xs:integer without bounds (ds:X509SerialNumber …)
# what that cap lets the decoder read: 7-bit groups while fewer than UNBOUNDED_INT_BITS bits have
# been read, so magnitudes below 2**1029; the encoder refuses anything it could not read back
UNBOUNDED_INT_LIMIT = 1 << (7 * -(-UNBOUNDED_INT_BITS // 7))
MAX_LENGTH_FIELD = 1 << 32  # cap for string/binary length prefixes without maxLength
MAX_READ_BITS = 64  # widest fixed-width read the generated code makes (tools/xsdgen/emit_py.py)
LONG_INPUT_BYTES = 1024  # from this size on, decode through a LongStream
LONG_OUTPUT_BITS = 8192  # from this size on, encode into a LongAccumulator


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
        if n > 512:
            a = long_acc(a)
        return (a << (8 * n)) | int.from_bytes(b, "big")
    if not _xml_char_ok(s):
        raise Invalid("contains a character XML does not allow")
    a = w_uint(a, n + 2)
    if n > 512:
        a = long_acc(a)
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
    if n > 512:
        a = long_acc(a)
    return (a << (8 * n)) | int.from_bytes(b, "big")


class LongAccumulator:
    """The encoder's accumulator once it is long: the generated code keeps writing
    ``a = (a << n) | v`` and ``a <<= n``, but whole bytes move to a buffer, so each write costs
    the same however much was written before.

    The writes are affine — ``a`` is rebound to the result of every shift and or, never used
    twice — so the operators update the object in place and return it. An or only sets bits
    that the shift just before it made room for, so everything above them is final when the
    next shift comes and can leave for the buffer.
    """

    __slots__ = ("buf", "nbits", "tail")

    def __init__(self, a: int):
        nbits = a.bit_length() - 1  # below the sentinel bit
        keep = nbits % 8
        self.buf = bytearray(((a ^ (1 << nbits)) >> keep).to_bytes(nbits // 8, "big"))
        self.tail = a & ((1 << keep) - 1)
        self.nbits = keep

    def __lshift__(self, n: int) -> LongAccumulator:
        nbits = self.nbits
        if nbits >= 1024:
            keep = nbits % 8
            self.buf += (self.tail >> keep).to_bytes(nbits // 8, "big")
            self.tail &= (1 << keep) - 1
            nbits = keep
        self.tail <<= n
        self.nbits = nbits + n
        return self

    def __or__(self, v: int) -> LongAccumulator:
        self.tail |= v
        return self

    def bit_length(self) -> int:
        """0, so that the generated ``if a.bit_length() > LONG_OUTPUT_BITS`` leaves it alone."""
        return 0

    def finish(self) -> bytes:
        pad = -self.nbits % 8
        return bytes(self.buf) + (self.tail << pad).to_bytes((self.nbits + pad) // 8, "big")

    def as_int(self) -> int:
        """The plain accumulator this stands for: the bits below a sentinel 1 bit."""
        top = (1 << (8 * len(self.buf))) | int.from_bytes(self.buf, "big")
        return (top << self.nbits) | self.tail


def long_acc(a):
    """Called by the generated encoders in loops (and by long values): switch to a
    LongAccumulator once the output is long."""
    if a.__class__ is int and a.bit_length() > LONG_OUTPUT_BITS:
        return LongAccumulator(a)
    return a


def as_int(a) -> int:
    """An accumulator as one int with its sentinel bit, whichever form it has."""
    return a if a.__class__ is int else a.as_int()


def finish(a) -> bytes:
    """Pad the accumulated bits to a byte boundary and drop the sentinel bit."""
    if a.__class__ is not int:  # a LongAccumulator
        return a.finish()
    nbits = a.bit_length() - 1
    pad = -nbits % 8
    a <<= pad
    nbytes = (nbits + pad) // 8
    return (a ^ (1 << (nbits + pad))).to_bytes(nbytes, "big")


# --- decoding -----------------------------------------------------------------------------

class LongStream:
    """``D`` for a long input: ``D >> (L - p)`` gives an int whose low bits are the stream's
    bits up to position ``p`` — the at most MAX_READ_BITS of them that the caller masks —
    read from a window of a few hundred bytes instead of an int of ``p`` bits. A shift count
    below zero (a read past the end) raises ValueError, as it does on an int."""

    __slots__ = ("data", "hi", "lo", "nbits", "win")

    WINDOW = 256  # bytes

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.nbits = 8 * len(self.data)
        self.lo = self.hi = 0  # the window holds bits [lo, hi) of the stream
        self.win = 0

    def __rshift__(self, k: int) -> int:
        if k < 0:
            raise ValueError("negative shift count")
        p = self.nbits - k
        if p > self.hi or (p - MAX_READ_BITS < self.lo and self.lo):
            start = max(0, p - MAX_READ_BITS) >> 3
            end = min(len(self.data), start + self.WINDOW)
            self.win = int.from_bytes(self.data[start:end], "big")
            self.lo, self.hi = 8 * start, 8 * end
        return self.win >> (self.hi - p)

    def bytes_at(self, p: int, n: int) -> bytes:
        """The ``n`` bytes starting at bit ``p`` (within the stream)."""
        i, r = divmod(p, 8)
        if not r:
            return self.data[i:i + n]
        v = int.from_bytes(self.data[i:i + n + 1], "big") >> (8 - r)
        return (v & ((1 << (8 * n)) - 1)).to_bytes(n, "big")


def stream(data) -> tuple[object, int]:
    """``D, L`` for the generated decoders: one int, or a LongStream for long inputs."""
    if len(data) >= LONG_INPUT_BYTES:
        return LongStream(data), 8 * len(data)
    return int.from_bytes(data, "big"), 8 * len(data)


def _bytes_at(D, L: int, p: int, n: int) -> bytes:
    if D.__class__ is not int:  # a LongStream
        return D.bytes_at(p, n)
    return ((D >> (L - p - 8 * n)) & ((1 << (8 * n)) - 1)).to_bytes(n, "big")


def r_uint(D: int, L: int, p: int, max_bits: int) -> tuple[int, int]:
    """Read an Unsigned Integer of at most ``max_bits`` significant bits."""
    try:
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
                raise overlong(max_bits, p)
    except ValueError:  # read past the end (the caller's p does not say so: report it here)
        raise truncated(L) from None


def r_int(D: int, L: int, p: int, max_bits: int) -> tuple[int, int]:
    p += 1
    if p > L:
        raise truncated(L)
    neg = (D >> (L - p)) & 1
    v, p = r_uint(D, L, p, max_bits)
    return (-v - 1 if neg else v), p


def r_len(D: int, L: int, p: int, min_len: int, max_len: int | None, unit_bits: int,
          what: str) -> tuple[int, int]:
    """Read a length prefix and check it against the facets and the remaining input."""
    n, p = r_uint(D, L, p, 64)
    if n < min_len or (max_len is not None and n > max_len) or p + n * unit_bits > L:
        raise length_error(what, n, min_len, max_len, p)
    return n, p


def r_str(D: int, L: int, p: int, min_len: int, max_len: int | None) -> tuple[str, int]:
    n, p = r_uint(D, L, p, 64)
    if n < 2:
        raise string_table_hit(p)
    n -= 2
    if n < min_len or (max_len is not None and n > max_len) or p + 8 * n > L:
        raise length_error("string", n, min_len, max_len, p)
    if n == 0:
        return "", p
    q = p + 8 * n
    b = _bytes_at(D, L, p, n)
    if b.isascii():
        s = b.decode("ascii")
        if min(b) < 32 and not _xml_char_ok(s):
            raise not_xml(q)
        return s, q
    chars = []
    for _ in range(n):
        c, p = r_uint(D, L, p, 21)
        if c > 0x10FFFF:
            raise beyond_unicode(c, p)
        chars.append(chr(c))
    s = "".join(chars)
    if not _xml_char_ok(s):
        raise not_xml(p)
    return s, p


def r_bin(D: int, L: int, p: int, min_len: int, max_len: int | None) -> tuple[bytes, int]:
    n, p = r_len(D, L, p, min_len, max_len, 8, "binary")
    return _bytes_at(D, L, p, n), p + 8 * n


# --- errors raised from generated code ----------------------------------------------------

# --- decode errors: made here for both backends (the C one calls these), so they agree ------

def truncated(L: int) -> ExiDecodeError:
    return ExiTruncatedError("unexpected end of stream", L)


def overlong(max_bits: int, p: int) -> ExiDecodeError:
    return ExiValueError(f"unsigned integer longer than {max_bits} bits", p)


def string_table_hit(p: int) -> ExiDecodeError:
    return ExiValueError("string table hit, but V2G streams keep no string table", p)


def length_error(what: str, n: int, min_len: int, max_len: int | None, p: int) -> ExiDecodeError:
    """A string or binary length (``p``: after the length) that breaks a facet or, failing
    that, runs past the end of the stream."""
    if what == "string":
        if n < min_len:
            return ExiValueError(f"string length {n} is below minLength {min_len}", p)
        if max_len is not None and n > max_len:
            return ExiValueError(f"string length {n} is above maxLength {max_len}", p)
    else:
        if n < min_len:
            return ExiValueError(f"{what} length {n} is below the minimum {min_len}", p)
        if max_len is not None and n > max_len:
            return ExiValueError(f"{what} length {n} is above the maximum {max_len}", p)
    return ExiTruncatedError(f"{what} of length {n} runs past the end of the stream", p)


def beyond_unicode(c: int, p: int) -> ExiDecodeError:
    return ExiValueError(f"code point {c:#x} is beyond Unicode", p)


def not_xml(p: int) -> ExiDecodeError:
    return ExiValueError("string contains a character XML does not allow", p)


def fault(exc: Exception, p: int, L: int, element: str) -> ExiDecodeError:
    """Turn an exception caught in a generated decoder into a typed decode error."""
    if isinstance(exc, ExiDecodeError):
        exc.push(element)
        return exc
    if p > L:
        return ExiTruncatedError("unexpected end of stream", L, (element,))
    return ExiValueError(f"invalid value ({exc})", p, (element,))


def group_fault(D, L: int, p: int, items: tuple) -> ExiDecodeError:
    """The error of a merged fixed-width read ending at ``p`` that failed a check or ran past
    the end: the first of its items, in stream order, that is wrong, at the end of that item —
    what reading them one by one (as the C backend does) finds. ``items``: ``(nbits,)`` for an
    item without checks, ``(nbits, 'z')`` for an event code that must be 0 (a single
    production), ``(nbits, 'n', min, max)`` for an n-bit integer, ``(nbits, 'e', count)`` for an
    enumeration index."""
    q = p - sum(it[0] for it in items)
    for it in items:
        n = it[0]
        q += n
        if q > L:
            return truncated(L)
        x = (D >> (L - q)) & ((1 << n) - 1)
        kind = it[1] if len(it) > 1 else None
        if kind == "z" and x:
            return bad_event(-1, q)
        if kind == "n" and x + it[2] > it[3]:
            return out_of_range(x + it[2], it[2], it[3], q)
        if kind == "e" and x >= it[2]:
            return bad_enum(x, it[2], q)
    return ExiValueError("merged read failed a check that none of its items fails", p)


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
    "bad_enum", "too_many", "missing", "UNBOUNDED_INT_BITS", "UNBOUNDED_INT_LIMIT", "MAX_LENGTH_FIELD", "LongStream",
    "LongAccumulator", "long_acc", "as_int", "stream", "group_fault", "MAX_READ_BITS",
]

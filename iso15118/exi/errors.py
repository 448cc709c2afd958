"""The codec's error types, shared by both backends.

A decode error says where (bit offset and the element path) and why; an encode error names the
field. Nothing else escapes ``iso15118.exi`` for bad input.
"""

from __future__ import annotations


class ExiError(Exception):
    """Base class of every codec error."""


class ExiDecodeError(ExiError):
    """The bytes are not a valid EXI stream for the schema.

    ``bit_offset`` is the position (in bits, from the start of the stream) where decoding
    stopped; ``path`` lists the elements being decoded, outermost first.
    """

    def __init__(self, reason: str, bit_offset: int | None = None, path: tuple[str, ...] = ()):
        self.reason = reason
        self.bit_offset = bit_offset
        self.path = path
        super().__init__(reason)

    def push(self, element: str) -> None:
        """Prepend the enclosing element's name (called while the error propagates)."""
        self.path = (element,) + self.path

    def __str__(self) -> str:
        where = "/".join(self.path) if self.path else "document"
        at = f" at bit {self.bit_offset}" if self.bit_offset is not None else ""
        return f"{where}{at}: {self.reason}"


class ExiTruncatedError(ExiDecodeError):
    """The stream ended in the middle of a value or event code."""


class ExiInvalidEventError(ExiDecodeError):
    """An event code that the grammar does not allow here (or the unsupported second level)."""


class ExiValueError(ExiDecodeError):
    """A value outside its XSD facets (range, length, enumeration, occurrence)."""


class ExiHeaderError(ExiDecodeError):
    """The EXI header is not the one V2G uses (0x80: no cookie, no options, version 1)."""


class ExiUnsupportedError(ExiDecodeError):
    """Valid EXI that this codec deliberately does not support (wildcard or mixed text)."""


class ExiEncodeError(ExiError, ValueError):
    """The message cannot be encoded: ``field`` is the dotted path of the offending field."""

    def __init__(self, reason: str, field: str = ""):
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class SchemaNameError(ExiError, ValueError):
    """An unknown schema name or namespace was given."""

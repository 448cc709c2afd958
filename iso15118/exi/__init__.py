"""Schema-informed EXI codec for ISO 15118-2, ISO 15118-20, DIN SPEC 70121 and the
SupportedAppProtocol handshake — the one module in v2h that knows EXI.

    from iso15118 import exi
    msg = exi.decode(data, "iso20_dc")        # or the namespace URI of the message
    data = exi.encode(msg)
    exi.to_dict(msg)                          # the JSON shape of the reference vectors

``IMPLEMENTATION`` names the active backend; ``V2H_PURE_PYTHON=1`` forces the pure-Python one.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import _backend, _convert, _pycodec
from ._meta import SimpleElement
from ._pyrt import Invalid as _Invalid
from ._schemas import SCHEMAS, load, schema_key
from .errors import (ExiDecodeError, ExiEncodeError, ExiError, ExiHeaderError,
                     ExiInvalidEventError, ExiTruncatedError, ExiUnsupportedError, ExiValueError,
                     SchemaNameError)

IMPLEMENTATION = _backend.implementation()  # "cython" when the C extension is built, else "python"

__all__ = [
    "IMPLEMENTATION", "SCHEMAS", "decode", "encode", "to_dict", "from_dict", "to_xml", "from_xml",
    "encode_fragment", "decode_fragment", "schema_of", "messages", "element_name", "ExiError", "ExiDecodeError",
    "ExiEncodeError", "ExiHeaderError", "ExiInvalidEventError", "ExiTruncatedError",
    "ExiUnsupportedError", "ExiValueError", "SchemaNameError", "SimpleElement",
]


def messages(schema: str) -> ModuleType:
    """The generated module of a schema: its message classes and enumerations."""
    return load(schema)


def _module_for(message: Any, schema: str | None) -> ModuleType:
    if schema is not None:
        return load(schema)
    if isinstance(message, SimpleElement):
        raise ExiEncodeError(f"{message.name} has a simple type shared by several schemas: pass schema=")
    spec = getattr(type(message), "_exi", None)
    if spec is None:
        raise ExiEncodeError(f"{type(message).__name__} is not a generated message class")
    if spec.universe is None:
        raise ExiEncodeError(f"{type(message).__name__} is shared by several schemas: pass schema=")
    return load(spec.universe)


def schema_of(message: Any) -> str | None:
    """The schema universe a message class belongs to (None for classes shared by several)."""
    spec = getattr(type(message), "_exi", None)
    return spec.universe if spec is not None else None


def decode(data: bytes, schema: str) -> Any:
    """Decode a complete EXI stream (header 0x80 first, no V2GTP header) into a message."""
    mod = load(schema)
    cext = _backend.cext
    if cext is not None:
        if data.__class__ is not bytes and isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        try:
            # the message or the typed error, the same as the pure-Python decoder's
            return cext.decode_document(cext.universe(mod), data)
        except cext.Fallback:
            pass  # a document of simple type, or not bytes: the pure-Python decoder answers
    try:
        return _pycodec.decode_document(mod, data)
    except ExiDecodeError:
        raise
    except (ValueError, IndexError, OverflowError) as e:  # a read past the end of the input
        raise ExiTruncatedError(f"unexpected end of stream ({e})") from None


def _encode_failure(message: Any, exc: Exception) -> ExiEncodeError:
    """Explain why encoding failed: validate the whole message to name the field."""
    if isinstance(exc, ExiEncodeError):
        return exc
    if isinstance(message, SimpleElement):
        return ExiEncodeError(str(exc) or type(exc).__name__, message.name)
    try:
        _convert.validate(message)
    except ExiEncodeError as e:
        return e
    return ExiEncodeError(str(exc) or type(exc).__name__, type(message).__name__)


def encode(message: Any, schema: str | None = None, element: str | None = None) -> bytes:
    """Encode a message as a complete EXI stream. ``element`` picks the global element when
    the message's type belongs to several."""
    mod = _module_for(message, schema)
    cext = _backend.cext
    if cext is not None:
        try:
            return cext.encode_document(cext.universe(mod), message, element)
        except (cext.Fallback, TypeError):
            pass  # invalid or unusual: the pure-Python encoder gives the bytes or the error
    try:
        return _pycodec.encode_document(mod, message, element)
    except (_Invalid, KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise _encode_failure(message, e) from None


def encode_fragment(message: Any, schema: str | None = None, element: str | None = None) -> bytes:
    """Encode an element as an EXI fragment (the bytes a Plug & Charge signature digests)."""
    mod = _module_for(message, schema)
    try:
        return _pycodec.encode_fragment(mod, message, element)
    except (_Invalid, KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise _encode_failure(message, e) from None


def decode_fragment(data: bytes, schema: str) -> Any:
    """Decode an EXI fragment holding one element (a list if it holds several)."""
    mod = load(schema)
    try:
        out = _pycodec.decode_fragment(mod, data)
    except ExiDecodeError:
        raise
    except (ValueError, IndexError, OverflowError) as e:
        raise ExiTruncatedError(f"unexpected end of stream ({e})") from None
    return out[0] if len(out) == 1 else out


def _root_name(message: Any, mod: ModuleType, element: str | None) -> str:
    if element is not None:
        return element
    if isinstance(message, SimpleElement):
        return message.name
    cands = [e[0] for e in mod.GLOBAL_ELEMENTS if e[2] is type(message)]
    if len(cands) != 1:
        cands = [e[0] for e in mod.FRAGMENT_ELEMENTS if e[2] is type(message)
                 or (e[2] == "relaxed" and any(c is type(message) for c, _s in e[5]))]
    if len(cands) != 1:
        raise ExiEncodeError(f"cannot tell the element name of a {type(message).__name__}: pass element=")
    return cands[0]


def element_name(message: Any, schema: str | None = None) -> str:
    """The element name a message is encoded under (ExiEncodeError if its type has several)."""
    return _root_name(message, _module_for(message, schema), None)


def to_dict(message: Any, schema: str | None = None, element: str | None = None) -> dict:
    """The message as ``{element name: {...}}`` in the JSON shape of the reference vectors."""
    mod = _module_for(message, schema)
    if isinstance(message, SimpleElement):
        return {message.name: _convert.simple_to_dict(message, mod)}
    return {_root_name(message, mod, element): _convert.body_to_dict(message)}


def from_dict(doc: dict, schema: str) -> Any:
    """Build a message from its dict form; the single top-level key names the element."""
    mod = load(schema)
    if not isinstance(doc, dict) or len(doc) != 1:
        raise ExiEncodeError("expected an object with exactly one key, the element name")
    (name, body), = doc.items()
    for table in ("GLOBAL_ELEMENTS", "FRAGMENT_ELEMENTS"):
        for ename, _ns, cls, _e, _d, spec in getattr(mod, table):
            if ename != name:
                continue
            # a relaxed fragment element: the body's shape picks one of its declarations
            forms = spec if cls == "relaxed" else ((cls, spec),)
            for fcls, fspec in forms:
                if fcls is SimpleElement and not isinstance(body, dict):
                    return SimpleElement(name, _convert.simple_from_dict(body, fspec, name))
                if isinstance(fcls, type) and fcls is not SimpleElement and isinstance(body, dict):
                    return _convert.body_from_dict(fcls, body, name)
    raise ExiEncodeError(f"{name!r} is not an element of schema {schema_key(schema)}")


def to_xml(message: Any, schema: str | None = None, element: str | None = None) -> str:
    """The message as an XML document (namespaces as in the schema)."""
    from . import _xml
    mod = _module_for(message, schema)
    name = _root_name(message, mod, element)
    entry = next((e for e in mod.GLOBAL_ELEMENTS + mod.FRAGMENT_ELEMENTS if e[0] == name), None)
    if entry is None:
        raise ExiEncodeError(f"{name!r} is not an element of schema {mod.UNIVERSE}")
    spec = entry[5]
    if entry[2] == "relaxed":
        spec = next((s for c, s in spec if c is SimpleElement), None) if isinstance(message, SimpleElement) else None
    return _xml.to_xml(message, name, entry[1], spec)


def from_xml(xml: str, schema: str | None = None) -> Any:
    """Parse an XML document into a message; the root element's namespace picks the schema."""
    from . import _xml
    return _xml.from_xml(xml, schema)

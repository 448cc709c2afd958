"""Messages ↔ plain dicts (the JSON shape of the reference vectors), and message validation.

Shape: the document element's local name is the single top-level key; child elements and
attributes are keyed by local name; repeated elements are lists; hexBinary is upper-case hex,
base64Binary is padded base64; enumerations are their string value; simple content with
attributes is ``{"Id": …, "value": …}``.
"""

from __future__ import annotations

import base64
import binascii
from enum import Enum
from typing import Any

from ._meta import FieldSpec, SimpleSpec, TypeSpec
from ._pyrt import UNBOUNDED_INT_LIMIT
from .errors import ExiEncodeError


def spec_of(obj) -> TypeSpec:
    spec = getattr(type(obj), "_exi", None)
    if spec is None:
        raise ExiEncodeError(f"{type(obj).__name__} is not a generated message class")
    return spec


# --- to_dict ------------------------------------------------------------------------------

def _simple_out(v, s: SimpleSpec):
    if s.kind == "hexBinary":
        return v.hex().upper()
    if s.kind == "base64Binary":
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, Enum):
        return v.value
    return v


def body_to_dict(obj) -> dict:
    out: dict[str, Any] = {}
    for f in spec_of(obj).fields:
        v = getattr(obj, f.name)
        if v is None or (f.is_list and not v):
            continue
        if f.cls is not None:
            out[f.xml_name] = [body_to_dict(x) for x in v] if f.is_list else body_to_dict(v)
        else:
            out[f.xml_name] = [_simple_out(x, f.simple) for x in v] if f.is_list else _simple_out(v, f.simple)
    return out


def simple_to_dict(element, mod):
    from ._meta import SimpleElement

    spec = None
    for e in mod.GLOBAL_ELEMENTS + mod.FRAGMENT_ELEMENTS:
        if e[0] == element.name and e[5]:
            spec = e[5] if e[2] != "relaxed" else next(s for c, s in e[5] if c is SimpleElement)
            break
    return _simple_out(element.value, spec)


def simple_from_dict(value, spec: SimpleSpec, path: str):
    return _simple_in(value, spec, path)


# --- from_dict ----------------------------------------------------------------------------

def _simple_in(v, s: SimpleSpec, path: str):
    if s.enum is not None:
        if not isinstance(v, str):
            raise ExiEncodeError(f"expected one of the {s.enum.__name__} values, got {v!r}", path)
        try:
            return s.enum(v)
        except ValueError:
            raise ExiEncodeError(f"{v!r} is not a {s.enum.__name__} value", path) from None
    if s.kind == "integer":
        if not isinstance(v, int) or isinstance(v, bool):
            raise ExiEncodeError(f"expected an integer, got {v!r}", path)
        return v
    if s.kind == "boolean":
        if not isinstance(v, bool):
            raise ExiEncodeError(f"expected true or false, got {v!r}", path)
        return v
    if s.kind == "string":
        if not isinstance(v, str):
            raise ExiEncodeError(f"expected a string, got {v!r}", path)
        return v
    if not isinstance(v, str):
        raise ExiEncodeError(f"expected a {s.kind} string, got {v!r}", path)
    try:
        if s.kind == "hexBinary":
            if len(v) % 2 or any(c not in "0123456789abcdefABCDEF" for c in v):
                raise ValueError("not an even number of hex digits")
            return bytes.fromhex(v)
        return base64.b64decode(v, validate=True)
    except (ValueError, binascii.Error) as e:
        raise ExiEncodeError(f"invalid {s.kind}: {e}", path) from None


def body_from_dict(cls: type, doc, path: str):
    if not isinstance(doc, dict):
        raise ExiEncodeError(f"expected an object for {cls.__name__}, got {type(doc).__name__}", path)
    spec: TypeSpec = cls._exi
    known = {f.xml_name: f for f in spec.fields}
    unknown = [k for k in doc if k not in known]
    if unknown:
        raise ExiEncodeError(f"unknown field(s) {', '.join(map(repr, unknown))} for {spec.name}", path)
    kwargs = {}
    for f in spec.fields:
        p = f"{path}.{f.xml_name}" if path else f.xml_name
        if f.xml_name not in doc:
            if not f.is_list and f.min > 0:
                raise ExiEncodeError("required field is missing", p)
            continue
        v = doc[f.xml_name]
        if f.is_list:
            if not isinstance(v, list):
                v = [v]  # a single item is accepted where a list is expected
            kwargs[f.name] = [_field_in(f, x, f"{p}[{i}]") for i, x in enumerate(v)]
        else:
            kwargs[f.name] = _field_in(f, v, p)
    return cls(**kwargs)


def _field_in(f: FieldSpec, v, path: str):
    if f.cls is not None:
        return body_from_dict(f.cls, v, path)
    return _simple_in(v, f.simple, path)


# --- validation ---------------------------------------------------------------------------

def _check_simple(v, s: SimpleSpec, path: str) -> None:
    if s.enum is not None:
        try:
            s.enum(v)
        except ValueError:
            raise ExiEncodeError(f"{v!r} is not a {s.enum.__name__} value", path) from None
        return
    if s.kind == "integer":
        if not isinstance(v, int) or isinstance(v, bool):
            raise ExiEncodeError(f"expected int, got {type(v).__name__}", path)
        if s.min is not None and v < s.min:
            raise ExiEncodeError(f"{v} is below the minimum {s.min}", path)
        if s.max is not None and v > s.max:
            raise ExiEncodeError(f"{v} is above the maximum {s.max}", path)
        if (s.min is None or s.max is None) and not -UNBOUNDED_INT_LIMIT <= v < UNBOUNDED_INT_LIMIT:
            raise ExiEncodeError(f"{v} is beyond the {UNBOUNDED_INT_LIMIT.bit_length() - 1} bits "
                                 "the codec reads for an unbounded integer", path)
        return
    if s.kind == "boolean":
        if not isinstance(v, bool):
            raise ExiEncodeError(f"expected bool, got {type(v).__name__}", path)
        return
    if s.kind == "string":
        if not isinstance(v, str):
            raise ExiEncodeError(f"expected str, got {type(v).__name__}", path)
        n = len(v)
    else:
        if not isinstance(v, (bytes, bytearray)):
            raise ExiEncodeError(f"expected bytes, got {type(v).__name__}", path)
        n = len(v)
    lo = s.length if s.length is not None else (s.min_length or 0)
    hi = s.length if s.length is not None else s.max_length
    if n < lo:
        raise ExiEncodeError(f"length {n} is below the minimum {lo}", path)
    if hi is not None and n > hi:
        raise ExiEncodeError(f"length {n} is above the maximum {hi}", path)
    if s.kind == "string":
        from ._pyrt import _xml_char_ok
        if not _xml_char_ok(v):
            raise ExiEncodeError("contains a character XML does not allow", path)


def validate(obj, path: str = "") -> None:
    """Raise ExiEncodeError naming the first field that breaks the schema."""
    spec = spec_of(obj)
    path = path or type(obj).__name__  # the class: a global element of a shared type has its own
    for g in spec.groups:
        present = sum(1 for n in g.fields if _present(getattr(obj, n)))
        if g.max == 1 and present > 1:
            raise ExiEncodeError(f"only one of {', '.join(g.fields)} may be present", path)
        if g.min > 0 and present == 0:
            raise ExiEncodeError(f"one of {', '.join(g.fields)} is required", path)
        if g.max is not None and g.max > 1:
            total = sum(len(getattr(obj, n)) for n in g.fields)
            if total > g.max:
                raise ExiEncodeError(f"{total} items in {', '.join(g.fields)}, at most {g.max}", path)
    for f in spec.fields:
        p = f"{path}.{f.name}"
        v = getattr(obj, f.name)
        if f.is_list:
            if not isinstance(v, (list, tuple)):
                raise ExiEncodeError(f"expected a list, got {type(v).__name__}", p)
            if len(v) < f.min or (f.max is not None and len(v) > f.max):
                hi = f.max if f.max is not None else "unbounded"
                raise ExiEncodeError(f"{len(v)} items, allowed {f.min}..{hi}", p)
            for i, x in enumerate(v):
                _check_field(f, x, f"{p}[{i}]")
        elif v is None:
            if f.min > 0:
                raise ExiEncodeError("required field is missing", p)
        else:
            _check_field(f, v, p)


def _present(v) -> bool:
    return bool(v) if isinstance(v, list) else v is not None


def _check_field(f: FieldSpec, v, path: str) -> None:
    if f.cls is not None:
        if not isinstance(v, f.cls) and getattr(type(v), "_exi", None) is None:
            raise ExiEncodeError(f"expected {f.cls.__name__}, got {type(v).__name__}", path)
        if isinstance(v, f.cls) or type(v).__name__ == f.cls.__name__:
            validate(v, path)
        else:
            raise ExiEncodeError(f"expected {f.cls.__name__}, got {type(v).__name__}", path)
    else:
        _check_simple(v, f.simple, path)

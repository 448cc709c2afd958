"""The base of every generated message class: a frozen, keyword-only dataclass written out.

The generator writes each class with ``__slots__`` and an explicit ``__init__``; equality, hashing,
repr, immutability and pickling come from here, and ``__dataclass_fields__`` is built on first
use. The classes therefore behave as ``@dataclass(frozen=True, slots=True, kw_only=True)``
classes — ``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` work — without
the decorator's cost at import (it compiles several functions per class and builds each slotted
class twice: ~5 MB and ~300 ms for the ~700 V2G classes).
"""

from __future__ import annotations

from typing import Any

_object_setattr = object.__setattr__


class _NoList:
    """Default marker of list fields (like ``field(default_factory=list)``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


NO_LIST: Any = _NoList()


class _LazyDataclassFields:
    """``__dataclass_fields__``, built from the class's ``_exi`` description on first access."""

    def __get__(self, obj, cls):
        import dataclasses

        fields = {}
        for f in cls._exi.fields:
            if f.is_list:
                fld = dataclasses.field(default_factory=list, kw_only=True)
            elif f.min == 0:
                fld = dataclasses.field(default=None, kw_only=True)
            else:
                fld = dataclasses.field(kw_only=True)
            fld.name = f.name
            fld.type = cls.__annotations__.get(f.name, Any)
            fld._field_type = dataclasses._FIELD  # what @dataclass sets (a stable private API)
            fields[f.name] = fld
        type.__setattr__(cls, "__dataclass_fields__", fields)
        return fields


class _LazyDataclassParams:
    def __get__(self, obj, cls):
        import dataclasses

        params = dataclasses._DataclassParams(True, True, True, False, False, True)
        type.__setattr__(cls, "__dataclass_params__", params)
        return params


class Message:
    """Frozen value object: compares, hashes and prints by its fields, in schema order."""

    __slots__ = ()
    __match_args__ = ()
    __dataclass_fields__ = _LazyDataclassFields()
    __dataclass_params__ = _LazyDataclassParams()

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __setattr__(self, name: str, value: Any) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self) -> list:
        return [getattr(self, n) for n in self.__slots__]

    def __setstate__(self, state: list) -> None:
        for n, v in zip(self.__slots__, state):
            _object_setattr(self, n, v)


class SimpleElement(Message):
    """A document or fragment element of simple type (``ds:DigestValue``, ``ds:KeyName``, …):
    its local name and its value."""

    __slots__ = ("name", "value")
    __match_args__ = ("name", "value")

    def __init__(self, name: str, value: Any):
        _object_setattr(self, "name", name)
        _object_setattr(self, "value", value)


def _simple_element_fields(cls):
    import dataclasses

    out = {}
    for n in ("name", "value"):
        f = dataclasses.field()
        f.name, f.type, f._field_type = n, Any, dataclasses._FIELD
        out[n] = f
    return out


class _SimpleElementFields:
    def __get__(self, obj, cls):
        fields = _simple_element_fields(cls)
        type.__setattr__(cls, "__dataclass_fields__", fields)
        return fields


SimpleElement.__dataclass_fields__ = _SimpleElementFields()

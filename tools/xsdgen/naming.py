"""Python names for schema components: classes, enums, fields."""

from __future__ import annotations

import keyword
import re

from .model import ComplexType, SchemaError, SimpleType, Universe


def class_name(ct: ComplexType) -> str:
    """Message classes take the type name without its 'Type' suffix, so that a message class
    is named like its element (SessionSetupReqType → SessionSetupReq); anonymous types take
    their element's name."""
    if ct.name is None:
        return ct.context
    n = ct.name[1]
    return n[:-4] if n.endswith("Type") and len(n) > 4 else n


def enum_name(st: SimpleType, context: str) -> str:
    return st.name[1] if st.name is not None else f"{context}Enum"


def member_name(value: str) -> str:
    n = re.sub(r"\W", "_", value)
    if not n or n[0].isdigit():
        n = "_" + n
    if keyword.iskeyword(n):
        n += "_"
    return n


def check_identifier(name: str, where: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise SchemaError(f"{where}: {name!r} is not usable as a Python name")
    return name


def assign_names(u: Universe) -> tuple[dict[int, str], dict[int, str]]:
    """Class names for complex types and enum names for enumerated simple types, unique
    within the universe (keys are ``id()`` of the model objects)."""
    classes: dict[int, str] = {}
    used: dict[str, object] = {}
    cts = sorted(u.complex_types.values(), key=lambda c: c.order) + sorted(u.anonymous_types, key=lambda c: c.order)
    for ct in cts:
        n = check_identifier(class_name(ct), f"type {ct.name}")
        if n in used:
            alt = ct.name[1] if ct.name else f"{n}_"
            if alt in used:
                raise SchemaError(f"class name clash: {n}")
            n = alt
        used[n] = ct
        classes[id(ct)] = n
    enums: dict[int, str] = {}
    for st in u.simple_types.values():
        if st.enumeration is not None:
            n = check_identifier(enum_name(st, ""), f"simple type {st.name}")
            if n in used:
                raise SchemaError(f"enum name clash: {n}")
            used[n] = st
            enums[id(st)] = n
    return classes, enums

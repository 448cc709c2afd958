"""Descriptions of the generated message classes, read by the converters and the validator.

The generated modules attach a ``TypeSpec`` to every message class (``cls._exi``); everything
that walks messages generically (``to_dict``, ``from_dict``, XML, validation) uses only this.
"""

from __future__ import annotations

from typing import NamedTuple


class SimpleSpec(NamedTuple):
    """A simple type: primitive ``kind`` ('integer', 'boolean', 'string', 'hexBinary',
    'base64Binary'), the XSD built-in it derives from, and its facets."""

    kind: str
    builtin: str
    min: int | None = None
    max: int | None = None
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    enum: type | None = None  # the generated StrEnum of an enumerated type


class FieldSpec(NamedTuple):
    """One field of a message class: an attribute, a child element or the simple content."""

    name: str  # Python attribute name (the XML local name)
    xml_name: str  # the local name in XML / dict form
    ns: str  # namespace uri of the element or attribute ('' for none)
    kind: str  # 'attr' | 'elem' | 'value'
    cls: type | None  # message class of a complex-typed element
    simple: SimpleSpec | None  # simple type of an attribute, simple element or value
    is_list: bool
    min: int  # occurrences (lists: item count; others: 0 = optional)
    max: int | None
    group: int  # index of the choice/slot the field belongs to (shared by alternatives)


class GroupSpec(NamedTuple):
    """A slot holding several alternative fields (xs:choice or a substitution group)."""

    fields: tuple[str, ...]
    min: int
    max: int | None


class TypeSpec(NamedTuple):
    name: str  # XSD type name (or the element name of an anonymous type)
    ns: str
    fields: tuple[FieldSpec, ...]
    groups: tuple[GroupSpec, ...]
    mixed: bool
    universe: str | None  # the schema universe owning the class; None when shared


from ._message import SimpleElement  # noqa: E402,F401  (re-exported)

"""Messages ↔ XML text, driven by the generated field descriptions.

Output declares each namespace once on the root (prefixes ns0, ns1, … in order of use).
Input is parsed with the standard library (no DTDs, no external entities are resolved by
expat's default handler); unknown elements or attributes are errors, not silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from enum import Enum
from xml.sax.saxutils import escape

from ._meta import FieldSpec, SimpleElement, SimpleSpec
from ._schemas import load, schema_key
from .errors import ExiEncodeError


def _lexical(v, s: SimpleSpec) -> str:
    if s.kind == "boolean":
        return "true" if v else "false"
    if s.kind == "hexBinary":
        return v.hex().upper()
    if s.kind == "base64Binary":
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, Enum):
        return v.value
    return str(v)


def _text(s: str) -> str:
    return escape(s, {"\r": "&#13;"})


def _attr(s: str) -> str:
    return '"' + escape(s, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}) + '"'


class _Writer:
    def __init__(self):
        self.prefixes: dict[str, str] = {}
        self.out: list[str] = []

    def qname(self, ns: str, local: str) -> str:
        if not ns:
            return local
        if ns not in self.prefixes:
            self.prefixes[ns] = f"ns{len(self.prefixes)}"
        return f"{self.prefixes[ns]}:{local}"

    def element(self, obj, ns: str, name: str, indent: int, root: bool = False) -> None:
        spec = type(obj)._exi
        tag = self.qname(ns, name)
        attrs = []
        children = []
        value = None
        for f in spec.fields:
            v = getattr(obj, f.name)
            if v is None or (f.is_list and not v):
                continue
            if f.kind == "attr":
                attrs.append(f" {self.qname(f.ns, f.xml_name)}={_attr(_lexical(v, f.simple))}")
            elif f.kind == "value":
                value = _lexical(v, f.simple)
            else:
                for x in (v if f.is_list else [v]):
                    children.append((f, x))
        pad = "  " * indent
        start = len(self.out)
        self.out.append(None)  # placeholder: namespaces used below must be declared on the root
        if value is not None:
            self.out[start] = (pad, tag, "".join(attrs), "value")
            self.out.append(_text(value))
            self.out.append(f"</{tag}>\n")
            return
        if not children:
            self.out[start] = (pad, tag, "".join(attrs), "empty")
            return
        self.out[start] = (pad, tag, "".join(attrs), "open")
        for f, x in children:
            if f.cls is not None:
                self.element(x, f.ns, f.xml_name, indent + 1)
            else:
                ctag = self.qname(f.ns, f.xml_name)
                self.out.append(f"{pad}  <{ctag}>{_text(_lexical(x, f.simple))}</{ctag}>\n")
        self.out.append(f"{pad}</{tag}>\n")

    def render(self) -> str:
        decls = "".join(f' xmlns:{p}="{ns}"' for ns, p in self.prefixes.items())
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n']
        first = True
        for item in self.out:
            if isinstance(item, tuple):
                pad, tag, attrs, kind = item
                extra = decls if first else ""
                first = False
                if kind == "empty":
                    parts.append(f"{pad}<{tag}{extra}{attrs}/>\n")
                elif kind == "value":
                    parts.append(f"{pad}<{tag}{extra}{attrs}>")
                else:
                    parts.append(f"{pad}<{tag}{extra}{attrs}>\n")
            else:
                parts.append(item)
        return "".join(parts)


def to_xml(message, name: str, ns: str, simple: SimpleSpec | None = None) -> str:
    w = _Writer()
    tag = w.qname(ns, name)
    if simple is not None:  # a SimpleElement
        decl = f' xmlns:ns0="{ns}"' if ns else ""
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{tag}{decl}>'
                f"{_text(_lexical(message.value, simple))}</{tag}>\n")
    w.element(message, ns, name, 0, root=True)
    return w.render()


# --- parsing ------------------------------------------------------------------------------

def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, local = tag[1:].split("}", 1)
        return ns, local
    return "", tag


def _from_lexical(text: str, s: SimpleSpec, path: str):
    try:
        if s.enum is not None:
            return s.enum(text.strip())
        if s.kind == "integer":
            return int(text.strip())
        if s.kind == "boolean":
            t = text.strip()
            if t in ("true", "1"):
                return True
            if t in ("false", "0"):
                return False
            raise ValueError(f"{t!r} is not a boolean")
        if s.kind == "hexBinary":
            return bytes.fromhex(text.strip())
        if s.kind == "base64Binary":
            return base64.b64decode("".join(text.split()), validate=True)
        return text
    except (ValueError, binascii.Error) as e:
        raise ExiEncodeError(f"invalid {s.kind} value {text!r}: {e}", path) from None


def _build(cls, el: ET.Element, path: str):
    spec = cls._exi
    by_name: dict[tuple[str, str], FieldSpec] = {}
    for f in spec.fields:
        by_name[(f.kind == "attr", f.xml_name)] = f
    kwargs: dict = {}
    for key, val in el.attrib.items():
        _ns, local = _split(key)
        f = by_name.get((True, local))
        if f is None:
            raise ExiEncodeError(f"unknown attribute {local!r}", path)
        kwargs[f.name] = _from_lexical(val, f.simple, f"{path}@{local}")
    value_field = next((f for f in spec.fields if f.kind == "value"), None)
    if value_field is not None:
        kwargs["value"] = _from_lexical(el.text or "", value_field.simple, path)
    for child in el:
        _ns, local = _split(child.tag)
        f = by_name.get((False, local))
        if f is None:
            raise ExiEncodeError(f"unknown element {local!r}", path)
        cpath = f"{path}.{local}"
        if f.cls is not None:
            v = _build(f.cls, child, cpath)
        else:
            v = _from_lexical(child.text or "", f.simple, cpath)
        if f.is_list:
            kwargs.setdefault(f.name, []).append(v)
        elif f.name in kwargs:
            raise ExiEncodeError(f"element {local!r} occurs more than once", path)
        else:
            kwargs[f.name] = v
    missing = [f.name for f in spec.fields if not f.is_list and f.min > 0 and f.name not in kwargs]
    if missing:
        raise ExiEncodeError(f"missing {', '.join(missing)}", path)
    return cls(**kwargs)


def from_xml(xml: str, schema: str | None = None):
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ExiEncodeError(f"not well-formed XML: {e}") from None
    ns, local = _split(root.tag)
    mod = load(schema if schema is not None else ns)
    for ename, ens, cls, _e, _d, spec in mod.GLOBAL_ELEMENTS + mod.FRAGMENT_ELEMENTS:
        if ename != local or ens != ns:
            continue
        forms = spec if cls == "relaxed" else ((cls, spec),)
        for fcls, fspec in forms:
            if fcls is SimpleElement and not len(root) and not root.attrib:
                return SimpleElement(local, _from_lexical(root.text or "", fspec, local))
            if isinstance(fcls, type) and fcls is not SimpleElement and (cls != "relaxed" or root.attrib or len(root)):
                return _build(fcls, root, local)
    raise ExiEncodeError(f"{local!r} is not an element of schema {schema_key(schema or ns)}")

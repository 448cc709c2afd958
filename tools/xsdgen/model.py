"""XSD → schema model: the subset of XML Schema 1.0 the V2G schemas use.

Reads a schema universe (a set of XSD files, imports resolved by namespace) with lxml, network
and DTD loading off, and returns resolved element declarations, complex types and simple types.
Anything outside the supported subset is a ``SchemaError`` naming the construct, so a new schema
revision cannot be silently mis-encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
UNBOUNDED = None  # maxOccurs="unbounded"


class SchemaError(Exception):
    """The schema uses a construct the generator does not support, or is inconsistent."""


QName = tuple[str, str]  # (namespace uri, local name)


def qname_str(q: QName) -> str:
    return f"{{{q[0]}}}{q[1]}" if q[0] else q[1]


# --- simple types -------------------------------------------------------------------------

# Built-in types by name → (primitive kind, min, max)
_INT_BOUNDS = {
    "byte": (-(2**7), 2**7 - 1),
    "short": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
    "integer": (None, None),
    "nonNegativeInteger": (0, None),
    "positiveInteger": (1, None),
    "unsignedByte": (0, 2**8 - 1),
    "unsignedShort": (0, 2**16 - 1),
    "unsignedInt": (0, 2**32 - 1),
    "unsignedLong": (0, 2**64 - 1),
}
_STRINGS = {"string", "anyURI", "ID", "IDREF", "NCName", "token", "normalizedString", "Name"}
_BINARY = {"hexBinary", "base64Binary"}


@dataclass
class SimpleType:
    """A simple type resolved to its primitive kind and the facets that bound it."""

    name: QName | None
    kind: str  # 'integer' | 'boolean' | 'string' | 'hexBinary' | 'base64Binary'
    builtin: str  # the XSD built-in it derives from (e.g. 'unsignedShort', 'anyURI')
    min: int | None = None
    max: int | None = None
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    enumeration: list[str] | None = None

    def derive(self, name: QName | None) -> SimpleType:
        return SimpleType(name, self.kind, self.builtin, self.min, self.max, self.length,
                          self.min_length, self.max_length,
                          list(self.enumeration) if self.enumeration is not None else None)


def builtin_simple(local: str) -> SimpleType:
    if local in _INT_BOUNDS:
        lo, hi = _INT_BOUNDS[local]
        return SimpleType((XS, local), "integer", local, lo, hi)
    if local == "boolean":
        return SimpleType((XS, local), "boolean", local)
    if local in _STRINGS:
        return SimpleType((XS, local), "string", local)
    if local in _BINARY:
        return SimpleType((XS, local), local, local)
    raise SchemaError(f"unsupported built-in type xs:{local}")


# --- particles and types ------------------------------------------------------------------

@dataclass(eq=False)
class ElementDecl:
    qname: QName
    type: SimpleType | ComplexType | None  # resolved after parsing
    is_global: bool
    abstract: bool = False
    nillable: bool = False
    substitution_head: QName | None = None
    type_ref: QName | None = None  # named type reference, resolved in link()
    order: int = 0  # document order, for stable output


@dataclass(eq=False)
class Wildcard:
    """xs:any: namespace constraint 'any' | 'other' | list of uris."""

    namespace: str
    target_ns: str


@dataclass(eq=False)
class Group:
    kind: str  # 'sequence' | 'choice'
    particles: list[Particle]


@dataclass(eq=False)
class Particle:
    term: ElementDecl | Group | Wildcard
    min: int = 1
    max: int | None = 1


@dataclass(eq=False)
class AttributeUse:
    qname: QName
    type: SimpleType
    required: bool


@dataclass(eq=False)
class ComplexType:
    name: QName | None
    abstract: bool = False
    mixed: bool = False
    content: str = "empty"  # 'empty' | 'simple' | 'element'
    particle: Particle | None = None
    simple: SimpleType | None = None
    attributes: list[AttributeUse] = field(default_factory=list)
    base: QName | None = None  # derivation base (complex), for docs only
    derivation: str | None = None  # 'extension' | 'restriction'
    context: str = ""  # for anonymous types: the element they belong to
    order: int = 0


@dataclass
class Universe:
    """One EXI grammar universe: every declaration reachable from its schema files."""

    name: str
    elements: dict[QName, ElementDecl]  # global elements
    complex_types: dict[QName, ComplexType]
    simple_types: dict[QName, SimpleType]
    local_elements: list[ElementDecl]
    anonymous_types: list[ComplexType]
    namespaces: list[str]

    def all_elements(self) -> list[ElementDecl]:
        return list(self.elements.values()) + self.local_elements

    def substitution_members(self, head: QName) -> list[ElementDecl]:
        """Every element that may substitute ``head`` (transitively), excluding the head."""
        out: list[ElementDecl] = []
        frontier = [head]
        seen = {head}
        while frontier:
            h = frontier.pop()
            for e in self.elements.values():
                if e.substitution_head == h and e.qname not in seen:
                    seen.add(e.qname)
                    out.append(e)
                    frontier.append(e.qname)
        return out


# --- parsing ------------------------------------------------------------------------------

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          dtd_validation=False, remove_comments=True, huge_tree=False)


def _occurs(el, attr: str, default: int) -> int | None:
    v = el.get(attr)
    if v is None:
        return default
    if v == "unbounded":
        return UNBOUNDED
    return int(v)


class _Reader:
    def __init__(self, universe_name: str, files: list[Path]):
        self.name = universe_name
        self.files = files
        self.simple: dict[QName, SimpleType] = {}
        self.complex: dict[QName, ComplexType] = {}
        self.elements: dict[QName, ElementDecl] = {}
        self.local_elements: list[ElementDecl] = []
        self.anonymous: list[ComplexType] = []
        self.raw_simple: dict[QName, tuple] = {}
        self.raw_complex: dict[QName, tuple] = {}
        self.namespaces: list[str] = []
        self._order = 0
        self._pending_elements: list[tuple[ElementDecl, object, str, dict]] = []

    def next_order(self) -> int:
        self._order += 1
        return self._order

    def resolve_qname(self, el, value: str) -> QName:
        if ":" in value:
            prefix, local = value.split(":", 1)
            ns = el.nsmap.get(prefix)
            if ns is None:
                raise SchemaError(f"unknown prefix {prefix!r} in {value!r}")
            return (ns, local)
        return (el.nsmap.get(None, ""), value)

    def read(self) -> Universe:
        roots = []
        for path in self.files:
            root = etree.parse(str(path), _PARSER).getroot()
            if root.tag != f"{{{XS}}}schema":
                raise SchemaError(f"{path}: not an XML Schema")
            tns = root.get("targetNamespace", "")
            if tns not in self.namespaces:
                self.namespaces.append(tns)
            roots.append(root)
        # pass 1: collect named simple and complex types and global elements (raw)
        for root in roots:
            tns = root.get("targetNamespace", "")
            efd = root.get("elementFormDefault", "unqualified") == "qualified"
            afd = root.get("attributeFormDefault", "unqualified") == "qualified"
            ctx = {"tns": tns, "efd": efd, "afd": afd}
            for child in root:
                if not isinstance(child.tag, str):
                    continue
                tag = etree.QName(child).localname
                if tag == "simpleType":
                    self.raw_simple[(tns, child.get("name"))] = (child, ctx)
                elif tag == "complexType":
                    self.raw_complex[(tns, child.get("name"))] = (child, ctx)
                elif tag in ("element",):
                    q = (tns, child.get("name"))
                    if q in self.elements:
                        raise SchemaError(f"duplicate global element {qname_str(q)}")
                    self.elements[q] = ElementDecl(q, None, True, order=self.next_order())
                    self._pending_elements.append((self.elements[q], child, "global", ctx))
                elif tag in ("import", "annotation", "include"):
                    if tag == "include":
                        raise SchemaError("xs:include is not supported")
                else:
                    raise SchemaError(f"unsupported top-level xs:{tag}")
        for q in list(self.raw_simple):
            self.simple_type(q)
        for q in list(self.raw_complex):
            self.complex_type(q)
        self._element_src = {id(d): (el, ctx) for d, el, _, ctx in self._pending_elements}
        for decl, el, _, ctx in self._pending_elements:
            if decl.type is None:
                self._fill_element(decl, el, ctx)
        return Universe(self.name, self.elements, self.complex, self.simple, self.local_elements,
                        self.anonymous, self.namespaces)

    # simple types
    def simple_type(self, q: QName) -> SimpleType:
        if q[0] == XS:
            return builtin_simple(q[1])
        if q in self.simple:
            return self.simple[q]
        if q not in self.raw_simple:
            raise SchemaError(f"unknown simple type {qname_str(q)}")
        el, ctx = self.raw_simple[q]
        st = self._parse_simple(el, q)
        self.simple[q] = st
        return st

    def _parse_simple(self, el, name: QName | None) -> SimpleType:
        children = [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname != "annotation"]
        if len(children) != 1 or etree.QName(children[0]).localname != "restriction":
            raise SchemaError(f"simple type {name}: only xs:restriction is supported")
        return self._restriction(children[0], name)

    def _restriction(self, r, name: QName | None) -> SimpleType:
        base_attr = r.get("base")
        if base_attr is None:
            inner = [c for c in r if etree.QName(c).localname == "simpleType"]
            if not inner:
                raise SchemaError(f"{name}: restriction without base")
            base = self._parse_simple(inner[0], None)
        else:
            bq = self.resolve_qname(r, base_attr)
            if bq in self.raw_complex or bq in self.complex:
                raise SchemaError(f"{name}: simple restriction of a complex type")
            base = self.simple_type(bq)
        st = base.derive(name)
        enums: list[str] = []
        for f in r:
            if not isinstance(f.tag, str):
                continue
            fn = etree.QName(f).localname
            v = f.get("value")
            if fn == "enumeration":
                enums.append(v)
            elif fn == "length":
                st.length = int(v)
            elif fn == "minLength":
                st.min_length = int(v)
            elif fn == "maxLength":
                st.max_length = int(v)
            elif fn == "minInclusive":
                st.min = int(v)
            elif fn == "maxInclusive":
                st.max = int(v)
            elif fn == "minExclusive":
                st.min = int(v) + 1
            elif fn == "maxExclusive":
                st.max = int(v) - 1
            elif fn in ("annotation", "simpleType"):
                pass
            else:
                raise SchemaError(f"{name}: unsupported facet xs:{fn}")
        if enums:
            st.enumeration = enums
        return st

    # complex types
    def complex_type(self, q: QName) -> ComplexType:
        if q in self.complex:
            return self.complex[q]
        if q not in self.raw_complex:
            raise SchemaError(f"unknown complex type {qname_str(q)}")
        el, ctx = self.raw_complex[q]
        ct = ComplexType(q, order=self.next_order())
        self.complex[q] = ct  # before parsing: guards recursion
        self._parse_complex(el, ct, ctx)
        return ct

    def is_complex(self, q: QName) -> bool:
        return q in self.raw_complex

    def _parse_complex(self, el, ct: ComplexType, ctx: dict) -> None:
        ct.abstract = el.get("abstract") == "true"
        ct.mixed = el.get("mixed") == "true"
        body = [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname != "annotation"]
        attrs: list[AttributeUse] = []
        particle = None
        for c in body:
            tag = etree.QName(c).localname
            if tag in ("sequence", "choice"):
                particle = self._particle(c, ctx)
            elif tag == "attribute":
                attrs.append(self._attribute(c, ctx))
            elif tag == "complexContent":
                if c.get("mixed") == "true":
                    ct.mixed = True
                self._complex_content(c, ct, ctx)
                return
            elif tag == "simpleContent":
                self._simple_content(c, ct, ctx)
                return
            else:
                raise SchemaError(f"{ct.name}: unsupported xs:{tag} in complexType")
        ct.attributes = attrs
        if particle is not None:
            ct.content, ct.particle = "element", particle
        else:
            ct.content = "empty"

    def _complex_content(self, cc, ct: ComplexType, ctx: dict) -> None:
        (d,) = [c for c in cc if isinstance(c.tag, str) and etree.QName(c).localname != "annotation"]
        kind = etree.QName(d).localname
        bq = self.resolve_qname(d, d.get("base"))
        ct.base, ct.derivation = bq, kind
        own_particle = None
        own_attrs: list[AttributeUse] = []
        for c in d:
            if not isinstance(c.tag, str):
                continue
            tag = etree.QName(c).localname
            if tag in ("sequence", "choice"):
                own_particle = self._particle(c, ctx)
            elif tag == "attribute":
                own_attrs.append(self._attribute(c, ctx))
            elif tag == "annotation":
                pass
            else:
                raise SchemaError(f"{ct.name}: unsupported xs:{tag} in {kind}")
        if bq == (XS, "anyType"):
            base = ComplexType(bq)
        else:
            base = self.complex_type(bq)
        if base.content == "simple":
            raise SchemaError(f"{ct.name}: complexContent derived from simple content")
        if kind == "extension":
            ct.mixed = ct.mixed or base.mixed
            ct.attributes = list(base.attributes) + own_attrs
            parts = [p for p in (base.particle, own_particle) if p is not None]
            if not parts:
                ct.content = "empty"
            elif len(parts) == 1:
                ct.content, ct.particle = "element", parts[0]
            else:
                ct.content = "element"
                ct.particle = Particle(Group("sequence", parts))
        elif kind == "restriction":
            # attributes are inherited unless redeclared (none of the V2G schemas prohibit any)
            names = {a.qname for a in own_attrs}
            ct.attributes = [a for a in base.attributes if a.qname not in names] + own_attrs
            ct.content = "element" if own_particle is not None else "empty"
            ct.particle = own_particle
        else:
            raise SchemaError(f"{ct.name}: unsupported derivation {kind}")

    def _simple_content(self, sc, ct: ComplexType, ctx: dict) -> None:
        (d,) = [c for c in sc if isinstance(c.tag, str) and etree.QName(c).localname != "annotation"]
        kind = etree.QName(d).localname
        bq = self.resolve_qname(d, d.get("base"))
        ct.base, ct.derivation = bq, kind
        if kind != "extension":
            raise SchemaError(f"{ct.name}: simpleContent {kind} is not supported")
        attrs = []
        for c in d:
            if not isinstance(c.tag, str):
                continue
            tag = etree.QName(c).localname
            if tag == "attribute":
                attrs.append(self._attribute(c, ctx))
            elif tag != "annotation":
                raise SchemaError(f"{ct.name}: unsupported xs:{tag} in simpleContent")
        if self.is_complex(bq):
            base = self.complex_type(bq)
            if base.content != "simple":
                raise SchemaError(f"{ct.name}: simpleContent extension of a non-simple type")
            ct.simple = base.simple
            ct.attributes = list(base.attributes) + attrs
        else:
            ct.simple = self.simple_type(bq)
            ct.attributes = attrs
        ct.content = "simple"

    def _attribute(self, a, ctx: dict) -> AttributeUse:
        if a.get("ref"):
            raise SchemaError("attribute references are not supported")
        name = a.get("name")
        form = a.get("form")
        qualified = (form == "qualified") if form else ctx["afd"]
        q = (ctx["tns"] if qualified else "", name)
        if a.get("type"):
            st = self.simple_type(self.resolve_qname(a, a.get("type")))
        else:
            inner = [c for c in a if isinstance(c.tag, str) and etree.QName(c).localname == "simpleType"]
            st = self._parse_simple(inner[0], None) if inner else builtin_simple("string")
        if a.get("default") is not None or a.get("fixed") is not None:
            raise SchemaError(f"attribute {name}: default/fixed values are not supported")
        return AttributeUse(q, st, a.get("use") == "required")

    def _particle(self, el, ctx: dict) -> Particle:
        tag = etree.QName(el).localname
        mn, mx = _occurs(el, "minOccurs", 1), _occurs(el, "maxOccurs", 1)
        if tag in ("sequence", "choice"):
            parts = []
            for c in el:
                if not isinstance(c.tag, str) or etree.QName(c).localname == "annotation":
                    continue
                parts.append(self._particle(c, ctx))
            return Particle(Group(tag, parts), mn, mx)
        if tag == "element":
            return Particle(self._local_element(el, ctx), mn, mx)
        if tag == "any":
            return Particle(Wildcard(el.get("namespace", "##any"), ctx["tns"]), mn, mx)
        raise SchemaError(f"unsupported particle xs:{tag}")

    def _local_element(self, el, ctx: dict) -> ElementDecl:
        ref = el.get("ref")
        if ref:
            q = self.resolve_qname(el, ref)
            if q not in self.elements:
                raise SchemaError(f"reference to unknown element {qname_str(q)}")
            return self.elements[q]
        name = el.get("name")
        form = el.get("form")
        qualified = (form == "qualified") if form else ctx["efd"]
        q = (ctx["tns"] if qualified else "", name)
        decl = ElementDecl(q, None, False, order=self.next_order())
        self._fill_element(decl, el, ctx)
        self.local_elements.append(decl)
        return decl

    def _fill_element(self, decl: ElementDecl, el, ctx: dict) -> None:
        decl.abstract = el.get("abstract") == "true"
        decl.nillable = el.get("nillable") == "true"
        if el.get("default") is not None or el.get("fixed") is not None:
            raise SchemaError(f"element {qname_str(decl.qname)}: default/fixed values are not supported")
        sg = el.get("substitutionGroup")
        if sg:
            decl.substitution_head = self.resolve_qname(el, sg)
        t = el.get("type")
        if t:
            tq = self.resolve_qname(el, t)
            decl.type_ref = tq
            decl.type = self.complex_type(tq) if self.is_complex(tq) else self.simple_type(tq)
            return
        inner = [c for c in el if isinstance(c.tag, str) and etree.QName(c).localname in ("complexType", "simpleType")]
        if not inner:
            if decl.substitution_head is not None:
                # type defaults to the head's type
                head = self.elements[decl.substitution_head]
                if head.type is None:
                    hel, hctx = self._element_src[id(head)]
                    self._fill_element(head, hel, hctx)
                decl.type = head.type
                return
            decl.type = ComplexType((XS, "anyType"), content="empty")
            raise SchemaError(f"element {qname_str(decl.qname)} has no type (xs:anyType unsupported)")
        if etree.QName(inner[0]).localname == "simpleType":
            decl.type = self._parse_simple(inner[0], None)
        else:
            ct = ComplexType(None, context=decl.qname[1], order=self.next_order())
            self._parse_complex(inner[0], ct, ctx)
            self.anonymous.append(ct)
            decl.type = ct


def load_universe(name: str, schema_dir: Path, files: list[str]) -> Universe:
    """Parse the schema files of one universe (paths relative to ``schema_dir``)."""
    return _Reader(name, [schema_dir / f for f in files]).read()

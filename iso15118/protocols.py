"""The application protocols a charger and a car may agree on in SupportedAppProtocol, and what
differs between them below the state tables: namespaces and versions, which V2GTP payload types
and EXI schemas carry their messages, and the DIN 70121 / ISO 15118-2 envelope.

ISO 15118-20 messages are each their own global element with the header inside; DIN SPEC 70121
and ISO 15118-2 wrap every message in ``V2G_Message`` (a ``Header`` with the SessionID, a
``Body`` with exactly one message element). ``unwrap``/``wrap`` turn one into the other, so the
handlers of every protocol see the message element and return one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from iso15118 import exi
from iso15118.v2gtp import PayloadType

NS_ISO20_DC = "urn:iso:std:iso:15118:-20:DC"
NS_ISO20_AC = "urn:iso:std:iso:15118:-20:AC"
NS_ISO2 = "urn:iso:15118:2:2013:MsgDef"
NS_DIN = "urn:din:70121:2012:MsgDef"


@dataclass(frozen=True)
class AppProtocol:
    """One protocol as SupportedAppProtocol names it."""

    name: str                       # 'iso20' | 'iso2' | 'din' (configuration and command lines)
    title: str                      # for people
    namespaces: tuple[str, ...]     # -20 has one per energy transfer (DC, AC)
    major: int
    minor: int
    schema: str | None              # the EXI schema of its V2G_Message (None: -20, one per payload type)
    kinds: tuple[str, ...]          # energy transfers it can carry

    @property
    def wrapped(self) -> bool:
        return self.schema is not None


ISO20 = AppProtocol("iso20", "ISO 15118-20", (NS_ISO20_DC, NS_ISO20_AC), 1, 0, None, ("DC", "AC"))
ISO2 = AppProtocol("iso2", "ISO 15118-2", (NS_ISO2,), 2, 0, "iso2", ("DC", "AC"))
DIN = AppProtocol("din", "DIN SPEC 70121", (NS_DIN,), 2, 0, "din", ("DC",))
PROTOCOLS = {p.name: p for p in (ISO20, ISO2, DIN)}
BY_NAMESPACE = {ns: p for p in PROTOCOLS.values() for ns in p.namespaces}

SAP = {PayloadType.EXI: "apphand"}  # before the handshake: SupportedAppProtocol only


def protocol_names(text: str) -> tuple[str, ...]:
    """'iso20,iso2,din' → ('iso20', 'iso2', 'din'); ValueError naming an unknown one."""
    names = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
    bad = [n for n in names if n not in PROTOCOLS]
    if bad or not names:
        raise ValueError(f"protocols are a comma-separated list of {', '.join(PROTOCOLS)}; got {text!r}")
    return names


def payload_schemas(protocol: AppProtocol | None, kind: str = "") -> Mapping[PayloadType, str]:
    """The schema of each payload type allowed in a session of ``protocol`` (None: before the
    handshake). -20: CommonMessages and the negotiated energy transfer (``kind`` 'DC'/'AC', any
    when empty); DIN and -2: their V2G_Message in 0x8001."""
    if protocol is None:
        return SAP
    if protocol.wrapped:
        return _wrapped(protocol.schema)
    return _iso20(kind)


@lru_cache(maxsize=None)
def _wrapped(schema: str) -> Mapping[PayloadType, str]:
    return {PayloadType.EXI: schema}


@lru_cache(maxsize=None)
def _iso20(kind: str) -> Mapping[PayloadType, str]:
    allowed = {PayloadType.ISO20_COMMON: "iso20_cm"}
    if kind in ("", "DC"):
        allowed[PayloadType.ISO20_DC] = "iso20_dc"
    if kind in ("", "AC"):
        allowed[PayloadType.ISO20_AC] = "iso20_ac"
    return allowed


# --- the V2G_Message envelope of DIN 70121 and ISO 15118-2 -----------------------------------------

@lru_cache(maxsize=None)
def _body_fields(schema: str) -> tuple[dict[type, str], tuple[str, ...]]:
    """(message class → its Body element name, the Body's element names). The names differ from
    the classes in one place: DIN's SessionStopReq is of type SessionStopType (class SessionStop)."""
    body = exi.messages(schema).Body
    names = {f.cls: f.name for f in body._exi.fields if f.cls is not None and f.name != "BodyElement"}
    return names, tuple(names.values())


def body_name(body) -> str:
    """The name of the one message element a Body holds ('' if none)."""
    for name in _body_fields(type(body)._exi.universe)[1]:
        if getattr(body, name) is not None:
            return name
    return ""


def unwrap(message) -> tuple[str, object, object]:
    """(element name, message element, header) of a V2G_Message; a -20 or handshake message is
    its own element (its header inside, None for the handshake)."""
    if type(message).__name__ == "V2G_Message":
        name = body_name(message.Body)
        return name, getattr(message.Body, name) if name else None, message.Header
    return type(message).__name__, message, getattr(message, "Header", None)


def element_name(schema: str, element) -> str:
    """The Body element name of a DIN/-2 message element."""
    return _body_fields(schema)[0][type(element)]


def wrap(schema: str, element, session_id: bytes, signature=None, name: str | None = None):
    """``element`` in a V2G_Message of ``schema`` with the header for ``session_id``."""
    m = exi.messages(schema)
    return m.V2G_Message(Header=m.MessageHeader(SessionID=session_id, Signature=signature),
                         Body=m.Body(**{name or element_name(schema, element): element}))

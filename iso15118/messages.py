"""Small helpers over the generated message classes: message names, response types,
schemas, and a response with every mandatory field filled (for failure answers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iso15118 import exi
from iso15118.protocols import NS_ISO20_AC, NS_ISO20_DC, body_name  # noqa: F401 (re-exported)
from iso15118.v2gtp import PAYLOAD_TYPE_OF_SCHEMA, SCHEMA_OF, PayloadType


class LazyMessages:
    """A schema's generated classes, its module imported on the first attribute asked for: a DC
    charger never loads the -20 AC classes, an AC charger not the DC ones (docs/aarch64.md)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema

    def __getattr__(self, name: str) -> Any:
        # kept on the instance: the next look-up is a plain attribute (the classes never change)
        value = getattr(exi.messages(self.schema), name)
        setattr(self, name, value)
        return value

    def __repr__(self) -> str:
        return f"<{self.schema} messages, imported on first use>"


CM = exi.messages("iso20_cm")
DC = LazyMessages("iso20_dc")
AC = LazyMessages("iso20_ac")
APP = exi.messages("apphand")


# -20 energy transfer services: the ServiceID values of ISO 15118-20 ServiceDiscoveryRes (docs/sessions.md)
SERVICE_AC, SERVICE_DC, SERVICE_WPT, SERVICE_DC_ACDP = 1, 2, 3, 4
SERVICE_AC_BPT, SERVICE_DC_BPT, SERVICE_DC_ACDP_BPT = 5, 6, 7
SERVICE_NAMES = {1: "AC", 2: "DC", 3: "WPT", 4: "DC_ACDP", 5: "AC_BPT", 6: "DC_BPT", 7: "DC_ACDP_BPT"}
SERVICE_IDS = {v: k for k, v in SERVICE_NAMES.items()}
BPT_SERVICES = {SERVICE_AC_BPT, SERVICE_DC_BPT, SERVICE_DC_ACDP_BPT}
DC_SERVICES = {SERVICE_DC, SERVICE_DC_BPT}
AC_SERVICES = {SERVICE_AC, SERVICE_AC_BPT}

CONTROL_MODE_SCHEDULED, CONTROL_MODE_DYNAMIC = 1, 2

TRACE_LENGTH = 64  # messages a session keeps for inspection (bounded: thousands of sessions, hours long)
Observer = Callable[[float, str, str, object], None]
"""Called with (now, 'rx'|'tx', message name, message) for every message a session handles."""


def name_of(message) -> str:
    """A message's name as the schema calls it; a DIN/-2 V2G_Message is named by its Body's
    element (CurrentDemandReq)."""
    n = type(message).__name__
    return body_name(message.Body) if n == "V2G_Message" else n


def schema_of_message(message) -> str:
    """The schema a message travels in: a DIN/-2 V2G_Message its own; -20 CommonMessages unless
    it is an AC/DC message."""
    n = type(message).__name__
    if n == "V2G_Message":
        return type(message)._exi.universe
    if n.startswith("DC_"):
        return "iso20_dc"
    if n.startswith("AC_"):
        return "iso20_ac"
    if n.startswith("supportedAppProtocol"):
        return "apphand"
    return "iso20_cm"


def payload_type_of(schema: str) -> PayloadType:
    return PayloadType.EXI if schema in ("apphand", "din", "iso2") else PAYLOAD_TYPE_OF_SCHEMA[schema]


def schema_of_payload(payload_type: PayloadType, after_handshake: bool, kind: str = "") -> str | None:
    """The schema of a frame in a -20 session, or None when the payload type is not allowed
    now: before the handshake only SupportedAppProtocol (0x8001); after it CommonMessages and
    the negotiated energy transfer (``kind`` 'DC' or 'AC'; any when empty)."""
    if not after_handshake:
        return "apphand" if payload_type == PayloadType.EXI else None
    allowed = {PayloadType.ISO20_COMMON}
    if kind in ("", "DC"):
        allowed.add(PayloadType.ISO20_DC)
    if kind in ("", "AC"):
        allowed.add(PayloadType.ISO20_AC)
    return SCHEMA_OF.get(payload_type) if payload_type in allowed else None


def response_class(request_name: str):
    """The response class of a request name (SessionSetupReq → SessionSetupRes)."""
    res = request_name[:-3] + "Res"
    # by the name's prefix, so that looking up a CommonMessages response imports neither DC nor AC
    for mod in (DC,) if res.startswith("DC_") else (AC,) if res.startswith("AC_") else (CM, APP):
        cls = getattr(mod, res, None)
        if isinstance(cls, type):
            return cls
    raise KeyError(res)


def filled(cls, **given):
    """An instance of ``cls`` with ``given`` fields and every other mandatory field filled
    with the first enumeration value, zero, or a filled nested message: a response stays
    schema-valid even when it only carries a failure code."""
    kwargs = {}
    spec = cls._exi
    first_of_group = {g.fields[0] for g in spec.groups if g.min > 0}
    grouped = {n for g in spec.groups for n in g.fields}
    given_groups = {g for g in spec.groups if any(n in given for n in g.fields)}
    for f in spec.fields:
        if f.name in given:
            kwargs[f.name] = given[f.name]
            continue
        if f.name in grouped:
            group = next(g for g in spec.groups if f.name in g.fields)
            if group in given_groups or f.name not in first_of_group:
                continue
        elif f.min == 0:
            continue
        if f.cls is not None:
            item = filled(f.cls)
        elif f.simple.enum is not None:
            item = list(f.simple.enum)[0]
        elif f.simple.kind == "integer":
            item = max(f.simple.min or 0, 0) if f.simple.max is None or f.simple.max >= 0 else f.simple.max
        elif f.simple.kind == "boolean":
            item = False
        else:
            n = f.simple.length if f.simple.length is not None else (f.simple.min_length or 0)
            item = "0" * n if f.simple.kind == "string" else b"\x00" * n
        kwargs[f.name] = [item] * max(f.min, 1) if f.is_list else item
    return cls(**kwargs)

"""Schema universe names, their namespaces, and lazy loading of the generated modules."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import SchemaNameError

NS_APPHAND = "urn:iso:15118:2:2010:AppProtocol"
NS_DIN = "urn:din:70121:2012:MsgDef"
NS_ISO2 = "urn:iso:15118:2:2013:MsgDef"
NS_ISO20_CM = "urn:iso:std:iso:15118:-20:CommonMessages"
NS_ISO20_DC = "urn:iso:std:iso:15118:-20:DC"
NS_ISO20_AC = "urn:iso:std:iso:15118:-20:AC"
NS_ISO20_WPT = "urn:iso:std:iso:15118:-20:WPT"
NS_ISO20_ACDP = "urn:iso:std:iso:15118:-20:ACDP"
NS_XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"

#: schema name → the namespace of its messages (the vectors' ``namespace`` field)
SCHEMAS: dict[str, str] = {
    "apphand": NS_APPHAND,
    "din": NS_DIN,
    "iso2": NS_ISO2,
    "iso20_cm": NS_ISO20_CM,
    "iso20_dc": NS_ISO20_DC,
    "iso20_ac": NS_ISO20_AC,
    "iso20_wpt": NS_ISO20_WPT,
    "iso20_acdp": NS_ISO20_ACDP,
    "xmldsig": NS_XMLDSIG,
}
_BY_NS = {ns: name for name, ns in SCHEMAS.items()}
# the other namespaces of -2 and DIN resolve to their MsgDef universe
for _part in ("MsgHeader", "MsgBody", "MsgDataTypes"):
    _BY_NS[f"urn:din:70121:2012:{_part}"] = "din"
    _BY_NS[f"urn:iso:15118:2:2013:{_part}"] = "iso2"

_modules: dict[str, ModuleType] = {}


def schema_key(schema: str) -> str:
    """Normalise a schema name or namespace URI to the universe name."""
    if schema in SCHEMAS:
        return schema
    key = _BY_NS.get(schema)
    if key is None:
        raise SchemaNameError(f"unknown schema {schema!r}; expected one of {', '.join(SCHEMAS)} "
                              "or a message namespace")
    return key


def load(schema: str) -> ModuleType:
    """The generated module of a universe, imported on first use."""
    mod = _modules.get(schema)  # a universe name (or namespace) asked for before: no normalising
    if mod is None:
        key = schema_key(schema)
        mod = _modules.get(key)
        if mod is None:
            mod = importlib.import_module(f"iso15118.exi.generated.{key}")
            _modules[key] = mod
        _modules[schema] = mod
    return mod

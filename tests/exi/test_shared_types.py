"""Global elements that share a schema type keep their element through decoding.

-20 ACDP declares ACDP_ConnectReq and ACDP_DisconnectReq (and the Res pair) with one type each;
a decoded DisconnectReq used to come back as the type's class, ACDP_ConnectReq, after which
to_dict, to_xml, encode and the CLI failed (the class named two elements). The generator now
gives every such element a class of its own (tools/xsdgen/emit_py.py, element_emitters).
These tests run on both backends (tests/exi/conftest.py).
"""

from __future__ import annotations

import json

import pytest

from iso15118 import exi
from tests.conftest import load_vectors

REGRESSIONS = load_vectors("regressions.json")


@pytest.mark.parametrize("vector", REGRESSIONS, ids=[v["name"] for v in REGRESSIONS])
def test_regression_vector_decodes_to_its_element_and_round_trips(vector):
    schema = vector["schema"]
    msg = exi.decode(bytes.fromhex(vector["exi_hex"]), schema)
    element = vector["element"]
    assert type(msg).__name__ == element
    assert exi.element_name(msg) == element
    doc = exi.to_dict(msg)
    assert list(doc) == [element]
    assert exi.from_dict(json.loads(json.dumps(doc)), schema) == msg
    xml = exi.to_xml(msg)
    assert f":{element} " in xml or f":{element}>" in xml
    assert exi.from_xml(xml) == msg
    data = exi.encode(msg)
    assert data.hex() == vector["canonical_hex"]
    assert exi.decode(data, schema) == msg


@pytest.mark.parametrize("vector", REGRESSIONS, ids=[v["name"] for v in REGRESSIONS])
def test_regression_vector_through_the_cli(vector, capsys):
    from v2h.cli import main

    assert main(["exi", "decode", "--schema", vector["schema"], vector["exi_hex"]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == [vector["element"]]
    assert main(["exi", "decode", "--xml", "--schema", vector["schema"], vector["exi_hex"]]) == 0
    assert vector["element"] in capsys.readouterr().out


@pytest.mark.parametrize("pair", [("ACDP_ConnectReq", "ACDP_DisconnectReq"),
                                  ("ACDP_ConnectRes", "ACDP_DisconnectRes")])
def test_the_two_elements_of_one_type_stay_apart(pair):
    m = exi.messages("iso20_acdp")
    first, second = (getattr(m, n) for n in pair)
    v = next(v for v in REGRESSIONS if v["element"] == "ACDP_DisconnectReq")
    header = exi.decode(bytes.fromhex(v["exi_hex"]), "iso20_acdp").Header
    fields = {f.name: f for f in first._exi.fields}
    assert [f.name for f in second._exi.fields] == list(fields)  # the same type, field for field
    kwargs = {"Header": header}
    for f in first._exi.fields:
        if f.name != "Header" and f.min > 0:
            kwargs[f.name] = list(f.simple.enum)[1]
    a, b = first(**kwargs), second(**kwargs)
    assert not issubclass(second, first) and not issubclass(first, second)
    assert a != b
    da, db = exi.encode(a), exi.encode(b)
    assert da != db
    assert type(exi.decode(da, "iso20_acdp")) is first
    assert type(exi.decode(db, "iso20_acdp")) is second
    assert exi.to_dict(b) == {pair[1]: exi.to_dict(a)[pair[0]]}


@pytest.mark.parametrize("schema", list(exi.SCHEMAS))
def test_every_global_element_has_a_class_of_its_own(schema):
    """In every schema (iso20 CM/DC/AC/WPT/ACDP, -2, DIN, the handshake, xmldsig), no two global
    elements decode to the same class, so a decoded message always knows its element."""
    mod = exi.messages(schema)
    seen: dict[type, str] = {}
    for name, _ns, cls, *_ in mod.GLOBAL_ELEMENTS:
        if cls is exi.SimpleElement:
            continue  # a SimpleElement carries its name
        assert cls not in seen, f"{name} and {seen[cls]} share the class {cls.__name__}"
        seen[cls] = name
        assert exi.element_name(cls.__new__(cls), schema) == name

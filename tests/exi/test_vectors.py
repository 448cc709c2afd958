"""Every vector of the independent reference codecs, both ways, byte for byte."""

from __future__ import annotations

import pytest

from iso15118 import exi
from tests.conftest import ALL_VECTORS, load_vectors

IDS = [v["name"] for v in ALL_VECTORS]


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=IDS)
def test_decode_matches_content(vector):
    msg = exi.decode(bytes.fromhex(vector["exi_hex"]), vector["namespace"])
    assert exi.to_dict(msg) == vector["content"]


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=IDS)
def test_encode_matches_bytes(vector):
    msg = exi.from_dict(vector["content"], vector["namespace"])
    assert exi.encode(msg).hex() == vector["exi_hex"]


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=IDS)
def test_xml_round_trip(vector):
    msg = exi.decode(bytes.fromhex(vector["exi_hex"]), vector["namespace"])
    again = exi.from_xml(exi.to_xml(msg))
    assert again == msg
    assert exi.encode(again).hex() == vector["exi_hex"]


def test_reference_set_is_the_benchmark_set():
    names = [v["name"] for v in load_vectors("reference.json")]
    assert "DC_ChargeLoopReq_bpt_min" in names and len(names) == 9


def test_every_schema_name_and_namespace_resolves():
    for name, ns in exi.SCHEMAS.items():
        assert exi.messages(name) is exi.messages(ns)
    with pytest.raises(exi.SchemaNameError):
        exi.decode(b"\x80\x00", "iso21")

"""EXI fragments: the bytes a Plug & Charge signature digests (EXI 1.0 §8.5.2, §8.5.3)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iso15118 import exi
from tests.conftest import VECTORS_DIR
from tests.exi.strategies import SKIP_CLASSES, messages

with open(VECTORS_DIR / "fragments.json", encoding="utf-8") as f:
    FRAGMENTS = json.load(f)["vectors"]


@pytest.mark.parametrize("vector", FRAGMENTS, ids=[v["name"] for v in FRAGMENTS])
def test_fragment_vectors_both_ways(vector):
    """Fragments made by the independent EXIficient codec decode to the same message, and our
    encoding of the message is the same bytes."""
    schema, element = vector["schema"], vector["element"]
    msg = exi.from_dict(vector["content"], schema)
    assert exi.encode_fragment(msg, schema, element=element).hex() == vector["exi_hex"]
    decoded = exi.decode_fragment(bytes.fromhex(vector["exi_hex"]), schema)
    assert decoded == msg
    assert exi.to_dict(decoded, schema, element=element) == vector["content"]


def bits_to_bytes(bits: str) -> bytes:
    bits = bits.replace(" ", "")
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def uint(v: int) -> str:
    """EXI Unsigned Integer (§7.1.6): 7-bit groups, least significant first, MSB = more."""
    out = ""
    while True:
        g = v & 0x7F
        v >>= 7
        out += f"{g | (0x80 if v else 0):08b}"
        if not v:
            return out


def string(s: str) -> str:
    """String value, no string table (§7.1.10 with value partition capacity 0): length+2."""
    return uint(len(s) + 2) + "".join(uint(ord(c)) for c in s)


def test_relaxed_element_fragment_grammar_bits():
    """ISO 15118-2 declares eMAID twice (EMAIDType with an Id attribute in CertificateInstallationRes,
    eMAIDType in PaymentDetailsReq), so its fragment uses the relaxed grammar of §8.5.3."""
    mod = exi.messages("iso2")
    frags = mod.FRAGMENT_ELEMENTS
    attrs = mod.FRAGMENT_ATTRIBUTES
    n, m = len(attrs), len(frags)  # every attribute, every element declaration of -2
    assert (n, m) == (10, 243)
    i_emaid = [e[0] for e in frags].index("eMAID")
    i_id = [(a[0], a[1]) for a in attrs].index(("Id", "urn:iso:15118:2:2013:MsgDataTypes"))
    expected = (
        "1000 0000"                                      # header: '10', no options, version 1
        + f"{i_emaid:08b}"                               # FragmentContent SE(eMAID): m + 2 codes → 8 bits
        + f"{i_id:09b}"                                  # ElementFragment_0 AT(Id): n + m + 4 = 257 codes → 9 bits
        + string("id1")                                  # xs:ID value
        + f"{n + m + 3:09b}"                             # CH [untyped value]
        + string("DE8AA1234567890")                      # untyped: a string
        + f"{m + 1:08b}"                                 # ElementFragment_2 EE: m + 3 codes → 8 bits
        + f"{m + 1:08b}"                                 # FragmentContent ED
    )
    msg = mod.EMAID(Id="id1", value="DE8AA1234567890")
    data = exi.encode_fragment(msg, "iso2", element="eMAID")
    assert data == bits_to_bytes(expected)
    assert exi.decode_fragment(data, "iso2") == msg
    # the other declaration (no attribute) goes through the same grammar
    plain = exi.SimpleElement("eMAID", "DE8AA1234567890")
    assert exi.decode_fragment(exi.encode_fragment(plain, "iso2"), "iso2") == plain


def test_fragment_of_several_elements_and_ed():
    """FragmentContent (§8.5.2) takes any number of elements, then ED = n + 1."""
    ds = exi.messages("xmldsig")
    a = ds.DigestMethod(Algorithm="http://www.w3.org/2001/04/xmlenc#sha512")
    b = exi.SimpleElement("DigestValue", b"\x00" * 64)
    data = exi.encode_fragment([a, b], "xmldsig")
    assert exi.decode_fragment(data, "xmldsig") == [a, b]
    with pytest.raises(exi.ExiDecodeError):
        exi.decode_fragment(data[:-3], "xmldsig")


def test_type_shared_by_several_elements_needs_the_element_name():
    iso2 = exi.messages("iso2")
    chain = iso2.CertificateChain(Id="c1", Certificate=b"\x01\x02")
    with pytest.raises(exi.ExiEncodeError, match="element="):
        exi.encode_fragment(chain, "iso2")
    data = exi.encode_fragment(chain, "iso2", element="ContractSignatureCertChain")
    assert exi.decode_fragment(data, "iso2") == chain


def _fragment_roots():
    out = []
    for schema in exi.SCHEMAS:
        mod = exi.messages(schema)
        for name, ns, cls, _e, _d, _s in mod.FRAGMENT_ELEMENTS:
            if isinstance(cls, type) and cls is not exi.SimpleElement and cls.__name__ not in SKIP_CLASSES:
                out.append((schema, f"{{{ns}}}{name}", cls))
    return out


FRAGMENT_ROOTS = _fragment_roots()


@pytest.mark.parametrize("schema", ["iso20_wpt", "iso20_acdp", "iso20_cm", "iso2", "xmldsig"])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_fragments_round_trip(schema, data):
    roots = [r for r in FRAGMENT_ROOTS if r[0] == schema]
    _s, name, cls = data.draw(st.sampled_from(roots))
    msg = data.draw(messages(cls))
    try:
        encoded = exi.encode_fragment(msg, schema, element=name)
    except exi.ExiEncodeError as e:
        assert any(g in str(e) for g in ("PGPData", "SPKIData", "DSAKeyValue")), str(e)
        return
    assert exi.decode_fragment(encoded, schema) == msg

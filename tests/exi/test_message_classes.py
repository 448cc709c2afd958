"""Generated message classes behave as frozen, keyword-only, slotted dataclasses."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from iso15118 import exi

DATA = bytes.fromhex("8034042d166f29fb80ea560aebdbfb3062810012006164000a02002400c800")


def test_dataclass_protocol():
    msg = exi.decode(DATA, "iso20_dc")
    assert dataclasses.is_dataclass(msg)
    names = [f.name for f in dataclasses.fields(msg)]
    assert names[:4] == ["Header", "DisplayParameters", "MeterInfoRequested", "EVPresentVoltage"]
    changed = dataclasses.replace(msg, MeterInfoRequested=True)
    assert changed.MeterInfoRequested is True and changed != msg
    assert dataclasses.asdict(msg)["EVPresentVoltage"] == {"Exponent": 0, "Value": 400}
    assert dataclasses.fields(msg)[1].default is None  # optional fields default to None


def test_frozen_hashable_copyable_picklable():
    msg = exi.decode(DATA, "iso20_dc")
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.MeterInfoRequested = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del msg.Header
    assert pickle.loads(pickle.dumps(msg)) == msg
    assert copy.deepcopy(msg) == msg == copy.copy(msg)
    assert hash(msg.EVPresentVoltage) == hash(copy.deepcopy(msg.EVPresentVoltage))
    assert repr(msg.EVPresentVoltage) == "RationalNumber(Exponent=0, Value=400)"


def test_keyword_only_and_required():
    dc = exi.messages("iso20_dc")
    with pytest.raises(TypeError, match="Value"):
        dc.RationalNumber(Exponent=1)
    with pytest.raises(TypeError):
        dc.RationalNumber(1, 2)  # type: ignore[misc]
    lists = exi.messages("apphand").supportedAppProtocolReq()
    assert lists.AppProtocol == [] and lists.AppProtocol is not exi.messages("apphand").supportedAppProtocolReq().AppProtocol


def test_shared_types_are_the_same_class_in_every_universe():
    assert exi.messages("iso20_dc").RationalNumber is exi.messages("iso20_ac").RationalNumber
    assert exi.messages("iso2").Signature is exi.messages("din").Signature is exi.messages("xmldsig").Signature

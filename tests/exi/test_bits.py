"""Hand-derived bit streams for schemas the reference vectors cannot cover (-20 WPT and ACDP):
each expected stream is written out from the EXI 1.0 rules, not produced by the codec."""

from __future__ import annotations

from iso15118 import exi
from tests.exi.test_fragments import bits_to_bytes, uint

SESSION = bytes(range(1, 9))


def header_bits(timestamp: int) -> str:
    """-20 MessageHeaderType {SessionID, TimeStamp, Signature?} (non-strict grammars, §8.5.4.4:
    a state with n first-level productions writes ceil(log2(n + 1)) bits)."""
    return (
        "0"                                   # SE(SessionID): 1 production → 1 bit
        + "0" + uint(8) + "".join(f"{b:08b}" for b in SESSION) + "0"   # CH, hexBinary (§7.1.1), EE
        + "0"                                 # SE(TimeStamp)
        + "0" + uint(timestamp) + "0"         # CH, xs:unsignedLong as Unsigned Integer (§7.1.6), EE
        + "01"                                # {SE(Signature), EE}: 2 productions → 2 bits, EE = 1
    )


def test_acdp_vehicle_positioning_req_bits():
    acdp = exi.messages("iso20_acdp")
    msg = acdp.ACDP_VehiclePositioningReq(
        Header=acdp.MessageHeader(SessionID=SESSION, TimeStamp=1),
        EVMobilityStatus=True, EVPositioningSupport=False)
    expected = (
        "10000000"          # EXI header (§5): distinguishing bits 10, no options, version 1
        + "000110"          # DocContent (§8.5.1): 34 global elements + SE(*) = 35 → 6 bits; index 6
        + "0" + header_bits(1)    # SE(Header)
        + "0" + "0" + "1" + "0"   # SE(EVMobilityStatus), CH, boolean (§7.1.2) true, EE
        + "0" + "0" + "0" + "0"   # SE(EVPositioningSupport), CH, false, EE
        + "0"               # EE of the message: {EE} → 1 bit
    )
    assert exi.encode(msg) == bits_to_bytes(expected)
    assert exi.decode(bits_to_bytes(expected), "iso20_acdp") == msg


def test_wpt_alignment_check_res_bits():
    wpt = exi.messages("iso20_wpt")
    msg = wpt.WPT_AlignmentCheckRes(
        Header=wpt.MessageHeader(SessionID=SESSION, TimeStamp=0),
        ResponseCode="OK", EVSEProcessing="Ongoing",
        PowerTransmitted=wpt.RationalNumber(Exponent=3, Value=-2))
    expected = (
        "10000000"
        + "011010"          # DocContent: 38 globals + SE(*) → 6 bits; WPT_AlignmentCheckRes = 26
        + "0" + header_bits(0)
        + "0" + "0" + "000000" + "0"   # ResponseCode: 40 enumeration values → 6-bit index (§7.2); OK = 0
        + "0" + "0" + "01" + "0"       # EVSEProcessing: 3 values → 2 bits; Ongoing = 1
        + "000"             # {PowerTransmitted, SupplyDeviceCurrent, VendorSpecificDataContainer, EE} → 3 bits
        + "0" + "0" + f"{3 + 128:08b}" + "0"    # Exponent: xs:byte, range 256 ≤ 4096 → 8-bit offset from -128 (§7.1.5)
        + "0" + "0" + "1" + uint(1) + "0"       # Value: xs:short → Integer: sign 1, magnitude -(-2)-1 = 1
        + "0"               # EE of RationalNumber
        + "10"              # {SupplyDeviceCurrent, VendorSpecificDataContainer, EE} → 2 bits; EE = 2
    )
    assert exi.encode(msg) == bits_to_bytes(expected)
    assert exi.decode(bits_to_bytes(expected), "iso20_wpt") == msg


def test_empty_string_ends_the_element_at_the_second_level():
    """EXIficient writes no CH for an empty value: escape from Type_0 (1 of 1 first-level
    productions + escape → '1'), then EE, the first of 7 second-level productions (3 bits)."""
    cm = exi.messages("iso20_cm")
    msg = cm.SessionSetupReq(Header=cm.MessageHeader(SessionID=SESSION, TimeStamp=5), EVCCID="")
    start = ("10000000" + f"{[e[0] for e in cm.GLOBAL_ELEMENTS].index('SessionSetupReq'):06b}"
             + "0" + header_bits(5)
             + "0")         # SE(EVCCID)
    expected = start + "1" + "000" + "0"   # escape, second-level EE, EE of SessionSetupReq
    assert exi.encode(msg) == bits_to_bytes(expected)
    assert exi.decode(bits_to_bytes(expected), "iso20_cm") == msg
    # the CH-with-length-0 form (libcbv2g writes it) decodes to the same message
    ch_form = start + "0" + uint(2) + "0" + "0"   # CH, length 0 + 2, EE, EE
    assert exi.decode(bits_to_bytes(ch_form), "iso20_cm") == msg

"""Decode a DC_ChargeLoopReq from the reference vectors, change the target current, re-encode.

    python examples/decode_message.py
"""

from dataclasses import replace

from iso15118 import exi

DATA = bytes.fromhex("8034042d166f29fb80ea560aebdbfb3062810012006164000a02002400c800")

msg = exi.decode(DATA, "iso20_dc")
mode = msg.BPT_Scheduled_DC_CLReqControlMode
print("EVTargetCurrent:", mode.EVTargetCurrent.Value * 10 ** mode.EVTargetCurrent.Exponent, "A")

dc = exi.messages("iso20_dc")
discharge = replace(msg, BPT_Scheduled_DC_CLReqControlMode=replace(
    mode, EVTargetCurrent=dc.RationalNumber(Exponent=0, Value=-20)))
print("re-encoded:", exi.encode(discharge).hex())
print(exi.to_xml(discharge))

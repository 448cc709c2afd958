"""Run inside the peer's environment: its JVM EXI codec behind JSON lines on stdin/stdout.

    {"op": "encode", "ns": NAMESPACE, "doc": {...}}  →  {"hex": "..."} | {"error": "..."}
    {"op": "decode", "ns": NAMESPACE, "hex": "..."}  →  {"doc": {...}} | {"error": "..."}
"""

import json
import sys

from iso15118.shared.exificient_exi_codec import ExificientEXICodec  # the peer's package

codec = ExificientEXICodec()
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "encode":
            data = codec.encode(json.dumps(req["doc"]), req["ns"])
            out = {"hex": bytes(data).hex()} if data else {"error": "the encoder returned nothing"}
        else:
            text = codec.decode(bytes.fromhex(req["hex"]), req["ns"])
            out = {"doc": json.loads(text)} if text else {"error": "the decoder returned nothing"}
    except Exception as e:  # the peer's failure is the answer: report it to the test, keep serving
        out = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out), flush=True)

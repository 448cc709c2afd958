"""The v2h command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import load_vectors

VEC = {v["name"]: v for v in load_vectors("reference.json")}


def v2h(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "v2h.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ["DC_ChargeLoopReq_bpt_min", "ISO2_CurrentDemandReq"])
def test_decode_prints_the_vector_content(name):
    v = VEC[name]
    r = v2h("exi", "decode", "--schema", v["namespace"], v["exi_hex"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == v["content"]


def test_decode_from_stdin_and_encode_back():
    v = VEC["SessionSetupRes"]
    r = v2h("exi", "decode", "--schema", "iso20_cm", "-", stdin=v["exi_hex"] + "\n")
    assert r.returncode == 0, r.stderr
    enc = v2h("exi", "encode", "--schema", "iso20_cm", stdin=r.stdout)
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout.strip() == v["exi_hex"]


def test_xml_both_ways():
    v = VEC["DC_ChargeLoopRes_bpt_min"]
    r = v2h("exi", "decode", "--xml", "--schema", "iso20_dc", v["exi_hex"])
    assert r.returncode == 0 and r.stdout.startswith("<?xml")
    enc = v2h("exi", "encode", "--xml", "--schema", "iso20_dc", stdin=r.stdout)
    assert enc.stdout.strip() == v["exi_hex"]


@pytest.mark.parametrize("args,stdin,needle", [
    (["exi", "decode", "--schema", "iso20_dc", "8034042d16"], "", "bit"),
    (["exi", "decode", "--schema", "iso20_dc", "zz"], "", "not hexadecimal: 'z' at position 1"),
    (["exi", "decode", "--schema", "iso20_dc", "803"], "", "odd number of hex digits (3)"),
    (["exi", "encode", "--schema", "iso20_dc"], "{not json", "not JSON"),
    (["exi", "encode", "--schema", "iso20_dc"], '{"DC_ChargeLoopReq": {"Header": {}}}', "SessionID"),
])
def test_errors_are_one_line_and_nonzero(args, stdin, needle):
    r = v2h(*args, stdin=stdin)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_an_unknown_schema_is_a_usage_error():
    r = v2h("exi", "decode", "--schema", "nope", "80")
    assert r.returncode == 2 and r.stdout == ""
    assert "argument --schema: unknown schema 'nope'" in r.stderr.strip().splitlines()[-1], r.stderr


def test_decode_takes_a_whole_v2gtp_frame():
    """A frame copied from a capture decodes as its payload; the header is checked, and a -20
    payload type names the schema."""
    v = VEC["DC_ChargeLoopReq_bpt_min"]
    exi_bytes = bytes.fromhex(v["exi_hex"])
    frame = (b"\x01\xfe\x80\x04" + len(exi_bytes).to_bytes(4, "big") + exi_bytes).hex()
    for args in (["--schema", "iso20_dc", frame], [frame], ["--schema", "iso20_dc", " ".join(
            frame[i:i + 2] for i in range(0, len(frame), 2))]):
        r = v2h("exi", "decode", *args)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == v["content"]
    enc = v2h("exi", "encode", "--schema", "iso20_dc", "--frame", stdin=json.dumps(v["content"]))
    assert enc.returncode == 0 and enc.stdout.strip() == frame, enc.stderr


@pytest.mark.parametrize("frame,needle", [
    ("01fe8004000000058034", "announces 5 payload bytes, 2 follow"),
    ("01fd80040000000280", "version 0x01/0xfd, expected 0x01/0xfe"),
    ("01fe8002000000028034", "carries iso20_cm, not iso20_dc"),
    ("01fe800100000002800", "odd number of hex digits"),
    ("01fe8001000000028034", "not iso20_dc"),
    ("01fe", "8-byte header"),
])
def test_a_bad_v2gtp_frame_says_what_is_wrong(frame, needle):
    r = v2h("exi", "decode", "--schema", "iso20_dc", frame)
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_decode_reads_an_sdp_frame():
    from iso15118.sdp import SDPResponse, Security

    frame = SDPResponse(__import__("ipaddress").IPv6Address("fe80::a"), 50000, Security.TLS).to_datagram()
    r = v2h("exi", "decode", frame.hex())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"SDPResponse": {"address": "fe80::a", "port": 50000, "security": "TLS",
                                                    "transport": "TCP"}}

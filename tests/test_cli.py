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
    (["exi", "decode", "--schema", "iso20_dc", "zz"], "", "not hexadecimal"),
    (["exi", "decode", "--schema", "nope", "80"], "", "unknown schema"),
    (["exi", "encode", "--schema", "iso20_dc"], "{not json", "not JSON"),
    (["exi", "encode", "--schema", "iso20_dc"], '{"DC_ChargeLoopReq": {"Header": {}}}', "SessionID"),
])
def test_errors_are_one_line_and_nonzero(args, stdin, needle):
    r = v2h(*args, stdin=stdin)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr

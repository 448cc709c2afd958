"""The peer (PyPI ``iso15118`` 0.31.2) for the interop tests: installed once per run in its own
environment (tools/peer.py). In CI (``V2H_REQUIRE_INTEROP=1``, set by .ci/run) an unavailable
peer is a failure; elsewhere those tests are skipped with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tools import peer

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def peer_python() -> Path:
    try:
        return peer.ensure_peer()
    except peer.PeerUnavailable as e:
        if os.environ.get("V2H_REQUIRE_INTEROP") == "1":
            pytest.fail(f"interop peer required but unavailable: {e}")
        pytest.skip(f"interop peer unavailable: {e}")


class PeerCodec:
    """The peer's JVM EXI codec, one long-lived process."""

    def __init__(self, python: Path):
        self.proc = subprocess.Popen([str(python), str(HERE / "peer_codec.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     encoding="utf-8", cwd=tempfile.mkdtemp(prefix="v2h-peer-"))

    def _ask(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the peer codec process ended")
        return json.loads(line)

    def encode(self, doc: dict, ns: str) -> bytes | str:
        """The peer's bytes, or its error message."""
        out = self._ask({"op": "encode", "ns": ns, "doc": doc})
        return bytes.fromhex(out["hex"]) if "hex" in out else out["error"]

    def decode(self, data: bytes, ns: str) -> dict | str:
        out = self._ask({"op": "decode", "ns": ns, "hex": data.hex()})
        return out["doc"] if "doc" in out else out["error"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def peer_codec(peer_python):
    codec = PeerCodec(peer_python)
    yield codec
    codec.close()


@pytest.fixture(scope="session")
def interop_netns():
    """One veth pair between two namespaces for all session interop tests: ours in A, the peer in B."""
    from tests.conftest import NetnsRefused, veth_namespaces

    from .sessions import Netns

    try:
        with veth_namespaces(f"i{os.getpid() % 10000}") as (ns_a, dev_a, ns_b, dev_b):
            yield Netns(ns_a, dev_a, ns_b, dev_b)
    except NetnsRefused as e:
        # the peer finds chargers only with SDP on a link-local interface (it refuses lo), so
        # without namespaces there is no address to point it at
        pytest.skip(f"session interop needs two network namespaces: {e}")


@pytest.fixture(scope="session")
def peer_pki(v2g_pki, tmp_path_factory) -> Path:
    """Our -20 test PKI (secp521r1) laid out the way the peer reads it."""
    from .peer_pki import lay_out_for_peer

    return lay_out_for_peer(v2g_pki, tmp_path_factory.mktemp("peer-pki"))


@pytest.fixture(scope="session")
def peer_pki_iso2(v2g_pki, tmp_path_factory) -> Path:
    """Our -2 test PKI (secp256r1) laid out the way the peer reads it."""
    from .peer_pki import lay_out_for_peer

    return lay_out_for_peer(v2g_pki, tmp_path_factory.mktemp("peer-pki-iso2"), "iso2-secp256r1")

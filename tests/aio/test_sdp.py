"""SDP over real UDP: on loopback, and across a veth pair between two network namespaces."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from iso15118.aio.sdp import discover, start_responder
from iso15118.sdp import Security, SDPClient, SDPServer


def test_loopback_discovery():
    async def go():
        logic = SDPServer("::1")
        transport = await start_responder(logic, host="::1", port=0)
        port = transport.get_extra_info("sockname")[1]
        # no TLS listener up yet: the charger stays silent and the car gives up
        with pytest.raises(TimeoutError):
            await discover(target="::1", port=port, logic=SDPClient(interval=0.05, max_requests=3))
        logic.tls_port = 50000
        resp = await discover(target="::1", port=port)
        transport.close()
        return resp, logic.requests

    resp, requests = asyncio.run(go())
    assert str(resp.address) == "::1" and resp.port == 50000 and resp.security == Security.TLS
    assert requests >= 2


def test_client_gives_up_after_its_retries():
    async def go():
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError, match="4 SDP requests"):
            await discover(target="::1", port=9, logic=SDPClient(interval=0.05, max_requests=4))
        return asyncio.get_running_loop().time() - t0

    assert 0.18 < asyncio.run(go()) < 2.0


def test_discovery_across_a_veth_pair(veth_pair):
    ns_a, dev_a, ns_b, dev_b = veth_pair
    server = subprocess.Popen(["ip", "netns", "exec", ns_a, sys.executable, "-m", "iso15118.aio.sdp", "serve",
                               "--interface", dev_a, "--tls-port", "50000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert json.loads(line)["address"] == "fe80::a", server.stderr.read() if not line else line
        t0 = time.monotonic()
        client = subprocess.run(["ip", "netns", "exec", ns_b, sys.executable, "-m", "iso15118.aio.sdp", "discover",
                                 "--interface", dev_b], capture_output=True, text=True, timeout=30)
        assert client.returncode == 0, client.stderr
        found = json.loads(client.stdout)
        assert found == {"address": "fe80::a", "port": 50000, "security": "TLS"}
        assert time.monotonic() - t0 < 15
    finally:
        server.terminate()
        server.wait(timeout=10)

"""asyncio adapter for SDP: the charger's UDP responder and the car's discovery.

On a named interface the responder joins ff02::1 and answers with the interface's link-local
address; without one (tests, direct setups) it listens on the given address. Run as a module for
manual checks and for the network-namespace tests::

    python -m iso15118.aio.sdp serve --interface veth0 --tls-port 50000
    python -m iso15118.aio.sdp discover --interface veth1
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import struct
import sys

from iso15118.sdp import MULTICAST_ADDRESS, SDP_PORT, Security, SDPClient, SDPResponse, SDPServer


def link_local_address(interface: str) -> ipaddress.IPv6Address:
    """The interface's fe80:: address (from /proc/net/if_inet6)."""
    with open("/proc/net/if_inet6") as f:
        for line in f:
            hexaddr, _idx, _plen, scope, _flags, name = line.split()
            if name == interface and scope == "20":
                return ipaddress.IPv6Address(bytes.fromhex(hexaddr))
    raise OSError(f"interface {interface!r} has no IPv6 link-local address")


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, logic: SDPServer):
        self.logic = logic
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        answer = self.logic.on_datagram(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


async def start_responder(logic: SDPServer, *, interface: str | None = None, host: str = "::",
                          port: int = SDP_PORT) -> asyncio.DatagramTransport:
    """Answer SDP requests with ``logic``; on ``interface`` via the ff02::1 multicast group."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if interface is not None:
        index = socket.if_nametoindex(interface)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("::", port))
        mreq = socket.inet_pton(socket.AF_INET6, MULTICAST_ADDRESS) + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    else:
        sock.bind((host, port))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Responder(logic), sock=sock)
    return transport


class _Finder(asyncio.DatagramProtocol):
    def __init__(self, logic: SDPClient, found: asyncio.Future):
        self.logic = logic
        self.found = found

    def datagram_received(self, data, addr):
        resp = self.logic.on_datagram(data, asyncio.get_running_loop().time())
        if resp is not None and not self.found.done():
            self.found.set_result(resp)


async def discover(*, interface: str | None = None, target: str = MULTICAST_ADDRESS, port: int = SDP_PORT,
                   security: Security = Security.TLS, logic: SDPClient | None = None) -> SDPResponse:
    """Find a charger: multicast on ``interface`` (or send to ``target``), retrying every 250 ms
    up to 50 times. Raises TimeoutError when nobody answers."""
    loop = asyncio.get_running_loop()
    logic = logic or SDPClient(security)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    scope = 0
    if interface is not None:
        scope = socket.if_nametoindex(interface)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, scope)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.bind(("::", 0, 0, scope))
    else:
        sock.bind(("::", 0))
    sock.setblocking(False)
    found: asyncio.Future = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Finder(logic, found), sock=sock)
    dest = (target, port, 0, scope)
    try:
        datagram = logic.start(loop.time())
        while True:
            if datagram is not None:
                transport.sendto(datagram, dest)
            deadline = logic.next_deadline()
            if deadline is None:
                break
            try:
                return await asyncio.wait_for(asyncio.shield(found), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                datagram = logic.poll(loop.time())
        if found.done():
            return found.result()
        raise TimeoutError(f"no SECC answered {logic.sent} SDP requests")
    finally:
        transport.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m iso15118.aio.sdp")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--interface")
    s.add_argument("--host", default="::")
    s.add_argument("--port", type=int, default=SDP_PORT)
    s.add_argument("--tls-port", type=int)
    s.add_argument("--tcp-port", type=int)
    s.add_argument("--address", help="address to announce (default: the interface's link-local)")
    d = sub.add_parser("discover")
    d.add_argument("--interface")
    d.add_argument("--target", default=MULTICAST_ADDRESS)
    d.add_argument("--port", type=int, default=SDP_PORT)
    d.add_argument("--no-tls", action="store_true")
    args = ap.parse_args(argv)

    async def serve():
        addr = args.address or (str(link_local_address(args.interface)) if args.interface else "::1")
        logic = SDPServer(addr)
        logic.tls_port, logic.tcp_port = args.tls_port, args.tcp_port
        await start_responder(logic, interface=args.interface, host=args.host, port=args.port)
        print(json.dumps({"listening": True, "address": addr}), flush=True)
        await asyncio.Event().wait()

    async def find():
        resp = await discover(interface=args.interface, target=args.target, port=args.port,
                              security=Security.NONE if args.no_tls else Security.TLS)
        print(json.dumps({"address": str(resp.address), "port": resp.port, "security": resp.security.name}))

    try:
        asyncio.run(serve() if args.cmd == "serve" else find())
    except TimeoutError as e:
        print(f"sdp: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

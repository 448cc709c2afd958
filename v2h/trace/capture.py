"""Packets out of a capture file, and TCP streams out of packets.

``read_packets`` reads pcap and pcapng (with ``dpkt``: Ethernet with VLAN tags, Linux cooked
captures SLL and SLL2 as ``tcpdump -i any`` writes them, raw IP, BSD loopback) and returns the
IPv4 and IPv6 TCP and UDP packets in the file's order. ``TCPStreams`` (pure) puts each
direction of each TCP connection back in order: out-of-order segments wait for the gap to fill,
retransmitted bytes (a whole segment or its overlap with what was delivered) are dropped, a gap
that never fills is reported. The client of a connection is the side that sent the SYN (or,
without the SYN in the capture, the side that sent first).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO


class CaptureError(ValueError):
    """A file that is not a packet capture this reader understands."""


@dataclass(frozen=True)
class Packet:
    time: float
    proto: str             # 'tcp' or 'udp'
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    seq: int = 0           # TCP only
    syn: bool = False
    ack: bool = False
    fin: bool = False
    rst: bool = False


def read_packets(f: BinaryIO) -> list[Packet]:
    """The TCP and UDP packets of a pcap or pcapng file."""
    try:
        import dpkt
    except ImportError:
        raise CaptureError("reading captures needs dpkt: pip install 'v2h[capture]'") from None

    magic = f.read(4)
    f.seek(0)
    try:
        reader = dpkt.pcapng.Reader(f) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
    except (ValueError, dpkt.dpkt.Error) as e:
        raise CaptureError(f"not a pcap or pcapng file ({e})") from None
    linktype = reader.datalink()
    out = []
    try:
        for ts, buf in reader:
            ip = _network_layer(linktype, buf)
            if ip is None:
                continue
            pkt = _transport(float(ts), ip)
            if pkt is not None:
                out.append(pkt)
    except (ValueError, dpkt.dpkt.Error) as e:  # a truncated file: keep what was read
        if not out:
            raise CaptureError(f"cannot read the capture: {e}") from None
    return out


def _network_layer(linktype: int, buf: bytes):
    import dpkt

    try:
        if linktype == dpkt.pcap.DLT_EN10MB:
            frame = dpkt.ethernet.Ethernet(buf)
            ip = frame.data
        elif linktype == dpkt.pcap.DLT_LINUX_SLL:
            ip = dpkt.sll.SLL(buf).data
        elif linktype == 276:  # LINUX_SLL2
            ip = dpkt.sll2.SLL2(buf).data
        elif linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
            ip = _raw_ip(buf[4:])
        elif linktype in (dpkt.pcap.DLT_RAW, 101, 14, 228, 229):
            ip = _raw_ip(buf)
        else:
            raise CaptureError(f"link type {linktype} is not one this reader knows (Ethernet, Linux cooked, raw IP, "
                               "loopback)")
    except (dpkt.dpkt.Error, ValueError, IndexError):
        return None
    return ip if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) else None


def _raw_ip(buf: bytes):
    import dpkt

    if not buf:
        return None
    return dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf) if buf[0] >> 4 == 6 else None


def _transport(ts: float, ip) -> Packet | None:
    import dpkt

    if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
        return None  # IPv4 fragments are not reassembled (V2G traffic is not fragmented)
    seg = ip.data
    src, dst = str(ipaddress.ip_address(ip.src)), str(ipaddress.ip_address(ip.dst))
    if isinstance(seg, dpkt.tcp.TCP):
        flags = seg.flags
        return Packet(ts, "tcp", src, seg.sport, dst, seg.dport, bytes(seg.data), seg.seq,
                      bool(flags & dpkt.tcp.TH_SYN), bool(flags & dpkt.tcp.TH_ACK), bool(flags & dpkt.tcp.TH_FIN),
                      bool(flags & dpkt.tcp.TH_RST))
    if isinstance(seg, dpkt.udp.UDP):
        return Packet(ts, "udp", src, seg.sport, dst, seg.dport, bytes(seg.data))
    return None


Endpoint = tuple[str, int]


def endpoint_text(ep: Endpoint) -> str:
    return f"[{ep[0]}]:{ep[1]}" if ":" in ep[0] else f"{ep[0]}:{ep[1]}"


@dataclass
class _Half:
    """One direction of a connection."""

    next_seq: int | None = None
    pending: dict[int, tuple[float, bytes]] = field(default_factory=dict)  # out-of-order segments by seq
    retransmitted: int = 0   # bytes dropped as already delivered
    fin: bool = False


@dataclass
class Connection:
    """A TCP connection: client and server endpoints and, per direction, the data in order."""

    client: Endpoint
    server: Endpoint
    start: float
    chunks: list[tuple[float, str, bytes]] = field(default_factory=list)  # (time, 'client'|'server', data)
    halves: dict[str, _Half] = field(default_factory=lambda: {"client": _Half(), "server": _Half()})
    reset: bool = False
    saw_syn: bool = False

    def describe(self) -> str:
        return f"{endpoint_text(self.client)} → {endpoint_text(self.server)}"

    @property
    def gaps(self) -> dict[str, int]:
        """Per direction, the bytes held after a gap that never filled."""
        return {side: sum(len(d) for _, d in h.pending.values()) for side, h in self.halves.items() if h.pending}


def _after(a: int, b: int) -> int:
    """a − b in sequence space (signed, 32-bit wrap)."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d & 0x80000000 else d


class TCPStreams:
    """TCP packets in (any order of arrival, as captured), each connection's data out in order."""

    def __init__(self):
        self.connections: list[Connection] = []
        self._by_key: dict[tuple[Endpoint, Endpoint], tuple[Connection, str]] = {}

    def add(self, pkt: Packet) -> None:
        a, b = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
        found = self._by_key.get((a, b))
        if found is None or (pkt.syn and not pkt.ack and found[0].halves["client"].next_seq is not None
                             and _after(pkt.seq + 1, found[0].halves["client"].next_seq) != 0):
            if not pkt.payload and not pkt.syn:
                return  # a bare ACK/FIN/RST of a connection that started before the capture
            # a new connection (or a new one on the same ports): the sender of a SYN without ACK
            # is the client; without the handshake, the first sender of data
            client, server = (b, a) if pkt.syn and pkt.ack else (a, b)
            conn = Connection(client, server, pkt.time, saw_syn=pkt.syn)
            self.connections.append(conn)
            self._by_key[(client, server)] = (conn, "client")
            self._by_key[(server, client)] = (conn, "server")
            found = self._by_key[(a, b)]
        conn, side = found
        half = conn.halves[side]
        if pkt.rst:
            conn.reset = True
        if pkt.syn:
            half.next_seq = (pkt.seq + 1) & 0xFFFFFFFF
            return
        if pkt.payload:
            self._data(conn, side, half, pkt.time, pkt.seq, pkt.payload)
        if pkt.fin:
            half.fin = True

    @staticmethod
    def _data(conn: Connection, side: str, half: _Half, t: float, seq: int, data: bytes) -> None:
        if half.next_seq is None:
            half.next_seq = seq
        offset = _after(seq, half.next_seq)
        if offset + len(data) <= 0:
            half.retransmitted += len(data)
            return
        if offset < 0:  # overlaps what was delivered: keep only the new bytes
            half.retransmitted += -offset
            data, seq = data[-offset:], half.next_seq
            offset = 0
        if offset > 0:
            if seq not in half.pending or len(half.pending[seq][1]) < len(data):
                half.pending[seq] = (t, data)
            return
        conn.chunks.append((t, side, data))
        half.next_seq = (half.next_seq + len(data)) & 0xFFFFFFFF
        while half.pending:  # the segments this one lets through
            progressed = False
            for pseq in list(half.pending):
                pt, pdata = half.pending[pseq]
                off = _after(pseq, half.next_seq)
                if off + len(pdata) <= 0:
                    del half.pending[pseq]
                    half.retransmitted += len(pdata)
                    progressed = True
                elif off <= 0:
                    del half.pending[pseq]
                    new = pdata[-off:] if off < 0 else pdata
                    half.retransmitted += -off
                    conn.chunks.append((max(pt, t), side, new))
                    half.next_seq = (half.next_seq + len(new)) & 0xFFFFFFFF
                    progressed = True
            if not progressed:
                break


def tcp_streams(packets: Iterable[Packet]) -> list[Connection]:
    streams = TCPStreams()
    for p in packets:
        if p.proto == "tcp":
            streams.add(p)
    return streams.connections

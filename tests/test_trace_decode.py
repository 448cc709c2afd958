"""v2h trace decode on packets made here: V2GTP over TCP (IPv4 and IPv6) put back in order with
retransmissions dropped, the schema learned from SupportedAppProtocol (ISO 15118-2, DIN 70121),
SDP, and pcap/pcapng files read through the command line. The -2 and DIN frames come from the
codec (tests/test_trace_capture.py also decodes v2h's own -2 and DIN sessions)."""

from __future__ import annotations

import ipaddress
import json
import random
import subprocess
import sys

import pytest

from iso15118 import exi
from iso15118.sdp import SDPRequest, SDPResponse, Security
from iso15118.v2gtp import PayloadType, encode_frame
from tests.conftest import load_vectors
from v2h.trace.capture import Packet, TCPStreams
from v2h.trace.decode import decode_packets

VEC = {v["name"]: v for v in load_vectors("reference.json")}
CLI = [sys.executable, "-m", "v2h.cli"]
NS = {"iso2": "urn:iso:15118:2:2013:MsgDef", "din": "urn:din:70121:2012:MsgDef"}


def _pv(value, unit):
    return {"Multiplier": 0, "Unit": unit, "Value": value}


def session_docs(protocol: str) -> list[tuple[str, str, dict]]:
    """(side, schema, to_dict document) of a short -2 or DIN exchange: the handshake choosing
    ``protocol``, then CurrentDemandReq (a reference vector) and a CurrentDemandRes."""
    offered = {"supportedAppProtocolReq": {"AppProtocol": [
        {"ProtocolNamespace": NS["iso2"], "VersionNumberMajor": 2, "VersionNumberMinor": 0, "SchemaID": 1,
         "Priority": 1},
        {"ProtocolNamespace": NS["din"], "VersionNumberMajor": 2, "VersionNumberMinor": 0, "SchemaID": 2,
         "Priority": 2}]}}
    chosen = {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation",
                                          "SchemaID": 1 if protocol == "iso2" else 2}}
    req = VEC["ISO2_CurrentDemandReq" if protocol == "iso2" else "DIN_CurrentDemandReq"]["content"]
    res = {"V2G_Message": {"Header": {"SessionID": "5A2CDE53F701D4AC"}, "Body": {"CurrentDemandRes": {
        "ResponseCode": "OK", "DC_EVSEStatus": {"EVSEIsolationStatus": "Valid", "EVSEStatusCode": "EVSE_Ready",
                                                "NotificationMaxDelay": 0, "EVSENotification": "None"},
        "EVSEPresentVoltage": _pv(400, "V"), "EVSEPresentCurrent": _pv(-125, "A"),
        "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False, "EVSEPowerLimitAchieved": False,
        **({"EVSEID": "DE*V2H*E1", "SAScheduleTupleID": 1} if protocol == "iso2" else {})}}}}
    return [("client", "apphand", offered), ("server", "apphand", chosen), ("client", protocol, req),
            ("server", protocol, res)]


def frames_of(docs) -> list[tuple[str, bytes]]:
    return [(side, encode_frame(PayloadType.EXI, exi.encode(exi.from_dict(doc, schema), schema)))
            for side, schema, doc in docs]


CLIENT, SERVER = ("2001:db8::ca", 41000), ("2001:db8::5e", 50000)


def tcp_packets(frames, *, client=CLIENT, server=SERVER, segment: int | None = None, isn=(1000, 9000),
                t0: float = 1_790_000_000.0) -> list[Packet]:
    """The packets of a TCP connection carrying ``frames`` ((side, bytes), in order): the
    handshake, then each frame in segments of ``segment`` bytes, a packet every 10 ms."""
    seq = {"client": isn[0], "server": isn[1]}
    ends = {"client": (client, server), "server": (server, client)}
    t = t0
    out = [Packet(t, "tcp", *client, *server, b"", seq["client"], syn=True),
           Packet(t + 0.001, "tcp", *server, *client, b"", seq["server"], syn=True, ack=True)]
    seq = {k: (v + 1) & 0xFFFFFFFF for k, v in seq.items()}
    for side, data in frames:
        size = segment or len(data)
        for i in range(0, len(data), size):
            t += 0.01
            (src, sport), (dst, dport) = ends[side]
            out.append(Packet(t, "tcp", src, sport, dst, dport, data[i:i + size], seq[side], ack=True))
            seq[side] = (seq[side] + len(data[i:i + size])) & 0xFFFFFFFF
    return out


def messages(records) -> list[tuple[str, str, dict]]:
    return [(r["direction"], r["name"], r["message"]) for r in records if "message" in r]


@pytest.mark.parametrize("protocol", ["iso2", "din"])
def test_plain_v2gtp_frames_decode_with_the_negotiated_schema(protocol):
    docs = session_docs(protocol)
    result = decode_packets(tcp_packets(frames_of(docs)))
    assert messages(result.records) == [
        ("rx", "supportedAppProtocolReq", docs[0][2]), ("tx", "supportedAppProtocolRes", docs[1][2]),
        ("rx", "CurrentDemandReq", docs[2][2]), ("tx", "CurrentDemandRes", docs[3][2])]
    assert result.records[0] == {"time": result.records[0]["time"],
                                 "note": "TCP [2001:db8::ca]:41000 → [2001:db8::5e]:50000: V2GTP without TLS, "
                                         "4 V2G messages"}
    assert [set(r) for r in result.records[1:]] == [{"time", "direction", "name", "message"}] * 4
    car = decode_packets(tcp_packets(frames_of(docs)), side="evcc")
    assert [d for d, _, _ in messages(car.records)] == ["tx", "rx", "tx", "rx"]
    assert result.problems == []


def test_segments_out_of_order_duplicated_and_overlapping_are_put_back():
    """Frames cut into 5-byte segments, shuffled, every third one sent twice, and a
    retransmission that overlaps two segments: the same messages, the dropped bytes counted."""
    docs = session_docs("iso2")
    pkts = tcp_packets(frames_of(docs), segment=5, isn=(0xFFFFFFF0, 0xFFFFFF00))  # sequence numbers wrap too
    handshake, data = pkts[:2], pkts[2:]
    rng = random.Random(7)
    noisy = list(data) + data[::3]
    overlap = data[4]
    noisy.append(Packet(overlap.time, "tcp", overlap.src, overlap.sport, overlap.dst, overlap.dport,
                        overlap.payload + data[5].payload[:3], overlap.seq, ack=True))
    rng.shuffle(noisy)
    result = decode_packets(handshake + noisy)
    assert messages(result.records) == messages(decode_packets(pkts).records)
    assert "retransmitted bytes dropped" in result.records[0]["note"]


def test_a_missing_segment_is_reported():
    docs = session_docs("din")
    pkts = tcp_packets(frames_of(docs), segment=8)
    del pkts[10]
    result = decode_packets(pkts)
    assert any("a gap in the capture" in p for p in result.problems), result.problems
    assert "a gap in the capture" in result.records[0]["note"]


def test_tcp_streams_tell_client_from_server_without_the_handshake():
    docs = session_docs("iso2")
    pkts = tcp_packets(frames_of(docs))[2:]  # the capture began after the SYN
    streams = TCPStreams()
    for p in pkts:
        streams.add(p)
    (conn,) = streams.connections
    assert conn.client == CLIENT and conn.server == SERVER


def test_a_capture_that_starts_after_the_handshake_still_decodes():
    docs = session_docs("iso2")[2:]
    result = decode_packets(tcp_packets(frames_of(docs)))
    assert [n for _, n, _ in messages(result.records)] == ["CurrentDemandReq", "CurrentDemandRes"]


def test_iso20_frames_are_decoded_by_payload_type():
    v = VEC["DC_ChargeLoopReq_bpt_min"]
    frame = encode_frame(PayloadType.ISO20_DC, bytes.fromhex(v["exi_hex"]))
    result = decode_packets(tcp_packets([("client", frame)]))
    assert messages(result.records) == [("rx", "DC_ChargeLoopReq", v["content"])]


def test_an_undecodable_frame_is_noted_and_the_rest_goes_on():
    docs = session_docs("iso2")
    frames = frames_of(docs)
    frames.insert(2, ("client", encode_frame(PayloadType.ISO20_DC, b"\x80\x34\x04")))
    result = decode_packets(tcp_packets(frames))
    assert len(messages(result.records)) == 4
    assert any("does not decode" in p for p in result.problems)


def test_other_tcp_traffic_is_named_and_skipped():
    http = [("client", b"GET /ocpp/CS1 HTTP/1.1\r\nHost: x\r\n\r\n"), ("server", b"HTTP/1.1 101 Switching\r\n\r\n")]
    result = decode_packets(tcp_packets(http))
    assert len(result.records) == 1 and "neither V2GTP nor TLS" in result.records[0]["note"]


def test_sdp_requests_and_responses():
    car, charger = ("fe80::b", 49000), ("fe80::a", 15118)
    req = Packet(1.0, "udp", *car, "ff02::1", 15118, SDPRequest(Security.TLS).to_datagram())
    res = Packet(1.01, "udp", *charger, *car,
                 SDPResponse(ipaddress.IPv6Address("fe80::a"), 61000, Security.TLS).to_datagram())
    bad = Packet(1.02, "udp", *car, "ff02::1", 15118, b"\x01\xfe\x90\x00\x00\x00\x00\x02\x99\x99")
    recs = decode_packets([req, res, bad]).records
    assert [(r.get("direction"), r.get("name")) for r in recs[:2]] == [("rx", "SDPRequest"), ("tx", "SDPResponse")]
    assert recs[0]["sdp"] == {"security": "TLS", "transport": "TCP", "from": "[fe80::b]:49000"}
    assert recs[1]["sdp"] == {"address": "fe80::a", "port": 61000, "security": "TLS", "transport": "TCP",
                              "from": "[fe80::a]:15118"}
    assert "not an SDP message" in recs[2]["note"]


def _write_capture(path, packets, *, ng: bool, ipv6: bool) -> None:
    import dpkt

    with open(path, "wb") as f:
        writer = dpkt.pcapng.Writer(f) if ng else dpkt.pcap.Writer(f)
        for p in packets:
            if p.proto == "tcp":
                seg = dpkt.tcp.TCP(sport=p.sport, dport=p.dport, seq=p.seq, off=5, data=p.payload,
                                   flags=(dpkt.tcp.TH_SYN if p.syn else 0) | (dpkt.tcp.TH_ACK if p.ack else 0))
                proto = dpkt.ip.IP_PROTO_TCP
            else:
                seg = dpkt.udp.UDP(sport=p.sport, dport=p.dport, data=p.payload)
                seg.ulen = len(seg)
                proto = dpkt.ip.IP_PROTO_UDP
            src, dst = ipaddress.ip_address(p.src).packed, ipaddress.ip_address(p.dst).packed
            if ipv6:
                ip = dpkt.ip6.IP6(src=src, dst=dst, nxt=proto, hlim=64, data=seg)
                ip.plen = len(seg)
                eth_type = dpkt.ethernet.ETH_TYPE_IP6
            else:
                ip = dpkt.ip.IP(src=src, dst=dst, p=proto, data=seg)
                ip.len = len(ip)
                eth_type = dpkt.ethernet.ETH_TYPE_IP
            frame = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x0b", dst=b"\x02\x00\x00\x00\x00\x0a",
                                           type=eth_type, data=ip)
            writer.writepkt(bytes(frame), ts=p.time)


@pytest.mark.parametrize("ng", [False, True], ids=["pcap", "pcapng"])
@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_capture_files_through_the_command_line(tmp_path, ng, ipv6):
    docs = session_docs("din")
    ends = {"client": CLIENT, "server": SERVER} if ipv6 else {"client": ("192.0.2.10", 41000),
                                                              "server": ("192.0.2.20", 50000)}
    pkts = tcp_packets(frames_of(docs), segment=16, **ends)
    path = tmp_path / ("v2g.pcapng" if ng else "v2g.pcap")
    _write_capture(path, pkts, ng=ng, ipv6=ipv6)
    r = subprocess.run([*CLI, "trace", "decode", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert messages(recs) == messages(decode_packets(pkts).records)
    assert len(messages(recs)) == 4
    assert recs[1]["time"].endswith("Z") and recs[1]["time"].startswith("2026-")


def test_not_a_capture_is_a_clear_error(tmp_path):
    path = tmp_path / "x.pcap"
    path.write_bytes(b"this is not a capture")
    r = subprocess.run([*CLI, "trace", "decode", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not a pcap or pcapng file" in r.stderr and "Traceback" not in r.stderr

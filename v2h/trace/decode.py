"""``v2h trace decode``: the V2G messages of a packet capture as JSON lines.

From the packets (``capture.read_packets``): SDP requests and responses (UDP port 15118), and
every TCP connection put back in order (``capture.TCPStreams``), recognised by its first bytes
as V2GTP (01 FE …) or TLS (16 03 …; decrypted with a key log when it is TLS 1.3,
``tls13.TLSConnection``). The V2GTP frames of each connection are decoded with the schema the
session uses: SupportedAppProtocol first, then the protocol its response selected (ISO 15118-20
by payload type, ISO 15118-2 or DIN 70121 by the namespace the car offered under that
SchemaID); a capture that starts after the handshake is decoded by trying -2 then DIN.

The records have the ``--log`` shape of the side named by ``side`` (the charger, 'secc', by
default: requests 'rx', responses 'tx'): ``{"time", "direction", "name", "message"}``; SDP as
``{"time", "direction", "name": "SDPRequest"|"SDPResponse", "sdp": {...}}``; and one note per
connection (``{"time", "note"}``) saying what it was and what could not be decrypted or decoded.
Everything here is pure: packets in, records out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from iso15118 import exi
from iso15118.aio.trace import iso_time
from iso15118.sdp import SDP_PORT, SDPError, SDPRequest, SDPResponse
from iso15118.v2gtp import SCHEMA_OF, PayloadType, V2GTPDecoder, V2GTPError

from .capture import Connection, Packet, endpoint_text, tcp_streams
from .tls13 import TLSConnection

MAX_PAYLOAD = 1 << 20
_PROTOCOLS = {"urn:iso:std:iso:15118:-20": "iso20", "urn:iso:15118:2:2013:MsgDef": "iso2",
              "urn:din:70121:2012:MsgDef": "din"}


@dataclass
class Decoded:
    records: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # what could not be decrypted or decoded, for stderr


def message_name(doc: dict) -> str:
    """The message's name in a ``to_dict`` document: the root element, or a -2/DIN body's."""
    root = next(iter(doc))
    if root == "V2G_Message":
        body = doc[root].get("Body") or {}
        return next(iter(body), "V2G_Message")
    return root


class SessionSchemas:
    """Which schema each frame of one connection is in, learned from its SupportedAppProtocol
    exchange."""

    def __init__(self):
        self.offered: dict[int, str] = {}    # SchemaID → protocol, from the request
        self.protocol: str | None = None

    def decode(self, ptype: PayloadType, payload: bytes) -> tuple[str, object]:
        """(schema, message); ExiError when no schema decodes it."""
        if ptype in SCHEMA_OF:
            schema = SCHEMA_OF[ptype]
            return schema, exi.decode(payload, schema)
        if ptype != PayloadType.EXI:
            raise exi.ExiDecodeError(f"payload type {ptype:#06x} ({ptype.name}) is not decoded here")
        candidates = [self.protocol] if self.protocol in ("iso2", "din") else ["apphand", "iso2", "din"]
        last: Exception | None = None
        for schema in candidates:
            try:
                msg = exi.decode(payload, schema)
            except exi.ExiError as e:
                last = e
                continue
            if schema == "apphand":
                self._handshake(msg)
            return schema, msg
        raise last  # type: ignore[misc]

    def _handshake(self, msg) -> None:
        doc = exi.to_dict(msg, "apphand")
        if "supportedAppProtocolReq" in doc:
            for ap in doc["supportedAppProtocolReq"].get("AppProtocol", []):
                ns = str(ap.get("ProtocolNamespace", ""))
                proto = next((p for prefix, p in _PROTOCOLS.items() if ns.startswith(prefix)), None)
                if proto is not None and isinstance(ap.get("SchemaID"), int):
                    self.offered[ap["SchemaID"]] = proto
        elif "supportedAppProtocolRes" in doc:
            sid = doc["supportedAppProtocolRes"].get("SchemaID")
            self.protocol = self.offered.get(sid) if isinstance(sid, int) else None


def decode_packets(packets: Iterable[Packet], *, keylog: dict | None = None, side: str = "secc") -> Decoded:
    if side not in ("secc", "evcc"):
        raise ValueError(f"side is 'secc' or 'evcc', not {side!r}")
    packets = list(packets)
    out = Decoded()
    # (time, order) sorts the records; the order keeps a connection's note before its messages
    keyed: list[tuple[float, int, dict]] = []

    def emit(t: float, rec: dict) -> None:
        keyed.append((t, len(keyed), {"time": iso_time(t), **rec}))

    def direction(from_client: bool) -> str:
        return ("rx" if from_client else "tx") if side == "secc" else ("tx" if from_client else "rx")

    for p in packets:
        if p.proto == "udp" and SDP_PORT in (p.sport, p.dport):
            _sdp(p, emit, direction, out)
    for conn in tcp_streams(packets):
        _connection(conn, keylog, emit, direction, out)
    keyed.sort(key=lambda k: (k[0], k[1]))
    out.records = [r for _, _, r in keyed]
    return out


def _sdp(p: Packet, emit, direction, out: Decoded) -> None:
    try:
        if p.dport == SDP_PORT:
            req = SDPRequest.from_datagram(p.payload)
            emit(p.time, {"direction": direction(True), "name": "SDPRequest",
                          "sdp": {"security": req.security.name, "transport": req.transport.name,
                                  "from": endpoint_text((p.src, p.sport))}})
        else:
            res = SDPResponse.from_datagram(p.payload)
            emit(p.time, {"direction": direction(False), "name": "SDPResponse",
                          "sdp": {"address": str(res.address), "port": res.port, "security": res.security.name,
                                  "transport": res.transport.name, "from": endpoint_text((p.src, p.sport))}})
    except SDPError as e:
        emit(p.time, {"note": f"UDP {endpoint_text((p.src, p.sport))} → {endpoint_text((p.dst, p.dport))}: "
                              f"not an SDP message ({e})"})


def _connection(conn: Connection, keylog, emit, direction, out: Decoded) -> None:
    first = next((data for _, s, data in conn.chunks if s == "client" and data), None) or \
        next((data for _, s, data in conn.chunks if data), b"")
    where = conn.describe()
    if not first:
        return  # no data (a refused or idle connection)
    tls = first[:2] in (b"\x16\x03", b"\x14\x03") or (first[:1] == b"\x16")
    v2gtp = first[:2] == b"\x01\xfe"
    if not tls and not v2gtp:
        emit(conn.start, {"note": f"TCP {where}: neither V2GTP nor TLS (first bytes {first[:8].hex()}), skipped"})
        return
    tls_conn = TLSConnection(keylog) if tls else None
    decoders = {"client": V2GTPDecoder(MAX_PAYLOAD), "server": V2GTPDecoder(MAX_PAYLOAD)}
    schemas = SessionSchemas()
    count, failed = 0, []
    notes_at = conn.start  # the connection's note comes before its messages
    messages: list[tuple[float, dict]] = []
    for t, s, data in conn.chunks:
        plain = tls_conn.feed(s, data) if tls_conn is not None else [data]
        dec = decoders[s]
        for piece in plain:
            if dec.closed:
                break
            try:
                dec.receive_data(piece)
                frames = dec.frames()
            except V2GTPError as e:
                failed.append(f"{'car' if s == 'client' else 'charger'} stream is not V2GTP: {e}")
                break
            for frame in frames:
                try:
                    schema, msg = schemas.decode(frame.payload_type, frame.payload)
                    doc = exi.to_dict(msg, schema)
                except exi.ExiError as e:
                    failed.append(f"a frame of payload type {frame.payload_type:#06x} ({len(frame.payload)} bytes, "
                                  f"{frame.payload[:24].hex()}…) does not decode: {e}")
                    continue
                count += 1
                messages.append((t, {"direction": direction(s == "client"), "name": message_name(doc),
                                     "message": doc}))
    if tls_conn is not None:
        head = f"{tls_conn.version} {tls_conn.suite_name} {where}".replace("  ", " ")
        if tls_conn.decryptable and count:
            summary = f"{head}: decrypted, {count} V2G messages"
        else:
            undecrypted = {s: tls_conn.skipped_handshake_records(s) for s in ("client", "server")}
            why = "; ".join(dict.fromkeys(tls_conn.problems)) or "nothing decrypted"
            summary = (f"{head}: not decrypted: {why}; {undecrypted['client']} encrypted records from the car, "
                       f"{undecrypted['server']} from the charger")
            if tls_conn.decryptable:
                summary = f"{head}: decrypted, but no V2G message in it ({why})"
            out.problems.append(summary)
    else:
        summary = f"TCP {where}: V2GTP without TLS, {count} V2G messages"
    extra = []
    dropped = sum(h.retransmitted for h in conn.halves.values())
    if dropped:
        extra.append(f"{dropped} retransmitted bytes dropped")
    for s, n in conn.gaps.items():
        extra.append(f"a gap in the capture: {n} bytes from the {'car' if s == 'client' else 'charger'} after it "
                     "lost")
        out.problems.append(f"{where}: a gap in the capture ({n} bytes lost)")
    for f in failed:
        out.problems.append(f"{where}: {f}")
    emit(notes_at, {"note": summary + (f" ({'; '.join(extra)})" if extra else "")})
    for f in failed:
        emit(notes_at, {"note": f"{where}: {f}"})
    for t, rec in messages:
        emit(t, rec)

"""``v2h trace decode CAPTURE`` and ``v2h trace show LOG`` (docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub) -> None:
    from v2h.args import choice

    p = sub.add_parser("trace", help="what went over the wire: decode a packet capture, show a JSON-lines log")
    ts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    d = ts.add_parser("decode", help="the V2G messages of a pcap/pcapng capture as JSON lines (the --log format)",
                      description="Reads a packet capture (tcpdump, Wireshark), finds SDP (UDP 15118) and V2GTP over "
                                  "TCP and TLS (IPv4 and IPv6; segments reassembled, retransmissions dropped), "
                                  "decrypts TLS 1.3 with a key log, and prints one JSON object per V2G message "
                                  "(time, direction, name, message), per SDP message, and one note per connection.")
    d.add_argument("capture", metavar="CAPTURE", help="a .pcap or .pcapng file")
    d.add_argument("--keylog", metavar="FILE", help="TLS secrets in the SSLKEYLOGFILE format (v2h secc/evcc/charger "
                                                    "--keylog, or SSLKEYLOGFILE of another implementation)")
    d.add_argument("--side", default="secc", type=choice("secc", "evcc"), metavar="SIDE",
                   help="whose point of view 'direction' takes: secc (requests rx, responses tx, as the charger's "
                        "--log) or evcc (as the car's)")
    d.add_argument("-o", "--output", metavar="FILE", help="write the JSON lines to FILE instead of stdout")
    d.set_defaults(func=_decode)
    s = ts.add_parser("show", help="a JSON-lines log (--log, the demo, trace decode) as the readable trace",
                      description="Renders JSON lines as the readable trace, optionally filtered by message name and "
                                  "time.")
    s.add_argument("log", metavar="LOG", help="a JSON-lines file, or - for stdin")
    s.add_argument("--name", action="append", metavar="PATTERN",
                   help="only messages whose name matches (shell pattern, any case, e.g. '*ChargeLoop*', "
                        "SetChargingProfile*); repeatable; notes are left out")
    s.add_argument("--since", metavar="TIME", help="from this time on: HH:MM:SS[.fff] (UTC, as the trace prints "
                                                   "it, on the log's first day) or ISO 8601")
    s.add_argument("--until", metavar="TIME", help="up to this time (same forms as --since)")
    s.add_argument("--trace", nargs="?", const="full", default="full", type=choice("short", "full"), metavar="MODE",
                   help="full: one line per message; short: one line per state change and a progress line in the "
                        "charge loop")
    s.add_argument("--who", metavar="LABEL", help="the label in front of each V2G line (default: SECC or EVCC, the "
                                                  "side that logged it, told by the message and its direction)")
    s.add_argument("--both-sides", action="store_true", help="keep a message twice when the log holds both ends' "
                                                             "copies (a charger's and a car's log merged, as v2h "
                                                             "demo's messages.jsonl); by default the sender's is kept")
    s.add_argument("-v", "--verbose", action="store_true", help="OCPP lines with their whole payload")
    s.set_defaults(func=_show)


def _decode(args: argparse.Namespace) -> int:
    from .capture import read_packets
    from .decode import decode_packets
    from .tls13 import parse_keylog

    keylog = None
    if args.keylog:
        try:
            with open(args.keylog, encoding="utf-8") as f:
                keylog = parse_keylog(f.read())
        except OSError as e:
            raise ValueError(f"cannot read the key log {args.keylog}: {e.strerror}") from None
    try:
        with open(args.capture, "rb") as f:
            packets = read_packets(f)
    except OSError as e:
        raise ValueError(f"cannot read {args.capture}: {e.strerror}") from None
    result = decode_packets(packets, keylog=keylog, side=args.side)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for rec in result.records:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    for problem in dict.fromkeys(result.problems):
        print(f"v2h trace decode: {problem}", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    from iso15118.aio.trace import TraceWriter

    from .show import load, render, select

    if args.log == "-":
        lines, name = sys.stdin, "stdin"
    else:
        try:
            lines, name = open(args.log, encoding="utf-8"), args.log
        except OSError as e:
            raise ValueError(f"cannot read {args.log}: {e.strerror}") from None
    writer = TraceWriter(sys.stdout, tty=_isatty(sys.stdout))
    try:
        records = select(load(lines, name), names=args.name, since=args.since, until=args.until,
                         both_sides=args.both_sides)
        for line in render(records, mode=args.trace, who=args.who, verbose=args.verbose):
            writer.write([line])
    finally:
        writer.close()
        if lines is not sys.stdin:
            lines.close()
    return 0


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

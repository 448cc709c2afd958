"""The ``v2h`` command line (docs/cli.md).

    v2h exi decode --schema iso20_dc 8034…        # JSON on stdout (--xml for XML); a V2GTP frame too
    v2h exi encode --schema iso20_dc < msg.json   # hex on stdout
    v2h pki init DIR | secc | charger | evcc | trace decode | trace show | hems …

Errors print one line on stderr and exit with status 1; usage errors (a flag out of its range
among them) exit with status 2, as argparse does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from v2h.args import MAX_POWER_W, choice, choices_list, host_port, number, price_levels
from v2h.output import add_output_args


def _read_hex(arg: str) -> bytes:
    """Hex from the argument or stdin ('-'): spaces, line breaks and a 0x prefix are allowed;
    anything else says what is wrong with it."""
    text = sys.stdin.read() if arg == "-" else arg
    text = "".join(text.split())
    if text.lower().startswith("0x"):
        text = text[2:]
    if not text:
        raise ValueError("no input: want EXI or a V2GTP frame as hex")
    bad = next((i for i, c in enumerate(text) if c not in "0123456789abcdefABCDEF"), None)
    if bad is not None:
        raise ValueError(f"input is not hexadecimal: {text[bad]!r} at position {bad + 1}")
    if len(text) % 2:
        raise ValueError(f"odd number of hex digits ({len(text)}): each byte is two digits, so one is missing or "
                         "one too many")
    return bytes.fromhex(text)


def _unframe(data: bytes, schema: str | None) -> tuple[bytes, str | None, object]:
    """A V2GTP frame (it starts with the version byte 0x01; EXI starts with 0x80): its header
    checked, the payload and the schema its payload type names. Returns (payload, schema,
    payload type or None when the input is bare EXI)."""
    from iso15118.v2gtp import HEADER_LEN, SCHEMA_OF, BadVersionError, PayloadType, V2GTPError, parse_header

    if not data or data[0] != 0x01:
        return data, schema, None
    if len(data) < HEADER_LEN:
        raise ValueError(f"a V2GTP frame (first byte 0x01) needs an 8-byte header; got {len(data)} bytes")
    try:
        ptype, length = parse_header(data[:HEADER_LEN], max_payload=max(len(data), 1))
    except V2GTPError as e:
        if not isinstance(e, BadVersionError) and len(data) - HEADER_LEN < int.from_bytes(data[4:8], "big"):
            raise ValueError(f"V2GTP header announces {int.from_bytes(data[4:8], 'big')} payload bytes, "
                             f"{len(data) - HEADER_LEN} follow") from None
        raise ValueError(f"not a V2GTP frame: {e}") from None
    if length != len(data) - HEADER_LEN:
        raise ValueError(f"V2GTP header announces {length} payload bytes, {len(data) - HEADER_LEN} follow")
    named = SCHEMA_OF.get(ptype)
    if ptype in (PayloadType.SDP_REQUEST, PayloadType.SDP_RESPONSE):
        return data, None, ptype
    if named is None and ptype != PayloadType.EXI:
        raise ValueError(f"V2GTP payload type {ptype:#06x} ({ptype.name}) carries no message this command decodes")
    if ptype == PayloadType.EXI:
        if schema is None:
            raise ValueError("V2GTP payload type 0x8001 carries SupportedAppProtocol, ISO 15118-2 or DIN 70121: "
                             "give --schema apphand, iso2 or din")
        if schema.startswith("iso20"):
            raise ValueError(f"V2GTP payload type 0x8001 carries SupportedAppProtocol, ISO 15118-2 or DIN 70121, "
                             f"not {schema}")
    elif schema is not None and schema != named:
        raise ValueError(f"V2GTP payload type {ptype:#06x} carries {named}, not {schema}")
    return data[HEADER_LEN:], schema or named, ptype


def _cmd_exi(args: argparse.Namespace) -> int:
    from iso15118 import exi

    if args.action == "decode":
        data, schema, ptype = _unframe(_read_hex(args.data), args.schema)
        if ptype is not None and ptype.name.startswith("SDP"):
            json.dump(_sdp_dict(data), sys.stdout, indent=1)
            sys.stdout.write("\n")
            return 0
        if schema is None:
            raise ValueError("give --schema (apphand, din, iso2, iso20_cm, iso20_dc, iso20_ac, …)")
        msg = exi.decode_fragment(data, schema) if args.fragment else exi.decode(data, schema)
        if args.xml:
            sys.stdout.write(exi.to_xml(msg, schema))
        else:
            json.dump(exi.to_dict(msg, schema), sys.stdout, indent=1, ensure_ascii=False)
            sys.stdout.write("\n")
        return 0
    text = sys.stdin.read()
    if args.xml:
        msg = exi.from_xml(text, args.schema)
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"input is not JSON: {e}") from None
        msg = exi.from_dict(doc, args.schema)
    data = exi.encode_fragment(msg, args.schema) if args.fragment else exi.encode(msg, args.schema)
    if args.frame:
        from iso15118.v2gtp import SCHEMA_OF, PayloadType, encode_frame

        ptype = next((t for t, name in SCHEMA_OF.items() if name == args.schema), None)
        if ptype is None and args.schema in ("apphand", "din", "iso2"):
            ptype = PayloadType.EXI
        if ptype is None or args.fragment:
            raise ValueError(f"no V2GTP payload type carries {'a fragment' if args.fragment else args.schema}")
        data = encode_frame(ptype, data)
    print(data.hex())
    return 0


def _sdp_dict(frame: bytes) -> dict:
    """An SDP request or response frame as JSON (the same fields v2h trace decode writes)."""
    from iso15118.sdp import SDPError, SDPRequest, SDPResponse
    from iso15118.v2gtp import PayloadType

    try:
        if frame[2:4] == PayloadType.SDP_REQUEST.to_bytes(2, "big"):
            req = SDPRequest.from_datagram(frame)
            return {"SDPRequest": {"security": req.security.name, "transport": req.transport.name}}
        res = SDPResponse.from_datagram(frame)
    except SDPError as e:
        raise ValueError(f"not a valid SDP message: {e}") from None
    return {"SDPResponse": {"address": str(res.address), "port": res.port, "security": res.security.name,
                            "transport": res.transport.name}}


class _Version(argparse.Action):
    """--version: the installed version, read (importlib.metadata) only when it is asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, default: str = argparse.SUPPRESS,
                 help: str = "show program's version number and exit") -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from v2h import __version__

        print(f"v2h {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from v2h.args import HelpFormatter

    ap = argparse.ArgumentParser(prog="v2h", description="v2h: the car powers the house (docs/cli.md)",
                                 formatter_class=HelpFormatter)
    ap.add_argument("--version", action=_Version)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_exi_parser(sub)
    _add_pki_parser(sub)

    p_secc = sub.add_parser("secc", help="run the charger (SECC: ISO 15118-20, ISO 15118-2, DIN 70121)")
    _add_secc_args(p_secc)
    p_secc.set_defaults(func=_cmd_secc)

    p_chg = sub.add_parser("charger", help="run the charger with its OCPP 2.1 connection to a CSMS")
    _add_secc_args(p_chg, setpoint_help="charging power without a charging profile from the CSMS, and the "
                                        "safe fallback offline (never negative)",
                   setpoint_type=number(0, MAX_POWER_W, unit="W"))
    p_chg.add_argument("--csms", required=True, metavar="URL", help="ws://HOST:PORT/PATH (security profile 1) or "
                                                                     "wss://… (2 with --password, 3 with --station-cert)")
    p_chg.add_argument("--id", required=True, metavar="STATION", help="the charging station's identity (appended "
                       "to --csms as the last part of the websocket URL)")
    _add_password_args(p_chg)
    p_chg.add_argument("--csms-ca", metavar="PEM", help="roots that sign the CSMS certificate (default: "
                       "PKI/ocpp/csms_root_ca.pem with --pki, else the system's)")
    p_chg.add_argument("--station-cert", metavar="PEM", help="the station's certificate chain (profile 3; default "
                       "with wss:// and no --password: PKI/ocpp/charging_station.pem from `v2h pki init`)")
    p_chg.add_argument("--station-key", metavar="PEM", help="its private key")
    p_chg.add_argument("--db", default="v2h-charger.db", metavar="FILE",
                       help="SQLite file for the outbox and persisted state")
    p_chg.add_argument("--tx-interval", type=number(0, 86400, lo_open=True, unit="s"), default=60.0, metavar="S",
                       help="TransactionEvent meter values every S seconds while a session runs")
    p_chg.add_argument("--retry-backoff", type=number(0, 86400, unit="s"), default=3.0, metavar="S",
                       help="OCPPCommCtrlr.RetryBackOffWaitMinimum: first reconnect wait, doubled per try")
    p_chg.add_argument("--retry-random", type=number(0, 86400, unit="s"), default=10.0, metavar="S",
                       help="OCPPCommCtrlr.RetryBackOffRandomRange: random extra wait up to S")
    p_chg.add_argument("--firmware-roots", metavar="PEM", help="the manufacturer's root certificates that sign "
                       "firmware (UpdateFirmware is refused without them)")
    p_chg.add_argument("--firmware-dir", metavar="DIR", help="where verified firmware images are staged for the "
                       "platform's updater (default: DB.firmware beside --db)")
    p_chg.add_argument("--contract-status-check", action="store_true",
                       help="ask the CSMS for each -20 contract's revocation status (GetCertificateStatus, OCSP) "
                            "before authorizing it (ISO15118Ctrlr.ContractStatusCheck; off: a CSMS that does not "
                            "answer it would hold the OCPP link)")
    p_chg.set_defaults(func=_cmd_charger)

    p_evcc = sub.add_parser("evcc", help="run the simulated car (EVCC: ISO 15118-20, ISO 15118-2 or DIN 70121)")
    _add_evcc_args(p_evcc)
    _add_clock_arg(p_evcc)
    p_evcc.set_defaults(func=_cmd_evcc)

    from v2h.trace import cli as trace_cli
    trace_cli.add_parser(sub)
    from v2h import demo, hems_cmd
    hems_cmd.add_parser(sub)
    demo.add_parser(sub)
    _finish_help(ap)
    return ap


def _add_exi_parser(sub) -> None:
    p_exi = sub.add_parser("exi", help="EXI codec: decode and encode V2G messages")
    exi_sub = p_exi.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, what in (("decode", "EXI (hex, or a whole V2GTP frame) → JSON or XML"),
                       ("encode", "JSON or XML on stdin → EXI, printed as hex")):
        p = exi_sub.add_parser(name, help=what, description=what)
        p.add_argument("--schema", required=name == "encode", type=_schema_name, metavar="SCHEMA",
                       help="apphand, din, iso2, iso20_cm, iso20_dc, iso20_ac, iso20_wpt, iso20_acdp, xmldsig, or a "
                            "message namespace" + ("; may be left out for a V2GTP frame of an ISO 15118-20 payload "
                                                   "type (0x8002-0x8006), which names it" if name == "decode" else ""))
        if name == "decode":
            p.add_argument("--xml", action="store_true", help="print XML instead of JSON")
            p.add_argument("--fragment", action="store_true", help="the input is an EXI fragment (what a signature "
                                                                    "digests), not a document")
            p.add_argument("data", help="EXI as hex (spaces and a 0x prefix allowed), or a V2GTP frame as hex "
                                        "(01 FE + payload type + length, checked), or - to read it from stdin")
        else:
            p.add_argument("--xml", action="store_true", help="read XML instead of JSON")
            p.add_argument("--fragment", action="store_true", help="encode an EXI fragment (what a signature "
                                                                    "digests), not a document")
            p.add_argument("--frame", action="store_true", help="print a whole V2GTP frame (header + EXI) as hex")
    p_exi.set_defaults(func=_cmd_exi)


def _schema_name(text: str) -> str:
    from iso15118.exi import ExiError
    from iso15118.exi._schemas import schema_key

    try:
        return schema_key(text.strip().lower() if "/" not in text and ":" not in text else text.strip())
    except ExiError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_pki_parser(sub) -> None:
    p_pki = sub.add_parser("pki", help="the V2G test PKI")
    pki_sub = p_pki.add_subparsers(dest="action", required=True, metavar="ACTION")
    p_init = pki_sub.add_parser("init", help="create a complete test PKI in DIR (all three certificate profiles and "
                                             "the OCPP certificates; keys unencrypted: for tests only)")
    p_init.add_argument("dir", metavar="DIR", help="the folder to create (e.g. .v2h-pki, which git ignores)")
    p_init.add_argument("--force", action="store_true", help="replace the keys and certificates of an existing PKI "
                                                             "in DIR (refused without it)")
    p_show = pki_sub.add_parser("show", help="print a certificate or chain (PEM or DER) readably")
    p_show.add_argument("file", metavar="FILE", help="a certificate or chain, PEM or DER")
    p_pki.set_defaults(func=_cmd_pki)


def _add_evcc_args(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="find the charger with SDP on this interface")
    where.add_argument("--secc", metavar="HOST:PORT", type=host_port,
                       help="connect to the charger directly: [::1]:50000, 127.0.0.1:50000, fe80::1%%eth0:50000")
    p.add_argument("--service", default="DC_BPT", type=choice("DC_BPT", "AC_BPT", "DC", "AC"), metavar="SERVICE",
                   help="the energy transfer service to select: DC_BPT, AC_BPT (bidirectional), DC or AC")
    p.add_argument("--control-modes", "--control-mode", dest="control_mode", default="dynamic",
                   type=choice("scheduled", "dynamic"), metavar="MODE",
                   help="the control mode to select: scheduled or dynamic (the charger's --control-modes lists "
                        "what it offers)")
    p.add_argument("--auth", default="eim", type=choice("eim", "pnc"), metavar="METHOD",
                   help="the authorization to select: eim (external, e.g. RFID) or pnc (Plug & Charge, the "
                        "contract certificate from --pki)")
    p.add_argument("--battery", metavar="FILE", help="battery settings (JSON; the flags below override it)")
    p.add_argument("--soc", type=number(0, 100, unit="%"), metavar="PCT",
                   help="state of charge at plug-in (default: 60)")
    p.add_argument("--capacity", type=number(0, 1000, lo_open=True, unit="kWh"), metavar="KWH",
                   help="usable capacity (default: 60)")
    p.add_argument("--min-soc", type=number(0, 100, unit="%"), metavar="PCT",
                   help="never discharged below (default: 20)")
    p.add_argument("--loops", type=number(1, 10_000_000, integer=True), default=10, metavar="N",
                   help="charge-loop iterations, then a clean stop")
    p.add_argument("--loop-period", type=number(0.01, 50, unit="s"), default=0.25, metavar="S",
                   help="seconds between charge-loop requests (below the charger's 60 s sequence timeout)")
    p.add_argument("--end", default="Terminate", type=choice("Terminate", "Pause"), metavar="HOW",
                   help="how the session ends: Terminate or Pause")
    p.add_argument("--pki", metavar="DIR", help="certificates from 'v2h pki init DIR' (needed for TLS and Plug & "
                                                "Charge)")
    p.add_argument("--pki-profile", default="iso20-secp521r1", type=choice("iso20-secp521r1", "iso20-ed448"),
                   metavar="PROFILE", help="the ISO 15118-20 certificate profile: iso20-secp521r1 or iso20-ed448 "
                                           "(ISO 15118-2 uses iso2-secp256r1)")
    p.add_argument("--protocol", "--protocols", dest="protocols", default=["iso20"],
                   type=choices_list("iso20", "iso2", "din"), metavar="LIST",
                   help="what the car speaks: iso20, iso2 or din, or several in priority order (iso2,din); "
                        "DIN 70121 and ISO 15118-2 only charge")
    p.add_argument("--security", type=choice("tls", "none"), metavar="TLS",
                   help="ask SDP for tls or none (default: none when the first protocol is din, else tls: TLS 1.3 "
                        "for iso20, TLS 1.2 for iso2)")
    p.add_argument("--install-contract", action="store_true",
                   help="Plug & Charge without a contract: install one (CertificateInstallation with the OEM "
                        "provisioning certificate of --pki)")
    p.add_argument("--contract", metavar="FILE",
                   help="Plug & Charge: the car's contract (PEM: its key and chain), used when the file exists, "
                        "installed when it does not; a contract the session installs or updates is written there")
    p.add_argument("--update-contract", action="store_true",
                   help="ISO 15118-2 Plug & Charge: renew the contract first (CertificateUpdate)")
    p.add_argument("--renegotiate-after", type=number(0, 10_000_000, integer=True), default=0, metavar="N",
                   help="ISO 15118-2: renegotiate the schedule once after N charge loops (0: never)")
    add_output_args(p)


def _add_password_args(p: argparse.ArgumentParser) -> None:
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password", help="basic-auth password (profiles 1 and 2), 16-40 characters; visible to every "
                                       "user in ps: prefer --password-file or the environment variable "
                                       "V2H_CSMS_PASSWORD")
    pw.add_argument("--password-file", metavar="FILE", help="read the basic-auth password from the first line of "
                                                            "FILE")


def _finish_help(ap: argparse.ArgumentParser) -> None:
    """Every parser shows its arguments' defaults (v2h.args.HelpFormatter)."""
    from v2h.args import HelpFormatter

    def walk(p: argparse.ArgumentParser) -> None:
        p.formatter_class = HelpFormatter
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for child in a.choices.values():
                    walk(child)
    walk(ap)


def _add_clock_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clock", type=_sim_clock, metavar="START:SPEED:ANCHOR",
                   help="an accelerated simulated clock shared with other processes (v2h demo sets it): the energy "
                        "that flows and the OCPP times run SPEED times faster; the ISO 15118 timers stay real")


def _sim_clock(text: str):
    from v2h.clock import SimClock

    try:
        return SimClock.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_secc_args(p: argparse.ArgumentParser, setpoint_help: str = "fixed power setpoint; negative discharges "
                                                                    "the car", setpoint_type=None) -> None:
    setpoint_type = setpoint_type or number(-MAX_POWER_W, MAX_POWER_W, unit="W")
    _add_clock_arg(p)
    p.add_argument("--interface", help="answer SDP on this interface (default: no SDP, the listener only)")
    p.add_argument("--host", default=None, help="address to listen on (default: every address, IPv4 and IPv6)")
    p.add_argument("--port", type=number(0, 65535, integer=True), default=0, metavar="PORT",
                   help="TLS port, ISO 15118-20 (TLS 1.3) and -2 (TLS 1.2) (default 0: a free port in 49152-65535, "
                        "announced by SDP)")
    p.add_argument("--tcp-port", type=number(0, 65535, integer=True), default=0, metavar="PORT",
                   help="plain TCP port, DIN 70121 and ISO 15118-2 without TLS (default 0: a free port in "
                        "49152-65535, announced by SDP to a car asking for no TLS)")
    p.add_argument("--protocols", default=["iso20", "iso2", "din"], type=choices_list("iso20", "iso2", "din"),
                   metavar="LIST", help="protocols offered, comma-separated: iso20 (ISO 15118-20), iso2 (ISO 15118-2), "
                                        "din (DIN 70121); the car's priorities choose among them")
    p.add_argument("--max-connections", type=number(1, 65535, integer=True), default=8, metavar="N",
                   help="connections held at once; when full, the oldest one without a session "
                        "(TLS handshake unfinished, or no SessionSetup yet) makes room")
    p.add_argument("--pki", metavar="DIR", help="certificates from 'v2h pki init DIR' (needed for TLS: iso20, iso2)")
    p.add_argument("--pki-profile", default="iso20-secp521r1", type=choice("iso20-secp521r1", "iso20-ed448"),
                   metavar="PROFILE", help="the ISO 15118-20 certificate profile: iso20-secp521r1 or iso20-ed448 "
                                           "(ISO 15118-2 uses iso2-secp256r1)")
    p.add_argument("--setpoint", type=setpoint_type, default=7000.0, metavar="WATTS", help=setpoint_help)
    p.add_argument("--kind", default="DC", type=choice("DC", "AC"), metavar="KIND",
                   help="the power stage: DC offers DC and DC_BPT, AC offers AC and AC_BPT")
    p.add_argument("--auth", default=["eim", "pnc"], type=choices_list("eim", "pnc"), metavar="LIST",
                   help="authorization methods offered, comma-separated: eim, pnc")
    p.add_argument("--control-modes", default=["scheduled", "dynamic"], type=choices_list("scheduled", "dynamic"),
                   metavar="LIST", help="control modes offered, in this order: scheduled, dynamic")
    p.add_argument("--contract-status-unknown", default="accept", type=choice("accept", "reject"), metavar="POLICY",
                   help="Plug & Charge: a contract whose revocation status is not known (no OCSP answer, or not "
                        "asked): accept or reject it (docs/pnc.md)")
    p.add_argument("--price-levels", type=price_levels, default=(), metavar="S:L,...",
                   help="publish a time-of-use tariff: seconds:level pairs from now, e.g. 21600:0,10800:2 "
                        "(default: no pricing)")
    p.add_argument("--once", action="store_true", help="exit after the first session (from SessionSetup) ends")
    add_output_args(p)


def _cmd_secc(args: argparse.Namespace) -> int:
    return _serve_secc(args, ocpp=False)


# refused TLS handshakes of cars as OCPP security events. OCPP 2.1's list (part 2, appendix 1)
# has events for TLS versions and cipher suites, which fit; none of its certificate events is
# about a peer of the charger's own TLS server, nor about a peer that does not speak TLS, so
# those two are named in the list's style (the list is open: "non-exhaustive")
SECURITY_EVENTS = {"version": "InvalidTLSVersion", "cipher": "InvalidTLSCipherSuite",
                   "certificate": "InvalidVehicleCertificate", "protocol": "InvalidTLSHandshake"}


def _session_note(session, throttle, now: float) -> str | None:
    """How a connection's session ended, for the charger's log. Connections that never got a
    session (refused at SessionSetup, silent, dropped) are noted at most once per kind of end
    every 10 s, with the count of the ones held back: a peer must not flood the log."""
    if session.established:
        return f"session {session.ctx.session_id.hex()} ended: {session.end_reason}"
    reason = session.end_reason or ""
    held = throttle.check(reason.split(":")[0].split(" in ")[0], now)
    if held is None:
        return None
    return f"connection without a session ended: {reason}{f' ({held} more held back)' if held else ''}"


def _cmd_charger(args: argparse.Namespace) -> int:
    return _serve_secc(args, ocpp=True)


def _serve_secc(args: argparse.Namespace, *, ocpp: bool) -> int:
    """`v2h secc`, and with ``ocpp`` `v2h charger`: the same SECC, its upper half over OCPP."""
    import asyncio
    import gc
    import logging
    import signal

    from iso15118 import pki
    from iso15118.aio.listener import Throttle
    from iso15118.aio.session import start_secc
    from iso15118.aio.tls import credentials_from_pki
    from iso15118.secc import EVSEController, LocalSupervisor, SECCConfig, SimulatedPowerStage
    from v2h.output import keylog_path, message_log, route_logs

    # every argument is checked before anything is created (the charger's database among them)
    tls = {"iso20", "iso2"} & set(args.protocols)
    if tls and args.pki is None:
        raise ValueError(f"--pki is needed for {' and '.join(sorted(tls))} (TLS); or offer only --protocols din")
    if "iso20" in args.protocols:
        credentials_from_pki(args.pki, "secc", args.pki_profile)
    station_config = _station_config(args) if ocpp else None
    stage = SimulatedPowerStage(kind=args.kind, time_scale=args.clock.speed if args.clock else 1.0)
    pnc = "pnc" in args.auth and args.pki is not None
    iso2_pki = pnc and os.path.isdir(os.path.join(args.pki, "iso2-secp256r1"))
    roots = (pki.contract_roots(args.pki, args.pki_profile) if pnc else ()) + \
        (pki.contract_roots(args.pki, "iso2-secp256r1") if iso2_pki else ())
    service = None
    provisioning = (("iso20-secp521r1", "iso20"), ("iso2-secp256r1", "iso2"))
    if pnc and not ocpp and any(std in args.protocols and os.path.exists(os.path.join(args.pki, prof, "cps_chain.pem"))
                                for prof, std in provisioning):
        from iso15118.pki.pool import ContractPool  # CertificateInstallation without a CSMS (a charger asks its CSMS)
        service = ContractPool.from_pki(args.pki)
    config = SECCConfig(services=(2, 6) if args.kind == "DC" else (1, 5), protocols=tuple(args.protocols),
                        control_modes=tuple({"scheduled": 1, "dynamic": 2}[m] for m in args.control_modes),
                        auth_methods=tuple({"eim": "EIM", "pnc": "PnC"}[m] for m in args.auth),
                        price_levels=args.price_levels, contract_roots=roots, certificate_service=service,
                        contract_status_unknown=args.contract_status_unknown)
    log = message_log("SECC", args)
    keylog = keylog_path(args)
    # the adapters' own log (refused handshakes, accept errors, malformed streams; rate-limited
    # where a peer could flood it; the OCPP link) goes to the charger's log beside the sessions,
    # and with --quiet its warnings and errors to stderr
    said_otherwise = None
    if ocpp:  # only the charger's: it imports websockets, whose version module loads importlib.metadata (~2 MB)
        from v2h.csms_status import about_connection as said_otherwise
    route_logs(log, args, ("iso15118.aio", "ocpp_bridge") if ocpp else ("iso15118.aio",), said_otherwise=said_otherwise)

    async def run() -> int:
        loop = asyncio.get_running_loop()
        log.clock_offset = time.time() - loop.time()
        controller, station_task, csms = EVSEController(stage, LocalSupervisor(setpoint_w=args.setpoint)), None, None
        certificates = None  # the charger's own certificates over OCPP (v2h.charger_certificates)
        stop = asyncio.Event()
        restart = []
        if ocpp:
            from ocpp_bridge.bridge import OCPPBridge
            from ocpp_bridge.outbox import Outbox
            from ocpp_bridge.station import ChargingStation

            from v2h.csms_status import CSMSStatus

            sim = args.clock  # accelerated: the station's time is the simulation's, its OCPP timeouts stay ~real
            speed = sim.speed if sim else 1.0
            frame_log = []  # the frames go to the log once the station exists (the status reads them too)
            station = ChargingStation(station_config, Outbox(args.db), frame_log=lambda *a: frame_log[0](*a),
                                      clock=sim.now if sim else None, speed=speed)
            csms = CSMSStatus(station, lambda text: log.note(text, who="OCPP"),
                              warn=_stderr_line(args) if args.quiet else None)
            frame_log.append(csms.frame_log(log.ocpp))
            logging.getLogger("ocpp_bridge").addHandler(csms.handler())
            mono_to_wall = time.time() - time.monotonic()
            from ocpp_bridge.firmware import StagingInstaller

            bridge = OCPPBridge(stage, station, default_setpoint_w=args.setpoint, tx_updated_interval=args.tx_interval,
                                clock_scale=speed, clock_offset=sim.start + speed * (mono_to_wall - sim.anchor)
                                if sim else None, firmware_roots=args.firmware_root_certs,
                                installer=StagingInstaller(args.firmware_dir or f"{args.db}.firmware"))
            controller = EVSEController(stage, bridge)
            bridge.check_contract_status(args.contract_status_check)
            from v2h.charger_certificates import ChargerCertificates
            certificates = ChargerCertificates(station, bridge, config, pki=args.pki, pki_profile=args.pki_profile,
                                               db=args.db, csms_ca=args.csms_ca,
                                               firmware_roots=args.firmware_root_certs)

            def on_reset() -> None:  # OCPP Reset: stop cleanly, then start again as the same command
                restart.append(True)
                stop.set()
            bridge.on_reset = on_reset
        on_failure = None
        if ocpp:
            def on_failure(failure) -> None:  # the station sends at most one per type a minute, counting the rest
                kind = SECURITY_EVENTS.get(failure.kind)
                if kind is not None:
                    station.security_event(kind, f"ISO 15118 TLS from {failure.peer[0] if failure.peer else '?'}: "
                                                 f"{failure.reason}")
        srv = await start_secc(controller, pki_dir=args.pki, profile=args.pki_profile, host=args.host, port=args.port,
                               tcp_port=args.tcp_port, interface=args.interface, config=config,
                               observer=lambda session: log,
                               on_connection=lambda session, peer: log.note(
                                   f"connection from {peer.address[0]}: {peer.describe()}"),
                               keep_sessions=False, max_connections=args.max_connections,
                               on_handshake_failure=on_failure, keylog=keylog)
        if certificates is not None:
            certificates.serving(srv)  # the SECC certificates installed over OCPP, if any
        print(_listening(srv, args.protocols) + (f" with SDP on {args.interface}" if args.interface else ""), flush=True)
        if csms is not None:  # after the listening line, which scripts read first
            csms.start()
            station_task = asyncio.ensure_future(station.run())  # supervised: restarts itself
        gc.freeze()  # start-up objects (codec tables, classes) leave the collector's scans: shorter pauses
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        ok = True
        throttle = Throttle()
        while not stop.is_set():
            waiter = asyncio.ensure_future(srv.session_ended.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if srv.session_ended.is_set():
                srv.session_ended.clear()
                once_done = False
                while srv.ended:  # only the sessions that ended: others may still be running
                    s = srv.ended.popleft()
                    note = _session_note(s, throttle, loop.time())
                    if note is not None:
                        log.note(note)
                    if s.established:
                        ok = s.end_reason == "SessionStopRes OK"
                        once_done = args.once
                if once_done:
                    break
        await srv.close()
        if station_task is not None:
            # a clean exit hands the CSMS what is queued (a kill would leave it in --db for the next start)
            deadline = loop.time() + 10.0
            while len(station.outbox) and station.connected.is_set() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            station_task.cancel()
            await asyncio.gather(station_task, return_exceptions=True)
        log.close()
        if restart:
            sys.stdout.flush()
            os.execv(sys.executable, [sys.executable, "-m", "v2h.cli", *args.argv])
        return 0 if ok else 1

    return asyncio.run(run())


def _listening(srv, protocols) -> str:
    """'SECC listening on port 50000 (TLS 1.3: ISO 15118-20, TLS 1.2: ISO 15118-2) and 50001
    (TCP: ISO 15118-2, DIN 70121)': the first port is the one scripts read."""
    tls = [x for x in ("TLS 1.3: ISO 15118-20" if "iso20" in protocols else "",
                       "TLS 1.2: ISO 15118-2" if "iso2" in protocols else "") if x]
    tcp = ", ".join(n for p, n in (("iso2", "ISO 15118-2"), ("din", "DIN 70121")) if p in protocols)
    if srv.port is None:
        return f"SECC listening on port {srv.tcp_port} (TCP: {tcp})"
    return f"SECC listening on port {srv.port} ({', '.join(tls)})" + \
        (f" and {srv.tcp_port} (TCP: {tcp})" if srv.tcp_port is not None else "")


def _station_config(args: argparse.Namespace):
    """The OCPP connection settings of `v2h charger`, checked (ConfigError is a ValueError)."""
    from ocpp_bridge.core import StationConfig
    from v2h.args import secret_from

    if not args.csms.startswith(("ws://", "wss://")):
        raise ValueError(f"--csms wants a ws:// or wss:// URL; got {args.csms!r}")
    password = secret_from("--password", args.password, args.password_file, "V2H_CSMS_PASSWORD")
    cert, key = args.station_cert, args.station_key
    if args.csms.startswith("wss://") and not (password or cert):  # profile 3 from `v2h pki init`
        if args.pki is None:
            raise ValueError("wss:// without --password needs --station-cert, or --pki for its default")
        cert = os.path.join(args.pki, "ocpp", "charging_station.pem")
        key = os.path.join(args.pki, "ocpp", "charging_station.key.pem")
    speed = args.clock.speed if args.clock else 1.0
    config = StationConfig(args.id, args.csms, password=password, csms_ca=args.csms_ca, client_cert=cert,
                           client_key=key, retry_backoff_min=args.retry_backoff,
                           retry_backoff_random=args.retry_random, response_timeout=30.0 * speed)
    config.check()
    for what, path in (("--csms-ca", config.csms_ca), ("the station certificate", config.client_cert),
                       ("the station key", config.client_key)):
        if path and not os.path.isfile(path):
            raise ValueError(f"{what}: {path} does not exist")
    args.firmware_root_certs = []
    if args.firmware_roots:
        from ocpp_bridge.firmware import load_roots
        try:
            with open(args.firmware_roots, "rb") as f:
                args.firmware_root_certs = load_roots(f.read())
        except (OSError, ValueError) as e:
            raise ValueError(f"--firmware-roots: {e}") from None
    return config


def _stderr_line(args: argparse.Namespace):
    def write(text: str) -> None:
        print(f"v2h {args.command}: {text}", file=sys.stderr, flush=True)
    return write


def _cmd_evcc(args: argparse.Namespace) -> int:
    import asyncio

    from iso15118 import pki
    from iso15118.aio.session import run_evcc
    from iso15118.evcc import Battery, EVCCConfig
    from v2h.output import keylog_path, message_log, route_logs

    overrides = {"soc": args.soc, "capacity_kwh": args.capacity, "min_soc": args.min_soc}
    battery = Battery.from_file(args.battery, **overrides) if args.battery else \
        Battery(**{k: v for k, v in overrides.items() if v is not None})
    protocols = tuple(args.protocols)
    security = args.security or ("none" if protocols[0] == "din" else "tls")
    if args.pki is None and (security == "tls" or args.auth == "pnc"):
        raise ValueError("--pki is needed for TLS and Plug & Charge (or: --protocol din, or --security none)")
    iso2 = protocols[0] == "iso2"  # -2 first: its contract, provisioning certificate and roots
    profile = "iso2-secp256r1" if iso2 else args.pki_profile
    if (args.install_contract or args.contract) and args.auth != "pnc":
        raise ValueError("--install-contract and --contract are Plug & Charge: --auth pnc")
    if args.update_contract and not (iso2 and args.auth == "pnc"):
        raise ValueError("--update-contract is ISO 15118-2 Plug & Charge: --protocol iso2 --auth pnc")
    from v2h.contract_file import read_contract
    stored = read_contract(args.contract) if args.contract else None
    install = args.install_contract or (args.contract is not None and stored is None)
    chain, key = stored if stored is not None else \
        pki.contract_credentials(args.pki, profile) if args.auth == "pnc" and not install else ((), None)
    oem, oem_key = pki.oem_credentials(args.pki, profile) if install else ((), None)
    config = EVCCConfig(service=args.service, control_mode=args.control_mode, auth=args.auth, loops=args.loops,
                        loop_period=args.loop_period, end=args.end, contract_chain=chain, contract_key=key,
                        protocols=protocols, oem_chain=oem, oem_key=oem_key, contract_update=args.update_contract,
                        install_contract=install,
                        v2g_roots=pki.v2g_roots(args.pki, profile) if args.auth == "pnc" else (),
                        renegotiate_after=args.renegotiate_after,
                        time_scale=args.clock.speed if args.clock else 1.0)
    log = message_log("EVCC", args)
    keylog = keylog_path(args)
    route_logs(log, args, ("iso15118.aio",))  # connecting, refused and retried until when
    soc0 = battery.soc

    async def run():
        log.clock_offset = time.time() - asyncio.get_running_loop().time()
        return await run_evcc(battery, config, pki_dir=args.pki, profile=args.pki_profile, secc=args.secc,
                              interface=args.interface, observer=log, keylog=keylog, security=security)

    result = asyncio.run(run())
    log.close()
    if args.contract and result.contract_chain:  # validated: the car keeps it (written whole or not at all)
        from v2h.contract_file import write_contract
        write_contract(args.contract, result.contract_chain, result.contract_key)
    if not result.ok:
        print(f"v2h evcc: session failed: {result.reason}", file=sys.stderr)
        return 1
    contract = f", contract {result.contract}" if result.contract else ""
    print(f"session {result.session_id.hex()} ({_TITLES.get(result.protocol, result.protocol)}{contract}) over "
          f"{result.connection} ended ({result.reason}): "
          f"{result.loops} charge loops, "
          f"charged {result.charged_wh:.2f} Wh, discharged {result.discharged_wh:.2f} Wh, "
          f"SoC {soc0:.3f}% → {battery.soc:.3f}%", flush=True)
    return 0


_TITLES = {"iso20": "ISO 15118-20", "iso2": "ISO 15118-2", "din": "DIN 70121"}


def _cmd_pki(args: argparse.Namespace) -> int:
    from iso15118 import pki

    if args.action == "init":
        existing = _existing_pki(args.dir)
        if existing and not args.force:
            raise ValueError(f"{args.dir} already holds a PKI ({existing}): its keys would be replaced; "
                             "add --force to replace them, or choose another folder")
        sys.stdout.write(pki.init_pki(args.dir))
        return 0
    try:
        data = open(args.file, "rb").read()
    except OSError as e:
        raise ValueError(f"cannot read {args.file}: {e.strerror}") from None
    sys.stdout.write(pki.describe(data))
    return 0


def _existing_pki(directory: str) -> str | None:
    """What of a PKI is in ``directory`` already (a profile folder, the OCPP folder), if any."""
    from pathlib import Path

    from iso15118.pki import PROFILES

    base = Path(directory)
    if base.exists() and not base.is_dir():
        raise ValueError(f"{directory} exists and is not a folder")
    found = [name for name in (*PROFILES, "ocpp") if (base / name).exists()]
    return ", ".join(f"{name}/" for name in found) if found else None


def main(argv: list[str] | None = None) -> int:
    from iso15118.exi import ExiError
    from iso15118.pki.errors import ChainError

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to start again the same way (OCPP Reset)
    try:
        return args.func(args)
    except BrokenPipeError:
        return 1
    except (ExiError, ChainError, ValueError, OSError) as e:
        print(f"v2h {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

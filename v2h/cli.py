"""The ``v2h`` command line.

    v2h exi decode --schema iso20_dc 8034…        # JSON on stdout (--xml for XML)
    v2h exi encode --schema iso20_dc < msg.json   # hex on stdout

Errors print one line on stderr and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable


def _read_hex(arg: str) -> bytes:
    text = sys.stdin.read() if arg == "-" else arg
    text = "".join(text.split())
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError("input is not hexadecimal") from None


def _cmd_exi(args: argparse.Namespace) -> int:
    from iso15118 import exi

    if args.action == "decode":
        data = _read_hex(args.data)
        msg = exi.decode_fragment(data, args.schema) if args.fragment else exi.decode(data, args.schema)
        if args.xml:
            sys.stdout.write(exi.to_xml(msg, args.schema))
        else:
            json.dump(exi.to_dict(msg, args.schema), sys.stdout, indent=1, ensure_ascii=False)
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
    print(data.hex())
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="v2h", description="v2h: the car powers the house")
    sub = ap.add_subparsers(dest="command", required=True)
    p_exi = sub.add_parser("exi", help="EXI codec: decode and encode V2G messages")
    exi_sub = p_exi.add_subparsers(dest="action", required=True)
    for name in ("decode", "encode"):
        p = exi_sub.add_parser(name)
        p.add_argument("--schema", required=True,
                       help="apphand, din, iso2, iso20_cm, iso20_dc, iso20_ac, iso20_wpt, iso20_acdp, "
                            "xmldsig, or a message namespace")
        p.add_argument("--xml", action="store_true", help="XML instead of JSON")
        p.add_argument("--fragment", action="store_true", help="an EXI fragment (signature digests)")
        if name == "decode":
            p.add_argument("data", help="EXI as hex, or - to read hex from stdin")
    p_exi.set_defaults(func=_cmd_exi)

    p_pki = sub.add_parser("pki", help="the V2G test PKI")
    pki_sub = p_pki.add_subparsers(dest="action", required=True)
    p_init = pki_sub.add_parser("init", help="create a complete test PKI in DIR")
    p_init.add_argument("dir")
    p_show = pki_sub.add_parser("show", help="print a certificate or chain (PEM or DER) readably")
    p_show.add_argument("file")
    p_pki.set_defaults(func=_cmd_pki)

    p_secc = sub.add_parser("secc", help="run the charger (ISO 15118-20 SECC over TLS 1.3)")
    _add_secc_args(p_secc)
    p_secc.set_defaults(func=_cmd_secc)

    p_chg = sub.add_parser("charger", help="run the charger with its OCPP 2.1 connection to a CSMS")
    _add_secc_args(p_chg, setpoint_help="charging power without a charging profile from the CSMS, and the "
                                        "safe fallback offline (never negative; default 7000)")
    p_chg.add_argument("--csms", required=True, metavar="URL", help="ws://HOST:PORT/PATH (security profile 1) or "
                                                                     "wss://… (2 with --password, 3 with --station-cert)")
    p_chg.add_argument("--id", required=True, metavar="STATION", help="the charging station's identity")
    p_chg.add_argument("--password", help="basic-auth password (profiles 1 and 2), 16-40 characters")
    p_chg.add_argument("--csms-ca", metavar="PEM", help="roots that sign the CSMS certificate (default: the system's)")
    p_chg.add_argument("--station-cert", metavar="PEM", help="the station's certificate chain (profile 3; default "
                       "with wss:// and no --password: PKI/ocpp/charging_station.pem from `v2h pki init`)")
    p_chg.add_argument("--station-key", metavar="PEM", help="its private key")
    p_chg.add_argument("--db", default="v2h-charger.db", metavar="FILE",
                       help="SQLite file for the outbox and persisted state (default v2h-charger.db)")
    p_chg.add_argument("--tx-interval", type=float, default=60.0, metavar="S",
                       help="TransactionEvent meter values every S seconds while a session runs (default 60)")
    p_chg.add_argument("--retry-backoff", type=float, default=3.0, metavar="S",
                       help="OCPPCommCtrlr.RetryBackOffWaitMinimum: first reconnect wait, doubled per try (default 3)")
    p_chg.add_argument("--retry-random", type=float, default=10.0, metavar="S",
                       help="OCPPCommCtrlr.RetryBackOffRandomRange: random extra wait up to S (default 10)")
    p_chg.set_defaults(func=_cmd_charger)

    p_evcc = sub.add_parser("evcc", help="run the simulated car (ISO 15118-20 EVCC)")
    where = p_evcc.add_mutually_exclusive_group(required=True)
    where.add_argument("--interface", help="find the charger with SDP on this interface")
    where.add_argument("--secc", metavar="HOST:PORT", help="connect to the charger directly")
    p_evcc.add_argument("--service", default="DC_BPT", choices=["DC_BPT", "AC_BPT", "DC", "AC"])
    p_evcc.add_argument("--control-mode", default="dynamic", choices=["scheduled", "dynamic"])
    p_evcc.add_argument("--auth", default="eim", choices=["eim", "pnc"])
    p_evcc.add_argument("--battery", metavar="FILE", help="battery settings (JSON; flags override)")
    p_evcc.add_argument("--soc", type=float, metavar="PCT", help="state of charge at plug-in (default 60)")
    p_evcc.add_argument("--capacity", type=float, metavar="KWH", help="usable capacity (default 60)")
    p_evcc.add_argument("--min-soc", type=float, metavar="PCT", help="never discharged below (default 20)")
    p_evcc.add_argument("--loops", type=int, default=10, metavar="N", help="charge-loop iterations, then a clean stop")
    p_evcc.add_argument("--loop-period", type=float, default=0.25, metavar="S")
    p_evcc.add_argument("--end", default="Terminate", choices=["Terminate", "Pause"], help="how the session ends")
    p_evcc.add_argument("--pki", required=True, metavar="DIR", help="certificates from 'v2h pki init DIR'")
    p_evcc.add_argument("--pki-profile", default="iso20-secp521r1", choices=["iso20-secp521r1", "iso20-ed448"])
    p_evcc.add_argument("--log", metavar="FILE", help="append one JSON object per message")
    _add_clock_arg(p_evcc)
    p_evcc.add_argument("--quiet", action="store_true", help="no readable message trace")
    p_evcc.set_defaults(func=_cmd_evcc)

    from v2h import demo, hems_cmd
    hems_cmd.add_parser(sub)
    demo.add_parser(sub)
    return ap


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
                                                                    "the car (default 7000)") -> None:
    _add_clock_arg(p)
    p.add_argument("--interface", help="answer SDP on this interface (without it: no SDP, listener only)")
    p.add_argument("--host", default=None, help="address to listen on (default: every address, IPv4 and IPv6)")
    p.add_argument("--port", type=int, default=0, help="TLS port (default: an ephemeral port, announced by SDP)")
    p.add_argument("--max-connections", type=_positive_int, default=8, metavar="N",
                   help="connections held at once (default 8); when full, the oldest one without a session "
                        "(TLS handshake unfinished, or no SessionSetup yet) makes room")
    p.add_argument("--pki", required=True, metavar="DIR", help="certificates from 'v2h pki init DIR'")
    p.add_argument("--pki-profile", default="iso20-secp521r1", choices=["iso20-secp521r1", "iso20-ed448"])
    p.add_argument("--setpoint", type=float, default=7000.0, metavar="WATTS",
                        help=setpoint_help)
    p.add_argument("--kind", default="DC", choices=["DC", "AC"],
                        help="the power stage: DC offers DC and DC_BPT, AC offers AC and AC_BPT (default DC)")
    p.add_argument("--auth", default="eim,pnc", type=_choices("eim", "pnc"), metavar="LIST",
                        help="authorization methods offered, comma-separated (default eim,pnc)")
    p.add_argument("--control-modes", default="scheduled,dynamic", type=_choices("scheduled", "dynamic"),
                        metavar="LIST", help="control modes offered, in this order (default scheduled,dynamic)")
    p.add_argument("--price-levels", type=_price_levels, default=(), metavar="S:L,...",
                        help="publish a time-of-use tariff: seconds:level pairs from now, e.g. 21600:0,10800:2 "
                             "(default: no pricing)")
    p.add_argument("--log", metavar="FILE", help="append one JSON object per message")
    p.add_argument("--once", action="store_true", help="exit after the first session (from SessionSetup) ends")
    p.add_argument("--quiet", action="store_true", help="no readable message trace")


def _choices(*allowed: str) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated list drawn from ``allowed``."""
    def parse(text: str) -> list[str]:
        items = [t.strip().lower() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"want a comma-separated list of {', '.join(allowed)}; got {text!r}")
        return list(dict.fromkeys(items))
    return parse


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"want a positive whole number; got {text!r}")
    return n


def _price_levels(text: str) -> tuple[tuple[int, int], ...]:
    """'21600:0,10800:2' → ((21600, 0), (10800, 2))."""
    try:
        return tuple((int(d), int(lv)) for d, lv in (item.split(":") for item in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"want seconds:level pairs like 21600:0,10800:2; got {text!r}") from None


def _host_port(text: str) -> tuple[str, int]:
    """'[::1]:50000', 'fe80::1%eth0' with a port, 'localhost:50000' → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--secc wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


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
    from iso15118.secc import EVSEController, LocalSupervisor, SECCConfig, SimulatedPowerStage
    from iso15118.aio.trace import MessageLog

    stage = SimulatedPowerStage(kind=args.kind, time_scale=args.clock.speed if args.clock else 1.0)
    config = SECCConfig(services=(2, 6) if args.kind == "DC" else (1, 5),
                        control_modes=tuple({"scheduled": 1, "dynamic": 2}[m] for m in args.control_modes),
                        auth_methods=tuple({"eim": "EIM", "pnc": "PnC"}[m] for m in args.auth),
                        price_levels=args.price_levels,
                        contract_roots=pki.contract_roots(args.pki, args.pki_profile) if "pnc" in args.auth else ())
    log = MessageLog("SECC", path=args.log, stream=None if args.quiet else sys.stdout)
    # the adapters' own log (refused handshakes, accept errors, malformed streams; rate-limited
    # where a peer could flood it) goes to the charger's log beside the sessions, and with
    # --quiet its warnings and errors to stderr
    aio_log = logging.getLogger("iso15118.aio")
    aio_log.setLevel(logging.INFO)
    aio_log.propagate = False
    aio_log.addHandler(log.handler())
    if args.quiet:
        to_stderr = logging.StreamHandler(sys.stderr)
        to_stderr.setLevel(logging.WARNING)
        to_stderr.setFormatter(logging.Formatter(f"v2h {args.command}: %(message)s"))
        aio_log.addHandler(to_stderr)

    async def run() -> int:
        loop = asyncio.get_running_loop()
        log.clock_offset = time.time() - loop.time()
        controller, station_task = EVSEController(stage, LocalSupervisor(setpoint_w=args.setpoint)), None
        stop = asyncio.Event()
        restart = []
        if ocpp:
            from ocpp_bridge.bridge import OCPPBridge
            from ocpp_bridge.outbox import Outbox
            from ocpp_bridge.station import ChargingStation, StationConfig

            cert, key = args.station_cert, args.station_key
            if args.csms.startswith("wss://") and not (args.password or cert):  # profile 3 from `v2h pki init`
                cert = os.path.join(args.pki, "ocpp", "charging_station.pem")
                key = os.path.join(args.pki, "ocpp", "charging_station.key.pem")
            sim = args.clock  # accelerated: the station's time is the simulation's, its OCPP timeouts stay ~real
            speed = sim.speed if sim else 1.0
            station = ChargingStation(StationConfig(args.id, args.csms, password=args.password, csms_ca=args.csms_ca,
                                                    client_cert=cert, client_key=key,
                                                    retry_backoff_min=args.retry_backoff,
                                                    retry_backoff_random=args.retry_random,
                                                    response_timeout=30.0 * speed),
                                      Outbox(args.db), frame_log=log.ocpp, clock=sim.now if sim else None, speed=speed)
            mono_to_wall = time.time() - time.monotonic()
            bridge = OCPPBridge(stage, station, default_setpoint_w=args.setpoint, tx_updated_interval=args.tx_interval,
                                clock_scale=speed, clock_offset=sim.start + speed * (mono_to_wall - sim.anchor)
                                if sim else None)
            controller = EVSEController(stage, bridge)

            def on_reset() -> None:  # OCPP Reset: stop cleanly, then start again as the same command
                restart.append(True)
                stop.set()
            bridge.on_reset = on_reset
            station_task = asyncio.ensure_future(station.run())  # supervised: restarts itself
        on_failure = None
        if ocpp:
            def on_failure(failure) -> None:  # the station sends at most one per type a minute, counting the rest
                kind = SECURITY_EVENTS.get(failure.kind)
                if kind is not None:
                    station.security_event(kind, f"ISO 15118 TLS from {failure.peer[0] if failure.peer else '?'}: "
                                                 f"{failure.reason}")
        srv = await start_secc(controller, pki_dir=args.pki, profile=args.pki_profile, host=args.host, port=args.port,
                               interface=args.interface, config=config, observer=lambda session: log,
                               on_connection=lambda session, peer: log.note(
                                   f"connection from {peer.address[0]}: {peer.describe()}"),
                               keep_sessions=False, max_connections=args.max_connections,
                               on_handshake_failure=on_failure)
        print(f"SECC listening on port {srv.port} (TLS 1.3){' with SDP on ' + args.interface if args.interface else ''}",
              flush=True)
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


def _cmd_evcc(args: argparse.Namespace) -> int:
    import asyncio

    from iso15118 import pki
    from iso15118.aio.session import run_evcc
    from iso15118.evcc import Battery, EVCCConfig
    from iso15118.aio.trace import MessageLog

    overrides = {"soc": args.soc, "capacity_kwh": args.capacity, "min_soc": args.min_soc}
    battery = Battery.from_file(args.battery, **overrides) if args.battery else \
        Battery(**{k: v for k, v in overrides.items() if v is not None})
    chain, key = pki.contract_credentials(args.pki, args.pki_profile) if args.auth == "pnc" else ((), None)
    config = EVCCConfig(service=args.service, control_mode=args.control_mode, auth=args.auth, loops=args.loops,
                        loop_period=args.loop_period, end=args.end, contract_chain=chain, contract_key=key,
                        time_scale=args.clock.speed if args.clock else 1.0)
    log = MessageLog("EVCC", path=args.log, stream=None if args.quiet else sys.stdout)
    soc0 = battery.soc

    async def run():
        log.clock_offset = time.time() - asyncio.get_running_loop().time()
        return await run_evcc(battery, config, pki_dir=args.pki, profile=args.pki_profile,
                              secc=_host_port(args.secc) if args.secc else None, interface=args.interface,
                              observer=log)

    result = asyncio.run(run())
    log.close()
    if not result.ok:
        print(f"v2h evcc: session failed: {result.reason}", file=sys.stderr)
        return 1
    print(f"session {result.session_id.hex()} over {result.connection} ended ({result.reason}): "
          f"{result.loops} charge loops, "
          f"charged {result.charged_wh:.2f} Wh, discharged {result.discharged_wh:.2f} Wh, "
          f"SoC {soc0:.3f}% → {battery.soc:.3f}%", flush=True)
    return 0


def _cmd_pki(args: argparse.Namespace) -> int:
    from iso15118 import pki

    if args.action == "init":
        sys.stdout.write(pki.init_pki(args.dir))
        return 0
    try:
        data = open(args.file, "rb").read()
    except OSError as e:
        raise ValueError(f"cannot read {args.file}: {e.strerror}") from None
    sys.stdout.write(pki.describe(data))
    return 0


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

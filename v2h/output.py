"""What the long-running commands (``v2h secc``, ``charger``, ``evcc``) print, and where.

- stdout: the listening line first (scripts and tests read it), then the readable trace: short
  on a terminal (one line per state change, a progress line in the loop), full elsewhere or
  with ``--trace``; notes (connections, the CSMS link, session ends) in both.
- stderr: errors; with ``--quiet`` also the warnings that would have been notes.
- ``--log FILE``: the JSON lines, whatever the trace shows.
- ``--verbose``: the full trace, the libraries' debug lines as notes, OCPP frames in full.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from iso15118.aio.trace import MessageLog

from .args import choice

KEYLOG_WARNING = ("warning: writing TLS session secrets to {path}: anyone with this file can decrypt the captured "
                  "traffic (for test benches only; delete it after use)")


def add_output_args(p: argparse.ArgumentParser, *, keylog: bool = True) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true",
                   help="the full trace, with the libraries' debug lines and OCPP frames in full")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no trace: warnings and errors on stderr, the result line on stdout")
    p.add_argument("--trace", nargs="?", const="full", type=choice("short", "full"), metavar="MODE",
                   help="the readable trace: 'full' (the default of a bare --trace) one line per message; 'short' "
                        "one line per state change and a progress line in the charge loop (default: short on a "
                        "terminal, full when stdout is a file or a pipe)")
    p.add_argument("--log", metavar="FILE", help="append one JSON object per message, OCPP frame and note "
                                                 "(read it with: v2h trace show FILE)")
    if keylog:
        p.add_argument("--keylog", metavar="FILE",
                       help="append the TLS session secrets of the ISO 15118 connections to FILE (SSLKEYLOGFILE "
                            "format, for Wireshark or v2h trace decode --keylog): off by default; anyone with "
                            "FILE can decrypt a capture")


def trace_mode(args: argparse.Namespace, stream=None) -> str | None:
    """'full', 'short' or None (no trace)."""
    if getattr(args, "quiet", False):
        return None
    if getattr(args, "trace", None):
        return args.trace
    if getattr(args, "verbose", False):
        return "full"
    stream = stream or sys.stdout
    return "short" if _isatty(stream) else "full"


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def message_log(who: str, args: argparse.Namespace) -> MessageLog:
    mode = trace_mode(args)
    return MessageLog(who, path=args.log, stream=sys.stdout if mode else None, mode=mode or "full",
                      tty=_isatty(sys.stdout), verbose=bool(getattr(args, "verbose", False)))


def route_logs(log: MessageLog, args: argparse.Namespace, names: tuple[str, ...],
               said_otherwise: Callable[[logging.LogRecord], bool] | None = None) -> None:
    """The libraries' log lines (refused handshakes, accept errors, the CSMS link) go into the
    command's log beside the sessions; with --quiet their warnings also to stderr; with
    --verbose their debug lines too. Lines that ``said_otherwise`` accepts are left out (the
    command says the same in its own words), except with --verbose."""
    verbose = bool(getattr(args, "verbose", False))
    level = logging.DEBUG if verbose else logging.INFO
    handlers = [log.handler(level)]
    if args.quiet:
        to_stderr = logging.StreamHandler(sys.stderr)
        to_stderr.setLevel(logging.WARNING)
        to_stderr.setFormatter(logging.Formatter(f"v2h {args.command}: %(message)s"))
        handlers.append(to_stderr)
    if said_otherwise is not None and not verbose:
        for h in handlers:
            h.addFilter(lambda record: not said_otherwise(record))
    for name in names:
        lib = logging.getLogger(name)
        lib.setLevel(level)
        lib.propagate = False
        for h in handlers:
            lib.addHandler(h)


def keylog_path(args: argparse.Namespace) -> str | None:
    """The --keylog file, after the warning on stderr (always, even with --quiet)."""
    path = getattr(args, "keylog", None)
    if path:
        print(f"v2h {args.command}: " + KEYLOG_WARNING.format(path=os.path.abspath(path)), file=sys.stderr,
              flush=True)
    return path

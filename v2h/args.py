"""Argument types and help for the ``v2h`` command line.

Every number that comes in on the command line is checked here, at parse time, for being a
finite number in its range: an out-of-range or non-finite value (``nan``, ``inf``) is argparse's
usual one-line usage error with exit status 2, never a traceback, a wrapped port number or a NaN
setpoint reaching the power stage. Choices are case-insensitive and come back in their
canonical spelling.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable

# the largest power anything here will take as a setpoint: a megawatt charging system (MCS)
MAX_POWER_W = 3_750_000.0


def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False, lo_open: bool = False,
           hi_open: bool = False, unit: str = "") -> Callable[[str], float | int]:
    """An argparse type: a finite number (a whole number with ``integer``) in [lo, hi]
    (``lo_open``/``hi_open`` exclude the ends; None leaves that side unbounded)."""
    what = "a whole number" if integer else "a number"
    bounds = _bounds(lo, hi, lo_open, hi_open, unit)

    def parse(text: str) -> float | int:
        try:
            value: float | int = int(text, 10) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"want {what}{bounds}; got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"want a finite number{bounds}; got {text!r}")
        if (lo is not None and (value <= lo if lo_open else value < lo)) or \
                (hi is not None and (value >= hi if hi_open else value > hi)):
            raise argparse.ArgumentTypeError(f"want {what}{bounds}; got {text!r}")
        return value
    parse.__name__ = "integer" if integer else "number"  # argparse names the type in some messages
    return parse


def _bounds(lo, hi, lo_open, hi_open, unit) -> str:
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}{u}"
    if lo is not None:
        return f" {'>' if lo_open else '≥'} {_fmt(lo)}{u}"
    if hi is not None:
        return f" {'<' if hi_open else '≤'} {_fmt(hi)}{u}"
    return ""


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def choice(*names: str) -> Callable[[str], str]:
    """An argparse type: one of ``names``, in any case, returned as spelled in ``names``."""
    canonical = {n.lower(): n for n in names}

    def parse(text: str) -> str:
        found = canonical.get(text.strip().lower())
        if found is None:
            raise argparse.ArgumentTypeError(f"want one of {', '.join(names)}; got {text!r}")
        return found
    parse.__name__ = "choice"
    return parse


def choices_list(*names: str) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated list drawn from ``names`` (any case, canonical
    spelling back, duplicates dropped, order kept)."""
    canonical = {n.lower(): n for n in names}

    def parse(text: str) -> list[str]:
        items = [t.strip().lower() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in canonical]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"want a comma-separated list of {', '.join(names)}; got {text!r}")
        return list(dict.fromkeys(canonical[t] for t in items))
    parse.__name__ = "list"
    return parse


def host_port(text: str) -> tuple[str, int]:
    """'[::1]:50000', 'fe80::1%eth0' with a port, 'localhost:50000' → (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"want HOST:PORT with a port in [1, 65535] (IPv6 in brackets: "
                                         f"[::1]:50000); got {text!r}")
    return host, int(port)


def price_levels(text: str) -> tuple[tuple[int, int], ...]:
    """'21600:0,10800:2' → ((21600, 0), (10800, 2)): durations 1..2^32-1 s, levels 0..255."""
    try:
        pairs = tuple((int(d), int(lv)) for d, lv in (item.split(":") for item in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"want seconds:level pairs like 21600:0,10800:2; got {text!r}") from None
    for d, lv in pairs:
        if not (0 < d < 2**32 and 0 <= lv < 256):
            raise argparse.ArgumentTypeError(f"price level entry {d}:{lv} out of range (duration 1..2^32-1 s, "
                                             f"level 0..255); got {text!r}")
    if len(pairs) > 1024:
        raise argparse.ArgumentTypeError("at most 1024 price level entries")
    return pairs


def secret_from(flag: str, value: str | None, file: str | None, env: str) -> str | None:
    """A secret given on the command line (visible to every user in ``ps``), in a file (first
    line), or in the environment variable ``env``, in that order of precedence: the flag, the
    file, the environment. ValueError when the file cannot be read."""
    if value is not None:
        return value
    if file is not None:
        try:
            with open(file, encoding="utf-8") as f:
                line = f.readline().rstrip("\r\n")
        except OSError as e:
            raise ValueError(f"cannot read {flag}-file {file}: {e.strerror}") from None
        if not line:
            raise ValueError(f"{flag}-file {file} is empty (the secret is its first line)")
        return line
    return os.environ.get(env) or None


class HelpFormatter(argparse.HelpFormatter):
    """Shows every argument's default (unless its help already says what the default is) and
    keeps the description's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "default" in text.lower():
            return text
        if action.default in (None, False, argparse.SUPPRESS) or action.option_strings == [] or \
                isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        default = action.default
        if isinstance(default, (list, tuple)):
            if not default:
                return text
            default = ",".join(str(x) for x in default)
        return f"{text} (default: {default})" if text else f"(default: {default})"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        return "\n".join(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent) if line else ""
                         for line in text.splitlines())


def undocumented(parser: argparse.ArgumentParser, skip: Iterable[str] = ()) -> list[str]:
    """The options of ``parser`` and of its subcommands (recursively) without help text, as
    'command --flag' (for the tests)."""
    out = []

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in a._choices_actions}
                for name, sub in a.choices.items():
                    if f"{path} {name}".strip() in skip:
                        continue
                    if not helps.get(name):
                        out.append(f"{path} {name}".strip())
                    walk(sub, f"{path} {name}".strip())
            elif a.help in (None, "") and not isinstance(a, argparse._HelpAction):
                out.append(f"{path} {'/'.join(a.option_strings) or a.dest}".strip())
    walk(parser, "")
    return out

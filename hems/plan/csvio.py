"""The planner's CSV files (``v2h hems plan``), as text in and text out (no file access here).

Input: a header with at least ``time, load_w, pv_w, import_price, export_price``, then one row per
15-minute slot: ``time`` in ISO 8601 with a UTC offset (the slot's start), consecutive rows exactly
15 minutes apart, load and solar in mean W, prices per kWh. Every value is checked; an error names
the line and the column (``ConfigError``), e.g. ``line 7, load_w: want a finite number, got 'nan'``.
Output: ``time, car_w, soc, grid_w`` per slot (car + charge / − discharge at the AC side, SoC in %
at the slot's end, grid + import / − export).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime

from ..errors import ConfigError
from .model import MAX_POWER_W, MAX_PRICE, MAX_SLOTS, Plan

COLUMNS = ("time", "load_w", "pv_w", "import_price", "export_price")
SLOT_S = 900.0
_RANGES = {"load_w": (0.0, MAX_POWER_W), "pv_w": (0.0, MAX_POWER_W),
           "import_price": (-MAX_PRICE, MAX_PRICE), "export_price": (-MAX_PRICE, MAX_PRICE)}


@dataclass(frozen=True, slots=True)
class Series:
    """The input file's columns, checked."""

    times: tuple[datetime, ...]
    load_w: tuple[float, ...]
    pv_w: tuple[float, ...]
    import_price: tuple[float, ...]
    export_price: tuple[float, ...]


def parse_time(key: str, text: str) -> datetime:
    """An ISO 8601 time that carries a UTC offset."""
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(key, f"want an ISO 8601 time with an offset, got {text!r}") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise ConfigError(key, f"{text!r} has no UTC offset (write e.g. 2025-03-01T00:00+01:00)")
    return t


def _value(key: str, text: str, lo: float, hi: float) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ConfigError(key, f"want a number, got {text!r}") from None
    if not math.isfinite(v):
        raise ConfigError(key, f"want a finite number, got {text!r}")
    if v < lo or v > hi:
        raise ConfigError(key, f"{text.strip()} is outside {lo:g}..{hi:g}")
    return v


def read_series(text: str) -> Series:
    """The checked columns of a planner input CSV."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError("input", "empty file") from None
    except csv.Error as e:
        raise ConfigError("line 1", f"not CSV: {e}") from None
    names = [h.strip() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ConfigError("header", f"missing column(s) {', '.join(missing)} (want {', '.join(COLUMNS)})")
    idx = {c: names.index(c) for c in COLUMNS}
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not f.strip() for f in row):
                continue
            if len(cols["time"]) >= MAX_SLOTS:
                raise ConfigError(f"line {line}", f"more than {MAX_SLOTS} slots (7 days)")
            if len(row) < len(names):
                raise ConfigError(f"line {line}", f"{len(row)} fields, the header has {len(names)}")
            t = parse_time(f"line {line}, time", row[idx["time"]])
            if cols["time"]:
                step = (t - cols["time"][-1]).total_seconds()
                if step != SLOT_S:
                    raise ConfigError(f"line {line}, time", f"{row[idx['time']].strip()} is {step / 60:g} min after "
                                                            f"the previous row; want 15 min")
            cols["time"].append(t)
            for c, (lo, hi) in _RANGES.items():
                cols[c].append(_value(f"line {line}, {c}", row[idx[c]], lo, hi))
    except csv.Error as e:
        raise ConfigError(f"line {reader.line_num}", f"not CSV: {e}") from None
    if not cols["time"]:
        raise ConfigError("input", "no rows after the header")
    return Series(times=tuple(cols["time"]), **{c: tuple(cols[c]) for c in _RANGES})


def write_plan(plan: Plan, times: tuple[datetime, ...]) -> str:
    """PLAN.csv: ``time, car_w, soc, grid_w``, one row per slot, times as in the input."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["time", "car_w", "soc", "grid_w"])
    for k, t in enumerate(times):
        w.writerow([t.isoformat(), f"{_z(plan.car_w[k]):.1f}", f"{plan.soc_pct[k]:.3f}", f"{_z(plan.grid_w[k]):.1f}"])
    return out.getvalue()


def _z(x: float) -> float:
    """No '-0.0' in the file."""
    return 0.0 if abs(x) < 0.05 else x

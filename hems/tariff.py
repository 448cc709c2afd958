"""Tariffs: import and export prices over time, from a file or a JSON HTTP source, per plan slot.

Parsing and checking only (no I/O): the HTTP fetch is in ``hems.aio.tariff_http``. A tariff is a
list of intervals ``[start, end)`` with an import and an export price per kWh (either may be
negative, as day-ahead prices are). Every time must carry a UTC offset; every price must be
finite and within ±1e6; intervals must be in order and must not overlap. Errors are
``ConfigError`` naming the entry (``prices[3].import``, ``line 5, export_price``).

Formats:

- CSV: ``time, import_price, export_price``; each row starts an interval that lasts until the next
  row; the last one lasts as long as the one before it (a single row: ``default_interval_s``).
- JSON (``fmt="v2h"``): ``{"prices": [{"start": ISO, "end": ISO, "import": x, "export": y}, ...]}``.
- JSON (``fmt="spot"``): day-ahead market data as published by several spot-price APIs,
  ``{"data": [{"start_timestamp": ms, "end_timestamp": ms, "marketprice": per MWh}, ...]}``; the
  tariff is linear in the spot price: import = spot × ``import_factor`` + ``import_adder`` and
  export = spot × ``export_factor`` + ``export_adder`` (spot per kWh = marketprice / 1000).
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from .config import number
from .errors import ConfigError

MAX_PRICE = 1e6
MAX_INTERVALS = 20_000          # a year of quarter-hours is 35,040; a tariff source sends days, not years
MAX_BYTES = 4 * 1024 * 1024     # a JSON source answering more than this is refused before parsing


@dataclass(frozen=True, slots=True)
class Interval:
    start: datetime
    end: datetime
    import_price: float
    export_price: float


@dataclass(frozen=True, slots=True)
class Tariff:
    """Ordered, non-overlapping price intervals."""

    intervals: tuple[Interval, ...]

    def __post_init__(self) -> None:
        for k, iv in enumerate(self.intervals):
            if iv.end <= iv.start:
                raise ConfigError(f"prices[{k}]", f"ends {iv.end.isoformat()} before it starts")
            if k and iv.start < self.intervals[k - 1].end:
                raise ConfigError(f"prices[{k}]", f"starts {iv.start.isoformat()} before the previous interval "
                                                  f"ends ({self.intervals[k - 1].end.isoformat()})")

    @property
    def end(self) -> datetime | None:
        return self.intervals[-1].end if self.intervals else None

    def covered_slots(self, start: datetime, slots: int, slot_s: float = 900.0) -> int:
        """How many consecutive slots from ``start`` have a price (the horizon the tariff allows)."""
        n = 0
        for k in range(slots):
            if self._find(start + timedelta(seconds=k * slot_s), slot_s) is None:
                break
            n += 1
        return n

    def slot_prices(self, start: datetime, slots: int, slot_s: float = 900.0) -> tuple[list[float], list[float]]:
        """Import and export price of each slot: the time-weighted mean of the intervals it
        overlaps (a 15-min slot inside an hourly price gets that price). A slot not fully
        covered raises ConfigError naming its time (plan a shorter horizon: ``covered_slots``)."""
        imp: list[float] = []
        exp: list[float] = []
        for k in range(slots):
            t = start + timedelta(seconds=k * slot_s)
            got = self._find(t, slot_s)
            if got is None:
                raise ConfigError("tariff", f"no price for the slot at {t.isoformat()}")
            imp.append(got[0])
            exp.append(got[1])
        return imp, exp

    def _find(self, t: datetime, slot_s: float) -> tuple[float, float] | None:
        end = t + timedelta(seconds=slot_s)
        starts = [iv.start for iv in self.intervals]
        j = bisect.bisect_right(starts, t) - 1
        if j < 0:
            return None
        covered = 0.0
        wi = we = 0.0
        cur = t
        while j < len(self.intervals) and cur < end:
            iv = self.intervals[j]
            if iv.start > cur or iv.end <= cur:
                return None                                    # a gap
            seg = (min(iv.end, end) - cur).total_seconds()
            wi += iv.import_price * seg
            we += iv.export_price * seg
            covered += seg
            cur = min(iv.end, end)
            j += 1
        if cur < end:
            return None
        return wi / covered, we / covered


def _aware(key: str, text: Any) -> datetime:
    if not isinstance(text, str):
        raise ConfigError(key, f"want an ISO 8601 time, got {text!r}")
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(key, f"want an ISO 8601 time with an offset, got {text!r}") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise ConfigError(key, f"{text!r} has no UTC offset")
    return t


def _price(key: str, v: Any) -> float:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise ConfigError(key, f"want a number, got {v!r}") from None
    return number(key, v, -MAX_PRICE, MAX_PRICE)


def parse_csv(text: str, default_interval_s: float = 3600.0) -> Tariff:
    """A tariff from CSV ``time, import_price, export_price`` (see the module docstring)."""
    number("default_interval_s", default_interval_s, 60.0, 86400.0)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ConfigError("tariff", "empty file") from None
    for col in ("time", "import_price", "export_price"):
        if col not in header:
            raise ConfigError("header", f"missing column {col} (want time, import_price, export_price)")
    ix = {c: header.index(c) for c in ("time", "import_price", "export_price")}
    rows: list[tuple[datetime, float, float]] = []
    try:
        for row in reader:
            if not row or all(not f.strip() for f in row):
                continue
            line = reader.line_num
            if len(rows) >= MAX_INTERVALS:
                raise ConfigError(f"line {line}", f"more than {MAX_INTERVALS} prices")
            if len(row) < len(header):
                raise ConfigError(f"line {line}", f"{len(row)} fields, the header has {len(header)}")
            rows.append((_aware(f"line {line}, time", row[ix["time"]]),
                         _price(f"line {line}, import_price", row[ix["import_price"]]),
                         _price(f"line {line}, export_price", row[ix["export_price"]])))
    except csv.Error as e:
        raise ConfigError(f"line {reader.line_num}", f"not CSV: {e}") from None
    if not rows:
        raise ConfigError("tariff", "no prices")
    out = []
    for k, (t, pi, pe) in enumerate(rows):
        if k + 1 < len(rows):
            end = rows[k + 1][0]
            if end <= t:
                raise ConfigError(f"line {k + 3}, time", f"{end.isoformat()} is not after the row before")
        else:
            end = t + (t - rows[k - 1][0] if k else timedelta(seconds=default_interval_s))
        out.append(Interval(t, end, pi, pe))
    return Tariff(tuple(out))


def parse_json(body: bytes | str, fmt: str = "v2h", *, import_factor: float = 1.0, import_adder: float = 0.0,
               export_factor: float = 1.0, export_adder: float = 0.0) -> Tariff:
    """A tariff from a JSON document (``fmt`` "v2h" or "spot"; see the module docstring). The body
    is refused above ``MAX_BYTES`` before it is parsed."""
    if len(body) > MAX_BYTES:
        raise ConfigError("tariff", f"the JSON is {len(body)} bytes, more than {MAX_BYTES}")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError("tariff", f"not JSON: {e}") from None
    if fmt == "v2h":
        return _from_v2h(data)
    if fmt == "spot":
        for k, v in (("import_factor", import_factor), ("import_adder", import_adder),
                     ("export_factor", export_factor), ("export_adder", export_adder)):
            number(k, v, -MAX_PRICE, MAX_PRICE)
        return _from_spot(data, import_factor, import_adder, export_factor, export_adder)
    raise ConfigError("format", f"want v2h or spot, got {fmt!r}")


def _entries(data: Any, key: str) -> Sequence[Mapping[str, Any]]:
    if not isinstance(data, Mapping) or not isinstance(data.get(key), list):
        raise ConfigError(key, f"want an object with a list {key!r}")
    items = data[key]
    if len(items) > MAX_INTERVALS:
        raise ConfigError(key, f"{len(items)} entries, more than {MAX_INTERVALS}")
    for k, it in enumerate(items):
        if not isinstance(it, Mapping):
            raise ConfigError(f"{key}[{k}]", "want an object")
    return items


def _from_v2h(data: Any) -> Tariff:
    out = []
    for k, it in enumerate(_entries(data, "prices")):
        for f in ("start", "end", "import", "export"):
            if f not in it:
                raise ConfigError(f"prices[{k}].{f}", "missing")
        out.append(Interval(_aware(f"prices[{k}].start", it["start"]), _aware(f"prices[{k}].end", it["end"]),
                            _price(f"prices[{k}].import", it["import"]), _price(f"prices[{k}].export", it["export"])))
    return Tariff(tuple(sorted(out, key=lambda iv: iv.start)))


def _ms(key: str, v: Any) -> datetime:
    ms = number(key, v, 0.0, 4102444800000.0)          # up to 2100
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)


def _from_spot(data: Any, fi: float, ai: float, fe: float, ae: float) -> Tariff:
    out = []
    for k, it in enumerate(_entries(data, "data")):
        for f in ("start_timestamp", "end_timestamp", "marketprice"):
            if f not in it:
                raise ConfigError(f"data[{k}].{f}", "missing")
        spot = _price(f"data[{k}].marketprice", it["marketprice"]) / 1000.0
        imp, exp = spot * fi + ai, spot * fe + ae
        if not (math.isfinite(imp) and math.isfinite(exp)):
            raise ConfigError(f"data[{k}].marketprice", "gives a price that is not finite")
        out.append(Interval(_ms(f"data[{k}].start_timestamp", it["start_timestamp"]),
                            _ms(f"data[{k}].end_timestamp", it["end_timestamp"]), imp, exp))
    return Tariff(tuple(sorted(out, key=lambda iv: iv.start)))

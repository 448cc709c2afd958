"""Load learning (hems.forecast.load) and its H0 fallback (hems.forecast.h0)."""

from __future__ import annotations

import csv
import importlib.util
import math
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hems.errors import ConfigError
from hems.forecast import h0
from hems.forecast.load import LoadHistory

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def hist(tz=UTC) -> LoadHistory:
    return LoadHistory(sqlite3.connect(":memory:"), tz)


def pattern(local: datetime) -> float:
    """A house whose load depends on the local weekday and quarter-hour only."""
    return 200.0 + 50.0 * local.weekday() + 10.0 * (local.hour * 4 + local.minute // 15)


def fill(h: LoadHistory, end: datetime, days: int, f=pattern) -> None:
    t = end - timedelta(days=days)
    while t < end:
        h.record(t, f(t.astimezone(h.tz)))
        t += timedelta(minutes=15)
    h.commit()


def test_no_history_is_h0_scaled_to_the_annual_use():
    h = hist(BERLIN)
    now = datetime(2025, 1, 6, 0, 0, tzinfo=BERLIN)                   # a Monday in winter
    f = h.forecast(now, 96, annual_kwh=3500.0)
    assert f == pytest.approx([h0.h0_w(now.replace(tzinfo=None) + timedelta(minutes=15 * k), 3500.0)
                               for k in range(96)])
    # a whole year of the dynamised profile sums to the annual use
    total = 0.0
    d = date(2025, 1, 1)
    while d.year == 2025:
        total += sum(h0.h0_w(datetime(d.year, d.month, d.day, q // 4, q % 4 * 15), 3500.0) for q in range(96)) / 4000
        d += timedelta(days=1)
    assert total == pytest.approx(3500.0, rel=1e-9)
    # the evening peak of a winter workday is well above the night
    assert f[19 * 4] > 3 * f[3 * 4]


def test_h0_table_is_demandlibs():
    spec = importlib.util.find_spec("demandlib")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("demandlib not installed: the table cannot be compared with its data file")
    path = Path(list(spec.submodule_search_locations)[0]) / "bdew" / "bdew_data" / "selp_series.csv"
    rows = list(csv.DictReader(path.open()))
    day = {"1": "workday", "2": "workday", "3": "workday", "4": "workday", "5": "workday", "6": "saturday",
           "7": "sunday"}
    seen = {}
    for r in rows:
        seen.setdefault((r["period"], day[r["weekday"]]), []).append(float(r["h0"]) * 1000.0)
    for key, vals in seen.items():
        assert h0._TABLE[key] == pytest.approx(vals[:96], abs=0.006), key


def test_learned_weekday_quarter_hour():
    h = hist(UTC)
    now = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
    fill(h, now, 28)
    f = h.forecast(now, 7 * 96, tau_h=0.0)
    assert f == pytest.approx([pattern(now + timedelta(minutes=15 * k)) for k in range(7 * 96)])


def test_only_recent_weeks_count():
    h = hist(UTC)
    now = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
    fill(h, now - timedelta(days=28), 28, lambda t: 5000.0)             # older than 4 weeks: ignored
    fill(h, now, 28)
    assert h.forecast(now, 4, tau_h=0.0) == pytest.approx([pattern(now + timedelta(minutes=15 * k)) for k in range(4)])
    assert h.forecast(now, 1, weeks=8, tau_h=0.0)[0] == pytest.approx((pattern(now) + 5000.0) / 2)


def test_near_term_blends_with_the_last_hour():
    h = hist(UTC)
    now = datetime(2025, 3, 3, 12, 5, tzinfo=UTC)
    fill(h, now.replace(minute=0), 28)
    for k in range(4):                                               # the last hour: 3 kW (a cooker on)
        h.record(now.replace(minute=0) - timedelta(minutes=15 * (k + 1)), 3000.0)
    f = h.forecast(now, 24)
    learned = [pattern(now.replace(minute=0) + timedelta(minutes=15 * k)) for k in range(24)]
    for k in (0, 4, 23):
        lead = (k * 900 + 450 - 300) / 3600
        w = math.exp(-lead)
        assert f[k] == pytest.approx(w * 3000.0 + (1 - w) * learned[k])
    assert f[0] > 2000.0 and abs(f[23] - learned[23]) < 50.0


def test_keys_are_local_time_across_dst():
    h = hist(BERLIN)
    now = datetime(2025, 4, 7, 0, 0, tzinfo=BERLIN)                    # DST began on 30 March
    fill(h, now, 28)
    f = h.forecast(now, 96, tau_h=0.0)
    assert f[18 * 4] == pytest.approx(pattern(datetime(2025, 4, 7, 18, 0)))


def test_partial_history_scales_h0():
    h = hist(UTC)
    now = datetime(2025, 1, 6, 0, 0, tzinfo=UTC)
    day = now - timedelta(days=7)
    for q in range(96):                                              # one Monday at twice the H0 level
        t = day + timedelta(minutes=15 * q)
        h.record(t, 2 * h0.h0_w(t.replace(tzinfo=None), 3500.0))
    f = h.forecast(now, 2 * 96, tau_h=0.0)
    tue = now + timedelta(days=1, hours=19)
    assert f[96 + 19 * 4] == pytest.approx(2 * h0.h0_w(tue.replace(tzinfo=None), 3500.0), rel=0.02)


def test_prune():
    h = hist(UTC)
    now = datetime(2025, 3, 3, tzinfo=UTC)
    fill(h, now, 2)
    assert h.prune(now - timedelta(days=1)) == 96


@pytest.mark.parametrize("t,w,key", [
    (datetime(2025, 3, 3, 0, 0, tzinfo=UTC), float("nan"), "mean_w"),
    (datetime(2025, 3, 3, 0, 0, tzinfo=UTC), -1.0, "mean_w"),
    (datetime(2025, 3, 3, 0, 7, tzinfo=UTC), 100.0, "slot_start"),
    (datetime(2025, 3, 3, 0, 0), 100.0, "slot_start"),
])
def test_bad_records_named(t, w, key):
    with pytest.raises(ConfigError) as ei:
        hist().record(t, w)
    assert ei.value.key == key

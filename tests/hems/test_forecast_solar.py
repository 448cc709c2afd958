"""The solar model (hems.forecast.solar): pvlib clear sky, corrected by measurements."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("pvlib")

from hems.errors import ConfigError  # noqa: E402
from hems.forecast.solar import PvArray, clear_sky_index, clear_sky_w, forecast, read_csv  # noqa: E402

CEST = timezone(timedelta(hours=2))
MUNICH = dict(latitude=48.14, longitude=11.58, altitude_m=520.0)


def test_flat_array_follows_an_independent_clear_sky_model():
    """A horizontal array sees GHI: compare with the Haurwitz clear-sky model
    (GHI = 1098 cos z exp(−0.057 / cos z)) and PVWatts by hand, within 15 %."""
    arr = PvArray(tilt_deg=0.0, azimuth_deg=180.0, peak_kw=10.0, losses=0.0, gamma_pdc=0.0, **MUNICH)
    t = datetime(2025, 6, 21, 13, 15, tzinfo=CEST)                    # near solar noon
    w = clear_sky_w(arr, [t])[0]
    decl = math.radians(23.44)
    z = math.radians(MUNICH["latitude"]) - decl                      # zenith at solar noon
    ghi = 1098 * math.cos(z) * math.exp(-0.057 / math.cos(z))
    assert w == pytest.approx(10.0 * ghi, rel=0.15)


def test_day_shape_and_limits():
    arr = PvArray(tilt_deg=30.0, azimuth_deg=180.0, peak_kw=8.0, inverter_kw=5.0, **MUNICH)
    start = datetime(2025, 6, 21, 0, 0, tzinfo=CEST)
    f = forecast(arr, start, 96)
    assert max(f[:4 * 4]) == 0.0 and max(f[23 * 4:]) == 0.0           # night
    assert max(f) == pytest.approx(5000.0)                           # the inverter's limit
    assert 30.0 < sum(f) / 4000 < 60.0                               # kWh on a clear June day, 8 kWp
    east = forecast(PvArray(tilt_deg=30.0, azimuth_deg=90.0, peak_kw=8.0, **MUNICH), start, 96)
    south = forecast(PvArray(tilt_deg=30.0, azimuth_deg=180.0, peak_kw=8.0, **MUNICH), start, 96)
    assert east.index(max(east)) + 6 < south.index(max(south))       # an east array peaks ~2 h earlier


def test_measured_index_corrects_the_near_term_then_fades():
    arr = PvArray(tilt_deg=30.0, azimuth_deg=180.0, peak_kw=8.0, **MUNICH)
    now = datetime(2025, 6, 21, 12, 0, tzinfo=CEST)
    past = [now - timedelta(minutes=15 * k) for k in range(1, 9)]
    model = clear_sky_w(arr, past)
    assert clear_sky_index(arr, list(zip(past, [0.4 * m for m in model]))) == pytest.approx(0.4)
    # the last two hours cloudy (0.4), the week before bright (0.9)
    week = [now - timedelta(days=d, minutes=15 * k) for d in range(1, 4) for k in range(8)]
    wm = clear_sky_w(arr, week)
    recent = list(zip(week, [0.9 * m for m in wm])) + list(zip(past, [0.4 * m for m in model]))
    f = forecast(arr, now, 24, recent=recent)
    clear = clear_sky_w(arr, [now + timedelta(minutes=15 * k + 7.5) for k in range(24)])
    assert f[0] / clear[0] < 0.55 and f[-1] / clear[-1] > f[0] / clear[0]
    assert all(0.35 < a / b < 0.95 for a, b in zip(f, clear))


def test_index_is_bounded():
    arr = PvArray(tilt_deg=30.0, azimuth_deg=180.0, peak_kw=8.0, **MUNICH)
    t = datetime(2025, 6, 21, 12, 0, tzinfo=CEST)
    assert clear_sky_index(arr, [(t, 50_000.0)]) == 1.3
    assert clear_sky_index(arr, [(t.replace(hour=2), 0.0)]) is None  # night samples say nothing


@pytest.mark.parametrize("kw,key", [({"latitude": 91.0}, "pv.latitude"), ({"peak_kw": float("nan")}, "pv.peak_kw"),
                                    ({"tilt_deg": -5.0}, "pv.tilt_deg")])
def test_bad_array_named(kw, key):
    base = dict(tilt_deg=30.0, azimuth_deg=180.0, peak_kw=8.0, **MUNICH)
    base.update(kw)
    with pytest.raises(ConfigError) as ei:
        PvArray(**base)
    assert ei.value.key == key


def test_solar_file():
    rows = read_csv("time,pv_w\n2025-06-21T12:00+02:00,4100\n2025-06-21T12:15+02:00,4200\n")
    assert [w for _, w in rows] == [4100.0, 4200.0]
    with pytest.raises(ConfigError) as ei:
        read_csv("time,pv_w\n2025-06-21T12:00+02:00,nan\n")
    assert ei.value.key == "line 2, pv_w"

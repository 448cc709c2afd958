"""Solar forecast: a pvlib model of the configured array under a clear sky, corrected by what the
inverter measured, or a file.

Model (pvlib, imported on first use; the ``hems`` extra): sun position and Ineichen clear-sky
irradiance at the site (``Location.get_clearsky``, Linke turbidity from pvlib's climatology),
transposed to the array's plane (``irradiance.get_total_irradiance``, isotropic sky), cell
temperature by the SAPM model (open rack, 20 °C air, 1 m/s wind), DC power by PVWatts
(``pvsystem.pvwatts_dc``, γ = −0.4 %/K), then the system losses (14 %, PVWatts' default) and the
inverter's AC limit. Evaluated at each slot's middle.

Correction: the clear-sky index k = measured / modelled over the recent daylight samples given
(``recent``: (time, measured W) pairs; samples where the model gives under 2 % of the peak are
skipped). Near now the forecast is clear-sky × k_now (the last ``near_h`` hours of samples), fading
with τ = ``tau_h`` towards clear-sky × k_base (all the samples given, e.g. the last week; 1 with no
samples). k is bounded to 0…1.3 (a measurement can exceed the clear-sky model at cloud edges, but
not for long).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from ..config import number
from ..errors import ConfigError
from ..plan.csvio import parse_time

K_MAX = 1.3
_TEMP_AIR_C = 20.0
_WIND_MS = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class PvArray:
    """The array: location, orientation (azimuth 180 = south, 90 = east), peak DC power."""

    latitude: float
    longitude: float
    tilt_deg: float
    azimuth_deg: float
    peak_kw: float
    altitude_m: float = 0.0
    losses: float = 0.14
    gamma_pdc: float = -0.004
    inverter_kw: float | None = None

    def __post_init__(self) -> None:
        number("pv.latitude", self.latitude, -90.0, 90.0)
        number("pv.longitude", self.longitude, -180.0, 180.0)
        number("pv.tilt_deg", self.tilt_deg, 0.0, 90.0)
        number("pv.azimuth_deg", self.azimuth_deg, 0.0, 360.0)
        number("pv.peak_kw", self.peak_kw, 0.0, 1000.0)
        number("pv.altitude_m", self.altitude_m, -500.0, 9000.0)
        number("pv.losses", self.losses, 0.0, 0.9)
        number("pv.gamma_pdc", self.gamma_pdc, -0.02, 0.0)
        if self.inverter_kw is not None:
            number("pv.inverter_kw", self.inverter_kw, 0.0, 1000.0)


def clear_sky_w(array: PvArray, times: Sequence[datetime]) -> list[float]:
    """Modelled AC power (W) under a clear sky at each of ``times`` (aware datetimes)."""
    try:
        import pandas as pd
        import pvlib
    except ImportError as e:
        raise ConfigError("pv", "the solar model needs pvlib (pip install 'v2h[hems]')") from e
    for i, t in enumerate(times):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ConfigError(f"times[{i}]", "want a time with a UTC offset")
    if not times:
        return []
    idx = pd.DatetimeIndex([pd.Timestamp(t).tz_convert("UTC") for t in times])
    loc = pvlib.location.Location(array.latitude, array.longitude, tz="UTC", altitude=array.altitude_m)
    cs = loc.get_clearsky(idx, model="ineichen")
    sun = loc.get_solarposition(idx)
    poa = pvlib.irradiance.get_total_irradiance(array.tilt_deg, array.azimuth_deg, sun["apparent_zenith"],
                                                sun["azimuth"], cs["dni"], cs["ghi"], cs["dhi"])
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
    t_cell = pvlib.temperature.sapm_cell(poa["poa_global"], _TEMP_AIR_C, _WIND_MS, **params)
    dc = pvlib.pvsystem.pvwatts_dc(poa["poa_global"], t_cell, array.peak_kw * 1000.0, array.gamma_pdc)
    ac = (dc * (1.0 - array.losses)).fillna(0.0).clip(lower=0.0)
    if array.inverter_kw is not None:
        ac = ac.clip(upper=array.inverter_kw * 1000.0)
    return [float(v) for v in ac]


def clear_sky_index(array: PvArray, recent: Sequence[tuple[datetime, float]]) -> float | None:
    """measured / modelled over the daylight samples (None without any), bounded to 0…K_MAX."""
    if not recent:
        return None
    for i, (_, w) in enumerate(recent):
        number(f"recent[{i}].w", w, 0.0, 1e7)
    model = clear_sky_w(array, [t for t, _ in recent])
    floor = 0.02 * array.peak_kw * 1000.0
    pairs = [(m, w) for m, (_, w) in zip(model, recent) if m > floor]
    if not pairs:
        return None
    k = sum(w for _, w in pairs) / sum(m for m, _ in pairs)
    return min(max(k, 0.0), K_MAX)


def forecast(array: PvArray, start: datetime, slots: int, *, slot_s: float = 900.0,
             recent: Sequence[tuple[datetime, float]] = (), near_h: float = 2.0, tau_h: float = 3.0) -> list[float]:
    """Mean W per slot from ``start``: clear-sky × the measured clear-sky index (see the module)."""
    number("slots", slots, 1, 7 * 96, integer=True)
    number("slot_s", slot_s, 60.0, 3600.0)
    number("near_h", near_h, 0.0, 48.0)
    number("tau_h", tau_h, 0.01, 240.0)
    mids = [start + timedelta(seconds=(k + 0.5) * slot_s) for k in range(slots)]
    clear = clear_sky_w(array, mids)
    k_base = clear_sky_index(array, recent)
    k_base = 1.0 if k_base is None else k_base
    near = [(t, w) for t, w in recent if (start - t).total_seconds() <= near_h * 3600.0]
    k_now = clear_sky_index(array, near)
    k_now = k_base if k_now is None else k_now
    out = []
    for k, c in enumerate(clear):
        lead_h = (k + 0.5) * slot_s / 3600.0
        wgt = math.exp(-lead_h / tau_h)
        out.append(c * (wgt * k_now + (1.0 - wgt) * k_base))
    return out


def read_csv(text: str) -> list[tuple[datetime, float]]:
    """A solar forecast file: ``time,pv_w`` rows (time with an offset, W ≥ 0)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or [h.strip() for h in lines[0].split(",")][:2] != ["time", "pv_w"]:
        raise ConfigError("header", "want columns time,pv_w")
    out = []
    for n, ln in enumerate(lines[1:], start=2):
        parts = ln.split(",")
        if len(parts) < 2:
            raise ConfigError(f"line {n}", "want time,pv_w")
        t = parse_time(f"line {n}, time", parts[0])
        try:
            w = float(parts[1])
        except ValueError:
            raise ConfigError(f"line {n}, pv_w", f"want a number, got {parts[1]!r}") from None
        out.append((t, number(f"line {n}, pv_w", w, 0.0, 1e7)))
    return out

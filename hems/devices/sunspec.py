"""SunSpec register maps, decoded without I/O: the model directory and the values v2h reads.

The map starts at holding register 40000 with the marker 'SunS' (0x5375 0x6E53), then blocks of
(model id, length, length registers of data), ending with id 0xFFFF. v2h reads only:

- meters 201 (single phase), 202 (split phase), 203 (wye), 204 (delta), data offsets:
  PhVphA 6, PhVphB 7, PhVphC 8, V_SF 13, Hz 14, Hz_SF 15, W 16, W_SF 20;
- inverters 101/102/103 (single, split, three phase): W 12, W_SF 13, Hz 14, Hz_SF 15;
- the DER inverter model 701 (DER AC measurement, 153 registers): W 8 (int16), W_SF 114.

Values are int16 (voltage, power, scale factors) or uint16 (per the models; voltage/frequency are
uint16 in 20x, int16 in 10x for W). "Not implemented" (0x8000 int16, 0xFFFF uint16, a scale factor
of 0x8000 or outside −10…10) reads as absent: a sensor failure, never a 0.
"""

from __future__ import annotations

import math

from ..errors import SensorError
from ..model import GridReading

BASE = 40000
MARKER = (0x5375, 0x6E53)
METERS = {201: 1, 202: 2, 203: 3, 204: 3}
INVERTERS = {101, 102, 103, 701}
MAX_MODELS = 64


def s16(r: int) -> int | None:
    return None if r == 0x8000 else (r - 0x10000 if r & 0x8000 else r)


def u16(r: int) -> int | None:
    return None if r == 0xFFFF else r


def scaled(value: int | None, sf_reg: int) -> float:
    sf = s16(sf_reg)
    if value is None or sf is None or not -10 <= sf <= 10:
        raise SensorError("value or scale factor not implemented")
    v = value * 10.0 ** sf
    if not math.isfinite(v):
        raise SensorError("not finite")
    return v


def parse_directory(header: list[int]) -> list[tuple[int, int, int]]:
    """(model id, address of its data, length) from the registers read from 40000 on."""
    if len(header) < 2 or tuple(header[:2]) != MARKER:
        raise SensorError("no SunSpec marker at 40000")
    out, i = [], 2
    while i + 1 < len(header) and len(out) < MAX_MODELS:
        mid, length = header[i], header[i + 1]
        if mid == 0xFFFF:
            return out
        out.append((mid, BASE + i + 2, length))
        i += 2 + length
    raise SensorError("SunSpec map without an end block within what was read")


def meter_grid(model: int, d: list[int], nominal_v: float) -> GridReading:
    """Per-phase line-to-neutral voltage and frequency from a 20x block's data."""
    phases = METERS[model]
    if len(d) < 21:
        raise SensorError(f"model {model} block too short")
    volts = tuple(scaled(u16(d[6 + k]), d[13]) for k in range(phases))
    hz = scaled(u16(d[14]), d[15])
    if any(not 0.0 <= v <= 4.0 * nominal_v for v in volts) or not 0.0 <= hz <= 100.0:
        raise SensorError("grid reading out of range")
    return GridReading(voltage_v=volts, frequency_hz=hz)


def meter_power(model: int, d: list[int]) -> float:
    """Total real power at the meter, W (+ import, SunSpec meter convention)."""
    if len(d) < 21:
        raise SensorError(f"model {model} block too short")
    w = scaled(s16(d[16]), d[20])
    if abs(w) > 1e6:
        raise SensorError("power out of range")
    return w


def inverter_power(model: int, d: list[int]) -> float:
    """AC power of a 10x or 701 inverter, W (what it feeds in; absorbing reads as 0)."""
    w_at, sf_at = (8, 114) if model == 701 else (12, 13)
    if len(d) <= sf_at:
        raise SensorError(f"model {model} block too short")
    w = scaled(s16(d[w_at]), d[sf_at])
    if not -1e3 <= w <= 1e6:
        raise SensorError("power out of range")
    return max(w, 0.0)


def encode_s16(v: int) -> int:
    return v & 0xFFFF

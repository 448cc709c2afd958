"""The site's configuration: ratings, windows, timers and circuits, checked before use.

Every number is checked for type, finiteness and range here, so nothing out of range can become
power or a decision later. ``from_dict`` rejects unknown keys. Errors name the key (``ConfigError``).
Where each default comes from is in docs/hems.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Mapping

from .errors import ConfigError


class Priority(str, Enum):
    CRITICAL = "critical"      # never shed while the car is above its reserve (fridge, sump pump, medical)
    ESSENTIAL = "essential"
    DEFERRABLE = "deferrable"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Priority.CRITICAL: 0, Priority.ESSENTIAL: 1, Priority.DEFERRABLE: 2}


@dataclass(frozen=True, kw_only=True, slots=True)
class CircuitConfig:
    name: str
    priority: Priority
    power_w: float             # rated power: what the circuit is assumed to draw when not metered
    min_off_s: float = 0.0     # minimum off-time once shed (compressors)


@dataclass(frozen=True, kw_only=True, slots=True)
class Window:
    """A voltage (per unit of nominal) and frequency window, inclusive."""

    v_min_pu: float
    v_max_pu: float
    f_min_hz: float
    f_max_hz: float


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteConfig:
    nominal_voltage: float
    nominal_frequency: float
    inverter_max_w: float                  # the island inverter's (stand-alone port's) rating
    reserve_soc: float = 20.0              # % the user's trip reserve
    circuits: tuple[CircuitConfig, ...] = ()
    grid_sensors: int = 1
    # outage detection: outside ``trip`` for ``ride_through_s`` (a 200 ms flicker must not island)
    trip: Window | None = None
    ride_through_s: float = 1.0
    # return: inside ``reconnect`` for ``return_stable_s`` without a break (IEEE 1547-2018 4.10)
    reconnect: Window | None = None
    return_stable_s: float = 300.0
    sensor_v_tolerance_pu: float = 0.05    # two sensors further apart than this disagree
    sensor_f_tolerance_hz: float = 0.1
    contact_timeout_s: float = 1.0         # a contact's feedback must follow its command within this
    charger_timeout_s: float = 5.0         # the charger must report the commanded mode within this
    neutral_ground_bond: bool = False      # a bond contactor is fitted and switched while islanded
    restore_settle_s: float = 10.0         # between two circuit restorations on the island
    island_headroom: float = 0.9           # restore only while the load stays under this share of capacity
    warn_band_soc: float = 5.0             # reserve + this: warn and shed all but critical
    end_margin_soc: float = 0.5            # reserve + this: end the island (one step's drain never crosses it)
    allow_export: bool = False
    grid_setpoint_w: float = 0.0           # charger setpoint while grid-connected (+ charge / − discharge)
    follow_tolerance_w: float = 300.0      # measured power this far past a limit is "not following"
    follow_timeout_s: float = 2.0
    charger_retry_s: float = 300.0         # after a charger that did not follow was switched off

    def __post_init__(self) -> None:
        if self.trip is None:
            object.__setattr__(self, "trip", default_trip(self.nominal_frequency))
        if self.reconnect is None:
            object.__setattr__(self, "reconnect", default_reconnect(self.nominal_frequency))

    @property
    def circuit_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.circuits)


def default_trip(nominal_frequency: float) -> Window:
    """Outage detection window. 60 Hz: IEEE 1547-2018 Table 11/15 (Category II/III) first
    under/over-voltage and under/over-frequency trip settings, 0.88–1.10 pu, 58.5–61.2 Hz.
    50 Hz: EN 50549-1 interface protection defaults, 0.85–1.10 pu, 47.5–51.5 Hz."""
    if nominal_frequency == 60.0:
        return Window(v_min_pu=0.88, v_max_pu=1.10, f_min_hz=58.5, f_max_hz=61.2)
    return Window(v_min_pu=0.85, v_max_pu=1.10, f_min_hz=47.5, f_max_hz=51.5)


def default_reconnect(nominal_frequency: float) -> Window:
    """Return-to-service window. 60 Hz: IEEE 1547-2018 clause 4.10.2 Table 4, 0.917–1.05 pu,
    59.5–60.1 Hz. 50 Hz: EN 50549-1 clause 4.10 reconnection, 0.85–1.10 pu, 47.5–50.1 Hz."""
    if nominal_frequency == 60.0:
        return Window(v_min_pu=0.917, v_max_pu=1.05, f_min_hz=59.5, f_max_hz=60.1)
    return Window(v_min_pu=0.85, v_max_pu=1.10, f_min_hz=47.5, f_max_hz=50.1)


# ------------------------------------------------------------------ checking and parsing

_REQUIRED = object()

# key: (kind, default, lo, hi) — lo/hi inclusive, None for unbounded
_SITE_KEYS: dict[str, tuple[str, Any, float | None, float | None]] = {
    "nominal_voltage": ("float", _REQUIRED, 50.0, 1000.0),
    "nominal_frequency": ("float", _REQUIRED, 50.0, 60.0),
    "inverter_max_w": ("float", _REQUIRED, 1.0, 1e6),
    "reserve_soc": ("float", 20.0, 0.0, 100.0),
    "grid_sensors": ("int", 1, 1, 2),
    "ride_through_s": ("float", 1.0, 0.0, 600.0),
    "return_stable_s": ("float", 300.0, 0.0, 86400.0),
    "sensor_v_tolerance_pu": ("float", 0.05, 0.0, 1.0),
    "sensor_f_tolerance_hz": ("float", 0.1, 0.0, 10.0),
    "contact_timeout_s": ("float", 1.0, 0.01, 60.0),
    "charger_timeout_s": ("float", 5.0, 0.01, 600.0),
    "neutral_ground_bond": ("bool", False, None, None),
    "restore_settle_s": ("float", 10.0, 0.0, 3600.0),
    "island_headroom": ("float", 0.9, 0.1, 1.0),
    "warn_band_soc": ("float", 5.0, 0.0, 100.0),
    "end_margin_soc": ("float", 0.5, 0.0, 100.0),
    "allow_export": ("bool", False, None, None),
    "grid_setpoint_w": ("float", 0.0, -1e6, 1e6),
    "follow_tolerance_w": ("float", 300.0, 0.0, 1e6),
    "follow_timeout_s": ("float", 2.0, 0.0, 600.0),
    "charger_retry_s": ("float", 300.0, 0.0, 86400.0),
}
_WINDOW_KEYS = {"v_min_pu": (0.0, 2.0), "v_max_pu": (0.0, 2.0), "f_min_hz": (40.0, 70.0), "f_max_hz": (40.0, 70.0)}
_CIRCUIT_KEYS = {"name", "priority", "power_w", "min_off_s"}


def number(key: str, value: Any, lo: float | None = None, hi: float | None = None, *, integer: bool = False) -> float:
    """``value`` as a finite number within [lo, hi], else ConfigError naming ``key``.
    (tomllib reads ``nan`` and ``inf``: they are refused here, not clamped.)"""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"want a number, got {value!r}")
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise ConfigError(key, f"want a whole number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(key, f"want a finite number, got {value!r}")
    if lo is not None and v < lo:
        raise ConfigError(key, f"{value!r} is below the minimum {lo:g}")
    if hi is not None and v > hi:
        raise ConfigError(key, f"{value!r} is above the maximum {hi:g}")
    return int(v) if integer else v


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"want true or false, got {value!r}")
    return value


def reject_unknown(prefix: str, data: Mapping[str, Any], known: set[str] | dict) -> None:
    for k in data:
        if k not in known:
            raise ConfigError(f"{prefix}{k}", "unknown key")


def _window(key: str, data: Any, default: Window) -> Window:
    if not isinstance(data, Mapping):
        raise ConfigError(key, "want a table")
    reject_unknown(key + ".", data, _WINDOW_KEYS)
    vals = {k: number(f"{key}.{k}", data[k], *_WINDOW_KEYS[k]) if k in data else getattr(default, k)
            for k in _WINDOW_KEYS}
    if vals["v_min_pu"] >= vals["v_max_pu"]:
        raise ConfigError(f"{key}.v_min_pu", "must be below v_max_pu")
    if vals["f_min_hz"] >= vals["f_max_hz"]:
        raise ConfigError(f"{key}.f_min_hz", "must be below f_max_hz")
    return Window(**vals)


def circuits_from_list(items: Any, key: str = "circuits") -> tuple[CircuitConfig, ...]:
    if not isinstance(items, list):
        raise ConfigError(key, "want a list of tables ([[circuits]])")
    out: list[CircuitConfig] = []
    seen: set[str] = set()
    for i, c in enumerate(items):
        k = f"{key}[{i}]"
        if not isinstance(c, Mapping):
            raise ConfigError(k, "want a table")
        reject_unknown(k + ".", c, _CIRCUIT_KEYS)
        for req in ("name", "priority", "power_w"):
            if req not in c:
                raise ConfigError(f"{k}.{req}", "missing")
        name = c["name"]
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ConfigError(f"{k}.name", f"want a name of 1-64 characters, got {name!r}")
        if name in seen:
            raise ConfigError(f"{k}.name", f"duplicate circuit {name!r}")
        seen.add(name)
        try:
            prio = Priority(c["priority"])
        except ValueError:
            raise ConfigError(f"{k}.priority", f"want critical, essential or deferrable, got {c['priority']!r}") from None
        out.append(CircuitConfig(name=name, priority=prio, power_w=number(f"{k}.power_w", c["power_w"], 0.0, 1e6),
                                 min_off_s=number(f"{k}.min_off_s", c.get("min_off_s", 0.0), 0.0, 86400.0)))
    return tuple(out)


def site_from_dict(site: Mapping[str, Any], circuits: Any = (), *, prefix: str = "site.",
                   extra_keys: set[str] = frozenset()) -> SiteConfig:
    """A SiteConfig from plain data (a TOML table); ``extra_keys`` are accepted and ignored (the
    scenario's own keys in the same table)."""
    if not isinstance(site, Mapping):
        raise ConfigError(prefix.rstrip("."), "want a table")
    reject_unknown(prefix, site, set(_SITE_KEYS) | {"trip", "reconnect"} | set(extra_keys))
    vals: dict[str, Any] = {}
    for k, (kind, default, lo, hi) in _SITE_KEYS.items():
        if k not in site:
            if default is _REQUIRED:
                raise ConfigError(prefix + k, "missing")
            vals[k] = default
        elif kind == "bool":
            vals[k] = boolean(prefix + k, site[k])
        else:
            vals[k] = number(prefix + k, site[k], lo, hi, integer=kind == "int")
    if vals["nominal_frequency"] not in (50.0, 60.0):
        raise ConfigError(prefix + "nominal_frequency", f"want 50 or 60, got {site['nominal_frequency']!r}")
    f = vals["nominal_frequency"]
    vals["trip"] = _window(prefix + "trip", site["trip"], default_trip(f)) if "trip" in site else default_trip(f)
    vals["reconnect"] = (_window(prefix + "reconnect", site["reconnect"], default_reconnect(f))
                         if "reconnect" in site else default_reconnect(f))
    vals["circuits"] = circuits_from_list(list(circuits) if isinstance(circuits, tuple) else circuits)
    cfg = SiteConfig(**vals)
    check_site(cfg, prefix=prefix)
    return cfg


def check_site(cfg: SiteConfig, *, island_capacity_w: float | None = None, prefix: str = "site.") -> None:
    """Cross-field checks: the critical circuits must fit in the island (the smaller of the inverter
    rating and, where known, the car's/charger's discharge limit)."""
    cap = cfg.inverter_max_w if island_capacity_w is None else min(cfg.inverter_max_w, island_capacity_w)
    total = 0.0
    for i, c in enumerate(cfg.circuits):
        if c.priority is not Priority.CRITICAL:
            continue
        total += c.power_w
        if c.power_w > cap:
            raise ConfigError(f"circuits[{i}].power_w", f"critical circuit {c.name!r} ({c.power_w:g} W) is larger "
                                                        f"than the island can carry ({cap:g} W)")
        if total > cap:
            raise ConfigError(f"circuits[{i}].power_w", f"the critical circuits up to {c.name!r} ({total:g} W) are "
                                                        f"more than the island can carry ({cap:g} W)")
    if cfg.end_margin_soc > cfg.warn_band_soc:
        raise ConfigError(prefix + "end_margin_soc", "must not exceed warn_band_soc")


def config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(SiteConfig))

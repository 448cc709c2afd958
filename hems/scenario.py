"""Scenario files for ``v2h hems simulate``: TOML in, a ready ``Site`` out (format: docs/hems.md).

Every key is checked: an unknown key, a missing rating, a number that is not finite or out of
range, a critical circuit the island cannot carry — each is one ``ConfigError`` naming the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any, Mapping

from .config import ConfigError, SiteConfig, boolean, check_site, number, reject_unknown, site_from_dict
from .devices.charger_sim import CarSim
from .sim import FAULTS, SimEvent, Site

_SCENARIO_SITE_KEYS = {"step_s", "duration_s"}
_CAR = {"capacity_kwh": (0.1, 1000.0, None), "soc": (0.0, 100.0, None), "min_soc": (0.0, 100.0, 10.0),
        "charge_max_w": (0.0, 1e6, None), "discharge_max_w": (0.0, 1e6, None)}
_CHARGER = {"max_charge_w": (0.0, 1e6, 11000.0), "max_discharge_w": (0.0, 1e6, 11000.0),
            "efficiency": (0.5, 1.0, 0.95)}
_EVENT_KEYS = {"at_s", "grid_voltage", "grid_frequency", "sensor", "circuit", "power_w", "pv_w", "plugged", "soc",
               "fault", "restart"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    cfg: SiteConfig
    car: dict
    charger: dict
    events: tuple[SimEvent, ...]
    step_s: float
    duration_s: float

    def site(self) -> Site:
        return Site(self.cfg, car=CarSim(**self.car), charger_max_charge_w=self.charger["max_charge_w"],
                    charger_max_discharge_w=self.charger["max_discharge_w"], efficiency=self.charger["efficiency"],
                    events=list(self.events), step_s=self.step_s)


def load_scenario(text: str) -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("scenario", f"not valid TOML: {e}") from None
    return scenario_from_dict(data)


def _table(data: Mapping[str, Any], key: str, required: bool = True) -> Mapping[str, Any]:
    if key not in data:
        if required:
            raise ConfigError(key, "missing")
        return {}
    if not isinstance(data[key], Mapping):
        raise ConfigError(key, "want a table")
    return data[key]


def scenario_from_dict(data: Mapping[str, Any]) -> Scenario:
    reject_unknown("", data, {"site", "car", "charger", "circuits", "events"})
    site = _table(data, "site")
    step_s = number("site.step_s", site.get("step_s", 1.0), 0.01, 3600.0)
    if "duration_s" not in site:
        raise ConfigError("site.duration_s", "missing")
    duration = number("site.duration_s", site["duration_s"], 0.0, 366 * 86400.0)
    if "circuits" in data and not isinstance(data["circuits"], list):
        raise ConfigError("circuits", "want a list of tables ([[circuits]])")
    cfg = site_from_dict(site, data.get("circuits", []), extra_keys=_SCENARIO_SITE_KEYS)

    car_t = _table(data, "car")
    reject_unknown("car.", car_t, set(_CAR) | {"plugged"})
    car: dict[str, Any] = {}
    for k, (lo, hi, default) in _CAR.items():
        if k not in car_t:
            if default is None:
                raise ConfigError(f"car.{k}", "missing")
            car[k] = default
        else:
            car[k] = number(f"car.{k}", car_t[k], lo, hi)
    car["plugged"] = boolean("car.plugged", car_t.get("plugged", True))
    ch_t = _table(data, "charger", required=False)
    reject_unknown("charger.", ch_t, _CHARGER)
    charger = {k: number(f"charger.{k}", ch_t.get(k, d), lo, hi) for k, (lo, hi, d) in _CHARGER.items()}
    check_site(cfg, island_capacity_w=min(car["discharge_max_w"], charger["max_discharge_w"]))

    evs = data.get("events", [])
    if not isinstance(evs, list):
        raise ConfigError("events", "want a list of tables ([[events]])")
    names = set(cfg.circuit_names)
    events = tuple(event_from_dict(f"events[{i}]", e, names, cfg, duration) for i, e in enumerate(evs))
    return Scenario(cfg=cfg, car=car, charger=charger, events=events, step_s=step_s, duration_s=duration)


def event_from_dict(k: str, e: Any, names: set[str], cfg: SiteConfig, duration: float) -> SimEvent:
    if not isinstance(e, Mapping):
        raise ConfigError(k, "want a table")
    reject_unknown(k + ".", e, _EVENT_KEYS)
    if "at_s" not in e:
        raise ConfigError(f"{k}.at_s", "missing")
    if len(e) == 1:
        raise ConfigError(k, "an event needs something to happen besides at_s")
    v: dict[str, Any] = {"at_s": number(f"{k}.at_s", e["at_s"], 0.0, duration)}
    if "grid_voltage" in e:
        v["grid_voltage"] = number(f"{k}.grid_voltage", e["grid_voltage"], 0.0, 2.0 * cfg.nominal_voltage)
    if "grid_frequency" in e:
        v["grid_frequency"] = number(f"{k}.grid_frequency", e["grid_frequency"], 0.0, 90.0)
    if "sensor" in e:
        v["sensor"] = int(number(f"{k}.sensor", e["sensor"], 1, cfg.grid_sensors, integer=True))
    if "circuit" in e:
        if e["circuit"] not in names:
            raise ConfigError(f"{k}.circuit", f"no circuit named {e['circuit']!r}")
        v["circuit"] = e["circuit"]
    if "power_w" in e:
        if "circuit" not in e:
            raise ConfigError(f"{k}.power_w", "needs a circuit")
        v["power_w"] = number(f"{k}.power_w", e["power_w"], 0.0, 1e6)
    if "pv_w" in e:
        v["pv_w"] = number(f"{k}.pv_w", e["pv_w"], 0.0, 1e6)
    if "plugged" in e:
        v["plugged"] = boolean(f"{k}.plugged", e["plugged"])
    if "soc" in e:
        v["soc"] = number(f"{k}.soc", e["soc"], 0.0, 100.0)
    if "fault" in e:
        if e["fault"] not in FAULTS:
            raise ConfigError(f"{k}.fault", f"want one of {', '.join(sorted(FAULTS))}; got {e['fault']!r}")
        if e["fault"] == "relay_stuck_on" and "circuit" not in e:
            raise ConfigError(f"{k}.circuit", "relay_stuck_on needs the circuit")
        v["fault"] = e["fault"]
    if "restart" in e:
        v["restart"] = boolean(f"{k}.restart", e["restart"])
    return SimEvent(**v)

"""A small site for the tests: three circuits, one car, one or two grid sensors."""

from __future__ import annotations

from hems.config import site_from_dict
from hems.devices.charger_sim import CarSim
from hems.sim import SimEvent, Site

CIRCUITS = [
    {"name": "fridge", "priority": "critical", "power_w": 300, "min_off_s": 120},
    {"name": "sump", "priority": "critical", "power_w": 800},
    {"name": "lights", "priority": "essential", "power_w": 400},
    {"name": "heat_pump", "priority": "essential", "power_w": 3000, "min_off_s": 300},
    {"name": "dryer", "priority": "deferrable", "power_w": 5000},
]


def make_cfg(**site):
    base = {"nominal_voltage": 120.0, "nominal_frequency": 60, "inverter_max_w": 7600, "reserve_soc": 20}
    base.update(site)
    return site_from_dict(base, site.pop("circuits", CIRCUITS) if "circuits" in site else CIRCUITS)


def make_site(events=(), *, soc=80.0, min_soc=10.0, capacity_kwh=60.0, discharge_max_w=11000.0, **site) -> Site:
    cfg = make_cfg(**site)
    car = CarSim(capacity_kwh=capacity_kwh, soc=soc, min_soc=min_soc, discharge_max_w=discharge_max_w)
    return Site(cfg, car=car, events=[SimEvent(**e) for e in events])


def phases(site: Site) -> list[str]:
    out = []
    for r in site.rows:
        if not out or out[-1] != r["phase"]:
            out.append(r["phase"])
    return out


def row_at(site: Site, t: float) -> dict:
    last = None
    for r in site.rows:
        if r["t"] > t:
            break
        last = r
    return last

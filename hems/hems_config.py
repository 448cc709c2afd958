"""The energy manager's configuration (``v2h hems --config FILE``): TOML, every key checked.

Sections (docs/hems.md, "v2h hems"): ``[site]`` and ``[[circuits]]`` as in a scenario (the house,
the transfer switch, the island); ``[ocpp]`` the server the chargers connect to and their
passwords; ``[charger]`` the house's charger; ``[[tokens]]`` V2X consent per idToken;
``[plan]`` the planner's prices and car defaults; ``[[outages]]`` announced outages (a utility's
shut-off warning: ``start``, ``end`` with their offsets, ``load_w``) the plan fills the car for;
``[solar]`` the array the plan forecasts solar for (pvlib clear-sky corrected by the inverter's
measurements) or a forecast ``file``; ``[http]`` the API and dashboard; ``[[events]]`` what
happens to the simulated house (grid outages, loads, solar), as in a scenario; ``[devices]`` the house's real Modbus devices instead
of the simulated house (``hems.live``: meters, solar inverter, relay module; no ``[[events]]``).

An unknown key, a number that is not finite or out of range, a missing rating: one
``ConfigError`` naming the key. ``DEFAULT`` is the configuration used without ``--config``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .config import ConfigError, SiteConfig, boolean, check_site, number, reject_unknown, site_from_dict
from .live import DevicesConfig, devices_from_dict
from .forecast.solar import PvArray
from .plan.model import Outage, outages_from_config
from .scenario import event_from_dict
from .sim import SimEvent

DEFAULT = """
# v2h hems, default configuration: a 230 V / 50 Hz house on simulated devices, one charger
[site]
nominal_voltage = 230
nominal_frequency = 50
inverter_max_w = 7400
reserve_soc = 30

[[circuits]]
name = "fridge"
priority = "critical"
power_w = 150
min_off_s = 300

[[circuits]]
name = "heating_pump"
priority = "critical"
power_w = 250

[[circuits]]
name = "lights_and_sockets"
priority = "essential"
power_w = 600

[[circuits]]
name = "kitchen"
priority = "essential"
power_w = 1500

[[circuits]]
name = "washer_dryer"
priority = "deferrable"
power_w = 2500

[ocpp]
host = "127.0.0.1"
port = 9000

[ocpp.stations]
CS001 = "a-16-to-40-char-password"

[charger]
station_id = "CS001"

[http]
host = "127.0.0.1"
port = 8080
"""

_OCPP = {"host", "port", "stations", "pki", "mutual_tls", "heartbeat_interval", "contract_pool"}
_CHARGER = {"station_id": None, "max_charge_w": (0.0, 1e6, 11000.0), "max_discharge_w": (0.0, 1e6, 11000.0),
            "deadband_w": (0.0, 1e5, 200.0), "meter_interval_s": (1, 86400, 60), "max_offline_duration": (1, 86400, 60),
            "car_min_soc": (0.0, 100.0, 10.0), "standby_w": (0.0, 1e4, 30.0), "efficiency": (0.5, 1.0, 0.9)}
_PLAN = {"interval_s": (60.0, 86400.0, 900.0), "horizon_h": (1.0, 48.0, 24.0), "import_price": (-10.0, 10.0, 0.30),
         "export_price": (-10.0, 10.0, 0.08), "wear_cost": (0.0, 10.0, 0.02), "capacity_kwh": (1.0, 1000.0, 60.0),
         "target_soc": (0.0, 100.0, 80.0), "charge_efficiency": (0.5, 1.0, 0.95),
         "discharge_efficiency": (0.5, 1.0, 0.95), "annual_kwh": (100.0, 1e6, 3500.0)}
_PLAN_OTHER = {"tariff", "tariff_format", "tariff_refresh_s", "departure", "return", "trip_kwh", "enabled"}
# a spot-price source (tariff_format "spot", EUR/MWh) mapped to the household's prices per kWh
_SPOT = {"import_factor": (0.0, 10.0, 1.0), "import_adder": (-10.0, 10.0, 0.0), "export_factor": (0.0, 10.0, 1.0),
         "export_adder": (-10.0, 10.0, 0.0)}
_SOLAR_ARRAY = {"latitude", "longitude", "tilt_deg", "azimuth_deg", "peak_kw", "altitude_m", "inverter_kw", "losses"}
_HTTP = {"host", "port"}
_TOKEN = {"id_token", "status", "allowed"}
_TRANSFERS = {"DC", "DC_BPT", "AC_single_phase", "AC_two_phase", "AC_three_phase", "AC_BPT", "AC_BPT_DER", "AC_DER",
              "DC_ACDP", "DC_ACDP_BPT", "WPT"}


@dataclass(frozen=True, kw_only=True)
class Token:
    """V2X consent for one idToken (OCPP 2.1 Q01: AuthorizeResponse.allowedEnergyTransfer)."""

    id_token: str
    status: str = "Accepted"
    allowed: tuple[str, ...] = ("DC", "DC_BPT", "AC_three_phase", "AC_BPT")


@dataclass(frozen=True, kw_only=True)
class HemsConfig:
    site: SiteConfig
    events: tuple[SimEvent, ...] = ()
    ocpp_host: str = "127.0.0.1"
    ocpp_port: int = 9000
    stations: dict[str, str] = field(default_factory=dict)   # station id → basic-auth password
    pki: str | None = None                                  # `v2h pki init` folder: wss with its ocpp/ server cert
    mutual_tls: bool = False                                # security profile 3
    heartbeat_interval: int = 300
    # a `v2h pki init` folder whose provisioning services answer the cars' certificate requests
    # (Get15118EVCertificate) and the status of the contracts they issue (GetCertificateStatus)
    contract_pool: str | None = None
    charger: dict = field(default_factory=dict)
    tokens: tuple[Token, ...] = ()
    plan: dict = field(default_factory=dict)
    outages: tuple[Outage, ...] = ()                        # announced: the plan fills the car before each
    # the plan's solar forecast: a pvlib model of the array (hems.forecast.solar.PvArray), a
    # forecast file's path (time,pv_w rows), or None (the simulator's script, or no solar)
    solar: PvArray | str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    devices: DevicesConfig | None = None                    # real devices; None: the simulated house

    @property
    def station_id(self) -> str:
        return self.charger["station_id"]

    def with_site(self, **changes) -> HemsConfig:
        return replace(self, site=replace(self.site, **changes))


def load(text: str) -> HemsConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"not valid TOML: {e}") from None
    return from_dict(data)


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(key, "want a table")
    return value


def _port(key: str, value: Any) -> int:
    return int(number(key, value, 0, 65535, integer=True))


def _text(key: str, value: Any, max_len: int = 255) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ConfigError(key, f"want a non-empty string of at most {max_len} characters")
    return value


def from_dict(data: Mapping[str, Any]) -> HemsConfig:
    reject_unknown("", data, {"site", "circuits", "ocpp", "charger", "tokens", "plan", "outages", "solar", "http",
                              "events", "devices"})
    if "site" not in data:
        raise ConfigError("site", "missing")
    cfg = site_from_dict(_table(data, "site"), data.get("circuits", []))

    o = _table(data, "ocpp")
    reject_unknown("ocpp.", o, _OCPP)
    stations = _table(o, "stations")
    for sid, pw in stations.items():
        _text(f"ocpp.stations.{sid}", sid, 48)
        if not isinstance(pw, str) or not 16 <= len(pw) <= 40:
            raise ConfigError(f"ocpp.stations.{sid}", "the password must be 16 to 40 characters (OCPP BasicAuthPassword)")

    c = _table(data, "charger")
    reject_unknown("charger.", c, _CHARGER)
    charger: dict[str, Any] = {"station_id": _text("charger.station_id", c.get("station_id", next(iter(stations), "CS001")),
                                                   48)}
    for k, spec in _CHARGER.items():
        if spec is None:
            continue
        lo, hi, default = spec
        charger[k] = number(f"charger.{k}", c.get(k, default), lo, hi, integer=isinstance(default, int))
    check_site(cfg, island_capacity_w=charger["max_discharge_w"])

    tokens = []
    raw_tokens = data.get("tokens", [])
    if not isinstance(raw_tokens, list):
        raise ConfigError("tokens", "want a list of tables ([[tokens]])")
    for i, t in enumerate(raw_tokens):
        k = f"tokens[{i}]"
        if not isinstance(t, Mapping):
            raise ConfigError(k, "want a table")
        reject_unknown(k + ".", t, _TOKEN)
        status = t.get("status", "Accepted")
        if status not in ("Accepted", "Blocked", "Expired", "Invalid", "NoCredit", "NotAllowedTypeEVSE",
                          "NotAtThisLocation", "NotAtThisTime", "Unknown"):
            raise ConfigError(f"{k}.status", f"not an OCPP AuthorizationStatus: {status!r}")
        allowed = t.get("allowed", list(Token.allowed))
        if not isinstance(allowed, list) or not set(allowed) <= _TRANSFERS:
            raise ConfigError(f"{k}.allowed", f"want a list of OCPP energy transfer modes ({', '.join(sorted(_TRANSFERS))})")
        tokens.append(Token(id_token=_text(f"{k}.id_token", t.get("id_token"), 255), status=status,
                            allowed=tuple(allowed)))

    p = _table(data, "plan")
    reject_unknown("plan.", p, set(_PLAN) | _PLAN_OTHER | {f"spot_{k}" for k in _SPOT})
    plan: dict[str, Any] = {k: number(f"plan.{k}", p.get(k, d), lo, hi) for k, (lo, hi, d) in _PLAN.items()}
    plan["enabled"] = boolean("plan.enabled", p.get("enabled", True))
    plan["tariff"] = _text("plan.tariff", p["tariff"], 4096) if "tariff" in p else None
    plan["tariff_format"] = p.get("tariff_format", "v2h")
    if plan["tariff_format"] not in ("v2h", "spot"):
        raise ConfigError("plan.tariff_format", f"want \"v2h\" or \"spot\", got {plan['tariff_format']!r}")
    plan["tariff_refresh_s"] = number("plan.tariff_refresh_s", p.get("tariff_refresh_s", 3600.0), 60.0, 86400.0)
    plan["tariff_spot"] = {k: number(f"plan.spot_{k}", p.get(f"spot_{k}", d), lo, hi)
                           for k, (lo, hi, d) in _SPOT.items()}
    url_only = [k for k in ("tariff_format", "tariff_refresh_s", *(f"spot_{k}" for k in _SPOT)) if k in p]
    if url_only and not is_url(plan["tariff"]):
        raise ConfigError(f"plan.{url_only[0]}",
                          "only for a tariff fetched from an http:// or https:// URL (plan.tariff)")
    spot_keys = [k for k in url_only if k.startswith("spot_")]
    if spot_keys and plan["tariff_format"] != "spot":
        raise ConfigError(f"plan.{spot_keys[0]}", "only with tariff_format = \"spot\"")
    plan["departure"] = parse_clock("plan.departure", p["departure"]) if "departure" in p else None
    plan["return"] = parse_clock("plan.return", p["return"]) if "return" in p else None
    plan["trip_kwh"] = number("plan.trip_kwh", p.get("trip_kwh", 0.0), 0.0, 1000.0)

    h = _table(data, "http")
    reject_unknown("http.", h, _HTTP)
    evs = data.get("events", [])
    if not isinstance(evs, list):
        raise ConfigError("events", "want a list of tables ([[events]])")
    names = set(cfg.circuit_names)
    events = tuple(event_from_dict(f"events[{i}]", e, names, cfg, 366 * 86400.0) for i, e in enumerate(evs))
    devices = devices_from_dict(data["devices"], cfg) if "devices" in data else None
    if devices is not None and events:
        raise ConfigError("events", "the house runs on real devices ([devices]): there is nothing to simulate")
    return HemsConfig(site=cfg, events=events, ocpp_host=_text("ocpp.host", o.get("host", "127.0.0.1")),
                      ocpp_port=_port("ocpp.port", o.get("port", 9000)), stations=dict(stations),
                      pki=_text("ocpp.pki", o["pki"], 4096) if "pki" in o else None,
                      mutual_tls=boolean("ocpp.mutual_tls", o.get("mutual_tls", False)),
                      heartbeat_interval=int(number("ocpp.heartbeat_interval", o.get("heartbeat_interval", 300),
                                                    1, 86400, integer=True)),
                      contract_pool=_text("ocpp.contract_pool", o["contract_pool"], 4096)
                      if "contract_pool" in o else None,
                      charger=charger, tokens=tuple(tokens), plan=plan,
                      outages=outages_from_config(data.get("outages", [])),
                      solar=solar_from_dict(_table(data, "solar")) if "solar" in data else None,
                      http_host=_text("http.host", h.get("host", "127.0.0.1")), http_port=_port("http.port", h.get("port", 8080)),
                      devices=devices)


def is_url(tariff: str | None) -> bool:
    """``[plan] tariff`` is fetched over HTTP (else it is a file)."""
    return tariff is not None and tariff.startswith(("http://", "https://"))


def solar_from_dict(t: Mapping[str, Any]) -> PvArray | str:
    """``[solar]``: ``file`` (a forecast, time,pv_w rows) or the array (latitude, longitude,
    tilt_deg, azimuth_deg, peak_kw; optional altitude_m, inverter_kw, losses), not both."""
    if "file" in t:
        reject_unknown("solar.", t, {"file"})
        return _text("solar.file", t["file"], 4096)
    reject_unknown("solar.", t, _SOLAR_ARRAY)
    for key in ("latitude", "longitude", "tilt_deg", "azimuth_deg", "peak_kw"):
        if key not in t:
            raise ConfigError(f"solar.{key}", "missing (or give solar.file, a forecast)")
    values = {k: number(f"solar.{k}", v) for k, v in t.items()}
    try:
        return PvArray(**values)
    except ConfigError as e:  # PvArray names its fields pv.*; the config's key is solar.*
        raise ConfigError("solar." + e.key.split(".", 1)[-1], e.message) from None


def parse_clock(key: str, value: Any) -> tuple[int, int]:
    """'07:30' → (7, 30)."""
    try:
        hh, mm = str(value).split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ConfigError(key, f"want HH:MM, got {value!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ConfigError(key, f"want HH:MM, got {value!r}")
    return h, m

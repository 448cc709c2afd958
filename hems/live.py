"""The live house, sans-I/O: the site controller on real devices (``[devices]`` in the manager's
configuration) instead of the simulated house of ``hems.sim``.

The Modbus adapter (``hems.aio.devices``) polls the meters and the relay module and hands their
last readings to ``LiveSite.update``; the energy manager visits the site as it visits the simulated
one (``visit(now)``: measurements from those readings, one controller step, the invariant checker),
and the adapter writes ``coils()`` to the relay module. A reading not taken yet or failed is
``None``, which the controller treats as a failed sensor or an unproven contact. The charger stays
the one the manager drives over OCPP 2.1 (``hems.ocpp_charger.OCPPCharger``).

What the house is made of here (docs/hems.md, "Real devices"): the grid meter's per-phase voltage,
frequency and net power (+ import); the house load from a house meter, else computed from the grid
meter, the solar inverter and the charger's reported power; circuit power is each energised
circuit's configured ``power_w`` (no per-circuit meters); the contacts' positions are their
auxiliary contacts' feedback.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .config import ConfigError, SiteConfig, number, reject_unknown
from .controller import SiteController
from .invariants import InvariantChecker, Physical
from .model import ChargerMode, Commands, GridReading, Measurements
from .sim import Stats

DEVICE_ALARM_S = 1.0     # a device failing this long raises the alarm ``device:NAME``
ROWS_KEPT = 1000         # timeline rows kept in memory (the manager logs each decision as it happens)
TOL_W = 50.0             # a house meter reading further below 0 than this is not a house load
MAX_COILS = 1968         # Modbus write multiple coils: at most this many in one request
MAX_INPUTS = 2000        # Modbus read discrete inputs: at most this many in one request


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True, kw_only=True, slots=True)
class ModbusEndpoint:
    """A Modbus TCP device: its address and its unit identifier (several may share a gateway)."""

    host: str
    port: int = 502
    device_id: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class IOAddresses:
    """Coil or discrete-input addresses of the transfer switch and the circuit relays (in the
    order of ``[[circuits]]``); ``bond`` None where no neutral–ground bond contactor is fitted."""

    utility: int
    island: int
    bond: int | None
    relays: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class SwitchConfig:
    endpoint: ModbusEndpoint
    coils: IOAddresses
    inputs: IOAddresses


@dataclass(frozen=True, kw_only=True, slots=True)
class DevicesConfig:
    """The ``[devices]`` table: the meters, the solar inverter and the relay module."""

    grid_meters: tuple[ModbusEndpoint, ...]       # one per configured grid sensor (site.grid_sensors)
    switch: SwitchConfig
    house_meter: ModbusEndpoint | None = None
    pv_inverter: ModbusEndpoint | None = None
    poll_s: float = 0.2
    timeout_s: float = 0.25

    @property
    def names(self) -> tuple[str, ...]:
        """The devices fitted, as named in alarms and counters."""
        meters = ("grid_meter", "grid_meter_2")[:len(self.grid_meters)]
        return (*meters, *(("house_meter",) if self.house_meter else ()),
                *(("pv_inverter",) if self.pv_inverter else ()), "switch")


_DEVICES_KEYS = {"poll_s", "timeout_s", "grid_meter", "grid_meter_2", "house_meter", "pv_inverter", "switch"}
_ENDPOINT_KEYS = {"host", "port", "device_id"}
_IO_KEYS = {"utility", "island", "bond", "relays"}


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "want a table")
    return value


def _endpoint(key: str, data: Any, extra: set[str] = frozenset()) -> ModbusEndpoint:
    data = _table(key, data)
    reject_unknown(key + ".", data, _ENDPOINT_KEYS | extra)
    host = data.get("host")
    if host is None:
        raise ConfigError(f"{key}.host", "missing")
    if not isinstance(host, str) or not host or len(host) > 253:
        raise ConfigError(f"{key}.host", f"want a host name or address, got {host!r}")
    return ModbusEndpoint(host=host, port=number(f"{key}.port", data.get("port", 502), 1, 65535, integer=True),
                          device_id=number(f"{key}.device_id", data.get("device_id", 1), 0, 255, integer=True))


def _io(key: str, data: Any, site: SiteConfig, span_max: int) -> IOAddresses:
    data = _table(key, data)
    reject_unknown(key + ".", data, _IO_KEYS)
    for req in ("utility", "island", "relays"):
        if req not in data:
            raise ConfigError(f"{key}.{req}", "missing")
    bond = None
    if site.neutral_ground_bond:
        if "bond" not in data:
            raise ConfigError(f"{key}.bond", "missing (site.neutral_ground_bond = true)")
        bond = number(f"{key}.bond", data["bond"], 0, 65535, integer=True)
    elif "bond" in data:
        raise ConfigError(f"{key}.bond", "no bond contactor is fitted (site.neutral_ground_bond = false)")
    relays = data["relays"]
    n = len(site.circuits)
    if not isinstance(relays, list) or len(relays) != n:
        got = len(relays) if isinstance(relays, list) else repr(relays)
        raise ConfigError(f"{key}.relays", f"want {n} addresses, one per circuit in [[circuits]] order, got {got}")
    io = IOAddresses(utility=number(f"{key}.utility", data["utility"], 0, 65535, integer=True),
                     island=number(f"{key}.island", data["island"], 0, 65535, integer=True), bond=bond,
                     relays=tuple(number(f"{key}.relays[{i}]", a, 0, 65535, integer=True)
                                  for i, a in enumerate(relays)))
    named = [("utility", io.utility), ("island", io.island), *((("bond", bond),) if bond is not None else ()),
             *((f"relays[{i}]", a) for i, a in enumerate(io.relays))]
    seen: dict[int, str] = {}
    for name, addr in named:
        if addr in seen:
            raise ConfigError(f"{key}.{name}", f"address {addr} is also {key}.{seen[addr]}")
        seen[addr] = name
    if max(seen) - min(seen) + 1 > span_max:
        raise ConfigError(key, f"addresses {min(seen)}–{max(seen)} span more than the {span_max} one Modbus "
                               f"request can carry")
    return io


def devices_from_dict(data: Any, site: SiteConfig) -> DevicesConfig:
    """The ``[devices]`` table checked against the site (grid sensors, bond, circuits); a
    ``ConfigError`` names the key."""
    data = _table("devices", data)
    reject_unknown("devices.", data, _DEVICES_KEYS)
    for req in ("grid_meter", "switch"):
        if req not in data:
            raise ConfigError(f"devices.{req}", "missing")
    meters = [_endpoint("devices.grid_meter", data["grid_meter"])]
    if site.grid_sensors == 2:
        if "grid_meter_2" not in data:
            raise ConfigError("devices.grid_meter_2", "missing (site.grid_sensors = 2)")
        meters.append(_endpoint("devices.grid_meter_2", data["grid_meter_2"]))
    elif "grid_meter_2" in data:
        raise ConfigError("devices.grid_meter_2", "site.grid_sensors is 1")
    sw = _table("devices.switch", data["switch"])
    for req in ("coils", "inputs"):
        if req not in sw:
            raise ConfigError(f"devices.switch.{req}", "missing")
    switch = SwitchConfig(endpoint=_endpoint("devices.switch", sw, {"coils", "inputs"}),
                          coils=_io("devices.switch.coils", sw["coils"], site, MAX_COILS),
                          inputs=_io("devices.switch.inputs", sw["inputs"], site, MAX_INPUTS))
    return DevicesConfig(
        grid_meters=tuple(meters), switch=switch,
        house_meter=_endpoint("devices.house_meter", data["house_meter"]) if "house_meter" in data else None,
        pv_inverter=_endpoint("devices.pv_inverter", data["pv_inverter"]) if "pv_inverter" in data else None,
        poll_s=number("devices.poll_s", data.get("poll_s", 0.2), 0.05, 1.0),
        timeout_s=number("devices.timeout_s", data.get("timeout_s", 0.25), 0.05, 2.0))


# ------------------------------------------------------------------ the live house

Feedback = tuple[bool | None, bool | None, bool | None, tuple[bool | None, ...]]   # utility, island, bond, relays


@dataclass(frozen=True, kw_only=True, slots=True)
class Readings:
    """One poll of every device: ``None`` where a read failed (or was not taken yet)."""

    grid: tuple[GridReading | None, ...]   # per grid meter
    grid_w: float | None                   # net power at the (first) grid meter, + import
    house_w: float | None = None           # the house meter, where fitted
    pv_w: float | None = None              # the solar inverter, where fitted
    feedback: Feedback | None = None       # the relay module's discrete inputs


@dataclass(frozen=True, slots=True)
class SwitchCommand:
    """The coils to write: the transfer switch and the circuit relays (True = closed/on)."""

    utility: bool
    island: bool
    bond: bool
    relays: tuple[bool, ...]


@dataclass(slots=True)
class ContactView:
    """A contact as its auxiliary contact reads: the only position the live house knows."""

    fb: bool | None = None

    @property
    def closed(self) -> bool:
        return self.fb is True

    def feedback(self) -> bool | None:
        return self.fb


class LiveSite:
    """The house on real devices, with the surface ``hems.manager.EnergyManager`` uses from
    ``hems.sim.Site`` (time in seconds since the manager's start)."""

    def __init__(self, cfg: SiteConfig, devices: DevicesConfig, *, charger,
                 controller_factory: Callable[[SiteConfig, float], SiteController] = SiteController) -> None:
        """``charger``: the OCPP 2.1 charger (``OCPPCharger``), or anything with its surface."""
        self.cfg = cfg
        self.devices = devices
        self.charger = charger
        self.t = 0.0
        self.controller = controller_factory(cfg, 0.0)
        self.checker = InvariantChecker(cfg)
        self.checker.restarted(0.0)       # nothing may flow before every feedback is read (I8)
        n = len(cfg.circuits)
        self.readings = Readings(grid=(None,) * len(devices.grid_meters), grid_w=None)
        self.wanted_w: float | None = None
        self.rows: deque[dict] = deque(maxlen=ROWS_KEPT)
        self.stats = Stats()
        self.demand = [c.power_w for c in cfg.circuits]   # no per-circuit meters: the configured ratings
        self.energised = [False] * n
        self.utility, self.island, self.bond = ContactView(), ContactView(), ContactView()
        self.load_w = self.pv_w = self.export_w = 0.0
        self.grid_v: float | None = None
        self.grid_f: float | None = None
        self.last_cmd: Commands | None = None
        self.last_measurements: Measurements | None = None
        self.failures: dict[str, int] = {name: 0 for name in (*devices.names, "switch_write")}
        self._failing: dict[str, bool] = {}                # device → its last read (or write) failed
        self._failing_since: dict[str, float] = {}
        self._device_alarms: frozenset[str] = frozenset()
        self._pending_reasons: list[str] = []
        self._fresh = False
        self._switch_known = False        # the coils are not written before the module's state was read
        self._last_key: tuple | None = None

    # --- from the adapter ---------------------------------------------------------------------------
    def update(self, readings: Readings) -> None:
        """The last poll's readings; failed reads are counted per device."""
        if len(readings.grid) != len(self.devices.grid_meters):
            raise ValueError(f"want {len(self.devices.grid_meters)} grid readings, got {len(readings.grid)}")
        if readings.feedback is not None and len(readings.feedback[3]) != len(self.cfg.circuits):
            raise ValueError("want one relay feedback per circuit")
        failed = {"grid_meter": readings.grid[0] is None or readings.grid_w is None,
                  "switch": readings.feedback is None}
        if len(readings.grid) > 1:
            failed["grid_meter_2"] = readings.grid[1] is None
        if self.devices.house_meter is not None:
            failed["house_meter"] = readings.house_w is None
        if self.devices.pv_inverter is not None:
            failed["pv_inverter"] = readings.pv_w is None
        for name, bad in failed.items():
            self.failures[name] += bad
            self._failing[name] = bad
        self.readings = readings
        self._fresh = True

    def device_status(self) -> dict:
        """For the status: failed reads (and coil writes) per device since the start, and the
        devices whose last read failed."""
        return {"failures": dict(self.failures), "failing": sorted(n for n, bad in self._failing.items() if bad)}

    def failing(self, device: str) -> bool:
        """The device's last read failed (its value is not a measurement)."""
        return self._failing.get(device, False)

    def note_write(self, ok: bool) -> None:
        """The adapter wrote ``coils()`` (ok) or the module did not take them."""
        self.failures["switch_write"] += not ok
        self._failing["switch_write"] = not ok

    def coils(self) -> SwitchCommand | None:
        """What the relay module's coils must hold: the controller's last commands, once it has
        stepped with the module's feedback read (a restart must not move a contact it cannot see)."""
        c = self.last_cmd
        if c is None or not self._switch_known:
            return None
        return SwitchCommand(c.utility_close, c.island_close, c.bond_close, c.relays)

    # --- the manager's surface ------------------------------------------------------------------------
    def next_time(self, now: float) -> float:
        """At once when new readings wait, else the controller's next deadline."""
        if self._fresh:
            return now
        d = self.controller.next_deadline()
        return math.inf if d is None else d

    def reconfigure(self, cfg: SiteConfig) -> None:
        """A user's change of reserve or circuit priorities, for the controller and the checker alike."""
        self.controller.reconfigure(cfg)
        self.cfg = self.checker.cfg = cfg

    def visit(self, now: float) -> dict | None:
        """One controller step on the last readings; the row of the timeline if something changed."""
        self._account(now)
        ch = self.charger
        ch.advance(now)
        r = self.readings
        m = self._measure(r)
        c = self.controller.step(m, now, self.wanted_w)
        ch.send(c.charger)
        ch.resolve(now, self._grid_in_window(r), self._island_load(r, m))
        self.checker.check(now, m, c, self._physical(m))
        if m.utility_fb is not None:      # the module answered: its state is known from now on
            self._switch_known = True
        alarms = self._alarms(now)
        self.last_cmd = replace(c, alarms=c.alarms | alarms) if alarms else c
        self.last_measurements = m
        self._fresh = False
        self.stats.visits += 1
        soc = ch.car.soc
        if ch.car.plugged and soc is not None and soc < self.stats.min_soc:
            self.stats.min_soc = soc
        return self._row(now, m, self.last_cmd)

    @property
    def violations(self):
        return self.checker.violations

    def summary(self) -> dict:
        v = self.checker.violations
        soc = self.charger.car.soc
        return {"invariants_ok": not v, "violations": [x.to_dict() for x in v[:100]], "violation_count": len(v),
                "islanded_s": round(self.stats.islanded_s, 3),
                "energy_to_house_kwh": round(self.stats.energy_to_house_wh / 1000.0, 3),
                "min_soc": round(self.stats.min_soc, 2), "steps_checked": self.checker.steps,
                "visits": self.stats.visits, "end_soc": None if soc is None else round(soc, 2),
                "final_phase": self.controller.phase.value, "device_failures": dict(self.failures)}

    # --- inside -------------------------------------------------------------------------------------
    def _account(self, now: float) -> None:
        dt = now - self.t
        ch = self.charger
        if dt > 0 and self.island.closed and not self.utility.closed and ch.mode is ChargerMode.GRID_FORMING:
            self.stats.islanded_s += dt
            self.stats.energy_to_house_wh += -ch.power_w * dt / 3600.0
        self.t = max(self.t, now)

    def _measure(self, r: Readings) -> Measurements:
        n = len(self.cfg.circuits)
        ut, isl, bond, relays = r.feedback if r.feedback is not None else (None, None, None, (None,) * n)
        if not self.cfg.neutral_ground_bond:
            bond = None
        pv = r.pv_w if self.devices.pv_inverter is not None else 0.0
        self.utility.fb, self.island.fb, self.bond.fb = ut, isl, bond
        live = (ut is True and self._grid_live(r)) or (isl is True and self.charger.mode is ChargerMode.GRID_FORMING)
        self.energised = [fb is True and live for fb in relays]
        load = self._house_load(r, ut, isl, pv)
        rated = sum(d for d, e in zip(self.demand, self.energised) if e)
        self.load_w = rated if load is None else load     # shown; the controller is told None
        self.pv_w = pv or 0.0
        self.export_w = max(0.0, -r.grid_w) if r.grid_w is not None else 0.0
        first = next((g for g in r.grid if g is not None), None)
        self.grid_v = None if first is None else min(first.voltage_v)
        self.grid_f = None if first is None else first.frequency_hz
        return Measurements(grid=r.grid, load_w=load, pv_w=pv, utility_fb=ut, island_fb=isl, bond_fb=bond,
                            relay_fb=tuple(relays), circuit_w=(), charger=self.charger.read_state())

    def _house_load(self, r: Readings, ut: bool | None, isl: bool | None, pv: float | None) -> float | None:
        """The backed-up panel's load: the house meter; else on the grid the grid meter's import plus
        solar less the charger's grid-tie port, on the island what the charger supplies, 0 with both
        contacts open; None when it cannot be known."""
        if self.devices.house_meter is not None:
            w = r.house_w
            return None if w is None or w < -TOL_W else max(0.0, w)
        ch = self.charger
        if ut is True and isl is False:
            if r.grid_w is None or pv is None:
                return None
            tie = ch.power_w if ch.mode is not ChargerMode.GRID_FORMING else 0.0
            return max(0.0, r.grid_w + pv - tie)
        if ut is False and isl is True:
            return max(0.0, -ch.power_w) if ch.mode is ChargerMode.GRID_FORMING else 0.0
        if ut is False and isl is False:
            return 0.0
        return None

    def _island_load(self, r: Readings, m: Measurements) -> float | None:
        """What the island draws, for the charger's island setpoint (None: the island is not connected)."""
        if m.island_fb is not True:
            return None
        if self.devices.house_meter is not None and r.house_w is not None and r.house_w >= 0.0:
            return r.house_w
        return sum(c.power_w for c, fb in zip(self.cfg.circuits, m.relay_fb) if fb is True)

    def _grid_live(self, r: Readings) -> bool:
        """The utility energises its side (≥ 0.5 pu on every phase); unknown counts as live (no claim)."""
        known = [g for g in r.grid if g is not None]
        if not known:
            return True
        half = 0.5 * self.cfg.nominal_voltage
        return all(g.frequency_hz > 0.0 and min(g.voltage_v) >= half for g in known)

    def _grid_in_window(self, r: Readings) -> bool:
        """Inside the trip window by every meter that answered (unknown: no claim)."""
        w, nv = self.cfg.trip, self.cfg.nominal_voltage
        return all(w.f_min_hz <= g.frequency_hz <= w.f_max_hz
                   and all(w.v_min_pu * nv <= v <= w.v_max_pu * nv for v in g.voltage_v)
                   for g in r.grid if g is not None)

    def _physical(self, m: Measurements) -> Physical:
        """The physical state as far as it is known: the feedback and the meters (read before this
        step's commands: the checker sees a contact's move one poll late)."""
        ch = self.charger
        return Physical(grid_live=self._grid_live(self.readings), utility_closed=m.utility_fb is True,
                        island_closed=m.island_fb is True, bond_closed=m.bond_fb is True, charger_mode=ch.mode,
                        charger_w=ch.power_w, soc=ch.car.soc if ch.car.plugged else None,
                        car_min_soc=ch.car.min_soc, export_w=self.export_w,
                        relays_closed=tuple(f is True for f in m.relay_fb))

    def _alarms(self, now: float) -> frozenset[str]:
        """``device:NAME`` for each device whose reads (``switch_write``: the coils' writes) have
        failed for ``DEVICE_ALARM_S``."""
        out = set()
        for name in self.failures:
            if not self._failing.get(name, False):
                self._failing_since.pop(name, None)
                continue
            since = self._failing_since.setdefault(name, now)
            if now - since >= DEVICE_ALARM_S:
                out.add(f"device:{name}")
        fa = frozenset(out)
        for code in sorted(fa - self._device_alarms):
            self._pending_reasons.append(f"{code.removeprefix('device:')} not answering")
        for code in sorted(self._device_alarms - fa):
            self._pending_reasons.append(f"{code.removeprefix('device:')} answers again")
        self._device_alarms = fa
        return fa

    def _row(self, now: float, m: Measurements, c: Commands) -> dict | None:
        """A timeline row when the state changed (phase, switch, circuits, SoC to 0.1 %, alarms) or
        something was decided; the powers are in the row but, noisy on real meters, do not make one."""
        reasons = self._pending_reasons + [e.reason for e in self.controller.take_events()]
        self._pending_reasons = []
        ch = self.charger
        soc = None if ch.car.soc is None else round(ch.car.soc, 1)
        key = (self.controller.grid_ok, self.controller.phase.value, c.utility_close, m.utility_fb, c.island_close,
               m.island_fb, tuple(n.name for n, e in zip(self.cfg.circuits, self.energised) if e), soc,
               tuple(sorted(c.alarms)))
        if key == self._last_key and not reasons:
            return None
        self._last_key = key
        row = {"t": round(float(now), 6), "grid_ok": key[0], "phase": key[1], "utility_cmd": key[2],
               "utility_fb": key[3], "island_cmd": key[4], "island_fb": key[5], "circuits_on": list(key[6]),
               "soc": soc, "car_w": round(ch.power_w), "load_w": round(self.load_w), "export_w": round(self.export_w),
               "alarms": list(key[8]), "reason": "; ".join(reasons)}
        self.rows.append(row)
        return row

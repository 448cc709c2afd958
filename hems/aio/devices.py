"""The house's Modbus TCP devices on the event loop: every ``poll_s`` read the grid meter(s), the
house meter, the solar inverter and the relay module's auxiliary contacts concurrently, hand the
readings to the live site (``hems.live.LiveSite``), let the energy manager step, and write the
coils when the commands changed and at least every ``REFRESH_S`` (a relay module's watchdog drops
its coils when the writes stop).

A failed read or write never ends the loop: it is logged when a device stops or starts answering,
counted, and the controller sees ``None`` (a failed sensor, an unproven contact). Connections are
made on demand and again after a loss (backing off to ``RECONNECT_MAX_S``); a SunSpec device's
model directory is read once it answers, and again every ``DISCOVER_RETRY_S`` until it has been.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from hems.devices.modbus_relay import IOMap, RelayIO
from hems.devices.modbus_sunspec import SunSpecDevice, SunSpecInverter, SunSpecMeter
from hems.errors import SensorError
from hems.live import DevicesConfig, IOAddresses, LiveSite, ModbusEndpoint, Readings, SwitchCommand

log = logging.getLogger(__name__)
REFRESH_S = 0.5           # the coils are written again at least this often (well inside a 1 s watchdog)
RECONNECT_MIN_S = 0.5     # a lost connection is tried again after this, doubling up to RECONNECT_MAX_S
RECONNECT_MAX_S = 5.0
DISCOVER_RETRY_S = 2.0    # a SunSpec device whose directory could not be read is asked again after this
T = TypeVar("T")


class Link:
    """One Modbus TCP connection; the devices behind one gateway (one host and port) share it."""

    def __init__(self, endpoint: ModbusEndpoint, timeout_s: float) -> None:
        # pymodbus's own reconnect is off: ``ready`` reconnects, with its backoff, for every cause
        self.name = f"{endpoint.host}:{endpoint.port}"
        self.client = AsyncModbusTcpClient(endpoint.host, port=endpoint.port, timeout=timeout_s, retries=0,
                                           reconnect_delay=0)
        self._lock = asyncio.Lock()
        self._next_try = 0.0
        self._backoff = RECONNECT_MIN_S
        self.up: bool | None = None   # None until the first attempt

    async def ready(self) -> bool:
        """Connected, or connecting now if the backoff allows; False while it does not answer."""
        if self.client.connected:
            return True
        async with self._lock:
            if self.client.connected:
                return True
            loop = asyncio.get_running_loop()
            if loop.time() < self._next_try:
                return False
            ok = await self.client.connect()
            if ok:
                self._backoff = RECONNECT_MIN_S
                if self.up is not True:
                    log.info("Modbus %s connected", self.name)
            else:
                self._next_try = loop.time() + self._backoff
                if self.up is not False:
                    log.warning("Modbus %s: no connection; trying again every %.1f–%.0f s", self.name,
                                RECONNECT_MIN_S, RECONNECT_MAX_S)
                self._backoff = min(2 * self._backoff, RECONNECT_MAX_S)
            self.up = ok
            return ok

    def close(self) -> None:
        self.client.close()


@dataclass(slots=True)
class CycleStats:
    """How long a poll cycle takes (read, step, write), in seconds."""

    cycles: int = 0
    last_s: float = 0.0
    max_s: float = 0.0
    total_s: float = 0.0

    def add(self, s: float) -> None:
        self.cycles += 1
        self.last_s, self.max_s, self.total_s = s, max(self.max_s, s), self.total_s + s

    @property
    def mean_s(self) -> float:
        return self.total_s / self.cycles if self.cycles else 0.0


async def _nothing() -> None:
    """A device that is not fitted."""
    return


def _iomap(a: IOAddresses) -> IOMap:
    return IOMap(utility=a.utility, island=a.island, bond=a.bond, relays=a.relays)


class DeviceRunner:
    """Polls the devices of ``cfg`` for ``site`` and writes its coils."""

    def __init__(self, cfg: DevicesConfig, site: LiveSite, *, nominal_v: float) -> None:
        self.cfg, self.site = cfg, site
        self.links: dict[tuple[str, int], Link] = {}
        self.meters = [(self._link(e), SunSpecMeter(self._link(e).client, nominal_v, e.device_id))
                       for e in cfg.grid_meters]
        hm, pv = cfg.house_meter, cfg.pv_inverter
        self.house = None if hm is None else (self._link(hm),
                                              SunSpecMeter(self._link(hm).client, nominal_v, hm.device_id))
        self.pv = None if pv is None else (self._link(pv), SunSpecInverter(self._link(pv).client, pv.device_id))
        sw = cfg.switch
        self.switch_link = self._link(sw.endpoint)
        self.switch = RelayIO(self.switch_link.client, coils=_iomap(sw.coils), inputs=_iomap(sw.inputs),
                              device_id=sw.endpoint.device_id)
        self._discover_at: dict[int, float] = {}
        self._answering: dict[str, bool] = {}
        self._written: SwitchCommand | None = None
        self._written_at = float("-inf")
        self.stats = CycleStats()

    def _link(self, e: ModbusEndpoint) -> Link:
        key = (e.host, e.port)
        if key not in self.links:
            self.links[key] = Link(e, self.cfg.timeout_s)
        return self.links[key]

    # --- the loop -----------------------------------------------------------------------------------
    async def run(self, step: Callable[[float], None], clock: Callable[[], float]) -> None:
        """Poll, step (``step(clock())``: the manager's visit) and write, every ``poll_s``, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await self.poll_once(step, clock)
            self.stats.add(loop.time() - start)
            await asyncio.sleep(max(0.0, start + self.cfg.poll_s - loop.time()))

    async def poll_once(self, step: Callable[[float], None], clock: Callable[[], float]) -> None:
        """One cycle: every device read concurrently, the site updated and stepped, the coils written."""
        self.site.update(await self.read())
        step(clock())
        await self.write(asyncio.get_running_loop().time())

    async def read(self) -> Readings:
        """Every device once, concurrently; None for each that did not give a valid reading."""
        names = ("grid_meter", "grid_meter_2")
        jobs = [self._guard(n, link, m.read, m) for n, (link, m) in zip(names, self.meters)]
        jobs.append(self._guard("house_meter", self.house[0], self.house[1].read, self.house[1]) if self.house
                    else _nothing())
        jobs.append(self._guard("pv_inverter", self.pv[0], self.pv[1].read_power, self.pv[1]) if self.pv
                    else _nothing())
        jobs.append(self._guard("switch", self.switch_link, self.switch.read_feedback, None))
        *meters, house, pv, feedback = await asyncio.gather(*jobs)
        meters = [m if m is not None else (None, None) for m in meters]
        if feedback is not None and feedback[0] is None:   # the driver's "no answer": every input None
            feedback = None
        for name, ok in (*((n, m[0] is not None and m[1] is not None) for n, m in zip(names, meters)),
                         ("house_meter", self.house is None or (house is not None and house[1] is not None)),
                         ("pv_inverter", self.pv is None or pv is not None), ("switch", feedback is not None)):
            self._note(name, ok)
        return Readings(grid=tuple(m[0] for m in meters), grid_w=meters[0][1],
                        house_w=None if house is None else house[1], pv_w=pv, feedback=feedback)

    async def _guard(self, name: str, link: Link, op: Callable[[], Awaitable[T]],
                     sunspec: SunSpecDevice | None) -> T | None:
        """``op()`` once the link is up (and, for a SunSpec device, its directory read); None if
        either fails. The drivers turn failures into None themselves; a Modbus or socket error that
        gets past them is caught here, so that the loop goes on."""
        try:
            if not await link.ready():
                return None
            if sunspec is not None and not sunspec.models and not await self._discover(name, sunspec):
                return None
            return await op()
        except (ModbusException, SensorError, OSError, TimeoutError) as e:
            log.debug("%s: %s", name, e)
            return None

    async def _discover(self, name: str, dev: SunSpecDevice) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() < self._discover_at.get(id(dev), 0.0):
            return False
        try:
            models = await dev.discover()
        except SensorError as e:
            self._discover_at[id(dev)] = loop.time() + DISCOVER_RETRY_S
            log.warning("%s: SunSpec directory not read (%s); asking again in %.0f s", name, e, DISCOVER_RETRY_S)
            return False
        log.info("%s: SunSpec models %s", name, sorted(models))
        return True

    def _note(self, name: str, ok: bool) -> None:
        """Log a device's change between answering and not (not every failed poll)."""
        if self._answering.get(name) is ok:
            return
        if name == "switch_write":
            log.log(logging.INFO if ok else logging.WARNING, "switch: the coils %s", "are written" if ok else
                    "could not be written (counted; retried every poll)")
        elif ok:
            log.info("%s answers", name)
        else:
            log.warning("%s: no valid reading (counted; the controller sees it as failed)", name)
        self._answering[name] = ok

    async def write(self, now: float) -> None:
        """The coils, when the commands changed or ``REFRESH_S`` passed since the last good write."""
        coils = self.site.coils()
        if coils is None or (coils == self._written and now - self._written_at < REFRESH_S):
            return
        ok = False
        try:
            ok = await self.switch_link.ready() and await self.switch.write(coils.utility, coils.island, coils.bond,
                                                                             coils.relays)
        except (ModbusException, OSError, TimeoutError) as e:
            log.debug("switch write: %s", e)
        self.site.note_write(ok)
        self._note("switch_write", ok)
        if ok:
            self._written, self._written_at = coils, now

    def close(self) -> None:
        for link in self.links.values():
            link.close()

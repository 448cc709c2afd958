"""`v2h hems` on the event loop: the house's OCPP 2.1 server (``csms_server``), the energy manager's
core (``hems.manager``) on its timers, and the HTTP API with the dashboard (``api``). With
``[devices]`` configured the house is the real one (``hems.live.LiveSite``) and the Modbus poll
(``devices``) drives the manager: read, step, write, every ``poll_s``.

The manager runs on a clock that may be accelerated (``v2h demo``): ``clock()`` gives the
simulated Unix time and ``speed`` simulated seconds pass per real one; every wait divides by it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from hems.csms import CSMSCore
from hems.errors import ConfigError
from hems.forecast.solar import PvArray, read_csv
from hems.hems_config import HemsConfig, is_url
from hems.live import LiveSite
from hems.manager import EnergyManager
from hems.planning import MeasuredSolar, Planner, circuit_forecast, file_pv, flat_prices, scripted_pv, tariff_prices
from hems.store import ManagerStore

from .csms_server import CSMSServer

log = logging.getLogger(__name__)
STATUS_EVERY = 0.2        # s (real): the status pushed to the dashboard at most this often
HISTORY_EVERY = 300.0     # s (simulated): one point of the history chart
HISTORY_POINTS = 288 * 2  # two days of points


def _server_ssl(cfg: HemsConfig) -> ssl.SSLContext | None:
    """wss with the CSMS certificate `v2h pki init` made (DIR/ocpp/); mutual TLS for profile 3."""
    if cfg.pki is None:
        return None
    base = Path(cfg.pki) / "ocpp"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(base / "csms_server.pem"), str(base / "csms_server.key.pem"))
    if cfg.mutual_tls:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(base / "csms_root_ca.pem"))
    return ctx


def _file_forecast(path: Path):
    """A solar forecast file (time,pv_w rows), read now (a bad one stops the start with the line it
    is wrong on) and again whenever it changes (another program may write it)."""
    def read():
        st = path.stat()
        return (st.st_mtime_ns, st.st_size), file_pv(read_csv(path.read_text(encoding="utf-8")))
    try:
        cache = [read()]
    except OSError as e:
        raise ConfigError("solar.file", f"cannot read {path}: {e.strerror or e}") from None

    def pv(start: datetime, slots: int) -> list[float]:
        st = path.stat()
        if (st.st_mtime_ns, st.st_size) != cache[0][0]:
            cache[0] = read()
        return cache[0][1](start, slots)
    return pv


def authorize_policy(cfg: HemsConfig) -> Callable[[dict], dict]:
    """Authorize answers from the configured tokens (V2X consent per idToken, OCPP 2.1 Q01);
    without any token configured every car is accepted with every transfer."""
    tokens = {t.id_token: t for t in cfg.tokens}

    def authorize(id_token: dict) -> dict:
        if not tokens:
            return {"idTokenInfo": {"status": "Accepted"}}
        t = tokens.get(id_token.get("idToken", ""))
        if t is None:
            return {"idTokenInfo": {"status": "Unknown"}}
        answer: dict = {"idTokenInfo": {"status": t.status}}
        if t.status == "Accepted":
            answer["allowedEnergyTransfer"] = list(t.allowed)
        return answer
    return authorize


class HemsService:
    """One running energy manager."""

    def __init__(self, cfg: HemsConfig, *, db: str | Path = ":memory:", clock: Callable[[], float] | None = None,
                 speed: float = 1.0):
        self.cfg = cfg
        self.speed = speed
        offset = time.time() - time.monotonic()
        self.clock = clock or (lambda: time.monotonic() + offset)
        self.store = ManagerStore(db)
        self.tariff = None                      # hems.tariff.Tariff: the file's, or the last one fetched
        self.solar: MeasuredSolar | None = None  # the measured-corrected solar forecast, with [solar] an array
        self.changed = asyncio.Event()
        now = self.clock()
        pool = None
        if cfg.contract_pool is not None:  # the cars' contracts (Plug & Charge installation, status)
            from iso15118.pki.pool import ContractPool
            pool = ContractPool.from_pki(cfg.contract_pool)
        self.csms = CSMSCore(heartbeat_interval=cfg.heartbeat_interval, response_timeout=30.0 * speed,
                             authorize=authorize_policy(cfg), observer=self._observed, contract_pool=pool)
        live = None
        if cfg.devices is not None:
            if speed != 1.0:
                raise ValueError("devices: real devices run on the real clock (a simulated clock is for the "
                                 "simulated house)")
            devices = cfg.devices

            def live(site_cfg, charger):
                return LiveSite(site_cfg, devices, charger=charger)
        self.manager = EnergyManager(
            cfg.site, self.csms, station_id=cfg.station_id, now=now, events=cfg.events,
            deadband_w=cfg.charger["deadband_w"], max_charge_w=cfg.charger["max_charge_w"],
            max_discharge_w=cfg.charger["max_discharge_w"], meter_interval_s=cfg.charger["meter_interval_s"],
            planner=self._planner(now) if cfg.plan["enabled"] else None, departure=cfg.plan["departure"],
            capacity_kwh=cfg.plan["capacity_kwh"], standby_w=cfg.charger["standby_w"],
            efficiency=cfg.charger["efficiency"], load_history=self._load_history(), store=self.store,
            site_factory=live)
        self.devices = None
        if cfg.devices is not None:
            from .devices import DeviceRunner  # pymodbus: only where the house has real devices

            self.devices = DeviceRunner(cfg.devices, self.manager.site, nominal_v=cfg.site.nominal_voltage)
        self.manager.outages = list(cfg.outages)
        self.server = CSMSServer(self.csms, passwords=cfg.stations, ssl_context=_server_ssl(cfg),
                                 require_client_cert=cfg.mutual_tls, clock=self.clock, speed=speed,
                                 on_activity=self.changed.set)
        self.subscribers: set[asyncio.Queue] = set()
        self.history: list[dict] = []   # the day's points for the dashboard's chart
        self._last_status = 0.0
        self._trailing: asyncio.TimerHandle | None = None  # the status held back by STATUS_EVERY, sent after
        self._last_history = float("-inf")
        self.http = None
        self._tasks: list[asyncio.Task] = []
        self.crashes = 0

    def _load_history(self):
        from hems.forecast.load import LoadHistory

        return LoadHistory(self.store.db, timezone.utc)

    def _planner(self, now: float) -> Planner:
        p, site = self.cfg.plan, self.cfg.site
        flat = flat_prices(p["import_price"], p["export_price"])
        sources = {"tariff": "flat prices"}
        if p["tariff"] and is_url(p["tariff"]):
            sources["tariff"] = f"{p['tariff']} (not fetched yet: flat prices)"
        elif p["tariff"]:
            from hems.tariff import parse_csv, parse_json

            text = Path(p["tariff"]).read_text(encoding="utf-8")
            self.tariff = parse_json(text) if p["tariff"].endswith(".json") else parse_csv(text)
            sources["tariff"] = f"file {p['tariff']}"

        def prices(start: datetime, slots: int):
            tariff = self.tariff  # the last one fetched, or the file's
            return flat(start, slots) if tariff is None else tariff_prices(tariff, flat)(start, slots)
        history = self._load_history()

        def load(start: datetime, slots: int):
            return history.forecast(start, slots, annual_kwh=p["annual_kwh"])
        planner = Planner(p, load_forecast=load if history is not None else circuit_forecast(site),
                          pv_forecast=self._pv_forecast(now, sources), prices=prices, allow_export=site.allow_export)
        planner.sources = sources
        return planner

    def _pv_forecast(self, now: float, sources: dict):
        """The plan's solar: the configured array's pvlib model corrected by the inverter's
        measurements, a forecast file (read again when it changes), the simulated house's own
        script, or none."""
        solar = self.cfg.solar
        if isinstance(solar, PvArray):
            try:
                import pvlib  # noqa: F401 (the model's library, checked before the manager starts)
            except ImportError:
                raise ConfigError("solar", "the solar model needs pvlib (pip install 'v2h[hems]')") from None
            self.solar = MeasuredSolar(solar, db=self.store.db)  # the measured means survive a restart
            sources["solar"] = "pvlib clear-sky model x the measured clear-sky index"
            return self.solar
        if isinstance(solar, str):
            sources["solar"] = f"file {solar}"
            return _file_forecast(Path(solar))
        if any(e.pv_w is not None for e in self.cfg.events):
            sources["solar"] = "the simulated house's script"
            return scripted_pv(self.cfg.events, now)
        sources["solar"] = "none"
        return lambda start, slots: [0.0] * slots

    async def _tariff_loop(self, url: str) -> None:
        """The tariff from its HTTP source every ``tariff_refresh_s``; after a failure again sooner
        (1 min, doubling up to the refresh period), planning meanwhile with the last one fetched
        (flat prices before the first)."""
        from .tariff_http import TariffFetchError, fetch_tariff

        refresh, failures = self.cfg.plan["tariff_refresh_s"], 0
        planner = self.manager.planner
        while True:
            try:
                fmt = self.cfg.plan["tariff_format"]
                tariff = await fetch_tariff(url, fmt=fmt, **(self.cfg.plan["tariff_spot"] if fmt == "spot" else {}))
            except (TariffFetchError, ConfigError) as e:  # unreachable, or not a tariff
                failures += 1
                (log.warning if failures == 1 else log.debug)(
                    "tariff %s: %s; planning with %s until it answers", url, e,
                    "flat prices" if self.tariff is None else "the last tariff fetched")
                planner.sources["tariff"] = f"{url} (failed {failures}x: {e}; " \
                    f"{'flat prices' if self.tariff is None else 'the last one fetched'})"
                wait = min(refresh, 60.0 * 2 ** min(failures - 1, 10))
            else:
                if failures or self.tariff is None:
                    log.info("tariff %s: %d price intervals from %s", url, len(tariff.intervals),
                             tariff.intervals[0].start.isoformat() if tariff.intervals else "-")
                failures, self.tariff = 0, tariff
                fetched = datetime.fromtimestamp(self.clock(), timezone.utc)
                planner.sources["tariff"] = f"{url} (fetched at {fetched:%Y-%m-%d %H:%M} UTC)"
                planner.request(self.clock(), "tariff updated")
                self.changed.set()
                wait = refresh
            await asyncio.sleep(wait / self.speed)

    def _observed(self, station: str, action: str, payload: dict, now: float) -> None:
        self.store.record(station, action, payload, now)
        self.manager.poke(now)

    # --- running ----------------------------------------------------------------------------------
    async def start(self, *, http: bool = True) -> HemsService:
        await self.server.start(self.cfg.ocpp_host, self.cfg.ocpp_port)
        if http:
            from .api import start_api

            self.http = await start_api(self, self.cfg.http_host, self.cfg.http_port)
        self._tasks.append(asyncio.ensure_future(self._supervised()))
        if self.manager.planner is not None and is_url(self.cfg.plan["tariff"]):
            self._tasks.append(asyncio.ensure_future(self._tariff_loop(self.cfg.plan["tariff"])))
        return self

    @property
    def ocpp_port(self) -> int:
        return self.server.port

    @property
    def http_port(self) -> int | None:
        return None if self.http is None else self.http.port

    async def close(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        await self.server.close()
        if self.devices is not None:
            self.devices.close()
        self.store.close()

    async def _supervised(self) -> None:
        """The manager's loop, started again (logged, counted) if it ever fails: the house must not
        be left without its controller because of a bug in a report or a plan."""
        while True:
            try:
                if self.devices is not None:
                    await self.devices.run(self._tick, self.clock)
                else:
                    await self._run()
            except asyncio.CancelledError:
                raise
            except Exception:  # logged with its traceback and counted; the loop starts again
                self.crashes += 1
                log.exception("the energy manager's loop failed (%d so far); starting it again", self.crashes)
                await asyncio.sleep(1.0)

    async def _run(self) -> None:
        m = self.manager
        while True:
            now = self.clock()
            d = m.next_deadline()
            if d is not None and d <= now:
                self._tick(now)
                await asyncio.sleep(0)  # let the links send what the step asked for
                continue
            if now - self._last_history >= HISTORY_EVERY:  # a quiet stretch still gets its chart points
                self._sample(now)
            # wait for the deadline, the next chart point or a station's report (on_activity)
            wake = self._last_history + HISTORY_EVERY if d is None else min(d, self._last_history + HISTORY_EVERY)
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), max(0.0, wake - now) / self.speed)
            except asyncio.TimeoutError:
                pass

    def _tick(self, now: float) -> None:
        """One step of the manager: decisions published, the store committed, the status sampled."""
        m = self.manager
        before = len(m.decisions)
        m.handle_timer(now)
        self.store.commit()
        for dec in m.decisions[before:]:
            self._publish({"type": "decision", **dec.to_dict()})
        self._sample(now)

    def _sample(self, now: float) -> None:
        """The status to subscribers at most every ``STATUS_EVERY`` real seconds, and a point of
        the day's history every ``HISTORY_EVERY`` simulated seconds."""
        if self.solar is not None:  # a failed inverter read is no measurement (LiveSite shows it as 0 W)
            site = self.manager.site
            self.solar.observe(now, None if isinstance(site, LiveSite) and site.failing("pv_inverter") else site.pv_w)
        real = time.monotonic()
        if real - self._last_status >= STATUS_EVERY:
            self._publish_status(now)
        elif self._trailing is None:  # the last change of a quick sequence must still reach the page
            self._trailing = asyncio.get_running_loop().call_later(
                STATUS_EVERY - (real - self._last_status), lambda: self._publish_status(self.clock()))
        if now - self._last_history >= HISTORY_EVERY:
            self._last_history = now
            s, ch = self.manager.site, self.manager.charger
            cmd = s.last_cmd
            self.history.append({"t": now, "load_w": round(s.load_w), "pv_w": round(s.pv_w), "car_w": round(ch.power_w),
                                 "soc": ch.car.soc, "grid_ok": s.controller.grid_ok,
                                 "islanded": self.manager.islanded,
                                 "shed": [c.name for c, on in zip(s.cfg.circuits, cmd.relays) if not on] if cmd else []})
            del self.history[:-HISTORY_POINTS]

    def _publish_status(self, now: float) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None
        self._last_status = time.monotonic()
        self._publish({"type": "status", **self.manager.status(now)})

    def _publish(self, event: dict) -> None:
        for q in list(self.subscribers):
            if q.qsize() < 256:  # a slow reader loses events, never memory
                q.put_nowait(event)

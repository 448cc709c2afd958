"""What `v2h hems` plans with: the solar forecast of the configured array (pvlib clear-sky
corrected by what the inverter measured) or a forecast file, and a tariff fetched over HTTP
(refreshed, failures retried, the last good one kept). The running service is used, its inputs
read where the planner reads them."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("pvlib")

from aiohttp import web  # noqa: E402

from hems import hems_config  # noqa: E402
from hems.aio.service import HemsService  # noqa: E402
from hems.errors import ConfigError  # noqa: E402
from hems.forecast.solar import PvArray, clear_sky_w  # noqa: E402
from hems.planning import SLOT_S, CarView, MeasuredSolar, file_pv  # noqa: E402

UTC = timezone.utc
T0 = datetime(2026, 6, 21, 6, 0, tzinfo=UTC).timestamp()   # a summer morning in Munich
MUNICH = {"latitude": 48.14, "longitude": 11.58}
ARRAY = "[solar]\nlatitude = 48.14\nlongitude = 11.58\ntilt_deg = 30\nazimuth_deg = 180\npeak_kw = 8\n"


def _config(extra: str) -> hems_config.HemsConfig:
    text = hems_config.DEFAULT.replace("port = 9000", "port = 0").replace("port = 8080", "port = 0")
    return hems_config.load(text + extra)


def test_the_solar_and_tariff_keys_are_checked():
    assert _config(ARRAY).solar == PvArray(tilt_deg=30.0, azimuth_deg=180.0, peak_kw=8.0, **MUNICH)
    assert _config('[solar]\nfile = "pv.csv"\n').solar == "pv.csv"
    for extra, key in [(ARRAY.replace("latitude = 48.14", "latitude = 95"), "solar.latitude"),
                       (ARRAY.replace("peak_kw = 8", "peak_kw = nan"), "solar.peak_kw"),
                       (ARRAY.replace("peak_kw = 8\n", ""), "solar.peak_kw"),
                       ('[solar]\nfile = "pv.csv"\npeak_kw = 3\n', "solar.peak_kw"),
                       (ARRAY + "tilt = 3\n", "solar.tilt"),
                       ('[plan]\ntariff = "prices.csv"\ntariff_refresh_s = 600\n', "plan.tariff_refresh_s"),
                       ('[plan]\ntariff = "http://x/p.json"\ntariff_refresh_s = 5\n', "plan.tariff_refresh_s"),
                       ('[plan]\ntariff = "http://x/p.json"\ntariff_format = "xml"\n', "plan.tariff_format"),
                       ('[plan]\ntariff = "http://x/p.json"\nspot_import_adder = 0.2\n', "plan.spot_import_adder")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            _config(extra)


def test_measured_power_becomes_quarter_hour_means():
    solar = MeasuredSolar(PvArray(tilt_deg=30.0, azimuth_deg=180.0, peak_kw=8.0, **MUNICH))
    solar.observe(T0, 2000.0)
    solar.observe(T0 + 600, 4000.0)         # 2000 W for 10 min, then 4000 W
    solar.observe(T0 + 1800, float("nan"))  # not a measurement: ends the interval held since T0 + 600
    solar.observe(T0 + 2700, 1000.0)        # nothing counted from T0 + 1800 to here
    solar.observe(T0 + 3600, None)          # 1000 W from T0 + 2700 to T0 + 3600
    solar.observe(T0 + 4500, 0.0)
    solar.observe(T0 + 4600, 0.0)           # the next quarter-hour: the one before closes
    mids = [(t.timestamp() - T0, round(w)) for t, w in solar.samples]
    assert mids == [(450.0, round((2000 * 600 + 4000 * 300) / 900)), (1350.0, 4000), (3150.0, 1000)]


def test_the_forecast_follows_the_measured_clear_sky_index():
    array = PvArray(tilt_deg=30.0, azimuth_deg=180.0, peak_kw=8.0, **MUNICH)
    solar = MeasuredSolar(array)
    t = T0
    while t <= T0 + 8 * 3600:  # a hazy morning: 60 % of the clear-sky model, read every minute
        solar.observe(t, 0.6 * clear_sky_w(array, [datetime.fromtimestamp(t, UTC)])[0])
        t += 60.0
    assert solar.index() == pytest.approx(0.6, abs=0.01)
    start = datetime.fromtimestamp(T0 + 8 * 3600, UTC)
    clear = clear_sky_w(array, [start + timedelta(seconds=(k + 0.5) * SLOT_S) for k in range(8)])
    assert solar(start, 8) == pytest.approx([0.6 * c for c in clear], rel=0.02)
    assert MeasuredSolar(array)(start, 8) == pytest.approx(clear, rel=1e-9)  # no measurement: the model


def test_a_forecast_file_holds_each_value_until_the_next():
    t = datetime.fromtimestamp(T0, UTC)
    pv = file_pv([(t + timedelta(minutes=30), 500.0), (t, 100.0), (t + timedelta(hours=1), 900.0)])
    assert pv(t - timedelta(minutes=15), 8) == [0.0, 100.0, 100.0, 500.0, 500.0, 900.0, 900.0, 0.0]


class TariffServer:
    """A JSON price source on loopback that fails while ``failing`` (HTTP 503)."""

    def __init__(self, prices: list[float]) -> None:
        self.prices, self.failing, self.hits = prices, True, 0

    def body(self) -> dict:
        start = datetime.fromtimestamp(T0, UTC)
        return {"prices": [{"start": (start + timedelta(hours=h)).isoformat(),
                            "end": (start + timedelta(hours=h + 1)).isoformat(), "import": p, "export": p / 4}
                           for h, p in enumerate(self.prices)]}

    async def start(self) -> str:
        async def prices(request: web.Request) -> web.Response:
            self.hits += 1
            if self.failing:
                return web.Response(status=503, text="busy")
            return web.json_response(self.body())
        app = web.Application()
        app.router.add_get("/prices.json", prices)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/prices.json"


def test_the_tariff_is_fetched_retried_and_kept(tmp_path):
    speed = 600.0  # the service's waits are simulated seconds: a minute's retry is 0.1 s here
    start = datetime.fromtimestamp(T0, UTC)

    async def main():
        server = TariffServer([0.40, -0.05, 0.25])
        url = await server.start()
        loop = asyncio.get_running_loop()
        t_real = loop.time()
        cfg = _config(f'[plan]\ntariff = "{url}"\ntariff_refresh_s = 3600\n')
        service = await HemsService(cfg, db=tmp_path / "hems.db", clock=lambda: T0 + (loop.time() - t_real) * speed,
                                    speed=speed).start()
        planner = service.manager.planner
        try:
            for _ in range(100):  # down at first: flat prices, the failure in the status
                await asyncio.sleep(0.02)
                if "failed" in planner.sources["tariff"]:
                    break
            assert "failed 1x" in planner.sources["tariff"] and "HTTP 503" in planner.sources["tariff"]
            assert planner.prices(start, 2) == ([0.30, 0.30], [0.08, 0.08])
            server.failing = False
            for _ in range(200):  # retried after a simulated minute
                await asyncio.sleep(0.02)
                if service.tariff is not None:
                    break
            assert planner.prices(start, 12) == ([0.40] * 4 + [-0.05] * 4 + [0.25] * 4,
                                                 [0.10] * 4 + [-0.0125] * 4 + [0.0625] * 4)
            imp, _ = planner.prices(start, 14)
            assert imp[12:] == [0.30, 0.30]  # beyond the tariff: the configured flat prices
            assert planner.reason == "tariff updated" and "fetched at" in planner.sources["tariff"]
            assert service.manager.status(service.clock())["plan"]["inputs"]["tariff"] == planner.sources["tariff"]
            server.failing = True  # a failure later keeps the last good tariff
            hits = server.hits
            for _ in range(200):
                await asyncio.sleep(0.05)
                if server.hits > hits:
                    break
            await asyncio.sleep(0.05)
            assert server.hits > hits and "the last one fetched" in planner.sources["tariff"]
            assert planner.prices(start, 1)[0] == [0.40]
        finally:
            await service.close()
            await server.runner.cleanup()

    asyncio.run(main())


def test_the_service_plans_with_the_measured_array(tmp_path):
    """A simulated house whose inverter gives a steady 2.4 kW through a summer morning: the plan's
    solar is the array's clear-sky model scaled by measured / modelled, also after a restart."""
    speed = 3600.0 * 4
    cfg = _config(ARRAY + "[[events]]\nat_s = 0\npv_w = 2400\n")
    array = cfg.solar

    async def main():
        loop = asyncio.get_running_loop()
        t_real = loop.time()
        service = await HemsService(cfg, db=tmp_path / "hems.db", clock=lambda: T0 + (loop.time() - t_real) * speed,
                                    speed=speed).start(http=False)
        try:
            await asyncio.sleep(5 * 3600 / speed)  # five simulated hours
            now = service.clock()
        finally:
            await service.close()
        return service, now

    service, now = asyncio.run(main())
    solar = service.solar
    assert service.manager.planner.sources["solar"].startswith("pvlib")
    assert len(solar.samples) >= 15 and all(w == pytest.approx(2400.0) for _, w in solar.samples)
    modelled = clear_sky_w(array, [t for t, _ in solar.samples])
    k = min(1.3, 2400.0 * len(modelled) / sum(m for m in modelled if m > 0.02 * 8000))
    assert solar.index() == pytest.approx(k, rel=1e-6)
    start = datetime.fromtimestamp(now - now % SLOT_S, UTC) + timedelta(hours=24)
    clear = clear_sky_w(array, [start + timedelta(seconds=(i + 0.5) * SLOT_S) for i in range(4)])
    assert service.manager.planner.pv_forecast(start, 4) == pytest.approx([k * c for c in clear], rel=0.01)
    assert math.isfinite(sum(service.manager.planner.pv_forecast(start, 96)))
    again = HemsService(cfg, db=tmp_path / "hems.db", clock=lambda: now)  # a restart keeps what was measured
    try:
        assert list(again.solar.samples) == list(solar.samples)
        assert again.manager.planner.pv_forecast(start, 4) == pytest.approx([k * c for c in clear], rel=0.01)
    finally:
        again.store.close()


def test_a_bad_forecast_file_stops_the_start_and_a_later_one_fails_the_plan_only(tmp_path):
    pv = tmp_path / "pv.csv"
    pv.write_text("time,pv_w\n2026-06-21T06:00+00:00,-5\n")
    with pytest.raises(ConfigError, match="pv_w"):
        HemsService(_config(f'[solar]\nfile = "{pv}"\n'), db=tmp_path / "a.db", clock=lambda: T0)
    with pytest.raises(ConfigError, match="solar.file"):
        HemsService(_config(f'[solar]\nfile = "{tmp_path / "absent.csv"}"\n'), db=tmp_path / "b.db", clock=lambda: T0)
    pv.write_text("time,pv_w\n2026-06-21T06:00+00:00,1500\n2026-06-21T07:00+00:00,3000\n")
    service = HemsService(_config(f'[solar]\nfile = "{pv}"\n'), db=tmp_path / "c.db", clock=lambda: T0)
    start = datetime.fromtimestamp(T0, UTC)
    try:
        assert service.manager.planner.pv_forecast(start, 6) == [1500.0] * 4 + [3000.0] * 2
        pv.write_text("time,pv_w\n2026-06-21T06:00+00:00,700\n")  # rewritten by another program
        assert service.manager.planner.pv_forecast(start, 2) == [700.0, 0.0]  # one point: one slot
        pv.write_text("time,pv_w\nyesterday,1\n")
        with pytest.raises(ConfigError):
            service.manager.planner.pv_forecast(start, 2)
        car = CarView(soc_pct=50.0, capacity_kwh=60.0, charge_max_w=7000.0, discharge_max_w=7000.0, min_soc_pct=10.0)
        service.manager.planner.run(T0, car, reserve_pct=30.0, departure=None)  # a failed plan, not a crash
        assert service.manager.planner.plan is None and "line 2" in service.manager.planner.error
    finally:
        service.store.close()
    assert json.dumps(service.manager.planner.sources) == json.dumps({"tariff": "flat prices",
                                                                     "solar": f"file {pv}"})

"""Announced outages (a utility's shut-off warning) reach the plan from the configuration
(``[[outages]]``) and through ``POST /api/outages``; bad ones are refused with the reason, and the
list the manager keeps stays bounded."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

aiohttp = pytest.importorskip("aiohttp")

from hems import hems_config  # noqa: E402
from hems.aio.service import HemsService  # noqa: E402
from hems.config import ConfigError  # noqa: E402

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc).timestamp()
OUTAGE = """
[[outages]]
start = 2026-12-01T18:00:00+01:00
end = "2026-12-01T22:00:00+01:00"
load_w = 900
"""


def _config(extra: str = OUTAGE) -> hems_config.HemsConfig:
    text = hems_config.DEFAULT.replace("port = 9000", "port = 0").replace("port = 8080", "port = 0")
    return hems_config.load(text + extra)


def test_outages_in_the_config_are_checked():
    cfg = _config()
    (o,) = cfg.outages
    assert o.start == datetime(2026, 12, 1, 17, 0, tzinfo=timezone.utc) and o.load_w == 900.0
    for bad, key in [("start = 2026-12-01T18:00:00\nend = 2026-12-01T19:00:00+01:00", "outages[0].start"),
                     ("start = 2026-12-01T18:00:00+01:00\nend = 2026-12-01T17:00:00+01:00", "outages[0]"),
                     ("start = 2026-12-01T18:00:00+01:00\nend = 2026-12-01T19:00:00+01:00\nload_w = nan",
                      "outages[0].load_w"),
                     ("start = 2026-12-01T18:00:00+01:00\nend = 2026-12-01T19:00:00+01:00\nwhen = 1",
                      "outages[0].when")]:
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            _config("[[outages]]\n" + bad + "\n")


def test_announced_outages_reach_the_plan_and_bad_ones_are_refused(tmp_path):
    async def main():
        service = await HemsService(_config(), db=tmp_path / "hems.db", clock=lambda: T0).start()
        try:
            assert [o.load_w for o in service.manager.outages] == [900.0]
            base = f"http://127.0.0.1:{service.http_port}"
            start = datetime.fromtimestamp(T0, timezone.utc) + timedelta(hours=30)
            async with aiohttp.ClientSession() as http:
                good = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat(), "load_w": 700}
                async with http.post(base + "/api/outages", json=good) as r:
                    assert r.status == 200
                    assert len((await r.json())["outages"]) == 2
                for bad in ({"start": "tomorrow", "end": good["end"]}, {"start": good["start"]},
                            {**good, "load_w": -5}, [good] * 200):
                    async with http.post(base + "/api/outages", data=json.dumps(bad)) as r:
                        assert r.status == 400, bad
                        assert (await r.json())["error"]
                async with http.post(base + "/api/outages", data=b"{not json") as r:
                    assert r.status == 400
            assert [o.load_w for o in service.manager.outages] == [900.0, 700.0]
            assert service.manager.planner.reason == "an outage was announced"
        finally:
            await service.close()

    asyncio.run(main())

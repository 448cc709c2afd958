"""The status pushed to the dashboard is rate-limited, and the last change of a quick sequence
still arrives (sent once the limit allows), so a page never stays on a stale state."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("aiohttp")

from hems import hems_config  # noqa: E402
from hems.aio.service import STATUS_EVERY, HemsService  # noqa: E402

T0 = 1_811_808_000.0


def test_the_last_status_of_a_burst_is_sent_after_the_limit(tmp_path):
    now = [T0]
    text = hems_config.DEFAULT.replace("port = 9000", "port = 0").replace("port = 8080", "port = 0")
    cfg = hems_config.load(text)

    async def main():
        service = HemsService(cfg, db=tmp_path / "hems.db", clock=lambda: now[0])
        q: asyncio.Queue = asyncio.Queue()
        service.subscribers.add(q)
        try:
            service._sample(now[0])
            for step in range(1, 6):  # a burst: each change within the limit of the one before
                now[0] = T0 + step
                service._sample(now[0])
            first = q.get_nowait()
            assert first["type"] == "status" and first["t"] == T0
            assert q.empty()  # held back by the limit
            await asyncio.sleep(STATUS_EVERY * 2)
            statuses = [q.get_nowait() for _ in range(q.qsize())]
            assert [s["t"] for s in statuses] == [T0 + 5]  # one, the latest
            await asyncio.sleep(STATUS_EVERY * 2)
            assert q.empty()  # nothing more without a change
        finally:
            await service.close()

    asyncio.run(main())

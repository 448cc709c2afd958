"""The energy manager's HTTP API and dashboard (aiohttp):

- ``GET /api/status``: grid, switch and feedback, circuits, car SoC and reserve, the charger's
  setpoint and measured power, the plan for the next hours, the runtime estimate, alarms;
- ``GET /api/events``: server-sent events — ``status`` (the same object, when it changes) and
  ``decision`` (each decision of the manager with its reason);
- ``POST /api/settings``: ``{"reserve_soc": 35, "departure": "07:30", "priorities": {"kitchen":
  "deferrable"}}`` — checked, applied at once, persisted; a bad value is a 400 with the reason;
- ``GET /api/history``: the day's points (load, solar, car power, SoC, grid, islanded);
- ``POST /api/outages``: an announced outage ``{"start": ISO, "end": ISO, "load_w": …}`` the plan
  fills the car for;
- ``GET /api/transactions``: the transactions the chargers reported;
- ``/``: the dashboard (static files shipped in ``hems/web``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from aiohttp import web

from hems.config import ConfigError

log = logging.getLogger(__name__)
WEB = Path(__file__).resolve().parent.parent / "web"
MAX_BODY = 64 * 1024
MAX_OUTAGES = 50  # announced and not yet over: a utility warns of a few, not of hundreds


class Api:
    """A running HTTP server (``port``, ``close``)."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite):
        self.runner, self.site = runner, site

    @property
    def port(self) -> int:
        return self.site._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        await self.runner.cleanup()


def make_app(service) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    clock = service.clock

    async def status(request: web.Request) -> web.Response:
        return web.json_response(service.manager.status(clock()))

    async def history(request: web.Request) -> web.Response:
        return web.json_response({"points": service.history})

    async def transactions(request: web.Request) -> web.Response:
        return web.json_response({"transactions": service.store.transactions()})

    async def _body(request: web.Request):
        try:
            return json.loads(await request.text())
        except ValueError as e:
            raise web.HTTPBadRequest(text=json.dumps({"error": f"not JSON: {e}"}), content_type="application/json")

    async def settings(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            s = service.manager.update_settings(body, clock())
        except ConfigError as e:
            return web.json_response({"error": str(e)}, status=400)
        service.changed.set()
        return web.json_response(s.to_dict())

    async def outages(request: web.Request) -> web.Response:
        from hems.plan import outages_from_config

        body = await _body(request)
        try:
            new = outages_from_config(body if isinstance(body, list) else [body])
        except ConfigError as e:
            return web.json_response({"error": str(e)}, status=400)
        m = service.manager
        now = clock()
        kept = [o for o in [*m.outages, *new] if o.end.timestamp() > now]  # an ended outage is history
        if len(kept) > MAX_OUTAGES:
            return web.json_response({"error": f"at most {MAX_OUTAGES} announced outages at a time"}, status=400)
        m.outages = kept
        if m.planner is not None:
            m.planner.request(now, "an outage was announced")
        service.changed.set()
        return web.json_response({"outages": [{"start": o.start.isoformat(), "end": o.end.isoformat()}
                                              for o in m.outages]})

    streams: set[asyncio.Queue] = set()

    async def events(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue()
        service.subscribers.add(q)
        streams.add(q)
        try:
            await resp.write(_sse({"type": "status", **service.manager.status(clock())}))
            while True:
                try:
                    event = await asyncio.wait_for(q.get(), 15.0)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if event is None:  # shutting down
                    break
                await resp.write(_sse(event))
        except ConnectionResetError:
            log.debug("an event stream's reader went away")
        finally:
            service.subscribers.discard(q)
            streams.discard(q)
        return resp

    async def end_streams(app: web.Application) -> None:
        """Event streams end at shutdown (a dashboard left open or closed without the server
        noticing would otherwise hold the shutdown until its next keep-alive write)."""
        for q in list(streams):
            q.put_nowait(None)

    async def index(request: web.Request) -> web.StreamResponse:
        page = WEB / "index.html"
        if not page.exists():
            return web.Response(text="v2h hems: the dashboard is not installed; the API is at /api/status\n")
        return web.FileResponse(page)

    app.router.add_get("/api/status", status)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/transactions", transactions)
    app.router.add_get("/api/events", events)
    app.router.add_post("/api/settings", settings)
    app.router.add_post("/api/outages", outages)
    app.on_shutdown.append(end_streams)
    app.router.add_get("/", index)
    if WEB.is_dir():
        app.router.add_static("/static/", WEB)
    return app


def _sse(event: dict) -> bytes:
    kind = event.get("type", "message")
    return f"event: {kind}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


async def start_api(service, host: str, port: int) -> Api:
    runner = web.AppRunner(make_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return Api(runner, site)

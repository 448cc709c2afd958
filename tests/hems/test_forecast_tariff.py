"""Tariffs (hems.tariff): CSV and JSON parsing, checks, prices per plan slot; the HTTP adapter
(hems.aio.tariff_http) against a server on loopback."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from hems.aio.tariff_http import TariffFetchError, fetch_tariff
from hems.errors import ConfigError
from hems.tariff import MAX_BYTES, parse_csv, parse_json

CET = timezone(timedelta(hours=1))
T0 = datetime(2025, 3, 3, tzinfo=CET)


def test_csv_hourly_prices_fill_quarter_hour_slots():
    t = parse_csv("time,import_price,export_price\n"
                  "2025-03-03T00:00+01:00,0.30,0.08\n2025-03-03T01:00+01:00,-0.05,-0.10\n")
    imp, exp = t.slot_prices(T0, 8)
    assert imp == [0.30] * 4 + [-0.05] * 4 and exp == [0.08] * 4 + [-0.10] * 4
    assert t.covered_slots(T0, 20) == 8
    with pytest.raises(ConfigError, match="no price for the slot at 2025-03-03T02:00"):
        t.slot_prices(T0, 9)


def test_slot_straddling_two_prices_is_time_weighted():
    t = parse_json(json.dumps({"prices": [
        {"start": "2025-03-03T00:00+01:00", "end": "2025-03-03T00:10+01:00", "import": 0.3, "export": 0.0},
        {"start": "2025-03-03T00:10+01:00", "end": "2025-03-03T01:00+01:00", "import": 0.6, "export": 0.3}]}))
    imp, exp = t.slot_prices(T0, 1)
    assert imp[0] == pytest.approx((0.3 * 10 + 0.6 * 5) / 15) and exp[0] == pytest.approx(0.1)


def test_spot_format_maps_linearly():
    ms = int(T0.timestamp() * 1000)
    body = json.dumps({"data": [{"start_timestamp": ms, "end_timestamp": ms + 3_600_000, "marketprice": -25.0}]})
    t = parse_json(body, "spot", import_factor=1.19, import_adder=0.20, export_factor=1.0)
    imp, exp = t.slot_prices(T0, 4)
    assert imp[0] == pytest.approx(-0.025 * 1.19 + 0.20) and exp[0] == pytest.approx(-0.025)


@pytest.mark.parametrize("body,key", [
    ({"prices": [{"start": "2025-03-03T00:00+01:00", "end": "2025-03-03T01:00+01:00", "import": "nan",
                  "export": 0}]}, "prices[0].import"),
    ({"prices": [{"start": "2025-03-03T00:00", "end": "2025-03-03T01:00+01:00", "import": 1, "export": 0}]},
     "prices[0].start"),
    ({"prices": [{"start": "2025-03-03T00:00+01:00", "end": "2025-03-03T01:00+01:00", "import": 1e9,
                  "export": 0}]}, "prices[0].import"),
    ({"prices": [{"start": "2025-03-03T00:00+01:00", "import": 1, "export": 0}]}, "prices[0].end"),
    ({"prices": [{"start": "2025-03-03T00:00+01:00", "end": "2025-03-03T02:00+01:00", "import": 1, "export": 0},
                 {"start": "2025-03-03T01:00+01:00", "end": "2025-03-03T03:00+01:00", "import": 1, "export": 0}]},
     "prices[1]"),
    ({"data": []}, "prices"),
])
def test_bad_json_named(body, key):
    with pytest.raises(ConfigError) as ei:
        parse_json(json.dumps(body))
    assert ei.value.key == key


def test_json_infinity_refused():
    body = ('{"prices": [{"start": "2025-03-03T00:00+01:00", "end": "2025-03-03T01:00+01:00", '
            '"import": Infinity, "export": 0}]}')
    with pytest.raises(ConfigError, match="finite"):
        parse_json(body)


def test_bad_csv_named():
    with pytest.raises(ConfigError) as ei:
        parse_csv("time,import_price,export_price\n2025-03-03T00:00+01:00,0.3,inf\n")
    assert ei.value.key == "line 2, export_price"
    with pytest.raises(ConfigError) as ei:
        parse_csv("time,import_price\n")
    assert ei.value.key == "header"


def test_oversized_body_refused_before_parsing():
    with pytest.raises(ConfigError, match="more than"):
        parse_json(b" " * (MAX_BYTES + 1))


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes]] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        code, body = self.routes.get(self.path, (404, b"no"))
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_http_fetch(server):
    good = json.dumps({"prices": [{"start": "2025-03-03T00:00+01:00", "end": "2025-03-03T01:00+01:00",
                                   "import": 0.25, "export": 0.05}]}).encode()
    _Handler.routes = {"/ok": (200, good), "/bad": (200, b'{"prices": 3}'), "/big": (200, b" " * (MAX_BYTES + 10))}
    t = asyncio.run(fetch_tariff(server + "/ok"))
    assert t.slot_prices(T0, 4)[0] == [0.25] * 4
    with pytest.raises(ConfigError):
        asyncio.run(fetch_tariff(server + "/bad"))
    with pytest.raises(TariffFetchError, match="HTTP 404"):
        asyncio.run(fetch_tariff(server + "/missing"))
    with pytest.raises(TariffFetchError, match="larger than"):
        asyncio.run(fetch_tariff(server + "/big"))
    with pytest.raises(TariffFetchError, match="http"):
        asyncio.run(fetch_tariff("file:///etc/passwd"))

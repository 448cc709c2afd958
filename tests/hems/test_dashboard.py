"""The dashboard (`hems/web`) in a real headless Chromium (Debian's ``chromium`` driven by
Playwright), served by a real `v2h hems` process: the page loads without console errors on a
desktop and a phone screen, shows the status, follows a scenario live over server-sent events,
sends a settings change made with its controls to the API (persisted across a restart), shows the
API's error for a bad value, draws an islanded house with a car, its plan and history, and
survives a status full of nulls. Screenshots go to the test's tmp dir and to
``test-artifacts/dashboard/`` (or ``$V2H_ARTIFACTS/dashboard``).

Without Playwright or Chromium the browser tests are skipped with the reason; in CI
(``V2H_REQUIRE_BROWSER=1``, set by .ci/run) they fail instead."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "hems" / "web"
CLI = [sys.executable, "-m", "v2h.cli"]
ARTIFACTS = Path(os.environ.get("V2H_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"]
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}

# the vendored charting library, exactly as `npm pack uplot@1.6.32` ships it (hems/web/vendor/README.md)
VENDORED = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "uPlot.LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}

HOUSE = """
[site]
nominal_voltage = 230
nominal_frequency = 50
inverter_max_w = 7400
reserve_soc = 20
return_stable_s = 2

[[circuits]]
name = "fridge"
priority = "critical"
power_w = 300

[[circuits]]
name = "lights"
priority = "essential"
power_w = 700

[[circuits]]
name = "dryer"
priority = "deferrable"
power_w = 3000

[ocpp]
port = 0

[plan]
enabled = false

[http]
port = 0
"""
# the grid fails OUTAGE_AT_S after the start and returns RETURN_AT_S; with no car the house goes
# dark, then back to the grid once the grid has been stable for return_stable_s
OUTAGE_AT_S, RETURN_AT_S = 6, 10
OUTAGE = f"""
[[events]]
at_s = {OUTAGE_AT_S}
grid_voltage = 0
grid_frequency = 0

[[events]]
at_s = {RETURN_AT_S}
grid_voltage = 230
grid_frequency = 50
"""


# --- the browser ------------------------------------------------------------------------------------
def _unavailable(reason: str):
    if os.environ.get("V2H_REQUIRE_BROWSER") == "1":
        pytest.fail(f"the dashboard's browser tests are required (V2H_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(reason)


def _chromium_path() -> str | None:
    for candidate in (os.environ.get("V2H_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"Playwright for Python is not installed (pip install -e '.[test]'): {e}")
    exe = _chromium_path()
    if exe is None:
        _unavailable("no Chromium found (Debian: apt-get install chromium; or set V2H_CHROMIUM)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        except Exception as e:  # noqa: BLE001 - any launch failure is the reason given
            _unavailable(f"Chromium at {exe} does not start: {e}")
        yield b
        b.close()


class Watched:
    """A page in a new browser context, with everything it logs and every request it makes."""

    def __init__(self, browser, base: str, **context):
        self.base = base
        self.ctx = browser.new_context(**context)
        self.page = self.ctx.new_page()
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url.startswith(base) else self.foreign.append(r.url))

    def open(self):
        self.page.goto(self.base, wait_until="load")
        _wait(self.page, "document.body.dataset.t !== undefined", timeout=10)
        return self.page

    def problems(self, allowed: tuple[str, ...] = ()) -> list:
        """Console errors and warnings, uncaught exceptions and requests to other origins."""
        bad = [f"{kind}: {text}" for kind, text in self.console
               if kind in ("error", "warning") and not any(a in text for a in allowed)]
        return bad + [f"uncaught: {e}" for e in self.errors] + [f"foreign request: {u}" for u in self.foreign]

    def close(self):
        self.ctx.close()


def _shot(page, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot in the test's tmp dir, copied to the stable artefact folder."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    return path


# --- the energy manager -------------------------------------------------------------------------------
class Hems:
    def __init__(self, tmp_path: Path, config: str, db: str = "hems.db"):
        cfg = tmp_path / "hems.toml"
        cfg.write_text(config)
        self.proc = subprocess.Popen([*CLI, "hems", "--config", str(cfg), "--db", str(tmp_path / db), "-q"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started = time.monotonic()
        line = self.proc.stdout.readline()
        m = re.search(r"HTTP on port (\d+)", line)
        if m is None:
            self.proc.kill()
            raise AssertionError(f"v2h hems did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(m.group(1))
        self.base = f"http://127.0.0.1:{self.port}/"

    def get(self, path: str):
        with urllib.request.urlopen(self.base + path) as r:
            return json.loads(r.read())

    def post(self, path: str, body) -> tuple[int, dict]:
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def hems(tmp_path):
    started: list[Hems] = []

    def start(config: str = HOUSE, db: str = "hems.db") -> Hems:
        h = Hems(tmp_path, config, db)
        started.append(h)
        return h
    yield start
    for h in started:
        if h.proc.poll() is None:
            h.stop()


def _wait(page, expression: str, timeout: float = 5.0) -> None:
    """Until a JavaScript expression is true on the page (polled from here: the page's
    Content-Security-Policy forbids the eval that Playwright's wait_for_function uses)."""
    end = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > end:
            raise AssertionError(f"not true after {timeout} s: {expression}")
        time.sleep(0.05)


def _text(page, selector: str) -> str:
    return (page.locator(selector).text_content() or "").strip()


# --- no browser needed ----------------------------------------------------------------------------------
def test_the_vendored_chart_library_is_the_recorded_release_with_its_licence():
    for name, digest in VENDORED.items():
        assert hashlib.sha256((WEB / "vendor" / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (WEB / "vendor" / "uPlot.LICENSE").read_text()
    html = (WEB / "index.html").read_text()
    # every script, stylesheet and icon comes from the page's own origin
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs and all(not re.match(r"[a-z]+:", r) and not r.startswith("//") for r in refs), refs
    assert "static/vendor/uPlot.iife.min.js" in refs


# --- the page in a browser --------------------------------------------------------------------------------
@pytest.mark.browser
def test_the_page_loads_without_errors_on_a_desktop_and_a_phone(browser, hems, tmp_path):
    h = hems()
    status = h.get("api/status")
    for name, ctx in (("desktop", DESKTOP), ("phone", PHONE)):
        w = Watched(browser, h.base, **ctx)
        try:
            page = w.open()
            page.wait_for_selector("#history-chart canvas", timeout=10_000)
            assert _text(page, "#phase") == "On the grid"
            assert page.locator("#grid-node").get_attribute("data-ok") == "true"
            assert page.locator("#k1").get_attribute("data-state") == "closed"
            assert page.locator("#w-grid").get_attribute("data-direction") == "forward"  # the grid feeds the house
            assert page.locator("#car-node").get_attribute("data-plugged") == "false"
            assert _text(page, "#soc-detail") == "No car plugged in."
            assert "no car is plugged in" in _text(page, "#runtime-text")
            assert "no car is plugged in" in _text(page, "#plan-text")
            names = page.locator("#circuit-list li").evaluate_all("els => els.map(e => e.dataset.name)")
            assert names == [c["name"] for c in status["circuits"]] == ["fridge", "lights", "dryer"]
            assert page.locator("#reserve").input_value() == "20"
            assert page.locator("#link").get_attribute("data-state") == "live"
            if name == "phone":  # nothing wider than the phone's screen, the picture fits it
                assert page.evaluate("document.documentElement.scrollWidth") <= 390
                box = page.locator("#house").bounding_box()
                assert box["x"] >= 0 and box["x"] + box["width"] <= 390
            _shot(page, tmp_path, f"loaded-{name}")
            assert w.problems() == []
        finally:
            w.close()


@pytest.mark.browser
def test_the_page_follows_an_outage_live(browser, hems, tmp_path):
    """The grid fails a few seconds in and returns: with no car the house goes dark, then back to
    the grid; the open page shows each step as the server-sent events bring it, without a reload."""
    h = hems(HOUSE + OUTAGE)
    w = Watched(browser, h.base, **DESKTOP)
    try:
        page = w.open()
        page.evaluate("window.__sameDocument = true")
        assert page.locator("#phase").get_attribute("data-phase") == "connected"
        _shot(page, tmp_path, "live-1-on-grid")
        seen: list[tuple] = []
        shot_dark = False
        deadline = h.started + RETURN_AT_S + 15
        while time.monotonic() < deadline:
            s = page.evaluate("""() => [document.getElementById('phase').dataset.phase,
                document.getElementById('grid-node').dataset.ok, document.getElementById('k1').dataset.state,
                document.getElementById('house-node').dataset.lit, Number(document.body.dataset.t)]""")
            if not seen or tuple(s[:4]) != seen[-1][:4]:
                seen.append(tuple(s))
            if s[0] == "dark" and not shot_dark:
                page.wait_for_timeout(300)
                _shot(page, tmp_path, "live-2-dark")
                shot_dark = True
            if len(seen) > 2 and s[0] == "connected" and any(x[0] == "dark" for x in seen):
                break
            page.wait_for_timeout(100)
        phases = [x[0] for x in seen]
        assert "dark" in phases and phases[-1] == "connected", seen
        dark = next(x for x in seen if x[0] == "dark")
        assert dark[1:4] == ("false", "open", "false"), dark  # grid down, K1 open, the house unlit
        assert seen[-1][1:4] == ("true", "closed", "true"), seen[-1]
        assert seen[-1][4] > seen[0][4]  # the simulated time moved on the page
        assert page.evaluate("window.__sameDocument") is True  # live, not reloaded
        decisions = page.locator("#decision-list li").all_inner_texts()
        assert any("grid" in d.lower() or "outage" in d.lower() for d in decisions), decisions
        _shot(page, tmp_path, "live-3-back-on-grid")
        assert w.problems() == []
    finally:
        w.close()


@pytest.mark.browser
def test_a_settings_change_made_on_the_page_reaches_the_api_and_persists(browser, hems, tmp_path):
    h = hems(db="settings.db")
    w = Watched(browser, h.base, **PHONE)
    try:
        page = w.open()
        assert page.locator("#save").is_disabled()  # nothing to save yet
        page.fill("#reserve", "42")
        page.fill("#departure", "06:45")
        page.locator("select[data-circuit='dryer']").select_option("essential")
        page.click("#save")
        _wait(page, "document.getElementById('settings-msg').dataset.kind === 'ok'")
        assert _text(page, "#settings-msg") == "Saved: reserve 42 %, departure 06:45."
        s = h.get("api/status")
        assert s["settings"] == {"reserve_soc": 42.0, "departure": "06:45", "priorities": {
            "fridge": "critical", "lights": "essential", "dryer": "essential"}}
        assert s["car"]["user_reserve_soc"] == 42.0
        # the live status brings the change back to the page: the reserve line and the circuit list
        _wait(page, "document.getElementById('soc-reserve-label').textContent.includes('42')")
        _wait(page, "document.querySelector('#circuit-list li[data-name=dryer] .prio').textContent === 'essential'")

        # a bad value: the API refuses it and the page says why, next to the field
        page.fill("#reserve", "150")
        page.click("#save")
        _wait(page, "document.getElementById('settings-msg').dataset.kind === 'error'")
        code, answer = h.post("api/settings", {"reserve_soc": 150})
        assert code == 400 and answer["error"].startswith("reserve_soc")
        assert _text(page, "#settings-msg") == f"Not saved: {answer['error']}"
        assert page.locator("#reserve").get_attribute("aria-invalid") == "true"
        _shot(page, tmp_path, "settings-refused-phone")
        assert h.get("api/status")["settings"]["reserve_soc"] == 42.0
        # Chromium logs the refused request itself; nothing else may appear
        assert w.problems(allowed=("status of 400",)) == []
        page.click("#revert")
        assert page.locator("#reserve").input_value() == "42"
    finally:
        w.close()

    # the same database after a restart: the API and the page show the saved settings
    h.stop()
    h2 = hems(db="settings.db")
    assert h2.get("api/status")["settings"] == s["settings"]
    w = Watched(browser, h2.base, **DESKTOP)
    try:
        page = w.open()
        assert page.locator("#reserve").input_value() == "42"
        assert page.locator("#departure").input_value() == "06:45"
        assert page.locator("select[data-circuit='dryer']").input_value() == "essential"
        assert page.locator("#save").is_disabled()
        _shot(page, tmp_path, "settings-after-restart")
        assert w.problems() == []
    finally:
        w.close()


# --- statuses the test server cannot make without a car: served in place of the API's ---------------------
T0 = 1813609135.0  # Mon 21 Jun 2027 20:18 UTC, an evening on the island


def _islanded(real: dict) -> dict:
    """An islanded house on the car (as `v2h demo` shows at 20:18), built on the shape of a real
    status of the test server so that the two cannot drift apart."""
    s = copy.deepcopy(real)
    s.update({"t": T0, "phase": "islanded", "islanded": True, "alarms": ["reserve_near"]})
    s["grid"] = {"ok": False, "voltage": 0.0, "frequency": 0.0}
    s["switch"] = {"utility_cmd": False, "utility_fb": False, "island_cmd": True, "island_fb": True}
    s["house"] = {"load_w": 1000, "pv_w": 0, "export_w": 0, "grid_w": 0}
    for c in s["circuits"]:
        on = c["priority"] != "deferrable"
        c.update({"on": on, "w": round(c["rated_w"]) if on else 0, "relay_cmd": on})
    s["car"] = {"plugged": True, "soc": 66.0, "min_soc": 15.0, "reserve_soc": 30.0, "user_reserve_soc": 30.0,
                "capacity_kwh": 60.0}
    s["charger"] = {"station": "CS001", "link_up": True, "mode": "grid_forming", "setpoint_w": -1000,
                    "measured_w": -1000, "wanted_w": -1000}
    slots = []
    for i in range(96):
        t = T0 - T0 % 900 + 900 * i
        hour = (t % 86400) / 3600
        cheap = hour < 6
        car_w = 9000 if 4 <= hour < 6 else (-900 if hour >= 18 or hour < 4 else 0)
        slots.append({"t": t, "car_w": car_w, "grid_w": (car_w + 900) if 2.5 <= hour < 18 else 0,
                      "soc": 66.0 - i * 0.1, "import_price": 0.14 if cheap else 0.30})
    s["plan"] = {"slots": slots, "planned_at": T0 - 300, "error": None, "inputs": s["plan"]["inputs"]}
    s["runtime"] = {"text": "On backup: critical loads for 2 d 6 h; critical + essential for 16 h; "
                            "everything for 16 h", "usable_kwh": 21.6,
                    "scenarios": [{"name": "critical", "hours": 54.0, "load_w": 300, "fits": True},
                                  {"name": "essential", "hours": 16.24, "load_w": 1000, "fits": True},
                                  {"name": "everything", "hours": 4.9, "load_w": 4000, "fits": False}]}
    return s


def _history() -> dict:
    points = []
    for i in range(16 * 12):  # 04:18 to 20:18, one point per 5 min
        t = T0 - 16 * 3600 + 300 * i
        hour = (t % 86400) / 3600
        outage = hour >= 19
        pv = max(0.0, 5800 * (1 - abs(hour - 12) / 7)) if not outage else 0.0
        points.append({"t": t, "load_w": 1000, "pv_w": round(pv), "car_w": -1000 if outage else round(min(pv, 3600)),
                       "soc": 45 + i * 0.12, "grid_ok": not outage, "islanded": outage and hour >= 19.1,
                       "shed": ["dryer"] if outage else []})
    return {"points": points}


def _shape_differences(a, b, where: str = "status") -> list[str]:
    """Where two API objects differ in their keys (the elements of lists compared by their first)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += _shape_differences(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        return _shape_differences(a[0], b[0], f"{where}[0]") if a and b else []
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return [where] if a is not None and b is not None else []
    return []


def _serve(page, status: dict, history: dict) -> None:
    """The page's API answered from the given objects (the static files still come from `v2h hems`)."""
    body = json.dumps(status)
    page.route("**/api/status", lambda r: r.fulfill(status=200, content_type="application/json", body=body))
    page.route("**/api/history", lambda r: r.fulfill(status=200, content_type="application/json",
                                                      body=json.dumps(history)))
    page.route("**/api/events", lambda r: r.fulfill(
        status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        body=f"retry: 60000\nevent: status\ndata: {json.dumps({'type': 'status', **status})}\n\n"))


@pytest.mark.browser
def test_an_islanded_house_with_its_car_plan_and_history(browser, hems, tmp_path):
    h = hems()
    real = h.get("api/status")
    status = _islanded(real)
    # the same keys as the real API's answer at every level (without a car its plan has no slots and
    # its runtime is null: those are compared where a value exists on both sides)
    assert _shape_differences(status, real) == []
    for name, ctx in (("desktop", DESKTOP), ("phone", PHONE)):
        w = Watched(browser, h.base, **ctx)
        try:
            _serve(w.page, status, _history())
            page = w.open()
            _wait(page, "document.getElementById('history-text').textContent.startsWith('Since')", timeout=10)
            assert _text(page, "#phase") == "Islanded: the car powers the house"
            flows = page.locator(".wire").evaluate_all(
                "els => Object.fromEntries(els.map(e => [e.id, [e.dataset.direction, e.classList.contains('dead')]]))")
            assert flows == {"w-grid": ["none", True], "w-sun": ["none", False], "w-k1": ["none", False],
                             "w-tie": ["none", False], "w-island": ["forward", False], "w-car": ["reverse", False]}
            assert page.locator("#k1").get_attribute("data-state") == "open"
            assert page.locator("#k2").get_attribute("data-state") == "closed"
            assert _text(page, "#v-island") == "1.0 kW"
            assert "The car powers the house on its own: 1.0 kW." in _text(page, "#flows-text")
            assert page.locator("#house-desc").text_content() == _text(page, "#flows-text")
            assert _text(page, "#soc-value") == "66 %"
            assert page.locator("#soc-bar").get_attribute("aria-valuenow") == "66"
            assert page.locator("#soc-reserve").evaluate("e => e.style.left") == "30%"
            assert "21.6 kWh above the reserve" in _text(page, "#soc-detail")
            rows = page.locator("#runtime-rows tr").all_inner_texts()
            assert len(rows) == 3 and "2 d 6 h" in rows[0], rows
            assert "too much for the island" in rows[2]
            assert "the car is close to its reserve" in _text(page, "#alarms")
            plan = _text(page, "#plan-text")
            assert "the car charges 18.0 kWh" in plan and "price 0.140–0.300 per kWh" in plan, plan
            assert page.locator("#plan-chart canvas").count() == 1
            assert page.locator("#circuit-list li[data-name=dryer]").get_attribute("data-on") == "false"
            hist = _text(page, "#history-text")
            assert "islanded for 1 h" in hist and "shed: dryer" in hist, hist
            if name == "phone":
                assert page.evaluate("document.documentElement.scrollWidth") <= 390
            _shot(page, tmp_path, f"islanded-{name}")
            assert w.problems() == []
        finally:
            w.close()


@pytest.mark.browser
def test_a_status_full_of_nulls_does_not_break_the_page(browser, hems, tmp_path):
    h = hems()
    real = h.get("api/status")
    no_car = copy.deepcopy(real)
    no_car.update({"runtime": None, "alarms": [], "circuits": []})
    no_car["plan"] = {"slots": [], "planned_at": None, "error": "no car"}
    no_car["grid"] = {"ok": None, "voltage": None, "frequency": None}
    no_car["switch"] = dict.fromkeys(real["switch"])
    no_car["house"] = dict.fromkeys(real["house"])
    no_car["car"] = dict.fromkeys(real["car"])
    no_car["charger"] = dict.fromkeys(real["charger"])
    everything_null = dict.fromkeys(real)
    for name, status in (("no-car", no_car), ("all-null", everything_null)):
        w = Watched(browser, h.base, **DESKTOP)
        try:
            _serve(w.page, status, {"points": [{"t": None, "load_w": None}]})
            page = w.open()
            page.wait_for_timeout(300)
            assert _text(page, "#soc-detail") == "No car plugged in."
            assert page.locator("#soc-big").is_hidden()
            assert "No estimate" in _text(page, "#runtime-text")
            assert _text(page, "#plan-text") == ("The planner failed: no car" if name == "no-car"
                                                 else "No plan: no car is plugged in.")
            assert page.locator("#k1").get_attribute("data-state") == "unknown"
            _shot(page, tmp_path, f"nulls-{name}")
            assert w.problems() == []
        finally:
            w.close()

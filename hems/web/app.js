/* v2h dashboard: the energy manager's status, live from /api/events; the plan and the day's
   history as charts (uPlot, vendored); the settings through POST /api/settings.
   Plain JavaScript, no build step; every request goes to the page's own origin. Every field of
   the status may be missing or null (no car, no plan, no estimate): nothing here assumes one. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const HISTORY_EVERY_MS = 4000;   // the day's history is fetched again this often (real time)
  const STALE_MS = 5000;           // the status is read again when no event brought one for this long
  const IDLE_W = 20;               // below this a wire shows no flow
  const FULL_W = 7400;             // a wire at this power is drawn at its widest
  const DAY = 86400;

  const state = {
    status: null,
    settings: null,       // the settings as the API last reported them
    dirty: false,         // the user changed the form since it was last filled
    circuitNames: "",
    planKey: "",
    historyKey: "",
    history: [],
    decisions: [],
    charts: { plan: null, history: null },
  };
  let lastStatusAt = Date.now();   // when a status was last shown (real time)
  let refreshTimer = null;         // a status read planned after a decision

  // --- formatting ----------------------------------------------------------------------------
  const num = (x) => (typeof x === "number" && Number.isFinite(x) ? x : null);
  const kw = (w) => {
    w = num(w);
    if (w === null) return "—";
    const k = Math.abs(w) / 1000;
    return `${k.toFixed(k >= 10 ? 0 : 1)} kW`;
  };
  const pct = (x) => (num(x) === null ? "—" : `${Math.round(x)} %`);
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
  const dayTimeFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit",
    hour12: false });
  const hhmm = (t) => (num(t) === null ? "—" : timeFmt.format(new Date(t * 1000)));
  const duration = (h) => {
    if (h === null || h === undefined) return "indefinitely";
    if (!Number.isFinite(h)) return "—";
    const minutes = Math.floor(h * 60 + 1e-6);
    const d = Math.floor(minutes / 1440), hr = Math.floor((minutes % 1440) / 60), m = minutes % 60;
    if (d > 0) return `${d} d ${hr} h`;
    if (hr > 0) return m ? `${hr} h ${m} min` : `${hr} h`;
    return `${m} min`;
  };
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";

  const PHASES = {
    startup: ["Starting: reading the switch", "transfer"],
    connected: ["On the grid", "grid"],
    shed: ["Grid down: shedding circuits", "transfer"],
    open_utility: ["Grid down: opening the utility contact", "transfer"],
    bond: ["Grid down: bonding neutral to ground", "transfer"],
    close_island: ["Grid down: closing the island contact", "transfer"],
    form: ["Grid down: the car starts the island", "transfer"],
    islanded: ["Islanded: the car powers the house", "island"],
    end_stop: ["Ending the island", "transfer"],
    return_stop: ["Grid back: stopping the island", "transfer"],
    return_open: ["Grid back: opening the island contact", "transfer"],
    return_close: ["Grid back: closing the utility contact", "transfer"],
    dark: ["Dark: waiting for the grid or the car", "dark"],
    lockout: ["Lockout: a contact is not where it must be", "lockout"],
  };
  const ALARMS = {
    sensor_disagree: "the grid sensors disagree",
    sensor_failed: "a grid sensor does not answer",
    lockout: "lockout: a contact could not be proven open or closed",
    charger_not_following: "the charger did not follow its limit; it is off for a while",
    reserve_reached: "the car reached its reserve",
    reserve_near: "the car is close to its reserve",
    car_unavailable: "the car is unplugged or the charger unreachable",
    island_overload: "the house draws more than the island can carry",
    house_dark: "the house is dark",
    transfer_failed: "the transfer to the island failed; retrying",
    utility_feedback: "the utility contact does not follow its command",
    island_feedback: "the island contact does not follow its command",
    bond_feedback: "the neutral–ground bond does not follow its command",
  };
  const alarmText = (code) => {
    if (ALARMS[code]) return ALARMS[code];
    const m = /^relay:(.*)_feedback$/.exec(code);
    if (m) return `the relay of ${m[1]} does not follow its command`;
    return code;
  };

  // --- the house picture ---------------------------------------------------------------------
  // each wire: its segments (point lists) from its natural source to its sink; a positive power
  // flows that way. A switch splits a wire: the blade is the gap between two segments.
  const WIRES = {
    grid: { el: "w-grid", segs: [[[72, 96], [146, 96]]], color: "grid" },                     // grid → bus (import)
    sun: { el: "w-sun", segs: [[[150, 40], [150, 92]]], color: "sun" },                       // sun → bus
    k1: { el: "w-k1", segs: [[[154, 96], [197, 96]], [[227, 96], [278, 96]]], color: "grid" },  // bus → house
    tie: { el: "w-tie", segs: [[[150, 100], [150, 177]]], color: "car" },                     // bus → charger
    island: { el: "w-island", segs: [[[181, 200], [235, 200]], [[265, 200], [386, 200], [386, 118], [374, 118]]],
      color: "island" },                                                                       // charger → house
    car: { el: "w-car", segs: [[[150, 223], [150, 250]]], color: "car" },                      // charger → car
  };

  function drawWire(key, watts, dead) {
    const w = WIRES[key], el = $(w.el);
    const p = num(watts) === null ? 0 : watts;
    const flowing = !dead && Math.abs(p) >= IDLE_W;
    const segs = p < 0 ? [...w.segs].reverse().map((s) => [...s].reverse()) : w.segs;
    el.setAttribute("d", segs.map((s) => s.map(([x, y], i) => `${i ? "L" : "M"} ${x} ${y}`).join(" ")).join(" "));
    el.classList.toggle("flow", flowing);
    el.classList.toggle("dead", !!dead);
    el.dataset.watts = String(Math.round(p));
    el.dataset.direction = flowing ? (p > 0 ? "forward" : "reverse") : "none";
    if (flowing) {
      el.setAttribute("marker-end", `url(#arrow-${w.color})`);
      el.style.strokeWidth = String(2 + 6 * Math.min(1, Math.sqrt(Math.abs(p) / FULL_W)));
    } else {
      el.removeAttribute("marker-end");
      el.style.strokeWidth = "";
    }
    return flowing;
  }

  function drawSwitch(id, cmd, fb) {
    const g = $(id);
    let st = fb === true ? "closed" : fb === false ? "open" : "unknown";
    let text = fb === true ? "closed" : fb === false ? "open" : "unknown";
    if (typeof cmd === "boolean" && typeof fb === "boolean" && cmd !== fb) {
      st = "moving";
      text = cmd ? "closing…" : "opening…";
    }
    g.dataset.state = st;
    g.querySelector(".blade").setAttribute("transform", st === "closed" ? "" :
      st === "moving" ? "rotate(-16 -12 0)" : "rotate(-32 -12 0)");
    g.querySelector(".state").textContent = text;
  }

  function renderPicture(s) {
    const grid = s.grid || {}, sw = s.switch || {}, house = s.house || {}, ch = s.charger || {}, car = s.car || {};
    const gridOk = grid.ok === true, gridDown = grid.ok === false;
    const measured = num(ch.measured_w) || 0;
    const following = ch.mode === "grid_following", forming = ch.mode === "grid_forming";
    const k1Closed = sw.utility_fb === true, k2Closed = sw.island_fb === true;
    const onGrid = gridOk && k1Closed;
    const gridW = onGrid ? num(house.grid_w) : 0;
    const pvW = num(house.pv_w) || 0;
    const loadW = num(house.load_w) || 0;
    const k1W = onGrid ? loadW : 0;
    const tieW = following ? measured : 0;
    const islandW = forming && k2Closed ? -measured : 0;

    drawWire("grid", gridW, gridDown);
    drawWire("sun", pvW, false);
    drawWire("k1", k1W, false);
    drawWire("tie", tieW, false);
    drawWire("island", islandW, false);
    drawWire("car", car.plugged ? measured : 0, false);

    const gn = $("grid-node");
    gn.dataset.ok = gridOk ? "true" : gridDown ? "false" : "unknown";
    const v = num(grid.voltage), f = num(grid.frequency);
    $("t-grid-state").textContent = gridOk ? (v !== null && f !== null ? `${Math.round(v)} V ${f.toFixed(1)} Hz` : "ok")
      : gridDown ? "down" : "unknown";
    $("v-grid").textContent = onGrid && Math.abs(gridW || 0) >= IDLE_W ? kw(gridW) : "";
    $("sun-node").dataset.on = String(pvW >= IDLE_W);
    $("v-sun").textContent = pvW >= IDLE_W ? kw(pvW) : "";
    drawSwitch("k1", sw.utility_cmd, sw.utility_fb);
    drawSwitch("k2", sw.island_cmd, sw.island_fb);
    $("v-k1").textContent = Math.abs(k1W) >= IDLE_W ? kw(k1W) : "";
    $("v-tie").textContent = Math.abs(tieW) >= IDLE_W ? kw(tieW) : "";
    $("v-island").textContent = Math.abs(islandW) >= IDLE_W ? kw(islandW) : "";
    $("v-car").textContent = car.plugged && Math.abs(measured) >= IDLE_W ? kw(measured) : "";

    const lit = onGrid || (forming && k2Closed);
    $("house-node").dataset.lit = String(lit);
    $("v-house").textContent = lit ? `uses ${kw(loadW)}` : "no power";

    const cn = $("charger-node");
    cn.dataset.link = ch.link_up ? "up" : "down";
    $("t-charger").textContent = !ch.link_up ? "offline" : forming ? "island" :
      following ? (measured >= IDLE_W ? "charging" : measured <= -IDLE_W ? "discharging" : "ready") : "idle";
    $("car-node").dataset.plugged = String(!!car.plugged);
    $("t-car").textContent = car.plugged ? "Car" : "No car";
    $("t-car-soc").textContent = car.plugged && num(car.soc) !== null ? `${Math.round(car.soc)} %` : "";

    // the same picture in words (the SVG's description and the line under it)
    const words = [];
    if (gridDown) words.push("The grid is down.");
    else if (onGrid && (gridW || 0) >= IDLE_W) words.push(`The grid supplies ${kw(gridW)}.`);
    else if (onGrid && (gridW || 0) <= -IDLE_W) words.push(`The house sends ${kw(gridW)} to the grid.`);
    else if (!k1Closed) words.push("The utility contact is open.");
    if (pvW >= IDLE_W) words.push(`Solar makes ${kw(pvW)}.`);
    if (islandW >= IDLE_W) words.push(`The car powers the house on its own: ${kw(islandW)}.`);
    else if (car.plugged && measured >= IDLE_W) words.push(`The car charges at ${kw(measured)}.`);
    else if (car.plugged && measured <= -IDLE_W) words.push(`The car gives ${kw(measured)}.`);
    else if (!car.plugged) words.push("No car is plugged in.");
    words.push(lit ? `The house uses ${kw(loadW)}.` : "The house has no power.");
    const text = words.join(" ");
    $("house-desc").textContent = text;
    $("flows-text").textContent = text;
  }

  // --- the other panels ------------------------------------------------------------------------
  function renderHeader(s) {
    const [label, kind] = PHASES[s.phase] || [String(s.phase ?? "unknown"), "unknown"];
    const ph = $("phase");
    if (ph.textContent !== label) ph.textContent = label;
    ph.dataset.kind = kind;
    ph.dataset.phase = String(s.phase);
    const clock = $("clock");
    if (num(s.t) !== null) {
      clock.textContent = dayTimeFmt.format(new Date(s.t * 1000));
      clock.dateTime = new Date(s.t * 1000).toISOString();
    }
  }

  function renderAlarms(s) {
    const box = $("alarms");
    const alarms = Array.isArray(s.alarms) ? s.alarms : [];
    const key = alarms.join("|");
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.hidden = alarms.length === 0;
    box.replaceChildren();
    if (!alarms.length) return;
    box.append(alarms.length === 1 ? "Alarm" : `${alarms.length} alarms`);
    const ul = document.createElement("ul");
    for (const a of alarms) {
      const li = document.createElement("li");
      li.textContent = alarmText(a);
      li.title = a;
      li.dataset.code = a;
      ul.append(li);
    }
    box.append(ul);
  }

  function renderBattery(s) {
    const car = s.car || {}, ch = s.charger || {};
    const soc = num(car.soc), reserve = num(car.reserve_soc), cap = num(car.capacity_kwh);
    const bar = $("soc-bar"), fill = $("soc-fill"), line = $("soc-reserve");
    if (!car.plugged || soc === null) {
      $("soc-value").textContent = "";
      $("soc-big").hidden = true;
      $("soc-detail").textContent = car.plugged ? "The car has not reported its charge yet." : "No car plugged in.";
      fill.style.width = "0";
      bar.removeAttribute("aria-valuenow");
      bar.setAttribute("aria-valuetext", $("soc-detail").textContent);
    } else {
      $("soc-value").textContent = pct(soc);
      $("soc-big").hidden = false;
      const parts = [];
      if (reserve !== null && cap !== null) {
        parts.push(`${Math.max(0, ((soc - reserve) / 100) * cap).toFixed(1)} kWh above the reserve`);
      }
      if (cap !== null) parts.push(`${cap.toFixed(0)} kWh battery`);
      const m = num(ch.measured_w) || 0;
      parts.push(m >= IDLE_W ? `charging ${kw(m)}` : m <= -IDLE_W ? `giving ${kw(m)}` : "idle");
      $("soc-detail").textContent = parts.join(" · ");
      fill.style.width = `${Math.max(0, Math.min(100, soc))}%`;
      bar.setAttribute("aria-valuenow", String(Math.round(soc)));
      bar.setAttribute("aria-valuetext", `${pct(soc)}, reserve ${pct(reserve)}`);
    }
    bar.dataset.low = String(soc !== null && reserve !== null && soc <= reserve);
    if (reserve === null) {
      line.hidden = true;
    } else {
      line.hidden = false;
      line.style.left = `${Math.max(0, Math.min(100, reserve))}%`;
      const carMin = num(car.min_soc), user = num(car.user_reserve_soc);
      const why = carMin !== null && user !== null && carMin > user ? " (the car's minimum)" : "";
      $("soc-reserve-label").textContent = `reserve ${pct(reserve)}${why}`;
    }
  }

  const SCENARIO_NAMES = { critical: "Critical only", essential: "Critical + essential", everything: "Everything" };

  function renderRuntime(s) {
    const rt = s.runtime, table = $("runtime-table"), rows = $("runtime-rows");
    if (!rt || typeof rt !== "object") {
      $("runtime-text").textContent = s.car && s.car.plugged ? "No estimate yet." :
        "No estimate: no car is plugged in.";
      table.hidden = true;
      return;
    }
    $("runtime-text").textContent = rt.text || "";
    const sc = Array.isArray(rt.scenarios) ? rt.scenarios : [];
    table.hidden = sc.length === 0;
    rows.replaceChildren(...sc.map((x) => {
      const tr = document.createElement("tr");
      tr.dataset.fits = String(x.fits !== false);
      const cells = [SCENARIO_NAMES[x.name] || x.name, kw(x.load_w),
        x.fits === false ? "too much for the island" : duration(x.hours)];
      for (const [i, c] of cells.entries()) {
        const td = document.createElement(i ? "td" : "th");
        if (!i) td.scope = "row";
        td.textContent = c;
        tr.append(td);
      }
      return tr;
    }));
  }

  function renderCircuits(s) {
    const list = $("circuit-list");
    const circuits = Array.isArray(s.circuits) ? s.circuits : [];
    if (!circuits.length) {
      list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "No circuits configured." }));
      return;
    }
    list.replaceChildren(...circuits.map((c) => {
      const li = document.createElement("li");
      li.dataset.name = c.name;
      li.dataset.on = String(!!c.on);
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.setAttribute("aria-hidden", "true");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = c.name;
      const state = document.createElement("span");
      state.className = "visually-hidden";
      state.textContent = c.on ? ", on" : ", off";
      name.append(state);
      const prio = document.createElement("span");
      prio.className = "prio";
      prio.dataset.p = c.priority;
      prio.textContent = c.priority || "—";
      const w = document.createElement("span");
      w.className = "w";
      w.textContent = c.on ? (num(c.w) === null ? "—" : `${Math.round(c.w)} W`) : (c.relay_cmd === false ? "shed" : "off");
      li.append(dot, name, prio, w);
      return li;
    }));
  }

  function renderDecisions() {
    const ol = $("decision-list");
    if (!state.decisions.length) {
      ol.replaceChildren(Object.assign(document.createElement("li"), { textContent: "Nothing decided yet." }));
      return;
    }
    ol.replaceChildren(...state.decisions.map((d) => {
      const li = document.createElement("li");
      const t = document.createElement("time");
      t.textContent = hhmm(d.t);
      const k = document.createElement("span");
      k.className = "kind";
      k.textContent = d.kind || "";
      li.append(t, k, String(d.reason ?? ""));
      return li;
    }));
  }

  // --- charts ----------------------------------------------------------------------------------
  const chartHeight = () => (window.innerWidth < 600 ? 200 : 260);

  // A uPlot chart that follows its box's width and is made again when the box crosses the narrow
  // breakpoint (a phone gets fewer, slimmer axes). build(narrow) gives its series, axes, scales and
  // hooks; xRange() the window shown ([from, to] in Unix seconds) or null to fit the data.
  class Chart {
    constructor(el, build, xRange) {
      Object.assign(this, { el, build, xRange, u: null, data: null, narrow: null, pending: false });
      new ResizeObserver(() => {
        if (this.pending) return;
        this.pending = true;
        requestAnimationFrame(() => { this.pending = false; this.fit(); });
      }).observe(el);
    }

    isNarrow() { return this.el.clientWidth < 560; }

    make() {
      if (typeof uPlot !== "function") return;
      this.narrow = this.isNarrow();
      const { series, axes, scales, hooks } = this.build(this.narrow);
      if (this.u) this.u.destroy();
      this.u = new uPlot({
        width: Math.max(200, this.el.clientWidth), height: chartHeight(),
        scales: { x: { time: true, range: (u, lo, hi) => this.xRange() || [lo, hi] }, ...scales },
        series: [{ label: "time", value: (u, v) => (v == null ? "—" : hhmm(v)) }, ...series],
        axes, hooks: hooks || {}, legend: { live: true }, cursor: { drag: { x: false, y: false } },
      }, this.data || [[], ...series.map(() => [])], this.el);
    }

    setData(data) {
      this.data = data;
      if (this.u) this.u.setData(data); else this.make();
    }

    fit() {
      if (!this.u) return;
      if (this.isNarrow() !== this.narrow) { this.make(); return; }
      const w = Math.max(200, this.el.clientWidth);
      if (Math.abs(w - this.u.width) > 1 || this.u.height !== chartHeight()) this.u.setSize({ width: w, height: chartHeight() });
    }
  }

  function axis(scale, side, label, size, fmt) {
    const muted = css("--muted"), line = css("--line");
    return {
      scale, side, label, stroke: muted, size, labelSize: 14, gap: 3, font: "11px system-ui, sans-serif",
      labelFont: "11px system-ui, sans-serif", show: size > 0,
      grid: { show: side === 3, stroke: line, width: 1 }, ticks: { stroke: line, width: 1, size: 4 },
      values: fmt ? (u, vals) => vals.map(fmt) : undefined,
    };
  }
  const xAxis = () => ({
    stroke: css("--muted"), font: "11px system-ui, sans-serif", grid: { stroke: css("--line"), width: 1 },
    ticks: { stroke: css("--line"), width: 1 }, values: (u, vals) => vals.map((v) => hhmm(v)),
  });

  function stepped() {
    return uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined;
  }

  function ensurePlanChart() {
    if (!state.charts.plan && typeof uPlot === "function") {
      const kwv = (u, v) => (v == null ? "—" : `${v.toFixed(2)} kW`);
      state.charts.plan = new Chart($("plan-chart"), (narrow) => ({
        series: [
          { label: "car (+ charge)", scale: "kW", stroke: css("--car"), fill: "rgba(31,111,67,0.15)", width: 2,
            paths: stepped(), value: kwv },
          { label: "grid (+ import)", scale: "kW", stroke: css("--grid"), width: 1.5, paths: stepped(), value: kwv },
          { label: "SoC", scale: "%", stroke: css("--island"), width: 2, dash: [6, 4],
            value: (u, v) => (v == null ? "—" : `${v.toFixed(0)} %`) },
          { label: "import price", scale: "price", stroke: css("--bad"), width: 1.5, paths: stepped(),
            value: (u, v) => (v == null ? "—" : `${v.toFixed(3)}/kWh`) },
        ],
        axes: [xAxis(), axis("kW", 3, "kW", narrow ? 40 : 48),
          axis("price", 1, "price /kWh", narrow ? 48 : 52, (v) => v.toFixed(2)),
          axis("%", 1, "SoC %", narrow ? 0 : 44, (v) => `${v}`)],
        scales: { kW: { auto: true }, "%": { auto: false, range: [0, 100] }, price: { auto: true } },
      }), () => state.planRange);
    }
    return state.charts.plan;
  }

  function renderPlan(s) {
    const plan = s.plan || {}, slots = Array.isArray(plan.slots) ? plan.slots : [];
    const now = num(s.t);
    const shown = slots.filter((x) => num(x.t) !== null && (now === null || x.t < now + DAY));
    const key = `${plan.planned_at}|${shown.length}|${shown.length ? shown[0].t : ""}|${plan.error}`;
    if (key === state.planKey) return;
    state.planKey = key;
    const text = $("plan-text");
    if (plan.error) {
      text.textContent = `The planner failed: ${plan.error}`;
    } else if (!shown.length) {
      text.textContent = s.car && s.car.plugged ? "No plan yet." : "No plan: no car is plugged in.";
    } else {
      let charge = 0, give = 0, pmin = Infinity, pmax = -Infinity, cheapest = null;
      shown.forEach((x, i) => {
        const dt = (i + 1 < shown.length ? shown[i + 1].t - x.t : 900) / 3600;
        const w = num(x.car_w) || 0;
        if (w > 0) charge += (w * dt) / 1000; else give += (-w * dt) / 1000;
        const p = num(x.import_price);
        if (p !== null) {
          if (p < pmin) { pmin = p; cheapest = x.t; }
          pmax = Math.max(pmax, p);
        }
      });
      const last = shown[shown.length - 1];
      const parts = [`From ${hhmm(shown[0].t)}: the car charges ${charge.toFixed(1)} kWh and gives ${give.toFixed(1)} kWh`,
        `state of charge ${pct(shown[0].soc)} → ${pct(last.soc)}`];
      if (cheapest !== null) {
        parts.push(pmin === pmax ? `price ${pmin.toFixed(3)} per kWh throughout`
          : `price ${pmin.toFixed(3)}–${pmax.toFixed(3)} per kWh, cheapest from ${hhmm(cheapest)}`);
      }
      if (num(plan.planned_at) !== null) parts.push(`planned at ${hhmm(plan.planned_at)}`);
      text.textContent = `${parts.join("; ")}.`;
    }
    state.planRange = shown.length ? [shown[0].t, shown[0].t + DAY] : null;
    $("plan-chart").hidden = !shown.length;
    const chart = ensurePlanChart();
    if (!chart) return;
    const kwOf = (w) => (num(w) === null ? null : w / 1000);
    chart.setData([
      shown.map((x) => x.t), shown.map((x) => kwOf(x.car_w)), shown.map((x) => kwOf(x.grid_w)),
      shown.map((x) => num(x.soc)), shown.map((x) => num(x.import_price)),
    ]);
  }

  function drawBands(u) {
    const pts = state.historyShown || [];
    if (pts.length < 2) return;
    const { ctx } = u, { top, height } = u.bbox;
    ctx.save();
    for (let i = 0; i < pts.length; i++) {
      const p = pts[i];
      const color = p.islanded ? "rgba(230,140,30,0.22)" : p.grid_ok === false ? "rgba(200,40,30,0.2)" : null;
      if (!color) continue;
      const t1 = i + 1 < pts.length ? pts[i + 1].t : p.t + 300;
      const x0 = u.valToPos(p.t, "x", true), x1 = u.valToPos(t1, "x", true);
      ctx.fillStyle = color;
      ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
    }
    ctx.restore();
  }

  function ensureHistoryChart() {
    if (!state.charts.history && typeof uPlot === "function") {
      const kwv = (u, v) => (v == null ? "—" : `${v.toFixed(2)} kW`);
      state.charts.history = new Chart($("history-chart"), (narrow) => ({
        series: [
          { label: "house", scale: "kW", stroke: css("--ink"), width: 1.5, value: kwv },
          { label: "solar", scale: "kW", stroke: css("--sun"), fill: "rgba(201,138,0,0.12)", width: 1.5, value: kwv },
          { label: "car (+ charge)", scale: "kW", stroke: css("--car"), width: 2, value: kwv },
          { label: "SoC", scale: "%", stroke: css("--island"), width: 2, dash: [6, 4],
            value: (u, v) => (v == null ? "—" : `${v.toFixed(0)} %`) },
        ],
        axes: [xAxis(), axis("kW", 3, "kW", narrow ? 40 : 48), axis("%", 1, "SoC %", narrow ? 40 : 44, (v) => `${v}`)],
        scales: { kW: { auto: true }, "%": { auto: false, range: [0, 100] } },
        hooks: { drawAxes: [drawBands] },
      }), () => state.historyRange);
    }
    return state.charts.history;
  }

  function renderHistory() {
    const now = state.status ? num(state.status.t) : null;
    const all = state.history.filter((p) => num(p.t) !== null);
    const end = now !== null ? now : (all.length ? all[all.length - 1].t : 0);
    const pts = all.filter((p) => p.t > end - DAY);
    const key = `${pts.length}|${pts.length ? pts[0].t : ""}|${pts.length ? pts[pts.length - 1].t : ""}`;
    if (key === state.historyKey) return;
    state.historyKey = key;
    state.historyShown = pts;
    state.historyRange = pts.length ? [end - DAY, end] : null;
    const text = $("history-text");
    if (!pts.length) {
      text.textContent = "No history yet.";
    } else {
      let load = 0, pv = 0, charged = 0, given = 0, island = 0, down = 0;
      const shed = new Set();
      pts.forEach((p, i) => {
        const dt = Math.min(900, i + 1 < pts.length ? pts[i + 1].t - p.t : 0) / 3600;
        load += ((num(p.load_w) || 0) * dt) / 1000;
        pv += ((num(p.pv_w) || 0) * dt) / 1000;
        const c = num(p.car_w) || 0;
        if (c > 0) charged += (c * dt) / 1000; else given += (-c * dt) / 1000;
        if (p.islanded) island += dt; else if (p.grid_ok === false) down += dt;
        for (const n of Array.isArray(p.shed) ? p.shed : []) shed.add(n);
      });
      const parts = [`Since ${hhmm(pts[0].t)}: the house used ${load.toFixed(1)} kWh, solar made ${pv.toFixed(1)} kWh`,
        `the car took ${charged.toFixed(1)} kWh and gave ${given.toFixed(1)} kWh`];
      if (island > 0) parts.push(`islanded for ${duration(island)}`);
      if (down > 0) parts.push(`without power for ${duration(down)}`);
      if (shed.size) parts.push(`shed: ${[...shed].join(", ")}`);
      text.textContent = `${parts.join("; ")}.`;
    }
    const chart = ensureHistoryChart();
    if (!chart) return;
    const kwOf = (w) => (num(w) === null ? null : w / 1000);
    chart.setData([pts.map((p) => p.t), pts.map((p) => kwOf(p.load_w)), pts.map((p) => kwOf(p.pv_w)),
      pts.map((p) => kwOf(p.car_w)), pts.map((p) => num(p.soc))]);
  }

  async function fetchHistory() {
    try {
      const r = await fetch("api/history", { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const body = await r.json();
      state.history = Array.isArray(body && body.points) ? body.points : [];
      renderHistory();
    } catch (e) {
      console.warn("history:", e);
    }
  }

  // --- settings --------------------------------------------------------------------------------
  const form = $("settings"), reserve = $("reserve"), range = $("reserve-range"), departure = $("departure");

  function circuitOrder(s) {
    const fromStatus = Array.isArray(s && s.circuits) ? s.circuits.map((c) => c.name) : [];
    const prio = state.settings && state.settings.priorities ? Object.keys(state.settings.priorities) : [];
    return [...fromStatus.filter((n) => prio.includes(n)), ...prio.filter((n) => !fromStatus.includes(n))];
  }

  function buildPriorityFields(names) {
    const key = names.join("\u0000");
    if (key === state.circuitNames) return;
    state.circuitNames = key;
    const box = $("priority-fields");
    box.replaceChildren(...names.map((name, i) => {
      const row = document.createElement("div");
      row.className = "prio-row";
      const label = document.createElement("label");
      label.htmlFor = `prio-${i}`;
      label.textContent = name;
      const sel = document.createElement("select");
      sel.id = `prio-${i}`;
      sel.dataset.circuit = name;
      for (const p of ["critical", "essential", "deferrable"]) sel.append(new Option(p, p));
      sel.addEventListener("change", markDirty);
      row.append(label, sel);
      return row;
    }));
  }

  function fillForm() {
    const st = state.settings;
    if (!st) return;
    reserve.value = num(st.reserve_soc) === null ? "" : String(st.reserve_soc);
    range.value = reserve.value || "0";
    departure.value = st.departure || "";
    for (const sel of $("priority-fields").querySelectorAll("select")) {
      const p = st.priorities ? st.priorities[sel.dataset.circuit] : undefined;
      if (p) sel.value = p;
    }
    clearInvalid();
    setDirty(false);
  }

  function setDirty(d) {
    state.dirty = d;
    $("save").disabled = !d;
    $("revert").disabled = !d;
  }
  function markDirty() { setDirty(true); }

  function clearInvalid() {
    for (const el of form.querySelectorAll("[aria-invalid]")) {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-errormessage");
    }
  }

  function say(text, kind) {
    const msg = $("settings-msg");
    msg.textContent = text;
    msg.dataset.kind = kind || "";
  }

  function collectChanges() {
    const st = state.settings || { priorities: {} };
    const changes = {};
    const raw = reserve.value.trim();
    const r = raw !== "" && Number.isFinite(Number(raw)) ? Number(raw) : raw;
    if (r !== st.reserve_soc) changes.reserve_soc = r;
    const dep = departure.value || null;
    if (dep !== (st.departure || null)) changes.departure = dep;
    const prios = {};
    for (const sel of $("priority-fields").querySelectorAll("select")) {
      if (!st.priorities || sel.value !== st.priorities[sel.dataset.circuit]) prios[sel.dataset.circuit] = sel.value;
    }
    if (Object.keys(prios).length) changes.priorities = prios;
    return changes;
  }

  function fieldFor(key) {
    if (key.startsWith("reserve_soc")) return reserve;
    if (key.startsWith("departure")) return departure;
    const m = /^priorities\.(.+)$/.exec(key);
    if (m) return [...$("priority-fields").querySelectorAll("select")].find((s) => s.dataset.circuit === m[1]) || null;
    return null;
  }

  async function save(ev) {
    ev.preventDefault();
    clearInvalid();
    const changes = collectChanges();
    if (!Object.keys(changes).length) {
      say("Nothing to change.", "ok");
      setDirty(false);
      return;
    }
    $("save").disabled = true;
    say("Saving…", "");
    let r, body;
    try {
      r = await fetch("api/settings", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(changes),
      });
      body = await r.json().catch(() => null);
    } catch (e) {
      say(`The energy manager could not be reached: ${e.message}`, "error");
      $("save").disabled = false;
      return;
    }
    if (r.ok && body && typeof body === "object") {
      state.settings = body;
      fillForm();
      const bits = [`reserve ${pct(body.reserve_soc)}`, body.departure ? `departure ${body.departure}` : "no departure"];
      say(`Saved: ${bits.join(", ")}.`, "ok");
      return;
    }
    const err = body && typeof body.error === "string" ? body.error : `HTTP ${r.status}`;
    say(`Not saved: ${err}`, "error");
    const el = fieldFor(err.split(":")[0].trim());
    if (el) {
      el.setAttribute("aria-invalid", "true");
      el.setAttribute("aria-errormessage", "settings-msg");
    }
    $("save").disabled = false;
  }

  form.addEventListener("submit", save);
  form.addEventListener("input", markDirty);
  range.addEventListener("input", () => { reserve.value = range.value; });
  reserve.addEventListener("input", () => {
    if (reserve.value !== "" && Number.isFinite(Number(reserve.value))) range.value = reserve.value;
  });
  $("departure-clear").addEventListener("click", () => { departure.value = ""; markDirty(); });
  $("revert").addEventListener("click", () => { fillForm(); say("", ""); });
  setDirty(false);

  function renderSettings(s) {
    if (s.settings && typeof s.settings === "object") {
      state.settings = s.settings;
      buildPriorityFields(circuitOrder(s));
      if (!state.dirty) fillForm();
    }
  }

  // --- the status, live --------------------------------------------------------------------------
  function render(s) {
    if (!s || typeof s !== "object") return;
    const prev = state.status ? num(state.status.t) : null;
    if (prev !== null && num(s.t) !== null && s.t < prev) return;  // an older answer, overtaken
    state.status = s;
    const parts = [renderHeader, renderAlarms, renderPicture, renderBattery, renderRuntime, renderCircuits,
      renderPlan, renderSettings];
    for (const f of parts) {
      try {
        f(s);
      } catch (e) {
        console.error(`dashboard: ${f.name} failed`, e);
      }
    }
    document.body.dataset.t = String(s.t);
    lastStatusAt = Date.now();
  }

  function setLink(st, text) {
    const l = $("link");
    l.dataset.state = st;
    l.textContent = text;
  }

  function connect() {
    if (typeof EventSource !== "function") {
      setInterval(poll, 2000);
      return;
    }
    const es = new EventSource("api/events");
    es.addEventListener("open", () => setLink("live", "live"));
    es.addEventListener("error", () => setLink(es.readyState === EventSource.CLOSED ? "lost" : "connecting",
      es.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting"));
    es.addEventListener("status", (ev) => {
      try {
        render(JSON.parse(ev.data));
      } catch (e) {
        console.error("dashboard: a status event could not be read", e);
      }
    });
    es.addEventListener("decision", (ev) => {
      try {
        const d = JSON.parse(ev.data);
        state.decisions.unshift(d);
        state.decisions.length = Math.min(state.decisions.length, 12);
        renderDecisions();
      } catch (e) {
        console.error("dashboard: a decision event could not be read", e);
      }
      refreshSoon();
    });
  }

  // The server sends the status at most every 0.2 s, so the last change of a quick sequence can
  // arrive late; every decision marks a change: the status is read again just after it, and
  // again whenever no status came for a while.
  function refreshSoon() {
    if (refreshTimer === null) refreshTimer = setTimeout(() => { refreshTimer = null; poll(); }, 400);
  }
  setInterval(() => { if (!document.hidden && Date.now() - lastStatusAt > STALE_MS) poll(); }, STALE_MS);

  async function poll() {
    try {
      const r = await fetch("api/status", { cache: "no-store" });
      if (r.ok) render(await r.json());
    } catch (e) {
      setLink("lost", "disconnected");
    }
  }

  renderDecisions();
  poll().then(fetchHistory);
  connect();
  setInterval(() => { if (!document.hidden) fetchHistory(); }, HISTORY_EVERY_MS);
})();

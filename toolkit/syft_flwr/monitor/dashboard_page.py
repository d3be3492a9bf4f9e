"""The dashboard's single HTML page: inline CSS and JS, nothing fetched from elsewhere.

The page listens to the server's pushes (server-sent events, ``/api/stream``; no polling)
and builds the DOM with ``textContent`` only (no HTML from data). Elements carry stable ids,
classes and ``data-*`` attributes for tests: ``#participants tr[data-datasite]`` (with a
``svg.spark`` of its CPU), ``#cpu-mean[data-mean]``, ``#runs tr[data-run-id][data-rounds-completed]
[data-status]``, ``#run-detail[data-run-id]``, ``#charts svg.chart[data-metric]`` with one
``circle[data-round][data-value]`` per round, ``#rounds tr[data-round] td[data-datasite]
[data-result]``, ``#latency [data-datasite]``, ``#figures figure[data-run-id][data-name]``
(a click opens ``#lightbox``); ``body[data-updates]`` counts the pushes the page received.
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>syft-flwr federation</title>
<style>
  :root {
    --bg: #f5f6f8; --card: #fff; --ink: #1d2330; --muted: #6b7385; --line: #e3e6ec;
    --ok: #1a7f4b; --ok-bg: #e3f5ea; --bad: #b42318; --bad-bg: #fde8e6;
    --warn: #9a6700; --warn-bg: #fff4d6; --run: #1f5fbf; --run-bg: #e4eefc;
    --off: #6b7385; --off-bg: #eceef2; --bar: #5b8def;
  }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--ink);
         font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  header { display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap;
           padding: 14px 24px; background: #1d2330; color: #fff; }
  header h1 { font-size: 18px; margin: 0; font-weight: 600; }
  header .sub { color: #aab2c5; font-size: 12px; font-family: ui-monospace, monospace; }
  header .right { margin-left: auto; font-size: 12px; color: #aab2c5; }
  #conn::before { content: "●"; margin-right: 6px; color: #6fdc9a; }
  #conn.down::before { color: #ff8a80; }
  main { display: grid; grid-template-columns: minmax(0, 1fr); gap: 16px;
         padding: 16px 24px 32px; max-width: 1500px; margin: 0 auto; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
            padding: 14px 16px; min-width: 0; }
  .scroll { overflow-x: auto; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
       margin: 0 0 10px; font-weight: 600; }
  h2 .count { text-transform: none; letter-spacing: 0; color: var(--ink); margin-left: 6px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
           vertical-align: top; white-space: nowrap; }
  th { font-size: 12px; color: var(--muted); font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.wrap { white-space: normal; }
  .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  .muted { color: var(--muted); }
  .empty { color: var(--muted); padding: 8px 0; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
           font-weight: 600; }
  .b-online, .b-completed { color: var(--ok); background: var(--ok-bg); }
  .b-offline, .b-starting { color: var(--off); background: var(--off-bg); }
  .b-no-heartbeat, .b-interrupted { color: var(--warn); background: var(--warn-bg); }
  .b-failed { color: var(--bad); background: var(--bad-bg); }
  .b-running { color: var(--run); background: var(--run-bg); }
  .meter { display: inline-block; width: 60px; height: 6px; background: var(--line);
           border-radius: 3px; vertical-align: middle; margin-left: 6px; overflow: hidden; }
  .meter > span { display: block; height: 100%; background: var(--bar); }
  tr.run { cursor: pointer; }
  tr.run:hover td { background: #f8f9fb; }
  tr.run.selected td { background: #eef3fd; }
  .cell { display: inline-block; min-width: 74px; padding: 2px 8px; border-radius: 4px;
          font-size: 12px; text-align: center; }
  .r-answered { color: var(--ok); background: var(--ok-bg); }
  .r-failed { color: var(--bad); background: var(--bad-bg); }
  .r-pending { color: var(--run); background: var(--run-bg); }
  .r-none { color: var(--muted); background: var(--off-bg); }
  .latency { display: grid; grid-template-columns: 200px 1fr 320px; gap: 10px;
             align-items: center; padding: 5px 0; border-bottom: 1px solid var(--line); }
  .latency .track { height: 10px; background: var(--line); border-radius: 5px; overflow: hidden; }
  .latency .track > span { display: block; height: 100%; background: var(--bar); }
  .detail-head { display: flex; gap: 16px; flex-wrap: wrap; align-items: baseline;
                 margin-bottom: 10px; }
  .detail-head .big { font-size: 22px; font-weight: 600; }
  .failures { color: var(--bad); margin: 6px 0 0; white-space: pre-wrap; }
  .failures-cell { color: var(--bad); font-size: 12px; }
  #figures .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr));
                   gap: 14px; }
  figure a { display: block; cursor: zoom-in; }
  #lightbox { position: fixed; inset: 0; background: rgba(20, 24, 32, .86); display: flex;
              align-items: center; justify-content: center; z-index: 10; cursor: zoom-out;
              flex-direction: column; gap: 8px; }
  #lightbox[hidden] { display: none; }
  #lightbox img { max-width: 94vw; max-height: 88vh; background: #fff; border-radius: 4px; }
  #lightbox .caption { color: #e6e9ef; font-size: 13px; }
  .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr));
            gap: 12px; margin-bottom: 8px; }
  .chart-box { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .chart-box h3 { margin: 0 0 4px; font-size: 13px; font-weight: 600; }
  .chart-box h3 .last { float: right; font-weight: 600; color: var(--run); }
  svg.chart { width: 100%; height: 170px; display: block; }
  svg.chart .axis { stroke: var(--line); }
  svg.chart .line { fill: none; stroke: var(--bar); stroke-width: 2; }
  svg.chart circle { fill: var(--bar); }
  svg.chart text { font-size: 10px; fill: var(--muted); }
  svg.spark { width: 120px; height: 22px; vertical-align: middle; }
  svg.spark polyline { fill: none; stroke: var(--bar); stroke-width: 1.5; }
  svg.spark.big { width: 260px; height: 34px; }
  .cpu-head { display: flex; gap: 14px; align-items: center; margin-bottom: 8px; }
  .cpu-head .big { font-size: 22px; font-weight: 600; }
  figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; overflow: hidden;
           background: #fff; }
  figure img { display: block; width: 100%; height: auto; }
  figcaption { padding: 6px 8px; font-size: 12px; color: var(--muted);
               border-top: 1px solid var(--line); }
</style>
</head>
<body>
<header>
  <h1>syft-flwr federation</h1>
  <span class="sub" id="network"></span>
  <span class="right"><span id="summary"></span> · <span id="conn">connecting…</span></span>
</header>
<main>
  <section id="participants-section">
    <h2>Datasites <span class="count" id="participants-count"></span></h2>
    <div class="cpu-head"><span class="muted">network CPU (mean of online datasites)</span>
      <span class="big" id="cpu-mean">–</span><span id="cpu-mean-history"></span></div>
    <div class="scroll"><table id="participants">
      <thead><tr><th>Datasite</th><th>State</th><th>Role</th><th class="num">Heartbeat</th>
        <th>CPU proc / host</th><th>CPU history (host)</th><th>Memory proc / host</th>
        <th>Running</th></tr></thead>
      <tbody></tbody>
    </table></div>
    <div class="empty" id="participants-empty" hidden>No datasites on this network yet.</div>
  </section>
  <section id="runs-section">
    <h2>Runs <span class="count" id="runs-count"></span></h2>
    <div class="scroll"><table id="runs">
      <thead><tr><th>Run</th><th>App</th><th>Status</th><th class="num">Rounds</th>
        <th class="num">Datasites</th><th>Started</th><th class="num">Duration</th>
        <th>Failures</th></tr></thead>
      <tbody></tbody>
    </table></div>
    <div class="empty" id="runs-empty" hidden>No runs registered yet.</div>
  </section>
  <section id="run-detail" hidden>
    <h2>Run <span class="count mono" id="detail-id"></span></h2>
    <div class="detail-head">
      <span class="big" id="detail-app"></span>
      <span id="detail-status"></span>
      <span><span class="big" id="detail-rounds"></span>
        <span class="muted" id="detail-rounds-label">rounds completed</span></span>
      <span class="muted" id="detail-times"></span>
    </div>
    <div class="failures" id="detail-failures" hidden></div>
    <div id="charts-box"><h2 style="margin-top:14px">Training</h2>
      <div class="charts" id="charts"></div></div>
    <h2 style="margin-top:14px">Per-round progress</h2>
    <div class="scroll"><table id="rounds"><thead></thead><tbody></tbody></table></div>
    <h2 style="margin-top:18px">Reply latency per datasite</h2>
    <div id="latency"></div>
  </section>
  <section id="figures">
    <h2>Latest figures <span class="count" id="figures-count"></span></h2>
    <div class="grid"></div>
    <div class="empty" id="figures-empty" hidden>No figures yet.</div>
  </section>
</main>
<div id="lightbox" hidden><img alt=""><span class="caption"></span></div>
<svg id="svg-ns" width="0" height="0" aria-hidden="true"></svg>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const SVG = $("svg-ns").namespaceURI;  // the parser's SVG namespace, no URL in the page
let selectedRun = null;
let figuresKey = "";
let updates = 0;
let source = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c));
  return node;
}
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") node.textContent = v; else node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c);
  return node;
}
const badge = (text) => el("span", {class: "badge b-" + text.replace(/ /g, "-"), text});
const num = (v) => typeof v === "number" && isFinite(v);
// "1 reply", "2 replies", "1 round", "0 rounds"
function plural(n, one, many) {
  return n + " " + (n === 1 ? one : (many || one + "s"));
}
function fmtSeconds(s) {
  if (!num(s)) return "–";
  if (s < 1) return (s * 1000).toFixed(0) + " ms";
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function fmtAge(s) { return num(s) ? fmtSeconds(s) + " ago" : "never"; }
function fmtBytes(b) {
  if (!num(b)) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b.toFixed(0)) + " " + units[i];
}
function fmtPct(p) { return num(p) ? p.toFixed(0) + "%" : "–"; }
function fmtClock(epoch) { return num(epoch) ? new Date(epoch * 1000).toLocaleTimeString() : "–"; }
function fmtValue(v) { return num(v) ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(4)) : "–"; }
function meter(pct) {
  const m = el("span", {class: "meter"});
  m.append(el("span", {style: "width:" + Math.max(0, Math.min(100, pct || 0)) + "%"}));
  return m;
}
// a sparkline of values in 0..100 (CPU percent)
function spark(values, big) {
  const w = big ? 260 : 120, h = big ? 34 : 22;
  const pts = values.filter(num);
  const node = svg("svg", {class: "spark" + (big ? " big" : ""), viewBox: `0 0 ${w} ${h}`,
                           preserveAspectRatio: "none", "data-points": pts.length});
  if (pts.length > 1) {
    const step = w / (pts.length - 1);
    node.append(svg("polyline", {points: pts.map((v, i) =>
      (i * step).toFixed(1) + "," + (h - 1 - (h - 2) * Math.min(100, Math.max(0, v)) / 100)
        .toFixed(1)).join(" ")}));
  }
  node.append(svg("title", {text: pts.length ? "last " + plural(pts.length, "sample") +
                                  ", now " + fmtPct(pts[pts.length - 1]) : "no samples yet"}));
  return node;
}

function renderParticipants(data) {
  $("network").textContent = data.network || "";
  const list = data.participants || [];
  const online = list.filter((p) => p.online).length;
  $("participants-count").textContent = online + " / " + list.length + " online";
  $("participants-empty").hidden = list.length > 0;
  const cpu = data.cpu || {};
  const history = cpu.history || [];
  const lastMean = history.length ? history[history.length - 1][1] : null;
  $("cpu-mean").textContent = num(cpu.mean) ? fmtPct(cpu.mean) + " over " +
    plural(cpu.online, "datasite") : (num(lastMean) ? "– (none online; last " +
    fmtPct(lastMean) + ")" : "–");
  $("cpu-mean").setAttribute("data-mean", num(cpu.mean) ? cpu.mean : "");
  $("cpu-mean-history").replaceChildren(spark(history.map((s) => s[1]), true));
  const rows = list.map((p) => {
    const c = p.cpu || {}, mem = p.memory || {}, run = p.running || {};
    const running = [run.app, run.job ? "job " + run.job : null,
                     run.round !== null && run.round !== undefined ? "round " + run.round : null]
      .filter(Boolean).join(" · ");
    return el("tr", {class: "participant", "data-datasite": p.email, "data-online": p.online,
                     "data-state": p.state},
      el("td", {class: "mono", text: p.email}),
      el("td", {}, badge(p.state)),
      el("td", {text: p.role || "–"}),
      el("td", {class: "num", "data-heartbeat-age": num(p.heartbeat_age) ? p.heartbeat_age : "",
                text: fmtAge(p.heartbeat_age)}),
      el("td", {}, fmtPct(c.process) + " / " + fmtPct(c.machine), meter(c.machine)),
      el("td", {"data-cpu-samples": (p.cpu_history || []).length},
         spark((p.cpu_history || []).map((s) => s[1]))),
      el("td", {}, fmtBytes(mem.process_rss_bytes) + " / " + fmtPct(mem.machine_percent),
         meter(mem.machine_percent)),
      el("td", {class: "wrap", text: running || "–"}));
  });
  document.querySelector("#participants tbody").replaceChildren(...rows);
  return {online, total: list.length};
}

function renderRuns(runs, current) {
  const active = runs.filter((r) => r.status === "running").length;
  $("runs-count").textContent = runs.length + (active ? " · " + active + " running" : "");
  $("runs-empty").hidden = runs.length > 0;
  const rows = runs.map((r) => {
    const end = r.finished_at || (r.status === "running" ? Date.now() / 1000 : r.last_event_at);
    const row = el("tr", {class: "run" + (r.run_id === current ? " selected" : ""),
                          "data-run-id": r.run_id, "data-status": r.status,
                          "data-rounds-completed": r.rounds_completed},
      el("td", {class: "mono", text: r.run_id}),
      el("td", {text: r.app_name}),
      el("td", {}, badge(r.status)),
      el("td", {class: "num", text: String(r.rounds_completed)}),
      el("td", {class: "num", text: String((r.datasites || []).length)}),
      el("td", {text: fmtClock(r.started_at)}),
      el("td", {class: "num", text: r.started_at && end ? fmtSeconds(end - r.started_at) : "–"}),
      el("td", {class: "wrap failures-cell", text: Object.entries(r.failures || {})
        .map(([e, why]) => e + ": " + why).join("; ")}));
    row.addEventListener("click", () => {
      history.replaceState(null, "", "#run=" + encodeURIComponent(r.run_id));
      connect();
    });
    return row;
  });
  document.querySelector("#runs tbody").replaceChildren(...rows);
  return active;
}

const CHARTS = [["loss", "Loss"], ["accuracy", "Accuracy"], ["auc", "AUC (ROC)"]];
// one line chart per metric the run reported: x = round, y = value
function chart(metric, title, points) {
  const W = 330, H = 170, L = 44, R = 10, T = 10, B = 26;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (metric !== "loss") { lo = Math.min(lo, 0.5); hi = Math.max(hi, 1); }
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const x0 = Math.min(...xs), x1 = Math.max(x0 + 1, ...xs);
  const X = (x) => L + (W - L - R) * (x - x0) / (x1 - x0);
  const Y = (y) => T + (H - T - B) * (1 - (y - lo) / (hi - lo));
  const node = svg("svg", {class: "chart", "data-metric": metric, viewBox: `0 0 ${W} ${H}`,
                           role: "img", "aria-label": title + " per round"});
  node.append(svg("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}),
              svg("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    node.append(svg("text", {x: L - 4, y: Y(v) + 3, "text-anchor": "end", text: v.toFixed(2)}));
  }
  for (const r of [x0, Math.round((x0 + x1) / 2), x1]) {
    node.append(svg("text", {x: X(r), y: H - B + 14, "text-anchor": "middle", text: String(r)}));
  }
  node.append(svg("text", {x: (L + W - R) / 2, y: H - 2, "text-anchor": "middle", text: "round"}));
  node.append(svg("polyline", {class: "line", points: points.map((p) =>
    X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join(" ")}));
  for (const [r, v] of points) {
    node.append(svg("circle", {cx: X(r), cy: Y(v), r: 3, "data-round": r, "data-value": v},
                    svg("title", {text: "round " + r + ": " + fmtValue(v)})));
  }
  const last = points[points.length - 1];
  return el("div", {class: "chart-box"},
    el("h3", {}, title, el("span", {class: "last", text: "round " + last[0] + ": " +
                                                       fmtValue(last[1])})), node);
}
function renderCharts(run) {
  const rounds = (run.rounds || []).filter((r) => r.metrics && Object.keys(r.metrics).length);
  const boxes = CHARTS.map(([metric, title]) => {
    const points = rounds.filter((r) => num(r.metrics[metric]))
      .map((r) => [r.round, r.metrics[metric]]);
    return points.length ? chart(metric, title, points) : null;
  }).filter(Boolean);
  $("charts-box").hidden = boxes.length === 0;
  $("charts").replaceChildren(...boxes);
}

function renderDetail(run) {
  const box = $("run-detail");
  if (!run) { box.hidden = true; return; }
  box.hidden = false;
  box.setAttribute("data-run-id", run.run_id);
  box.setAttribute("data-status", run.status);
  box.setAttribute("data-rounds-completed", run.rounds_completed);
  $("detail-id").textContent = run.run_id;
  $("detail-app").textContent = run.app_name;
  $("detail-status").replaceChildren(badge(run.status));
  $("detail-rounds").textContent = String(run.rounds_completed);
  $("detail-rounds-label").textContent = (run.rounds_completed === 1 ? "round" : "rounds") +
    " completed";
  $("detail-times").textContent = "started " + fmtClock(run.started_at) +
    (run.finished_at ? " · finished " + fmtClock(run.finished_at) : "") +
    " · aggregator " + run.aggregator;
  const failures = Object.entries(run.failures || {});
  $("detail-failures").hidden = failures.length === 0;
  $("detail-failures").textContent = failures.map(([e, why]) => e + ": " + why).join("\n");
  renderCharts(run);

  const sites = [...new Set([...(run.datasites || []),
                             ...run.rounds.flatMap((r) => r.datasites || [])])];
  const head = el("tr", {}, el("th", {text: "Round"}),
                  ...sites.map((s) => el("th", {class: "mono", text: s})),
                  el("th", {class: "num", text: "Duration"}));
  document.querySelector("#rounds thead").replaceChildren(head);
  const rows = run.rounds.map((r) => el("tr", {class: "round", "data-round": r.round,
                                               "data-finished": r.finished},
    el("td", {text: String(r.round)}),
    ...sites.map((s) => {
      let result = "none", text = "–", title = "";
      if (s in (r.failed || {})) { result = "failed"; text = "✗ failed"; title = r.failed[s]; }
      else if ((r.answered || []).includes(s) || (!r.finished && s in r.latency_s)) {
        result = "answered"; text = "✓ " + fmtSeconds(r.latency_s[s]);
      } else if (!r.finished && (r.datasites || []).includes(s)) { result = "pending"; text = "…"; }
      return el("td", {"data-datasite": s, "data-result": result},
                el("span", {class: "cell r-" + result, title, text}));
    }),
    el("td", {class: "num", text: fmtSeconds(r.duration_s)})));
  document.querySelector("#rounds tbody").replaceChildren(...rows);

  const stats = Object.values(run.datasite_stats || {});
  const maxMean = Math.max(0.001, ...stats.map((s) => s.mean_latency_s || 0));
  const bars = stats.map((s) => {
    const track = el("div", {class: "track"});
    track.append(el("span", {style: "width:" + (100 * (s.mean_latency_s || 0) / maxMean) + "%"}));
    return el("div", {class: "latency", "data-datasite": s.email,
                      "data-mean-latency": num(s.mean_latency_s) ? s.mean_latency_s : ""},
      el("span", {class: "mono", text: s.email}),
      track,
      el("span", {class: "muted", text: "mean " + fmtSeconds(s.mean_latency_s) + " · last " +
        fmtSeconds(s.last_latency_s) + " · " + plural(s.replies, "reply", "replies") +
        (s.errors ? " · " + plural(s.errors, "error") : "") +
        (s.missing ? " · " + s.missing + " missing" : "")}));
  });
  $("latency").replaceChildren(...(bars.length ? bars :
    [el("div", {class: "empty", text: "No replies yet."})]));
}

function openFigure(f) {
  const box = $("lightbox");
  box.querySelector("img").src = f.url;
  box.querySelector("img").alt = f.name;
  box.querySelector(".caption").textContent = f.name + " · " + f.app_name;
  box.hidden = false;
}
function renderFigures(figures) {
  $("figures-count").textContent = figures.length ? String(figures.length) : "";
  $("figures-empty").hidden = figures.length > 0;
  const key = figures.map((f) => f.url).join("|");
  if (key === figuresKey) return;
  figuresKey = key;
  const grid = document.querySelector("#figures .grid");
  grid.replaceChildren(...figures.map((f) => {
    const link = el("a", {href: f.url, target: "_blank", title: "open " + f.name},
                    el("img", {src: f.url, alt: f.name, loading: "lazy"}));
    link.addEventListener("click", (e) => { e.preventDefault(); openFigure(f); });
    return el("figure", {class: "figure", "data-run-id": f.run_id, "data-name": f.name}, link,
      el("figcaption", {text: f.name + " · " + f.app_name + " · " + fmtClock(f.mtime)}));
  }));
}

function render(state) {
  const counts = renderParticipants(state);
  selectedRun = state.selected;
  const active = renderRuns(state.runs || [], selectedRun);
  renderDetail(state.run);
  renderFigures(state.figures || []);
  $("summary").textContent = counts.online + "/" + plural(counts.total, "datasite") +
    " online · " + plural(active, "run") + " running";
  updates += 1;
  $("conn").textContent = "live · " + new Date().toLocaleTimeString();
  $("conn").className = "";
  document.body.setAttribute("data-updates", String(updates));
  document.body.setAttribute("data-updated", String(Date.now()));
  const seen = (document.body.getAttribute("data-seen-rounds") || "").split(",").filter(Boolean);
  const now = state.run ? String(state.run.rounds_completed) : "";
  if (now && seen[seen.length - 1] !== now) {
    seen.push(now);
    document.body.setAttribute("data-seen-rounds", seen.join(","));
  }
}

function wanted() {
  return decodeURIComponent((location.hash.match(/run=([^&]+)/) || [])[1] || "");
}
// one server-sent event stream; the server pushes a new state whenever something changed
function connect() {
  if (source) source.close();
  const run = wanted();
  source = new EventSource("/api/stream" + (run ? "?run=" + encodeURIComponent(run) : ""));
  document.body.setAttribute("data-transport", "sse");
  source.addEventListener("state", (e) => render(JSON.parse(e.data)));
  source.onerror = () => {
    $("conn").textContent = "reconnecting…";
    $("conn").className = "down";
  };
}
$("lightbox").addEventListener("click", () => { $("lightbox").hidden = true; });
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") $("lightbox").hidden = true;
});
window.addEventListener("hashchange", connect);
connect();
</script>
</body>
</html>
"""

"""The dashboard's single HTML page: inline CSS and JS, nothing fetched from elsewhere.

The page polls the JSON endpoints of :mod:`syft_flwr.monitor.dashboard` every second and
builds the DOM with ``textContent`` only (no HTML from data). Elements carry stable ids,
classes and ``data-*`` attributes for tests: ``#participants tr[data-datasite]``,
``#runs tr[data-run-id][data-rounds-completed][data-status]``, ``#run-detail[data-run-id]``,
``#rounds tr[data-round] td[data-datasite][data-result]``, ``#latency [data-datasite]``,
``#figures figure[data-run-id][data-name]``.
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
  #figures .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr));
                   gap: 12px; }
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
    <div class="scroll"><table id="participants">
      <thead><tr><th>Datasite</th><th>State</th><th>Role</th><th class="num">Heartbeat</th>
        <th>CPU proc / host</th><th>Memory proc / host</th><th>Running</th></tr></thead>
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
        <span class="muted">rounds completed</span></span>
      <span class="muted" id="detail-times"></span>
    </div>
    <div class="failures" id="detail-failures" hidden></div>
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
<script>
"use strict";
const REFRESH_MS = 1000;
const $ = (id) => document.getElementById(id);
let selectedRun = null;
let figuresKey = "";

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
const badge = (text) => el("span", {class: "badge b-" + text.replace(/ /g, "-"), text});
const num = (v) => typeof v === "number" && isFinite(v);
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
function meter(pct) {
  const m = el("span", {class: "meter"});
  m.append(el("span", {style: "width:" + Math.max(0, Math.min(100, pct || 0)) + "%"}));
  return m;
}
async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

function renderParticipants(data) {
  $("network").textContent = data.network || "";
  const list = data.participants || [];
  const online = list.filter((p) => p.online).length;
  $("participants-count").textContent = online + " / " + list.length + " online";
  $("participants-empty").hidden = list.length > 0;
  const rows = list.map((p) => {
    const cpu = p.cpu || {}, mem = p.memory || {}, run = p.running || {};
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
      el("td", {}, fmtPct(cpu.process) + " / " + fmtPct(cpu.machine), meter(cpu.machine)),
      el("td", {}, fmtBytes(mem.process_rss_bytes) + " / " + fmtPct(mem.machine_percent),
         meter(mem.machine_percent)),
      el("td", {class: "wrap", text: running || "–"}));
  });
  document.querySelector("#participants tbody").replaceChildren(...rows);
  return {online, total: list.length};
}

function pickRun(runs) {
  const fromHash = decodeURIComponent((location.hash.match(/run=([^&]+)/) || [])[1] || "");
  if (fromHash && runs.some((r) => r.run_id === fromHash)) return fromHash;
  if (selectedRun && runs.some((r) => r.run_id === selectedRun)) return selectedRun;
  const running = runs.find((r) => r.status === "running" || r.status === "starting");
  return running ? running.run_id : (runs.length ? runs[0].run_id : null);
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
      selectedRun = r.run_id;
      history.replaceState(null, "", "#run=" + encodeURIComponent(r.run_id));
      refreshSoon();
    });
    return row;
  });
  document.querySelector("#runs tbody").replaceChildren(...rows);
  return active;
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
  $("detail-times").textContent = "started " + fmtClock(run.started_at) +
    (run.finished_at ? " · finished " + fmtClock(run.finished_at) : "") +
    " · aggregator " + run.aggregator;
  const failures = Object.entries(run.failures || {});
  $("detail-failures").hidden = failures.length === 0;
  $("detail-failures").textContent = failures.map(([e, why]) => e + ": " + why).join("\n");

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
        fmtSeconds(s.last_latency_s) + " · " + s.replies + " replies" +
        (s.errors ? " · " + s.errors + " errors" : "") +
        (s.missing ? " · " + s.missing + " missing" : "")}));
  });
  $("latency").replaceChildren(...(bars.length ? bars :
    [el("div", {class: "empty", text: "No replies yet."})]));
}

function renderFigures(figures) {
  $("figures-count").textContent = figures.length ? String(figures.length) : "";
  $("figures-empty").hidden = figures.length > 0;
  const key = figures.map((f) => f.url).join("|");
  if (key === figuresKey) return;
  figuresKey = key;
  const grid = document.querySelector("#figures .grid");
  grid.replaceChildren(...figures.map((f) => el("figure", {class: "figure",
      "data-run-id": f.run_id, "data-name": f.name},
    el("img", {src: f.url, alt: f.name, loading: "lazy"}),
    el("figcaption", {text: f.name + " · " + f.app_name + " · " + fmtClock(f.mtime)}))));
}

let timer = null;
function refreshSoon() { clearTimeout(timer); timer = setTimeout(refresh, 0); }
async function refresh() {
  clearTimeout(timer);
  try {
    const [parts, runs, figs] = await Promise.all([
      getJSON("/api/participants"), getJSON("/api/runs"), getJSON("/api/figures")]);
    const counts = renderParticipants(parts);
    selectedRun = pickRun(runs.runs);
    const active = renderRuns(runs.runs, selectedRun);
    renderDetail(selectedRun ? await getJSON("/api/runs/" + encodeURIComponent(selectedRun))
                             : null);
    renderFigures(figs.figures);
    $("summary").textContent = counts.online + "/" + counts.total + " datasites online · " +
      active + " run" + (active === 1 ? "" : "s") + " running";
    $("conn").textContent = "live · " + new Date().toLocaleTimeString();
    $("conn").className = "";
    document.body.setAttribute("data-updated", String(Date.now()));
  } catch (err) {
    $("conn").textContent = "disconnected: " + err.message;
    $("conn").className = "down";
  }
  timer = setTimeout(refresh, REFRESH_MS);
}
window.addEventListener("hashchange", refreshSoon);
refresh();
</script>
</body>
</html>
"""

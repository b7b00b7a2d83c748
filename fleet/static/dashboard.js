// EcoLens fleet dashboard: answers "how much plastic per bin, which bins need attention".
// Fetches /api/report (fleet) or /api/bin/<id> (one bin, routed by #/bin/<id>) and draws with
// the vendored Chart.js (no CDN). Test hooks: body[data-ready], canvas[data-points] (values
// plotted), data-rows on the ranking and tables.
"use strict";

// "Needs attention" thresholds: the report's own ([report] settings), these until it answers.
const attention = { uncertain_share: 0.15, stats_fresh_s: 900 };
const SHARE_MIN_ITEMS = 5; // a bucket's plastic share is drawn from this many items up (1 of 1 = 100 % is noise)
const BUCKET_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };
const STATE_ORDER = { offline: 0, stale: 1, unknown: 2, online: 3 };
const charts = {};
const view = { rankingSort: "share", tableKey: "plastic_share", tableDir: -1, fleet: null, bin: null };

// ---- small helpers -------------------------------------------------------------------------
const $ = (selector) => document.querySelector(selector);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === "" && (k === "class" || k === "title")) continue; // no empty attributes
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}
const pct = (share, digits = 1) => (share === null || share === undefined ? "–" : (share * 100).toFixed(digits) + " %");
const ms = (iso) => (iso ? Date.parse(iso) : null);
const msText = (value) => (value === null || value === undefined ? "–" : `${num(Math.round(value))} ms`);

function duration(seconds) {
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / 60))} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1).replace(/\.0$/, "")} h`;
  return `${Math.round(seconds / 86400)} d`;
}
function localTime(iso, bucket) {
  const d = new Date(iso);
  if (bucket === "day") return d.toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short" });
  return d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
}
function when(iso) {
  return iso ? new Date(iso).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }) : "–";
}
const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

async function getJson(path, params) {
  const response = await fetch(apiUrl(path, params));
  const body = await response.json();
  if (!response.ok) throw new Error((body.error && body.error.message) || body.error || response.statusText);
  return body;
}

// ---- the aggregator's health ---------------------------------------------------------------
function newestSeen(data) {
  // The newest time any bin was heard from, in what the page shows (the data's own "as of").
  const times = (data && data.status ? data.status : []).map((s) => s.last_seen).filter(Boolean);
  return times.length ? times.reduce((a, b) => (ms(a) > ms(b) ? a : b)) : null;
}
function renderHealth(health, data) {
  // The shared health line (fleetpage.js), with the newest time a bin was heard from as the
  // data's "as of" when this server does not ingest.
  return renderHealthLine($("#health"), health, newestSeen(data));
}

// ---- theme ---------------------------------------------------------------------------------
const THEMES = ["auto", "light", "dark"];
function applyTheme(theme) {
  if (theme === "auto") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $("#theme").textContent = "Theme: " + theme;
}
function initialTheme() {
  const asked = new URLSearchParams(location.search).get("theme");
  if (THEMES.includes(asked)) return asked;
  try { return localStorage.getItem("ecolens-theme") || "auto"; } catch { return "auto"; }
}

// ---- charts --------------------------------------------------------------------------------
function allBuckets(report) {
  // Every bucket of the window, so quiet hours show as gaps instead of being skipped.
  const step = BUCKET_MS[report.bucket];
  const start = Math.floor(ms(report.window.since) / step) * step;
  const out = [];
  for (let t = start; t < ms(report.window.until) && out.length < 2000; t += step) out.push(t);
  return out;
}

function seriesChart(canvasId, report) {
  const totals = new Map();
  for (const p of report.series) {
    const t = totals.get(ms(p.bucket_start)) || { items: 0, plastic: 0 };
    t.items += p.items;
    t.plastic += p.plastic;
    totals.set(ms(p.bucket_start), t);
  }
  const buckets = allBuckets(report);
  const at = (t) => totals.get(t) || { items: 0, plastic: 0 };
  const grid = cssVar("--line");
  const text = cssVar("--muted");
  const config = {
    type: "bar",
    data: {
      labels: buckets.map((t) => localTime(new Date(t).toISOString(), report.bucket)),
      datasets: [
        { type: "line", label: "plastic share", yAxisID: "share", order: 0,
          data: buckets.map((t) => (at(t).items >= SHARE_MIN_ITEMS ? (at(t).plastic / at(t).items) * 100 : null)),
          borderColor: cssVar("--avg"), backgroundColor: cssVar("--avg"), borderWidth: 1.5,
          pointRadius: 0, pointHitRadius: 6, cubicInterpolationMode: "monotone", spanGaps: false },
        { label: report.plastic_label, data: buckets.map((t) => at(t).plastic),
          backgroundColor: cssVar("--plastic"), stack: "items", order: 1 },
        { label: "other", data: buckets.map((t) => at(t).items - at(t).plastic),
          backgroundColor: cssVar("--other"), stack: "items", order: 1 },
      ],
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { display: false },
        tooltip: { callbacks: { label: (c) => c.dataset.yAxisID === "share"
          ? `plastic share ${c.parsed.y === null ? "–" : c.parsed.y.toFixed(1) + " %"}`
          : `${c.dataset.label}: ${num(c.parsed.y)}` } } },
      scales: {
        x: { stacked: true, grid: { display: false },
             ticks: { color: text, maxRotation: 0, autoSkip: true, autoSkipPadding: 16 } },
        y: { stacked: true, beginAtZero: true, grid: { color: grid }, ticks: { color: text, precision: 0 },
             title: { display: true, text: "items", color: text } },
        share: { position: "right", min: 0, max: 100, grid: { display: false },
                 ticks: { color: text, callback: (v) => v + " %" } },
      },
    },
  };
  const canvas = document.getElementById(canvasId);
  if (charts[canvasId]) charts[canvasId].destroy();
  const chart = new Chart(canvas, config);
  charts[canvasId] = chart;
  canvas.dataset.points = String(totals.size);
  // The window may still be settling (a phone rotating, a headless browser sizing itself):
  // measure the box again on the next frame.
  requestAnimationFrame(() => chart.resize());
}

// ---- fleet view ----------------------------------------------------------------------------
function fleetRows(report) {
  // One row per bin ever heard from (status) or seen in the window (bins).
  const byId = new Map();
  for (const s of report.status) {
    const stats = s.stats || {};
    byId.set(s.device_id, {
      device_id: s.device_id, state: s.state, last_seen: s.last_seen, camera: s.camera,
      camera_error: s.camera_error, camera_since: s.camera_since, stats: s.stats,
      slow_inference: s.slow_inference, queue_growing: s.queue_growing,
      inference_p95: stats.inference_ms_p95 ?? null, queue_depth: stats.queue_depth ?? null,
      queue_dropped: stats.queue_dropped ?? null, cpu_percent: stats.cpu_percent ?? null, rss_mb: stats.rss_mb ?? null,
    });
  }
  for (const b of report.bins) {
    const row = byId.get(b.device_id) || { device_id: b.device_id, state: "unknown", last_seen: null };
    Object.assign(row, b);
    byId.set(b.device_id, row);
  }
  const missing = report.missing || {};
  return [...byId.values()].map((r) => ({
    items: 0, plastic: 0, plastic_share: null, uncertain: 0, uncertain_share: null, model_version: null,
    camera: null, camera_error: null, camera_since: null, stats: null, slow_inference: false, queue_growing: false,
    inference_p95: null, queue_depth: null, queue_dropped: null, cpu_percent: null, rss_mb: null, ...r, last_seen_ms: ms(r.last_seen), missing: missing[r.device_id] || 0,
  }));
}

function cameraDown(row) {
  // "camera down 40 min: cannot open /dev/video0" (the bin's own reason and since when).
  const since = row.camera_since ? ` ${ago(row.camera_since).replace(" ago", "")}` : "";
  return `camera down${since}` + (row.camera_error ? `: ${row.camera_error}` : "");
}

// Each reason a bin needs attention, with its kind (the tile counts each bin under its first).
const REASON_NAMES = {
  offline: "offline", stale: "stale", unknown: "no status", camera: "camera down", idle: "no items",
  missing: "results missing", uncertain: "uncertain", slow: "slow inference", queue: "queue growing",
};
function reasonList(row) {
  const out = [];
  const add = (kind, text) => out.push({ kind, text });
  if (row.state === "offline") add("offline", `offline, last seen ${ago(row.last_seen)}`);
  if (row.state === "stale") add("stale", `silent since ${ago(row.last_seen).replace(" ago", "")}`);
  if (row.state === "unknown") add("unknown", "no status message");
  if (row.state !== "offline" && row.camera === "down") add("camera", cameraDown(row));
  if (row.state !== "offline" && row.items === 0) add("idle", "no items in window");
  if (row.missing > 0) add("missing", `${num(row.missing)} results missing`);
  if (row.uncertain_share !== null && row.uncertain_share > attention.uncertain_share) {
    add("uncertain", `${pct(row.uncertain_share, 0)} uncertain`);
  }
  if (row.slow_inference) add("slow", `slow inference: p95 ${num(Math.round(row.inference_p95))} ms`);
  if (row.queue_growing) add("queue", `queue growing: ${num(row.queue_depth)} waiting`);
  return out;
}
const reasons = (row) => reasonList(row).map((r) => r.text);

function attentionSummary(attention) {
  // Each bin counted once, under its first reason, so the parts add up to the tile's number.
  const counts = new Map();
  for (const r of attention) {
    const kind = reasonList(r)[0].kind;
    counts.set(kind, (counts.get(kind) || 0) + 1);
  }
  return [...counts.entries()].map(([kind, n]) => `${n} ${REASON_NAMES[kind]}`).join(" · ");
}

function kpi(name, value, sub, bad = false) {
  return el("div", { class: "kpi" + (bad ? " bad" : "") },
    el("div", { class: "name", text: name }), el("div", { class: "value", text: value }),
    el("div", { class: "sub", text: sub || "\u00a0" }));
}

function renderFleetKpis(report, rows, attention) {
  const t = report.totals;
  const online = rows.filter((r) => r.state === "online").length;
  const withItems = rows.filter((r) => r.items > 0).length;
  $("#kpis").replaceChildren(
    kpi("Items", num(t.items), `${num(t.plastic)} plastic`),
    kpi("Plastic share", pct(t.plastic_share), `fleet, last ${$("#controls").since.selectedOptions[0].text}`),
    kpi("Bins online", `${online} / ${rows.length}`,
      document.body.dataset.health === "degraded" ? "as of the time above, not live" : `${withItems} sent results`,
      document.body.dataset.health === "degraded"),
    kpi("Need attention", String(attention.length), attention.length ? attentionSummary(attention) : "none",
      attention.length > 0),
    kpi("Rejected messages", num(t.rejected_messages), "invalid results or statuses", t.rejected_messages > 0),
    kpi("Results missing", num(t.missing_results || 0), "numbered by bins, never stored", t.missing_results > 0),
    modelsKpi(rows),
  );
}

function modelsKpi(rows) {
  // A fleet mid-rollout: how many bins run each model version (newest result in the window).
  const counts = new Map();
  for (const r of rows) if (r.model_version) counts.set(r.model_version, (counts.get(r.model_version) || 0) + 1);
  const versions = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  const value = versions.length === 1 ? versions[0][0] : `${versions.length} versions`;
  return kpi("Models", versions.length ? value : "–", versions.map(([v, n]) => `${v} × ${n}`).join(" · "));
}

function renderAttention(attention) {
  const list = $("#attention");
  $("#attention-count").textContent = attention.length ? `(${attention.length})` : "";
  list.dataset.rows = String(attention.length);
  if (!attention.length) {
    list.replaceChildren(el("li", { class: "ok", text: "Every bin is online and reporting." }));
    return;
  }
  list.replaceChildren(...attention.map((r) => el("li", {},
    el("span", {}, el("i", { class: "dot " + r.state }), el("a", { href: "#/bin/" + encodeURIComponent(r.device_id), text: r.device_id })),
    el("span", { class: "why", text: reasons(r).join("; ") }))));
}

function renderRanking(rows, fleetShare) {
  const sorters = {
    share: (a, b) => (b.plastic_share ?? -1) - (a.plastic_share ?? -1) || b.items - a.items,
    items: (a, b) => b.items - a.items,
    name: (a, b) => a.device_id.localeCompare(b.device_id, "en", { numeric: true }),
  };
  const sorted = [...rows].sort(sorters[view.rankingSort]);
  const avg = fleetShare === null ? null : `${fleetShare * 100}%`;
  const list = $("#ranking");
  list.replaceChildren(...sorted.map((r) => {
    const track = el("div", { class: "track", title: `${r.device_id}: ${pct(r.plastic_share)} of ${num(r.items)} items` },
      el("div", { class: "fill", style: `width:${(r.plastic_share || 0) * 100}%` }));
    if (avg) track.append(el("div", { class: "avg", style: `left:${avg}` }));
    return el("li", { class: r.items ? "" : "nodata" },
      el("a", { href: "#/bin/" + encodeURIComponent(r.device_id) }, el("i", { class: "dot " + r.state }), r.device_id),
      track,
      el("span", { class: "share", text: pct(r.plastic_share) }),
      el("span", { class: "items" }, num(r.items), el("span", { class: "unit", text: " items" })));
  }));
  list.dataset.rows = String(sorted.length);
  document.querySelectorAll(".segmented button").forEach((b) => {
    b.setAttribute("aria-pressed", String(b.dataset.sort === view.rankingSort));
  });
}

function renderTable(rows) {
  const key = view.tableKey;
  const dir = view.tableDir;
  const value = (r) => (key === "state" ? STATE_ORDER[r.state] : r[key]);
  const sorted = [...rows].sort((a, b) => {
    const x = value(a);
    const y = value(b);
    if (x === y) return a.device_id.localeCompare(b.device_id, "en", { numeric: true });
    if (x === null || x === undefined) return 1; // empty cells last either way
    if (y === null || y === undefined) return -1;
    return (typeof x === "string" ? x.localeCompare(y, "en", { numeric: true }) : x - y) * dir;
  });
  const body = $("#bins-table tbody");
  // Stats older than attention.stats_fresh_s (a bin offline or silent) are shown greyed: not its state now.
  const old = (r) => (r.stats && Date.now() - ms(r.stats.at) > attention.stats_fresh_s * 1000 ? " muted" : "");
  body.replaceChildren(...sorted.map((r) => el("tr", { class: old(r).trim(), title: old(r) ? `stats from ${ago(r.stats.at)}` : "" },
    el("td", {}, el("a", { href: "#/bin/" + encodeURIComponent(r.device_id), text: r.device_id })),
    el("td", {}, el("span", { class: "pill " + r.state, text: r.state }),
      r.camera === "down" && r.state !== "offline"
        ? el("span", { class: "pill offline", text: "camera down", title: cameraDown(r) }) : ""),
    el("td", { title: r.last_seen || "", text: ago(r.last_seen) }),
    el("td", { class: "num", text: num(r.items) }),
    el("td", { class: "num", text: pct(r.plastic_share) }),
    el("td", { class: "num" + (r.uncertain_share > attention.uncertain_share ? " warn" : ""), text: pct(r.uncertain_share) }),
    el("td", { class: "num" + (r.missing ? " warn" : " muted"), text: num(r.missing) }),
    el("td", { class: "num" + (r.slow_inference ? " warn" : ""), text: msText(r.inference_p95) }),
    el("td", { class: "num" + (r.queue_growing ? " warn" : r.queue_depth ? "" : " muted"),
      title: r.queue_dropped ? `${num(r.queue_dropped)} dropped since the bin started` : "",
      text: r.queue_depth === null ? "–" : num(r.queue_depth) + (r.queue_dropped ? ` (${num(r.queue_dropped)} dropped)` : "") }),
    el("td", { class: "num", text: r.cpu_percent === null ? "–" : `${Math.round(r.cpu_percent)} %` }),
    el("td", { class: "num", text: r.rss_mb === null ? "–" : `${Math.round(r.rss_mb)} MB` }),
    el("td", { class: "col-model muted", text: r.model_version || "–" }))));
  $("#bins-table").dataset.rows = String(sorted.length);
  $("#bin-count").textContent = `(${rows.length})`;
  document.querySelectorAll("#bins-table th[data-key]").forEach((th) => {
    if (th.dataset.key === key) th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  });
}

function renderFleet(report) {
  const rows = fleetRows(report);
  const attention = rows.filter((r) => reasons(r).length)
    .sort((a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || a.device_id.localeCompare(b.device_id, "en", { numeric: true }));
  view.fleet = { report, rows };
  renderFleetKpis(report, rows, attention);
  renderAttention(attention);
  renderRanking(rows, report.totals.plastic_share);
  renderTable(rows);
  seriesChart("fleet-series-chart", report);
  document.title = "EcoLens fleet";
}

// ---- bin view ------------------------------------------------------------------------------
function renderBin(page) {
  view.bin = page;
  const bin = page.bins[0] || { items: 0, plastic: 0, plastic_share: null, uncertain_share: null, model_version: null };
  const status = page.status[0] || { state: "unknown", last_seen: null, status_since: null };
  $("#bin-name").textContent = page.device_id;
  const pill = $("#bin-state");
  pill.className = "pill " + status.state;
  pill.textContent = status.state;
  const camera = $("#bin-camera");
  camera.hidden = !status.camera || status.state === "offline";
  camera.className = "pill " + (status.camera === "down" ? "offline" : status.camera === "up" ? "online" : "unknown");
  camera.textContent = `camera ${status.camera}`;
  const note = $("#bin-camera-note");
  const down = status.camera === "down" && status.state !== "offline";
  note.hidden = !down;
  note.textContent = down ? `Camera down since ${when(status.camera_since)} (${ago(status.camera_since)}): `
    + (status.camera_error || "no reason given") : "";
  const stats = status.stats || {};
  const fresh = status.stats ? `stats ${ago(stats.at)}` : "no stats received";
  $("#bin-health").replaceChildren(
    kpi("Inference p95", msText(stats.inference_ms_p95), fresh, status.slow_inference),
    kpi("Queue", stats.queue_depth === undefined || stats.queue_depth === null ? "–" : num(stats.queue_depth),
      stats.queue_dropped ? `${num(stats.queue_dropped)} dropped since start` : "results waiting to be sent", status.queue_growing),
    kpi("CPU", stats.cpu_percent == null ? "–" : `${Math.round(stats.cpu_percent)} %`, "the bin's daemon"),
    kpi("Memory", stats.rss_mb == null ? "–" : `${Math.round(stats.rss_mb)} MB`, "resident"),
  );
  const missing = (page.missing || {})[page.device_id] || 0;
  $("#bin-kpis").replaceChildren(
    kpi("Last seen", ago(status.last_seen), when(status.last_seen)),
    kpi("Items", num(bin.items), `${num(bin.plastic)} plastic` + (missing ? ` · ${num(missing)} missing` : "")),
    kpi("Plastic share", pct(bin.plastic_share), view.fleet ? `fleet ${pct(view.fleet.report.totals.plastic_share)}` : ""),
    kpi("Uncertain", pct(bin.uncertain_share), "below the confidence threshold", bin.uncertain_share > attention.uncertain_share),
    kpi("Model", bin.model_version || "–", "newest result's version"),
  );
  seriesChart("bin-series-chart", page);
  const history = page.status_history;
  $("#history-table tbody").replaceChildren(...(history.length ? history.map((h, i) => {
    const end = i === 0 ? Date.now() : ms(history[i - 1].at);
    return el("tr", {}, el("td", { title: h.at, text: when(h.at) }),
      el("td", {}, el("span", { class: "pill " + h.status, text: h.status })),
      el("td", { class: "muted", text: duration((end - ms(h.at)) / 1000) + (i === 0 ? " so far" : "") }));
  }) : [el("tr", {}, el("td", { colspan: "3", class: "muted", text: "No status change in the window." }))]));
  $("#history-table").dataset.rows = String(history.length);
  $("#recent-table tbody").replaceChildren(...page.recent.map((r) => el("tr", {},
    el("td", { title: r.seen, text: when(r.seen) }),
    el("td", {}, r.label, r.uncertain ? el("span", { class: "warn", text: " (uncertain)" }) : ""),
    el("td", { class: "num", text: pct(r.confidence) }),
    el("td", { class: "num", text: r.inference_ms.toFixed(1) + " ms" }),
    el("td", { class: "muted", text: r.model_version }))));
  $("#recent-table").dataset.rows = String(page.recent.length);
  document.title = `${page.device_id} · EcoLens fleet`;
}

// What the tests read to check nothing pushes the page wider than the window (kept current
// through resizes, so it describes the window's final size).
function checkFit() {
  const scroller = $("#bins-scroll");
  if (scroller) scroller.dataset.overflow = String(scroller.scrollWidth > scroller.clientWidth + 1);
  document.body.dataset.fits = String(document.documentElement.scrollWidth <= window.innerWidth);
  document.body.dataset.width = String(window.innerWidth);
}

// ---- routing and refresh -------------------------------------------------------------------
function route() {
  const match = location.hash.match(/^#\/bin\/(.+)$/);
  return match ? { view: "bin", device: decodeURIComponent(match[1]) } : { view: "fleet" };
}

async function refresh() {
  const form = new FormData($("#controls"));
  const params = { since: form.get("since"), bucket: form.get("bucket") };
  document.querySelectorAll(".bucket-name").forEach((e) => { e.textContent = form.get("bucket"); });
  const where = route();
  document.body.dataset.view = where.view;
  $("#fleet-view").hidden = where.view !== "fleet";
  $("#bin-view").hidden = where.view !== "bin";
  const error = $("#error");
  const path = where.view === "bin" ? "api/bin/" + encodeURIComponent(where.device) : "api/report";
  const [health, data] = await Promise.all([getHealth(), getJson(path, params).catch((exc) => exc)]);
  scheduleRefresh(refresh, health);
  renderHealth(health, data instanceof Error ? null : data); // first: the tiles read it
  if (data instanceof Error) {
    error.textContent = "Cannot load the report: " + data.message;
    error.hidden = false;
    document.body.dataset.ready = "error";
    return;
  }
  Object.assign(attention, data.attention || {});
  if (where.view === "bin") renderBin(data);
  else renderFleet(data);
  error.hidden = true;
  document.body.dataset.ready = "true";
  checkFit();
}

applyTheme(initialTheme());
$("#theme").addEventListener("click", () => {
  const current = document.documentElement.dataset.theme || "auto";
  const next = THEMES[(THEMES.indexOf(current) + 1) % THEMES.length];
  try { localStorage.setItem("ecolens-theme", next); } catch { /* private mode */ }
  applyTheme(next);
  refresh(); // charts read their colours from the theme
});
document.querySelectorAll(".segmented button").forEach((b) => b.addEventListener("click", () => {
  view.rankingSort = b.dataset.sort;
  if (view.fleet) renderRanking(view.fleet.rows, view.fleet.report.totals.plastic_share);
}));
document.querySelectorAll("#bins-table th[data-key]").forEach((th) => th.addEventListener("click", () => {
  view.tableDir = view.tableKey === th.dataset.key ? -view.tableDir : (th.dataset.key === "device_id" ? 1 : -1);
  view.tableKey = th.dataset.key;
  if (view.fleet) renderTable(view.fleet.rows);
}));
// Chart.js follows its box with a ResizeObserver; a window resize also resizes at once (a
// phone turned sideways, a headless browser settling its window size before a screenshot).
window.addEventListener("resize", () => {
  Object.values(charts).forEach((c) => c.resize());
  requestAnimationFrame(checkFit);
});
$("#controls").addEventListener("change", refresh);
window.addEventListener("hashchange", () => { window.scrollTo(0, 0); refresh(); });
refresh(); // and again every refresh_s the server names (scheduleRefresh)

// EcoLens fleet dashboard: fetches /api/report and draws three charts with the vendored
// Chart.js (no CDN). Each canvas gets data-points = how many values it plots, so a headless
// browser test can check the charts received data.
"use strict";

const MAX_BINS_IN_SHARE_CHART = 12;
const COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
                "#a6761d", "#666666", "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6"];
const STATE_COLORS = { online: "#1b9e77", stale: "#e6ab02", offline: "#d95f02", unknown: "#999999" };
const charts = {};

function draw(id, config, points) {
  const canvas = document.getElementById(id);
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ animation: false, responsive: true }, config.options || {});
  charts[id] = new Chart(canvas, config);
  canvas.dataset.points = String(points);
}

function shareChart(report) {
  // The busiest bins, one line each: plastic share per bucket.
  const buckets = [...new Set(report.series.map(p => p.bucket_start))].sort();
  const busiest = [...report.bins].sort((a, b) => b.items - a.items)
    .slice(0, MAX_BINS_IN_SHARE_CHART).map(b => b.device_id);
  let points = 0;
  const datasets = busiest.map((bin, i) => {
    const byBucket = new Map(report.series.filter(p => p.device_id === bin)
      .map(p => [p.bucket_start, p.plastic_share === null ? null : p.plastic_share * 100]));
    const data = buckets.map(b => (byBucket.has(b) ? byBucket.get(b) : null));
    points += data.filter(v => v !== null).length;
    return { label: bin, data, borderColor: COLORS[i % COLORS.length], spanGaps: true, tension: 0.2 };
  });
  draw("share-chart", {
    type: "line",
    data: { labels: buckets.map(label), datasets },
    options: { scales: { y: { min: 0, max: 100, title: { display: true, text: "% plastic" } } } },
  }, points);
}

function itemsChart(report) {
  const totals = new Map();
  for (const p of report.series) {
    const t = totals.get(p.bucket_start) || { plastic: 0, other: 0 };
    t.plastic += p.plastic;
    t.other += p.items - p.plastic;
    totals.set(p.bucket_start, t);
  }
  const buckets = [...totals.keys()].sort();
  draw("items-chart", {
    type: "bar",
    data: {
      labels: buckets.map(label),
      datasets: [
        { label: report.plastic_label, data: buckets.map(b => totals.get(b).plastic), backgroundColor: "#d95f02" },
        { label: "other", data: buckets.map(b => totals.get(b).other), backgroundColor: "#1b9e77" },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  }, buckets.length);
}

function statusChart(report) {
  const counts = {};
  for (const s of report.status) counts[s.state] = (counts[s.state] || 0) + 1;
  const states = Object.keys(counts);
  draw("status-chart", {
    type: "doughnut",
    data: {
      labels: states,
      datasets: [{ data: states.map(s => counts[s]), backgroundColor: states.map(s => STATE_COLORS[s]) }],
    },
  }, report.status.length);
  const body = document.querySelector("#offline-bins tbody");
  body.replaceChildren(...report.status.filter(s => s.state !== "online" || s.camera === "down").map(s => {
    const row = document.createElement("tr");
    const state = s.camera === "down" && s.state !== "offline" ? `${s.state}, camera down` : s.state;
    for (const value of [s.device_id, state, s.status_since, s.last_result]) {
      const cell = document.createElement("td");
      cell.textContent = value || "–";
      row.append(cell);
    }
    return row;
  }));
}

function label(isoTime) {
  return isoTime.replace("T", " ").replace(":00:00Z", ":00").replace(" 00:00", "").replace("Z", "");
}

async function refresh() {
  const form = new FormData(document.getElementById("controls"));
  const query = new URLSearchParams({ since: form.get("since"), bucket: form.get("bucket") });
  document.querySelectorAll(".bucket-name").forEach(e => { e.textContent = form.get("bucket"); });
  const error = document.getElementById("error");
  try {
    // Relative (works behind a path prefix), but without user:key@ from the address bar:
    // fetch() refuses URLs with credentials; the browser re-sends its cached Basic auth itself.
    const url = new URL("api/report?" + query, document.baseURI);
    url.username = "";
    url.password = "";
    const response = await fetch(url);
    const report = await response.json();
    if (!response.ok) throw new Error(report.error || response.statusText);
    shareChart(report);
    itemsChart(report);
    statusChart(report);
    const t = report.totals;
    document.getElementById("summary").textContent =
      `${t.items} items from ${t.bins} bins, plastic share ` +
      `${t.plastic_share === null ? "–" : (t.plastic_share * 100).toFixed(1) + " %"}; ` +
      `${t.offline} offline, ${t.stale} stale, ${t.camera_down} camera down, ${t.rejected_messages} rejected messages` +
      Object.entries(report.missing).map(([bin, n]) => `; results missing from bin ${bin}: ${n}`).join("");
    error.hidden = true;
    document.body.dataset.ready = "true";
  } catch (exc) {
    error.textContent = "Cannot load the report: " + exc.message;
    error.hidden = false;
    document.body.dataset.ready = "error";
  }
}

document.getElementById("controls").addEventListener("change", refresh);
refresh();
setInterval(refresh, 60000);

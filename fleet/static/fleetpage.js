// What every fleet page shares (dashboard, label page): number and time formatting, URLs
// relative to the page, and the aggregator's health line, so both pages turn degraded alike.
"use strict";

const num = (n) => (n === null || n === undefined ? "–" : n.toLocaleString("en-US").replace(/,/g, "\u202f"));

function ago(iso) {
  // "just now", "12 min ago", "2 h ago", "3 d ago": what an operator reads at a glance.
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
function apiUrl(path, params) {
  // Relative (works behind a path prefix), but without user:key@ from the address bar:
  // fetch() refuses URLs with credentials; the browser re-sends its cached Basic auth itself.
  const url = new URL(path + "?" + new URLSearchParams(params), document.baseURI);
  url.username = "";
  url.password = "";
  return url;
}
async function getHealth() {
  // The aggregator's own health: 200 or 503, both with a body; null when it cannot be reached.
  try {
    const response = await fetch(apiUrl("api/health", {}));
    return { reachable: true, status: response.status, ...(await response.json()) };
  } catch (exc) {
    return { reachable: false, error: exc.message };
  }
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString("en-GB") : "–";
}
function healthProblems(health) {
  // Why the data on the page is not being updated, in the operator's words; [] when it is.
  if (!health.reachable) return [`cannot reach the aggregator (${health.error})`];
  if (health.status >= 500 && !health.ingest) return [`the aggregator answered ${health.status}`];
  const ingest = health.ingest;
  if (!ingest) return [];
  const out = [];
  if (!ingest.connected) out.push("not connected to the MQTT broker");
  if (ingest.writer !== "running") out.push(`the writer is ${ingest.writer}`);
  if (ingest.silent) out.push(`no message from any bin since ${ingest.last_message ? ago(ingest.last_message) : "start"}`);
  if (out.length && ingest.last_error) out.push(ingest.last_error);
  return out;
}
function renderHealthLine(bar, health, fallbackAsOf) {
  // One line: live or degraded, broker, writer, lag, last message, and what time the data is as of
  // (the last batch this aggregator stored, else ``fallbackAsOf``). Sets data-state on the bar and
  // data-health on the body (degraded greys the page's main content).
  const problems = healthProblems(health);
  const ingest = health.reachable ? health.ingest : null;
  const asOf = (ingest && ingest.last_stored) || fallbackAsOf || (ingest ? null : health.now);
  const state = problems.length ? "degraded" : ingest ? "ok" : "report";
  bar.dataset.state = state;
  document.body.dataset.health = state;
  const parts = [];
  if (problems.length) parts.push("Data not updating: " + problems.join("; "));
  else if (ingest) parts.push("Ingest live");
  else parts.push("Report only (this server does not ingest)");
  if (ingest) {
    parts.push(`broker ${ingest.connected ? "connected" : "disconnected"}`, `writer ${ingest.writer}`,
      `lag ${num(ingest.lag)} messages, ${ingest.lag_s.toFixed(1)} s`,
      `last message ${ingest.last_message ? ago(ingest.last_message) : "none yet"}`);
  }
  parts.push(`data as of ${asOf ? clock(asOf) : "– (nothing stored yet)"}`);
  bar.textContent = parts.join(" · ");
  bar.title = asOf ? `data as of ${asOf}` : "";
  return state;
}

let refreshTimer = null;
function scheduleRefresh(refresh, health) {
  // Next refresh after the server's refresh_s (15 s unless [report] refresh_s says otherwise);
  // one timer however often the page refreshes by hand.
  const seconds = (health && health.refresh_s) || 15;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, seconds * 1000);
}

// The bin page: the newest frame with the detection region and the current item drawn, an
// editor that saves a new region to the daemon's config, the last results, the daemon's
// figures. Polls only while the tab is visible, so a forgotten tab costs nothing.
"use strict";

const $ = (s) => document.querySelector(s);
const state = { roi: null, editing: false, pending: null, drag: null, interval: 1000, timer: null, canSave: false };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}
function url(path) {
  const u = new URL(path, document.baseURI);
  u.username = ""; u.password = ""; // fetch() refuses credentials in the URL; the browser resends Basic auth
  return u;
}
const ms = (v) => (v === null || v === undefined ? "–" : v.toFixed(0));
const fmt = (v, unit = "") => (v === null || v === undefined ? "–" : `${v}${unit}`);
function place(rect, box) {
  const [x0, y0, x1, y1] = box || [0, 0, 1, 1];
  const units = (v) => String(Math.round(v * 10000) / 10); // the overlay is 1000 x 1000 units
  rect.setAttribute("x", units(x0)); rect.setAttribute("y", units(y0));
  rect.setAttribute("width", units(x1 - x0)); rect.setAttribute("height", units(y1 - y0));
}
const roiText = (r) => (r ? "[" + r.map((v) => v.toFixed(2)).join(", ") + "]" : "whole frame");

function showRoi() {
  const shown = state.editing && state.pending !== undefined ? state.pending : state.roi;
  place($("#roi"), shown);
  $("#roi").classList.toggle("pending", state.editing);
  $("#roi-text").textContent = roiText(shown);
}

async function loadFrame() {
  const response = await fetch(url("frame.jpg?t=" + Date.now()), { cache: "no-store" });
  if (!response.ok) return false;
  const box = response.headers.get("X-Item-Box");
  const blob = await response.blob();
  const img = $("#frame");
  const old = img.src;
  await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = URL.createObjectURL(blob); });
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  $("#no-frame").hidden = true;
  $("#frame-info").textContent = (response.headers.get("X-Frame-Size") || "").replace("x", " × ") + " px";
  const itemBox = box ? box.split(",").map(Number) : null;
  $("#box").style.display = itemBox ? "" : "none";
  if (itemBox) place($("#box"), itemBox);
  return true;
}

function renderStats(s, model) {
  const rows = [
    ["Source", s.source.split("/").pop()],
    ["Camera", s.camera + (s.camera_error ? `: ${s.camera_error}` : "")], ["Uptime", s.uptime_s < 120 ? `${Math.round(s.uptime_s)} s` : `${Math.round(s.uptime_s / 60)} min`],
    ["Frames read", s.frames_read], ["Items", s.items], ["Published (PUBACK)", s.published],
    ["Uncertain", s.uncertain], ["Queue", `${s.queue_depth} waiting, ${s.queue_dropped} dropped`],
    ["Inference p50 / p95", `${ms(s.inference_ms_p50)} / ${ms(s.inference_ms_p95)} ms`],
    ["Frame → PUBACK p50 / p95", `${ms(s.latency_ms_p50)} / ${ms(s.latency_ms_p95)} ms`],
    ["Source reopens", s.source_reopens], ["Model", `${model.name} ${model.version}`],
  ];
  $("#stats").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  const mqtt = $("#mqtt");
  mqtt.textContent = s.mqtt_connected ? "MQTT connected" : "MQTT disconnected";
  mqtt.className = "chip " + (s.mqtt_connected ? "ok" : "bad");
  const camera = $("#camera");
  camera.textContent = `camera ${s.camera}`;
  camera.className = "chip " + (s.camera === "up" ? "ok" : s.camera === "down" ? "bad" : "");
  $("#model").textContent = `${model.name} ${model.version}`;
}

function renderResults(results) {
  const list = $("#results");
  list.dataset.rows = String(results.length);
  if (!results.length) { list.replaceChildren(el("li", { class: "none", text: "No item yet." })); return; }
  list.replaceChildren(...results.map((r) => el("li", {},
    el("img", { src: url("crop/" + encodeURIComponent(r.event_id) + ".jpg"), alt: r.label, loading: "lazy" }),
    el("div", { class: "label " + r.label, text: r.label + (r.uncertain ? " ?" : "") }),
    el("div", { class: "meta", text: `${(r.confidence * 100).toFixed(0)} % · ${new Date(r.timestamp).toLocaleTimeString("en-GB")}` }))));
}

async function refresh() {
  try {
    const response = await fetch(url("api/state"));
    const body = await response.json();
    if (!response.ok) throw new Error((body.error && body.error.message) || body.error || response.statusText);
    $("#device").textContent = body.device_id;
    document.title = `${body.device_id} · EcoLens bin`;
    state.roi = body.roi;
    state.canSave = body.can_save_roi;
    state.interval = body.frame_interval_s * 1000;
    $("#edit").disabled = !state.canSave;
    $("#edit").title = state.canSave ? "Drag on the picture to set where items are looked for" : "started without --config: nothing to save to";
    renderStats(body.stats, body.model);
    renderResults(body.results);
    showRoi();
    await loadFrame();
    $("#error").hidden = true;
    document.body.dataset.ready = "true";
  } catch (exc) {
    $("#error").textContent = "Cannot reach the daemon: " + exc.message;
    $("#error").hidden = false;
    document.body.dataset.ready = "error";
  }
}

function schedule() {
  clearTimeout(state.timer);
  if (document.hidden) return; // nobody watching: no requests, no JPEG encoding on the bin
  state.timer = setTimeout(async () => { await refresh(); schedule(); }, state.interval);
}

// ---- region editor -------------------------------------------------------------------------
function setEditing(on) {
  state.editing = on;
  state.pending = on ? state.roi : undefined;
  $("#stage").classList.toggle("editing", on);
  for (const id of ["#whole", "#cancel", "#save", "#hint"]) $(id).hidden = !on;
  $("#edit").hidden = on;
  showRoi();
}
function fraction(event) {
  const r = $("#overlay").getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
}
$("#overlay").addEventListener("pointerdown", (e) => {
  if (!state.editing) return;
  state.drag = fraction(e);
  $("#overlay").setPointerCapture(e.pointerId);
});
$("#overlay").addEventListener("pointermove", (e) => {
  if (!state.editing || !state.drag) return;
  const [x, y] = fraction(e);
  const [x0, y0] = state.drag;
  state.pending = [Math.min(x, x0), Math.min(y, y0), Math.max(x, x0), Math.max(y, y0)];
  showRoi();
});
$("#overlay").addEventListener("pointerup", () => { state.drag = null; });
$("#edit").addEventListener("click", () => setEditing(true));
$("#cancel").addEventListener("click", () => setEditing(false));
$("#whole").addEventListener("click", () => { state.pending = null; showRoi(); });
$("#save").addEventListener("click", async () => {
  const roi = state.pending ? state.pending.map((v) => Math.round(v * 1000) / 1000) : null;
  const saved = $("#saved");
  try {
    const response = await fetch(url("api/roi"), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ roi }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error((body.error && body.error.message) || body.error || response.statusText);
    saved.className = "saved";
    saved.textContent = `Saved ${roiText(body.roi)} to ${body.saved_to}` + (body.applied ? "; applied." : "; applied at the next frame.");
    state.roi = body.roi;
    setEditing(false);
  } catch (exc) {
    saved.className = "saved bad";
    saved.textContent = "Not saved: " + exc.message;
  }
  saved.hidden = false;
});

document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); schedule(); });
refresh().then(schedule);

// Labelling page: fetch samples, label them with the keyboard, show progress.
"use strict";
const KEYS = { p: "plastic", n: "non_plastic", s: "skip" };
let samples = [];
let focus = 0;

const $ = (id) => document.getElementById(id);

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

function fillSelect(select, values) {
  const current = select.value;
  select.length = 1;
  for (const value of values) select.add(new Option(value, value));
  select.value = current;
}

let progressRequests = 0;

async function refreshProgress() {
  const request = ++progressRequests;
  const progress = await getJSON("/api/samples/progress");
  if (request !== progressRequests) return; // a later answer is on its way
  const done = progress.total - progress.counts.unlabelled;
  $("bar").max = Math.max(1, progress.total);
  $("bar").value = done;
  $("progress").textContent =
    `${done} of ${progress.total} labelled (${progress.counts.plastic} plastic, ` +
    `${progress.counts.non_plastic} non-plastic, ${progress.counts.skip} skipped)`;
  fillSelect($("device"), progress.devices);
  fillSelect($("model"), progress.model_versions);
}

function render() {
  const grid = $("grid");
  grid.replaceChildren();
  samples.forEach((sample, index) => {
    const card = document.createElement("div");
    card.className = "card" + (index === focus ? " focus" : "") + (sample.human_label ? ` ${sample.human_label}` : "");
    card.dataset.eventId = sample.event_id;
    const img = document.createElement("img");
    img.src = `/api/samples/${encodeURIComponent(sample.event_id)}/image`;
    img.alt = `sample ${sample.event_id}`;
    const info = document.createElement("div");
    info.textContent = `${sample.device_id} · model ${sample.model_version} · ${sample.predicted} ${sample.confidence.toFixed(2)}`;
    if (sample.uncertain) info.classList.add("uncertain");
    const label = document.createElement("div");
    label.className = "human";
    label.textContent = sample.human_label ? `→ ${sample.human_label}` : "";
    card.append(img, info, label);
    card.addEventListener("click", () => { focus = index; render(); });
    grid.append(card);
  });
  const focused = grid.children[focus];
  if (focused) focused.scrollIntoView({ block: "nearest" });
}

async function load() {
  const params = new URLSearchParams({ state: $("state").value, device: $("device").value, model: $("model").value });
  samples = (await getJSON(`/api/samples?${params}`)).samples;
  focus = Math.min(focus, Math.max(0, samples.length - 1));
  render();
  await refreshProgress();
}

async function setLabel(label) {
  // Move on at once, so fast typing labels the next sample, not the same one twice.
  const sample = samples[focus];
  if (!sample) return;
  const before = sample.human_label;
  sample.human_label = label;
  focus = Math.min(focus + 1, samples.length - 1);
  render();
  const response = await fetch(`/api/samples/${encodeURIComponent(sample.event_id)}/label`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ label }),
  });
  if (!response.ok) {
    sample.human_label = before;
    render();
  }
  await refreshProgress();
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLSelectElement) return;
  if (KEYS[event.key]) { event.preventDefault(); setLabel(KEYS[event.key]); }
  else if (event.key === "ArrowRight") { focus = Math.min(focus + 1, samples.length - 1); render(); }
  else if (event.key === "ArrowLeft") { focus = Math.max(focus - 1, 0); render(); }
});
async function watchHealth() {
  // The aggregator's health line (fleetpage.js), as on the dashboard: labels still save while
  // ingest is down, but the page says new samples are not arriving.
  const health = await getHealth();
  renderHealthLine($("health"), health, null);
  scheduleRefresh(watchHealth, health);
}

for (const id of ["device", "model", "state"]) $(id).addEventListener("change", () => { focus = 0; load(); });
load();
watchHealth();

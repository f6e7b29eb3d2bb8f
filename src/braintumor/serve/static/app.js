// braintumor web page: upload scans, show calibrated probabilities and LayerCAM overlays.
// Vanilla JS, no build step, no external requests. Every text from the server or a file name is set with
// textContent (never innerHTML), so a hostile file name cannot inject markup.
"use strict";

const API = "/api/v1";
const PARALLEL = 2; // files in flight at once; the server queues the rest anyway
let classNames = [];

const $ = (id) => document.getElementById(id);

function authHeaders() {
  const token = sessionStorage.getItem("braintumor-token");
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  const response = await fetch(API + path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    $("auth").hidden = false;
    throw new Error("The server needs a valid access token: enter it above and try again.");
  }
  return response;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    const files = (body.files || []).map((f) => f.error || f.note).filter(Boolean);
    return files.length ? files.join("; ") : body.detail || response.statusText;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

async function loadModelInfo() {
  try {
    const response = await api("/model");
    if (!response.ok) throw new Error(await errorMessage(response));
    const info = await response.json();
    classNames = info.class_names;
    const ood = info.ood && info.ood.available ? "out-of-distribution check on" : "out-of-distribution check unavailable";
    $("model-info").textContent =
      `Model ${info.arch} (${info.model_id || "unversioned"}), classes: ${info.class_names.join(", ")}; ${ood}; ` +
      `braintumor ${info.version}. ${info.disclaimer}`;
  } catch (e) {
    $("model-info").textContent = "Model information unavailable: " + e.message;
  }
}

function makeCard(file) {
  const card = $("card-template").content.firstElementChild.cloneNode(true);
  card.querySelector(".file").textContent = file.name;
  card.querySelector(".verdict").textContent = "Analysing…";
  const img = card.querySelector(".scan");
  const preview = URL.createObjectURL(file);
  img.dataset.preview = preview;
  img.alt = "Scan " + file.name;
  img.addEventListener("error", () => {
    if (img.src === preview) {
      img.hidden = true;
      card.querySelector(".no-preview").hidden = false;
    }
  });
  img.src = preview;
  $("results").prepend(card);
  return card;
}

function showBars(card, probabilities, label) {
  const bars = card.querySelector(".bars");
  bars.replaceChildren();
  const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of entries) {
    const row = document.createElement("div");
    row.className = "bar-row" + (name === label ? " top" : "");
    const caption = document.createElement("span");
    caption.className = "bar-label";
    caption.textContent = name;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = (100 * p).toFixed(1) + "%"; // CSSOM, allowed by the page's style-src 'self'
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = (100 * p).toFixed(1) + " %";
    row.append(caption, track, value);
    bars.append(row);
  }
}

function showRefusal(card, text) {
  card.classList.add("refused");
  card.querySelector(".verdict").textContent = "No prediction";
  const refusal = card.querySelector(".refusal");
  refusal.hidden = false;
  refusal.textContent = text;
}

function showPrediction(card, file, p) {
  if (p.error) return showRefusal(card, "Cannot read this file: " + p.error);
  if (!p.in_distribution || !p.label) return showRefusal(card, "Refused: " + (p.note || "not a brain MRI scan."));
  card.classList.add("accepted");
  card.querySelector(".verdict").textContent = `${p.label} — confidence ${(100 * p.confidence).toFixed(1)} %`;
  showBars(card, p.probabilities, p.label);
  if (p.caveat) {
    const caveat = card.querySelector(".caveat");
    caveat.hidden = false;
    caveat.textContent = "Caution: " + p.caveat;
  }
  if (p.ood_score !== null && p.ood_score !== undefined) {
    card.querySelector(".ood").textContent = `Distance to training data: ${p.ood_score.toFixed(2)} (within range)`;
  }
  const toggle = card.querySelector(".toggle");
  toggle.hidden = false;
  toggle.querySelector("input").addEventListener("change", (event) => toggleOverlay(card, file, event.target));
}

async function toggleOverlay(card, file, checkbox) {
  const img = card.querySelector(".scan");
  if (!checkbox.checked) {
    img.src = img.dataset.preview;
    img.hidden = card.querySelector(".no-preview").hidden === false;
    return;
  }
  if (!img.dataset.overlay) {
    checkbox.disabled = true;
    try {
      const form = new FormData();
      form.append("file", file, file.name);
      const response = await api("/explain", { method: "POST", body: form });
      if (!response.ok) throw new Error(await errorMessage(response));
      img.dataset.overlay = URL.createObjectURL(await response.blob());
    } catch (e) {
      checkbox.checked = false;
      card.querySelector(".ood").textContent = "Overlay unavailable: " + e.message;
      return;
    } finally {
      checkbox.disabled = false;
    }
  }
  img.src = img.dataset.overlay;
  img.hidden = false;
  img.alt = "LayerCAM overlay of " + file.name;
  card.querySelector(".no-preview").hidden = true;
}

async function predictOne(file) {
  const card = makeCard(file);
  try {
    const form = new FormData();
    form.append("files", file, file.name);
    const response = await api("/predict", { method: "POST", body: form });
    if (response.status === 422) return showRefusal(card, "Cannot read this file: " + (await errorMessage(response)));
    if (!response.ok) return showRefusal(card, await errorMessage(response));
    const body = await response.json();
    showPrediction(card, file, body.predictions[0]);
  } catch (e) {
    showRefusal(card, e.message);
  }
}

async function handleFiles(fileList) {
  const files = Array.from(fileList);
  if (!files.length) return;
  $("status").textContent = `Analysing ${files.length} file(s)…`;
  const queue = files.slice();
  const workers = Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
    while (queue.length) await predictOne(queue.shift());
  });
  await Promise.all(workers);
  $("status").textContent = `Done: ${files.length} file(s).`;
}

function setup() {
  const drop = $("drop");
  $("file-input").addEventListener("change", (event) => {
    handleFiles(event.target.files);
    event.target.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    handleFiles(event.dataTransfer.files);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file-input").click();
  });
  $("token-save").addEventListener("click", () => {
    sessionStorage.setItem("braintumor-token", $("token").value.trim());
    $("auth").hidden = true;
    loadModelInfo();
  });
  loadModelInfo();
}

document.addEventListener("DOMContentLoaded", setup);

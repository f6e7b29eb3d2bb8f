// braintumor web page: upload scans, show calibrated probabilities and LayerCAM overlays.
// Vanilla JS, no build step, no external requests. Every text from the server or a file name is set with
// textContent (never innerHTML), so a hostile file name cannot inject markup.
"use strict";

const API = "/api/v1";
const PARALLEL = 2; // files in flight at once; the server queues the rest anyway
const TOKEN_KEY = "braintumor-token";
const TOKEN_CHARS = /^[\x21-\x7e]+$/; // what an HTTP header can carry; a pasted smart quote cannot
let classNames = [];
let oodThreshold = null;

const $ = (id) => document.getElementById(id);

function askForToken(message) {
  $("auth").hidden = false;
  $("token-error").textContent = message || "";
  $("token").focus();
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token && !TOKEN_CHARS.test(token)) {
    sessionStorage.removeItem(TOKEN_KEY); // fetch would refuse the header before sending anything
    return {};
  }
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(API + path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  } catch (e) {
    throw new Error("Cannot reach the server: check that it is running and the network is up, then try again.");
  }
  if (response.status === 401) {
    askForToken(sessionStorage.getItem(TOKEN_KEY) ? "That token was not accepted." : "");
    throw new Error("The server needs a valid access token: enter it above and try again.");
  }
  return response;
}

function percent(p) {
  // 0.99999 is not certainty: never print "100.0 %" (nor "0.0 %" for a small but real probability)
  if (p >= 0.9995) return "> 99.9 %";
  if (p > 0 && p < 0.0005) return "< 0.1 %";
  return (100 * p).toFixed(1) + " %";
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
    oodThreshold = info.ood && info.ood.available ? info.ood.threshold : null;
    document.body.classList.toggle("no-explain", !(info.explanation && info.explanation.available));
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
      img.dataset.noPreview = "1";
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
    value.textContent = percent(p);
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
  card.querySelector(".verdict").textContent = `${p.label} — confidence ${percent(p.confidence)}`;
  card.querySelector(".card-disclaimer").hidden = false;
  showBars(card, p.probabilities, p.label);
  if (p.caveat) {
    const caveat = card.querySelector(".caveat");
    caveat.hidden = false;
    caveat.textContent = "Caution: " + p.caveat;
  }
  if (p.ood_score !== null && p.ood_score !== undefined) {
    const limit = oodThreshold === null ? "within range" : `scans above ${oodThreshold.toFixed(1)} are refused`;
    card.querySelector(".ood").textContent = `Distance to the training scans: ${p.ood_score.toFixed(1)} (${limit})`;
  }
  if (document.body.classList.contains("no-explain")) return; // an ONNX-only server cannot draw maps
  const toggle = card.querySelector(".toggle");
  toggle.hidden = false;
  toggle.querySelector("input").addEventListener("change", (event) => toggleOverlay(card, file, event.target));
}

async function toggleOverlay(card, file, checkbox) {
  const img = card.querySelector(".scan");
  const problem = card.querySelector(".overlay-error");
  const legend = card.querySelector(".legend");
  if (!checkbox.checked) {
    img.src = img.dataset.preview;
    img.alt = "Scan " + file.name;
    img.hidden = img.dataset.noPreview === "1";
    card.querySelector(".no-preview").hidden = img.dataset.noPreview !== "1";
    legend.hidden = true;
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
      problem.hidden = false;
      problem.textContent = "Overlay unavailable: " + e.message;
      return;
    } finally {
      checkbox.disabled = false;
    }
  }
  problem.hidden = true;
  img.src = img.dataset.overlay;
  img.hidden = false;
  img.alt = "LayerCAM overlay of " + file.name;
  card.querySelector(".no-preview").hidden = true;
  legend.hidden = false;
}

async function predictOne(file) {
  // "predicted", "refused" (not a scan the model may judge) or "failed" (unreadable, or no answer)
  const card = makeCard(file);
  try {
    const form = new FormData();
    form.append("files", file, file.name);
    const response = await api("/predict", { method: "POST", body: form });
    if (response.status === 422) {
      showRefusal(card, "Cannot read this file: " + (await errorMessage(response)));
      return "failed";
    }
    if (!response.ok) {
      showRefusal(card, await errorMessage(response));
      return "failed";
    }
    const p = (await response.json()).predictions[0];
    showPrediction(card, file, p);
    return p.error ? "failed" : p.label ? "predicted" : "refused";
  } catch (e) {
    showRefusal(card, e.message);
    return "failed";
  }
}

async function handleFiles(fileList) {
  const files = Array.from(fileList);
  if (!files.length) return;
  $("status").textContent = `Analysing ${files.length} file(s)…`;
  const queue = files.slice();
  const counts = { predicted: 0, refused: 0, failed: 0 };
  const workers = Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
    while (queue.length) counts[await predictOne(queue.shift())] += 1;
  });
  await Promise.all(workers);
  $("status").textContent =
    `Done: ${files.length} file(s): ${counts.predicted} predicted, ${counts.refused} refused, ` +
    `${counts.failed} without an answer.`;
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
  // A file dropped anywhere on the page is analysed too: the browser's default would open it in place
  // of the page and lose every result shown.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) handleFiles(event.dataTransfer.files);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      $("file-input").click();
    }
  });
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault(); // Enter in the field or the button: keep the page, store the token
    const token = $("token").value.trim();
    if (!TOKEN_CHARS.test(token)) {
      askForToken("A token has only plain ASCII letters, digits and punctuation, without spaces or quotes.");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("auth").hidden = true;
    $("token-error").textContent = "";
    loadModelInfo();
  });
  loadModelInfo();
}

document.addEventListener("DOMContentLoaded", setup);

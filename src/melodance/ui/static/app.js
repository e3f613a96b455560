// The melodance page: upload a song (or pick a dataset sequence), poll the job,
// then draw the skeleton(s) on 2D canvases in step with the <audio> element.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOURS = { a: "#ff8a24", b: "#2caaff", centre: "#e8e8ea" };
const FOOT = [10, 11, 19, 20];
const PANEL = { w: 440, h: 440 };
const FRAME_CM = 230;      // world height shown in a panel: the same scale for every dancer

let tab = "dance";
let song = null;          // the chosen File
let dance = null;         // the finished job's result
let jobId = null;
let lastFrame = -1;

// ------------------------------------------------------------------ page state

function setState(state) { document.body.dataset.state = state; }

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("progress").hidden = true;
  setState("error");
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

async function getJSON(url, options) {
  let r;
  try {
    r = await fetch(url, options);
  } catch (e) {
    throw new Error("the melodance server does not answer (is `melodance ui` still running?)");
  }
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `${url}: HTTP ${r.status}`);
  return body;
}

// ------------------------------------------------------------------ setup

async function loadChoices() {
  try {
    const m = await getJSON("/api/models");
    $("model").replaceChildren(...m.choices.map((c) => {
      const o = new Option(c.label, c.id);
      if (c.description) o.title = c.description;   // variant, experiment, run, metric on hover
      return o;
    }));
    if (m.note) { $("model-note").textContent = m.note; $("model-note").hidden = false; }
  } catch (e) { showError(e.message); }
  try {
    const s = await getJSON("/api/sequences");
    const opts = s.sequences.map((q) => new Option(`${q.name} (${q.seconds} s)`, q.name));
    $("sequence").replaceChildren(...opts);
    if (!opts.length) $("sequence").replaceChildren(new Option("no dataset (start with --data)", ""));
  } catch (e) { showError(e.message); }
}

function switchTab(name) {
  tab = name;
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === name);
  $("dance-form").hidden = name !== "dance";
  $("compare-form").hidden = name !== "compare";
}

function chooseSong(file) {
  song = file || null;
  $("song-name").textContent = song ? `${song.name} (${(song.size / 2 ** 20).toFixed(1)} MiB)` : "";
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onload = () => resolve(String(fr.result).split(",", 2)[1] || "");
    fr.onerror = () => reject(new Error(`${file.name}: cannot read the file`));
    fr.readAsDataURL(file);
  });
}

// ------------------------------------------------------------------ jobs

async function start(url, body) {
  clearError();
  setState("working");
  $("progress").hidden = false;
  $("step").textContent = "uploading";
  $("elapsed").textContent = "";
  try {
    const { id } = await getJSON(url, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    jobId = id;
    await poll(id);
  } catch (e) {
    showError(e.message);
  }
}

async function poll(id) {
  for (;;) {
    const s = await getJSON(`/api/jobs/${id}`);
    if (id !== jobId) return;  // a newer job replaced this one
    $("step").textContent = s.step;
    $("elapsed").textContent = `(${s.elapsed_s.toFixed(1)} s)`;
    if (s.state === "error") throw new Error(s.error);
    if (s.state === "done") { show(s.result); return; }
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function submitDance(ev) {
  ev.preventDefault();
  if (!song) { showError("no song: choose or drop an audio file (mp3, wav, flac, ogg)"); return; }
  $("step").textContent = "reading the file";
  let b64;
  try { b64 = await readBase64(song); } catch (e) { showError(e.message); return; }
  await start("/api/dance", {
    audio_base64: b64, filename: song.name, model: $("model").value,
    start_s: $("start").value, duration_s: $("duration").value, seed: $("seed").value,
  });
}

async function submitCompare(ev) {
  ev.preventDefault();
  if (!$("sequence").value) { showError("no sequence to compare: start `melodance ui --data FOLDER`"); return; }
  await start("/api/compare", {
    sequence: $("sequence").value, model: $("model").value,
    start_s: $("cmp-start").value, duration_s: $("cmp-duration").value, seed: $("cmp-seed").value,
  });
}

// ------------------------------------------------------------------ player

function show(result) {
  dance = result;
  $("progress").hidden = true;
  $("player").hidden = false;
  const names = Object.keys(result.panels);
  // Ground truth first: it reads left to right as "what was danced | what we make of the music".
  names.sort((a, b) => (a === "ground_truth" ? -1 : b === "ground_truth" ? 1 : 0));
  dance.panelNames = names;
  dance.camera = {};
  for (const n of names) dance.camera[n] = cameraTrack(result.panels[n], result.fps);
  $("stage").replaceChildren(...names.map((n) => {
    const div = document.createElement("div");
    div.className = "panel";
    const c = document.createElement("canvas");
    c.width = PANEL.w; c.height = PANEL.h; c.id = `canvas-${n}`;
    const label = document.createElement("span");
    label.textContent = n === "ground_truth" ? "ground truth" : `generated (${result.model})`;
    div.append(c, label);
    return div;
  }));
  const end = result.start_s + result.seconds;
  $("caption").textContent = `${result.song}: ${result.frames} frames, ` +
    `${result.start_s.toFixed(2)} s to ${end.toFixed(2)} s of the song, model ${result.model}`;
  $("audio").src = result.audio_url;
  $("download-note").textContent = "";
  showMetrics(result.metrics);
  lastFrame = -1;
  drawAll(0);
  setState("ready");
}

// A camera that follows the dancer's floor position, smoothed over 2 s, so
// travelling across the floor shows as the floor grid sliding by.
function cameraTrack(points, fps) {
  const T = points.length;
  const half = Math.max(1, Math.round(fps));
  const cx = new Float64Array(T), cz = new Float64Array(T), low = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    cx[t] = points[t][2][0]; cz[t] = points[t][2][2];
    low[t] = Math.min(...FOOT.map((j) => points[t][j][1]));
  }
  // The floor: a low percentile of the lowest foot point, so one glitch frame cannot sink it.
  const floor = low.slice().sort()[Math.floor(0.05 * (T - 1))];
  const sx = new Float64Array(T), sz = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let ax = 0, az = 0, n = 0;
    for (let k = Math.max(0, t - half); k <= Math.min(T - 1, t + half); k++) { ax += cx[k]; az += cz[k]; n++; }
    sx[t] = ax / n; sz[t] = az / n;
  }
  return { floor, x: sx, z: sz };
}

function drawPanel(canvas, points, cam, bones, t, view) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  const scale = (H * 0.85) / FRAME_CM;                     // px per cm
  const groundY = H * 0.88;
  const h = view === "front" ? 0 : 2;                      // world axis shown horizontally
  const centre = view === "front" ? cam.x[t] : cam.z[t];
  const px = (p) => W / 2 + (p[h] - centre) * scale * (view === "side" ? -1 : 1);
  const py = (p) => groundY - (p[1] - cam.floor) * scale;
  // Floor: a line with ticks every 50 cm in world coordinates.
  ctx.strokeStyle = "#3a3e48"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(0, groundY); ctx.lineTo(W, groundY); ctx.stroke();
  const step = 50, first = Math.floor((centre - W / 2 / scale) / step) * step;
  for (let g = first; g < centre + W / 2 / scale + step; g += step) {
    const x = W / 2 + (g - centre) * scale * (view === "side" ? -1 : 1);
    ctx.beginPath(); ctx.moveTo(x, groundY); ctx.lineTo(x, groundY + 10); ctx.stroke();
  }
  const pose = points[t];
  ctx.lineCap = "round"; ctx.lineWidth = Math.max(3, scale * 4);
  for (const [i, j, side] of bones) {
    ctx.strokeStyle = COLOURS[side] || COLOURS.centre;
    ctx.beginPath(); ctx.moveTo(px(pose[i]), py(pose[i])); ctx.lineTo(px(pose[j]), py(pose[j])); ctx.stroke();
  }
  ctx.fillStyle = COLOURS.centre;
  ctx.beginPath(); ctx.arc(px(pose[0]), py(pose[0]), Math.max(5, scale * 9), 0, 2 * Math.PI); ctx.fill();
}

function drawAll(t) {
  if (!dance) return;
  t = Math.max(0, Math.min(dance.frames - 1, t));
  const view = $("view").value;
  for (const n of dance.panelNames) {
    drawPanel($(`canvas-${n}`), dance.panels[n], dance.camera[n], dance.bones, t, view);
  }
  lastFrame = t;
  $("frame").textContent = `frame ${t + 1} / ${dance.frames} (${(t / dance.fps).toFixed(2)} s)`;
}

function tick() {
  if (dance) {
    const t = Math.floor($("audio").currentTime * dance.fps);
    if (t !== lastFrame) drawAll(t);
  }
  requestAnimationFrame(tick);
}

function showMetrics(m) {
  const table = $("metrics");
  if (!m) { table.hidden = true; table.replaceChildren(); return; }
  const rows = [
    ["BAS, music beats with a motion beat (0-1)", "bas_music", 3],
    ["BAS, motion beats on a music beat (0-1)", "bas_motion", 3],
    ["foot sliding (cm/s)", "foot_sliding_cm_s", 2],
    ["foot contact (share of frames)", "foot_contact_fraction", 3],
    ["physical foot contact, PFC (cm²/s²)", "pfc", 1],
    ["jitter (cm/s³)", "jitter", 0],
  ];
  const fmt = (v, d) => (v === null || v === undefined ? "n/a" : v.toFixed(d));
  const tr = (cells, tag = "td") => {
    const r = document.createElement("tr");
    for (const c of cells) { const e = document.createElement(tag); e.textContent = c; r.append(e); }
    return r;
  };
  table.replaceChildren(
    tr(["metric", "ground truth", "generated"], "th"),
    ...rows.map(([label, key, d]) => tr([label, fmt(m.ground_truth[key], d), fmt(m.generated[key], d)])),
    tr(["FID_k term of this sequence (mean kinetic features, GT std units²)", "0", fmt(m.kinetic_term, 2)]),
    tr(["metric loss per frame (pose-vector distance to the ground truth, cm)", "0",
        fmt(m.metric_loss_per_frame_cm, 1)]),
  );
  table.hidden = false;
}

async function download(kind) {
  if (!dance) return;
  const url = dance.downloads[kind];
  $("download-note").textContent = kind === "mp4"
    ? "rendering the MP4 and checking it with Great Expectations..." : "preparing...";
  try {
    const r = await fetch(url);
    if (!r.ok) {
      let msg = `HTTP ${r.status}`;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    const blob = await r.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = url.split("/").pop();
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    $("download-note").textContent = `${a.download}: ${(blob.size / 2 ** 20).toFixed(2)} MiB`;
  } catch (e) {
    $("download-note").textContent = "";
    showError(`${kind.toUpperCase()} download failed: ${e.message}`);
  }
}

// ------------------------------------------------------------------ wiring

for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => switchTab(b.dataset.tab));
$("song").addEventListener("change", (e) => chooseSong(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); drop.classList.remove("over");
  if (e.dataTransfer.files.length) chooseSong(e.dataTransfer.files[0]);
});
$("dance-form").addEventListener("submit", submitDance);
$("compare-form").addEventListener("submit", submitCompare);
$("view").addEventListener("change", () => { lastFrame = -1; });
$("play").addEventListener("click", () => {
  const a = $("audio");
  if (a.paused) a.play().catch((e) => showError(`cannot play the audio: ${e.message}`)); else a.pause();
});
$("audio").addEventListener("play", () => { $("play").textContent = "Pause"; });
$("audio").addEventListener("pause", () => { $("play").textContent = "Play"; });
$("audio").addEventListener("error", () => { if (dance) showError("the browser cannot play the song's audio"); });
for (const b of document.querySelectorAll("#downloads button")) b.addEventListener("click", () => download(b.dataset.kind));
loadChoices();
requestAnimationFrame(tick);

// warpnoise studio: the page. Plain JavaScript and Canvas, no build step, nothing fetched
// from anywhere but this server. The motion being edited is kept exactly in the shape of the
// motion file (see warpnoise.motion.spec), in first-frame pixel coordinates of the output size.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOURS = ["#ff4040", "#40c8ff", "#ffd200", "#78ff78", "#ff78ff"];
const HANDLE = 6; // display pixels: how near a click must be to a point to grab it

const studio = {
  config: null,
  image: null,        // {id, name, width, height}: the loaded first frame
  picture: null,      // HTMLImageElement: the first frame at the output size
  motion: null,       // the motion file being edited
  selected: -1,       // selected layer
  mode: "edit",       // "draw" | "edit"
  drawing: [],        // points of the polygon being drawn
  drag: null,         // what the mouse is moving
  undo: [], redo: [],
  t: 0,
  playing: null,
  preview: null,      // the latest preview (server answer + its sprite image)
  previewSeq: 0, editTime: 0,
  metrics: {previewLatency: []},
  job: null,
};
window.studio = studio;

// ---------------------------------------------------------------------------------------------
// Messages and requests

function message(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
  box.hidden = !text;
}

async function api(path, body, headers = {}) {
  const init = body === undefined ? {} : {
    method: "POST", body: body instanceof Blob ? body : JSON.stringify(body),
    headers: body instanceof Blob ? headers : {"Content-Type": "application/json", ...headers},
  };
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new Error("the studio server cannot be reached (was it stopped?)");
  }
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON: the status says it */ }
  if (!res.ok) throw new Error((data && data.error) || `request failed (${res.status})`);
  return data;
}

// ---------------------------------------------------------------------------------------------
// The motion: defaults, history, what is sent

function newMotion(size, frames, fps) {
  return {size, frames, fps, camera: {easing: "smooth", keyframes: []}, layers: []};
}

function snapshot() {
  return JSON.stringify({motion: studio.motion, selected: studio.selected});
}

function restore(text) {
  const s = JSON.parse(text);
  const resized = String(s.motion.size) !== String(studio.motion.size);
  studio.motion = s.motion;
  studio.selected = s.selected;
  syncControls();
  changed();
  if (resized && studio.image) loadPicture();
}

// Call before changing studio.motion: the state before goes on the undo stack.
function remember() {
  studio.undo.push(snapshot());
  if (studio.undo.length > 200) studio.undo.shift();
  studio.redo = [];
}

function undo() {
  if (studio.drawing.length) { studio.drawing.pop(); draw(); return; }
  if (!studio.undo.length) return;
  studio.redo.push(snapshot());
  restore(studio.undo.pop());
}

function redo() {
  if (!studio.redo.length) return;
  studio.undo.push(snapshot());
  restore(studio.redo.pop());
}

// The motion file: a layer without keyframes stays at rest (a key at the last frame).
function motionFile() {
  const m = JSON.parse(JSON.stringify(studio.motion));
  for (const layer of m.layers) {
    if (!layer.keyframes.length) layer.keyframes = [{frame: m.frames - 1}];
  }
  return m;
}

function changed() {
  studio.editTime = performance.now();
  renderPanels();
  draw();
  schedulePreview();
}

// ---------------------------------------------------------------------------------------------
// Geometry

function centroid(poly) {
  let a = 0, cx = 0, cy = 0;
  for (let i = 0; i < poly.length; i++) {
    const [x0, y0] = poly[i], [x1, y1] = poly[(i + 1) % poly.length];
    const c = x0 * y1 - x1 * y0;
    a += c; cx += (x0 + x1) * c; cy += (y0 + y1) * c;
  }
  return Math.abs(a) < 1e-9 ? poly[0] : [cx / (3 * a), cy / (3 * a)];
}

function inside(poly, [x, y]) {
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

function anchorOf(layer) { return layer.anchor || centroid(layer.polygon); }

// The preview answers for exactly the layers and frames shown now?
function previewFits() {
  const p = studio.preview;
  return p && p.fresh && p.outlines.length === studio.motion.layers.length;
}

// Layer k's outline at frame t, as its own motion moves it (picture coordinates).
function outlineAt(k, t) {
  if (previewFits() && studio.preview.outlines[k][t]) return studio.preview.outlines[k][t];
  return studio.motion.layers[k].polygon;
}

// The translation of layer k at frame t: its key there, else where the preview's path is.
function translateAt(k, t) {
  const layer = studio.motion.layers[k];
  const key = layer.keyframes.find((kf) => kf.frame === t);
  if (key) return [...(key.translate || [0, 0])];
  if (previewFits() && studio.preview.paths[k][t]) {
    const a = studio.preview.anchors[k], p = studio.preview.paths[k][t];
    return [p[0] - a[0], p[1] - a[1]];
  }
  return [0, 0];
}

// Set (or make) layer k's key at frame t; keys stay in frame order.
function setKey(k, t, fields) {
  const keys = studio.motion.layers[k].keyframes;
  let key = keys.find((kf) => kf.frame === t);
  if (!key) {
    key = {frame: t, translate: translateAt(k, t)};
    keys.push(key);
    keys.sort((a, b) => a.frame - b.frame);
  }
  Object.assign(key, fields);
  return key;
}

// ---------------------------------------------------------------------------------------------
// Editor canvas

const editor = $("editor");
const ectx = editor.getContext("2d");

function scale() { return editor.getBoundingClientRect().width / editor.width || 1; }

function eventPoint(e) {
  const r = editor.getBoundingClientRect();
  const s = editor.width / r.width;
  return [(e.clientX - r.left) * s - 0.5, (e.clientY - r.top) * s - 0.5];
}

function near(a, b) {
  return Math.hypot(a[0] - b[0], a[1] - b[1]) * scale() <= HANDLE + 2;
}

function pathPoly(ctx, pts, close) {
  ctx.beginPath();
  pts.forEach(([x, y], i) => (i ? ctx.lineTo(x + 0.5, y + 0.5) : ctx.moveTo(x + 0.5, y + 0.5)));
  if (close) ctx.closePath();
}

function draw() {
  const m = studio.motion;
  if (!m) return;
  const [w, h] = m.size;
  if (editor.width !== w || editor.height !== h) { editor.width = w; editor.height = h; }
  const px = 1 / scale();
  ectx.clearRect(0, 0, w, h);
  if (studio.picture) ectx.drawImage(studio.picture, 0, 0, w, h);
  const t = studio.t;
  m.layers.forEach((layer, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const sel = k === studio.selected;
    let rest = layer.polygon;
    if (studio.drag && studio.drag.kind === "vertex" && sel) rest = studio.drag.polygon;
    ectx.lineWidth = (sel ? 2 : 1.2) * px;
    ectx.strokeStyle = colour;
    ectx.fillStyle = colour + (sel ? "30" : "18");
    ectx.setLineDash([]);
    pathPoly(ectx, rest, true);
    ectx.fill();
    ectx.stroke();
    // where the layer is at the current frame (dashed), moved live while dragged
    let now = outlineAt(k, t);
    if (studio.drag && studio.drag.kind === "layer" && studio.drag.k === k) {
      const [dx, dy] = studio.drag.delta;
      now = studio.drag.outline.map(([x, y]) => [x + dx, y + dy]);
    }
    if (t > 0 || (studio.drag && studio.drag.k === k && studio.drag.kind === "layer")) {
      ectx.setLineDash([4 * px, 3 * px]);
      pathPoly(ectx, now, true);
      ectx.stroke();
      ectx.setLineDash([]);
    }
    // the path: the anchor's positions over the clip, and the keyframes on it
    const a = anchorOf(layer);
    if (previewFits() && studio.preview.paths[k]) {
      ectx.lineWidth = px;
      pathPoly(ectx, studio.preview.paths[k], false);
      ectx.stroke();
    }
    for (const key of layer.keyframes) {
      const tr = key.translate || [0, 0];
      ectx.beginPath();
      ectx.arc(a[0] + tr[0] + 0.5, a[1] + tr[1] + 0.5, (sel ? 4 : 3) * px, 0, 2 * Math.PI);
      ectx.fillStyle = key.frame === t ? "#fff" : colour;
      ectx.fill();
    }
    if (sel) {
      ectx.fillStyle = "#fff";
      for (const [x, y] of rest) ectx.fillRect(x + 0.5 - 3 * px, y + 0.5 - 3 * px, 6 * px, 6 * px);
    }
  });
  if (studio.drawing.length) {
    ectx.strokeStyle = "#fff";
    ectx.lineWidth = 1.5 * px;
    const pts = studio.hover ? [...studio.drawing, studio.hover] : studio.drawing;
    pathPoly(ectx, pts, false);
    ectx.stroke();
    ectx.fillStyle = "#ff0";
    const [x0, y0] = studio.drawing[0];
    ectx.fillRect(x0 + 0.5 - 4 * px, y0 + 0.5 - 4 * px, 8 * px, 8 * px);
  }
}

function setMode(mode) {
  studio.mode = mode;
  if (mode !== "draw") studio.drawing = [];
  $("mode-draw").classList.toggle("active", mode === "draw");
  $("mode-edit").classList.toggle("active", mode === "edit");
  $("mode-hint").textContent = mode === "draw"
    ? "click points; click the first point to close the layer"
    : "drag a layer: key at this frame (at frame 0: at the last frame); drag points to edit";
  draw();
}

// The key a drag at frame t sets: t itself, or at frame 0 (the image at rest) the last frame.
function dragFrame() { return studio.t > 0 ? studio.t : studio.motion.frames - 1; }

function hitTest(p) {
  const m = studio.motion, k = studio.selected;
  if (k >= 0) {
    const layer = m.layers[k];
    const vi = layer.polygon.findIndex((q) => near(q, p));
    if (vi >= 0) return {kind: "vertex", k, index: vi};
    const a = anchorOf(layer);
    const key = layer.keyframes.find((kf) => near([a[0] + (kf.translate || [0, 0])[0],
                                                   a[1] + (kf.translate || [0, 0])[1]], p));
    if (key) return {kind: "key", k, frame: key.frame};
  }
  const frame = dragFrame();
  for (let i = 0; i < m.layers.length; i++) {
    const shown = studio.t > 0 ? outlineAt(i, studio.t) : m.layers[i].polygon;
    if (inside(shown, p)) return {kind: "layer", k: i, frame, outline: shown};
  }
  return null;
}

editor.addEventListener("mousedown", (e) => {
  if (!studio.motion || e.button !== 0) return;
  const p = eventPoint(e);
  if (studio.mode === "draw") {
    const d = studio.drawing;
    if (d.length >= 3 && near(d[0], p)) {
      remember();
      const n = studio.motion.layers.length;
      studio.motion.layers.unshift({name: `layer${n + 1}`, polygon: d.map(([x, y]) => [round2(x), round2(y)]),
        path: "smooth", easing: "linear", keyframes: []});
      studio.selected = 0;
      studio.drawing = [];
      setMode("edit");
      changed();
    } else {
      d.push(p);
      draw();
    }
    return;
  }
  const hit = hitTest(p);
  if (!hit) { studio.selected = -1; renderPanels(); draw(); return; }
  studio.selected = hit.k;
  studio.drag = {...hit, start: p, delta: [0, 0], moved: false};
  if (hit.kind === "vertex") studio.drag.polygon = studio.motion.layers[hit.k].polygon.map((q) => [...q]);
  if (hit.kind === "layer") studio.drag.base = translateAt(hit.k, hit.frame);
  if (hit.kind === "key") {
    const key = studio.motion.layers[hit.k].keyframes.find((kf) => kf.frame === hit.frame);
    studio.drag.base = [...(key.translate || [0, 0])];
  }
  renderPanels();
  draw();
});

window.addEventListener("mousemove", (e) => {
  if (!studio.motion) return;
  const p = eventPoint(e);
  if (studio.mode === "draw") { studio.hover = p; draw(); return; }
  const d = studio.drag;
  if (!d) return;
  d.delta = [p[0] - d.start[0], p[1] - d.start[1]];
  d.moved = d.moved || Math.hypot(...d.delta) * scale() > 1;
  if (d.kind === "vertex") {
    const q = studio.motion.layers[d.k].polygon[d.index];
    d.polygon[d.index] = [q[0] + d.delta[0], q[1] + d.delta[1]];
  }
  draw();
});

const round2 = (v) => Math.round(v); // whole pixels: mouse positions are whole CSS pixels anyway

window.addEventListener("mouseup", () => {
  const d = studio.drag;
  studio.drag = null;
  if (!d || !d.moved) { draw(); return; }
  remember();
  const layer = studio.motion.layers[d.k];
  if (d.kind === "vertex") {
    layer.polygon = d.polygon.map(([x, y]) => [round2(x), round2(y)]);
  } else if (d.kind === "layer") {
    setKey(d.k, d.frame, {translate: [round2(d.base[0] + d.delta[0]),
                                      round2(d.base[1] + d.delta[1])]});
  } else if (d.kind === "key") {
    setKey(d.k, d.frame, {translate: [round2(d.base[0] + d.delta[0]),
                                      round2(d.base[1] + d.delta[1])]});
  }
  changed();
});

// ---------------------------------------------------------------------------------------------
// Side panels: layers, keys, camera

function numberInput(value, onChange, step = "any") {
  const input = document.createElement("input");
  input.type = "number";
  input.step = step;
  input.value = value;
  input.addEventListener("change", () => {
    const v = parseFloat(input.value);
    if (Number.isFinite(v)) { remember(); onChange(v); changed(); } else renderPanels();
  });
  return input;
}

function button(text, title, onClick) {
  const b = document.createElement("button");
  b.textContent = text;
  b.title = title;
  b.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
  return b;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    td.append(c);
    tr.append(td);
  }
  return tr;
}

function moveKeyFrame(keys, key, v) {
  const f = Math.round(v);
  if (f < 1 || f >= studio.motion.frames || keys.some((o) => o !== key && o.frame === f)) {
    message(`keyframe frame ${f} is not free within 1..${studio.motion.frames - 1}`);
    return;
  }
  key.frame = f;
  keys.sort((a, b) => a.frame - b.frame);
}

function renderPanels() {
  const m = studio.motion;
  if (!m) return;
  const list = $("layers");
  list.innerHTML = "";
  m.layers.forEach((layer, k) => {
    const li = document.createElement("li");
    li.className = k === studio.selected ? "selected" : "";
    li.style.borderLeft = `4px solid ${COLOURS[k % COLOURS.length]}`;
    li.append(`${layer.name || "layer" + k} (${layer.polygon.length} pts, ${layer.keyframes.length} keys)`);
    li.append(button("↑", "Bring forward", () => reorder(k, -1)));
    li.append(button("↓", "Send backward", () => reorder(k, 1)));
    li.append(button("✕", "Delete (Delete key)", () => deleteLayer(k)));
    li.addEventListener("click", () => { studio.selected = k; renderPanels(); draw(); });
    list.append(li);
  });
  const k = studio.selected;
  $("layer-panel").hidden = k < 0;
  if (k >= 0) {
    const layer = m.layers[k];
    $("layer-name").value = layer.name || "";
    $("layer-path").value = layer.path || "smooth";
    $("layer-easing").value = layer.easing || "linear";
    const body = $("layer-keys");
    body.innerHTML = "";
    for (const key of layer.keyframes) {
      const tr = key.translate || [0, 0];
      body.append(row([
        numberInput(key.frame, (v) => moveKeyFrame(layer.keyframes, key, v), 1),
        numberInput(tr[0], (v) => { key.translate = [v, tr[1]]; }),
        numberInput(tr[1], (v) => { key.translate = [tr[0], v]; }),
        numberInput(key.rotation || 0, (v) => { key.rotation = v; }),
        numberInput(key.scale || 1, (v) => { if (v > 0) key.scale = v; }, 0.05),
        button("✕", "Delete this key", () => {
          remember(); layer.keyframes.splice(layer.keyframes.indexOf(key), 1); changed();
        }),
      ]));
    }
  }
  $("camera-easing").value = m.camera.easing || "smooth";
  const cam = $("camera-keys");
  cam.innerHTML = "";
  for (const key of m.camera.keyframes) {
    const pan = key.pan || [0, 0];
    cam.append(row([
      numberInput(key.frame, (v) => moveKeyFrame(m.camera.keyframes, key, v), 1),
      numberInput(pan[0], (v) => { key.pan = [v, pan[1]]; }),
      numberInput(pan[1], (v) => { key.pan = [pan[0], v]; }),
      numberInput(key.zoom || 1, (v) => { if (v > 0) key.zoom = v; }, 0.05),
      numberInput(key.rotation || 0, (v) => { key.rotation = v; }),
      button("✕", "Delete this camera key", () => {
        remember(); m.camera.keyframes.splice(m.camera.keyframes.indexOf(key), 1); changed();
      }),
    ]));
  }
  $("undo").disabled = !studio.undo.length && !studio.drawing.length;
  $("redo").disabled = !studio.redo.length;
}

function reorder(k, by) {
  const layers = studio.motion.layers, j = k + by;
  if (j < 0 || j >= layers.length) return;
  remember();
  [layers[k], layers[j]] = [layers[j], layers[k]];
  studio.selected = j;
  changed();
}

function deleteLayer(k) {
  if (k < 0) return;
  remember();
  studio.motion.layers.splice(k, 1);
  studio.selected = -1;
  changed();
}

$("layer-name").addEventListener("change", (e) => {
  remember(); studio.motion.layers[studio.selected].name = e.target.value || null; changed();
});
$("layer-path").addEventListener("change", (e) => {
  remember(); studio.motion.layers[studio.selected].path = e.target.value; changed();
});
$("layer-easing").addEventListener("change", (e) => {
  remember(); studio.motion.layers[studio.selected].easing = e.target.value; changed();
});
$("camera-easing").addEventListener("change", (e) => {
  remember(); studio.motion.camera.easing = e.target.value; changed();
});
$("add-key").addEventListener("click", () => {
  if (studio.selected < 0) return;
  remember(); setKey(studio.selected, dragFrame(), {}); changed();
});
$("add-camera").addEventListener("click", () => {
  const keys = studio.motion.camera.keyframes, f = dragFrame();
  if (keys.some((kf) => kf.frame === f)) return;
  remember();
  keys.push({frame: f, pan: [0, 0], zoom: 1, rotation: 0});
  keys.sort((a, b) => a.frame - b.frame);
  changed();
});

// ---------------------------------------------------------------------------------------------
// Preview and timeline

const pcanvas = $("preview");
const pctx = pcanvas.getContext("2d");
let previewTimer = null;

function schedulePreview() {
  if (studio.preview) studio.preview.fresh = false;
  clearTimeout(previewTimer);
  previewTimer = setTimeout(requestPreview, 120);
}

async function requestPreview() {
  if (!studio.image || !studio.motion) return;
  const seq = ++studio.previewSeq, since = studio.editTime;
  let data;
  try {
    data = await api("/api/preview", {image: studio.image.id, motion: motionFile(),
                                      seed: seedValue()});
  } catch (e) {
    if (seq === studio.previewSeq) message(e.message);
    return;
  }
  if (seq !== studio.previewSeq) return; // a newer edit asked again
  const img = new Image();
  img.onload = () => {
    if (seq !== studio.previewSeq) return;
    studio.preview = {...data, sprite: img, fresh: true};
    const ms = performance.now() - since;
    studio.metrics.previewLatency.push(ms);
    $("latency").textContent = `updated ${Math.round(ms)} ms after the edit`;
    if ($("message").className !== "info") message("");
    drawPreview();
    draw();
  };
  img.src = data.strip;
}

function drawPreview() {
  const p = studio.preview;
  if (!p) return;
  const t = Math.min(studio.t, p.frames - 1);
  if (pcanvas.width !== 2 * p.width || pcanvas.height !== p.height) {
    pcanvas.width = 2 * p.width; pcanvas.height = p.height;
  }
  pctx.drawImage(p.sprite, 0, t * p.height, 2 * p.width, p.height, 0, 0, 2 * p.width, p.height);
}

function setTime(t) {
  studio.t = Math.max(0, Math.min(t, studio.motion.frames - 1));
  $("time").value = studio.t;
  $("time-label").textContent = `${studio.t} / ${studio.motion.frames - 1}`;
  drawPreview();
  draw();
}

$("time").addEventListener("input", (e) => setTime(parseInt(e.target.value, 10)));

function togglePlay() {
  if (studio.playing) {
    clearInterval(studio.playing);
    studio.playing = null;
    $("play").textContent = "Play";
    return;
  }
  $("play").textContent = "Pause";
  studio.playing = setInterval(() => setTime((studio.t + 1) % studio.motion.frames),
                               1000 / (studio.motion.fps || 16));
}
$("play").addEventListener("click", togglePlay);

// ---------------------------------------------------------------------------------------------
// Image, model, size and frames

function preset() {
  return studio.config.presets.find((p) => p.name === $("model").value) || null;
}

function multiple() { const p = preset(); return p ? p.multiple : 1; }

function sizeOptions() {
  const sel = $("size"), keep = sel.value, m = multiple();
  sel.innerHTML = "";
  const add = (w, h, label) => {
    const o = document.createElement("option");
    o.value = `${w}x${h}`;
    o.textContent = label || `${w}×${h}`;
    sel.append(o);
  };
  if (studio.image) {
    const w = Math.max(m, Math.floor(studio.image.width / m) * m);
    const h = Math.max(m, Math.floor(studio.image.height / m) * m);
    add(w, h, `image ${w}×${h}`);
  }
  const p = preset();
  if (p) for (const [w, h] of p.sizes) add(w, h);
  if (studio.motion) {
    const cur = `${studio.motion.size[0]}x${studio.motion.size[1]}`;
    if (![...sel.options].some((o) => o.value === cur)) add(...studio.motion.size, `${cur.replace("x", "×")} (motion file)`);
  }
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  const list = $("frame-list");
  list.innerHTML = "";
  for (const f of p ? p.frames : [49, 33, 17]) {
    const o = document.createElement("option");
    o.value = f;
    list.append(o);
  }
  $("rule").textContent = p ? `${p.title}: ${p.rule}, sides multiple of ${p.multiple}` : "any frames";
}

async function loadPicture() {
  const [w, h] = studio.motion.size;
  const img = new Image();
  img.src = `/api/image/${studio.image.id}?w=${w}&h=${h}`;
  try { await img.decode(); } catch (e) { message("could not show the image"); return; }
  studio.picture = img;
  $("empty").hidden = true;
  draw();
  schedulePreview();
}

// Move every coordinate of the motion to a new output size.
function rescale(motion, [w, h]) {
  const sx = w / motion.size[0], sy = h / motion.size[1];
  const sp = (p) => [round2(p[0] * sx), round2(p[1] * sy)];
  for (const layer of motion.layers) {
    layer.polygon = layer.polygon.map(sp);
    if (layer.anchor) layer.anchor = sp(layer.anchor);
    for (const key of layer.keyframes) if (key.translate) key.translate = sp(key.translate);
  }
  for (const key of motion.camera.keyframes) if (key.pan) key.pan = sp(key.pan);
  motion.size = [w, h];
}

// Spread the keys over a new frame count (keeping their order; clashes are dropped).
function retime(motion, frames) {
  const f = (x) => Math.max(1, Math.min(frames - 1, Math.round(x * (frames - 1) / (motion.frames - 1))));
  for (const keys of [motion.camera.keyframes, ...motion.layers.map((l) => l.keyframes)]) {
    const seen = new Set();
    for (let i = 0; i < keys.length; i++) {
      keys[i].frame = f(keys[i].frame);
      if (seen.has(keys[i].frame)) { keys.splice(i, 1); i--; } else seen.add(keys[i].frame);
    }
  }
  motion.frames = frames;
}

async function useImage(info) {
  studio.image = info;
  const fresh = !studio.motion;
  sizeOptions();
  if (fresh) $("size").selectedIndex = 0;
  const [w, h] = $("size").value.split("x").map(Number);
  if (fresh) {
    studio.motion = newMotion([w, h], parseInt($("frames").value, 10) || 49, 16);
  } else if (w !== studio.motion.size[0] || h !== studio.motion.size[1]) {
    remember();
    rescale(studio.motion, [w, h]);
  }
  setTime(Math.min(studio.t, studio.motion.frames - 1));
  $("time").max = studio.motion.frames - 1;
  renderPanels();
  message(`loaded ${info.name} (${info.width}×${info.height})`, "info");
  await loadPicture();
}

async function upload(file) {
  if (file.size > studio.config.max_upload) {
    message(`${file.name} is larger than the upload limit of ${Math.round(studio.config.max_upload / 2 ** 20)} MB`);
    return;
  }
  message(`uploading ${file.name}…`, "info");
  try {
    await useImage(await api("/api/upload", file, {"X-Filename": encodeURIComponent(file.name)}));
  } catch (e) {
    message(e.message);
  }
}

$("file").addEventListener("change", (e) => {
  if (e.target.files[0]) upload(e.target.files[0]);
  e.target.value = "";
});
$("sample").addEventListener("click", async () => {
  try { await useImage(await api("/api/sample", {})); } catch (e) { message(e.message); }
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});

$("model").addEventListener("change", () => {
  sizeOptions();
  $("size").dispatchEvent(new Event("change"));
});
$("size").addEventListener("change", () => {
  if (!studio.motion) return;
  const [w, h] = $("size").value.split("x").map(Number);
  if (w === studio.motion.size[0] && h === studio.motion.size[1]) return;
  remember();
  rescale(studio.motion, [w, h]);
  changed();
  loadPicture();
});
$("frames").addEventListener("change", () => {
  const n = parseInt($("frames").value, 10);
  if (!studio.motion || !(n >= 2)) return;
  if (n === studio.motion.frames) return;
  remember();
  retime(studio.motion, n);
  $("time").max = n - 1;
  setTime(Math.min(studio.t, n - 1));
  changed();
});
$("fps").addEventListener("change", () => {
  const v = parseFloat($("fps").value);
  if (!studio.motion || !(v > 0)) return;
  remember(); studio.motion.fps = v; changed();
});

function syncControls() {
  const m = studio.motion;
  $("frames").value = m.frames;
  $("fps").value = m.fps;
  $("time").max = m.frames - 1;
  sizeOptions();
  $("size").value = `${m.size[0]}x${m.size[1]}`;
  setTime(Math.min(studio.t, m.frames - 1));
}

// ---------------------------------------------------------------------------------------------
// Motion files

$("save-motion").addEventListener("click", async () => {
  if (!studio.motion) return;
  try {
    const data = await api("/api/motion", {motion: motionFile()});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([data.json], {type: "application/json"}));
    a.download = "motion.json";
    document.body.append(a);
    a.click();
    a.remove();
  } catch (e) {
    message(e.message);
  }
});

$("load-motion").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  e.target.value = "";
  if (!file) return;
  try {
    let parsed;
    try { parsed = JSON.parse(await file.text()); } catch (err) {
      throw new Error(`${file.name}: not JSON (${err.message})`);
    }
    const data = await api("/api/motion", {motion: parsed});
    const m = {...newMotion(null, 2, 16), ...data.motion};
    m.camera = {easing: "smooth", keyframes: [], ...m.camera};
    m.layers = (m.layers || []).map((l) => ({path: "smooth", easing: "linear", ...l}));
    if (m.layers.some((l) => !l.polygon)) throw new Error(`${file.name}: mask layers cannot be edited here`);
    if (!m.size) m.size = studio.motion ? studio.motion.size : [studio.image.width, studio.image.height];
    remember();
    studio.motion = m;
    studio.selected = -1;
    syncControls();
    changed();
    if (studio.image) loadPicture();
    message(`loaded ${file.name}`, "info");
  } catch (err) {
    message(err.message);
  }
});

// ---------------------------------------------------------------------------------------------
// Generate

function seedValue() { return Math.max(0, parseInt($("seed").value, 10) || 0); }

$("generate").addEventListener("click", async () => {
  if (!studio.image) { message("load an image or a video first"); return; }
  $("downloads").innerHTML = "";
  $("progress").value = 0;
  $("job-state").textContent = "starting…";
  let job;
  try {
    job = await api("/api/generate", {image: studio.image.id, motion: motionFile(),
                                      preset: $("model").value, seed: seedValue(),
                                      degradation: parseFloat($("degradation").value) || 0});
  } catch (e) {
    $("job-state").textContent = "";
    message(e.message);
    return;
  }
  studio.job = job.id;
  const poll = async () => {
    if (studio.job !== job.id) return;
    try { job = await api(`/api/jobs/${job.id}`); } catch (e) { message(e.message); return; }
    const p = $("progress");
    if (job.total) { p.max = job.total; p.value = job.done; }
    $("job-state").textContent = `${job.state}${job.stage ? ": " + job.stage : ""}`;
    if (job.state === "done") {
      p.max = 1; p.value = 1;
      $("job-state").textContent = `done: ${job.summary}`;
      for (const f of job.files) {
        const a = document.createElement("a");
        a.href = f.url; a.download = f.name; a.textContent = f.name;
        $("downloads").append(a);
      }
    } else if (job.state === "error" || job.state === "cancelled") {
      message(job.error || "the generation was cancelled");
    } else {
      setTimeout(poll, 250);
    }
  };
  poll();
});

// ---------------------------------------------------------------------------------------------
// Keys

window.addEventListener("keydown", (e) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName) && e.target.type !== "range";
  const ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && e.key.toLowerCase() === "z" && !typing) {
    e.preventDefault();
    e.shiftKey ? redo() : undo();
  } else if (ctrl && e.key.toLowerCase() === "y" && !typing) {
    e.preventDefault();
    redo();
  } else if (typing) {
    return;
  } else if (e.key === "Delete" || e.key === "Backspace") {
    deleteLayer(studio.selected);
  } else if (e.key === " ") {
    e.preventDefault();
    if (document.activeElement) document.activeElement.blur(); // no button "clicked" by Space
    if (studio.motion) togglePlay();
  } else if (e.key === "Escape") {
    studio.drawing = [];
    draw();
  }
});

$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("mode-draw").addEventListener("click", () => setMode("draw"));
$("mode-edit").addEventListener("click", () => setMode("edit"));

// ---------------------------------------------------------------------------------------------
// Start

(async function start() {
  try {
    studio.config = await api("/api/config");
  } catch (e) {
    message(e.message);
    return;
  }
  const model = $("model");
  for (const p of studio.config.presets) {
    const o = document.createElement("option");
    o.value = p.name;
    o.textContent = p.title;
    model.append(o);
  }
  const raw = document.createElement("option");
  raw.value = "";
  raw.textContent = "plain noise (4 channels)";
  model.append(raw);
  sizeOptions();
  setMode("edit");
  if (studio.config.initial) await useImage(studio.config.initial);
  studio.ready = true;
})();

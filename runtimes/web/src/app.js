// The page: load and verify a bundle, then generate images, edit them (an input image with a
// strength, a painted or uploaded inpainting mask) and run the self-test on request.
// Settings that need a fresh runtime (bundle URL, thread count) live in the URL query
// (?bundle=...&threads=N): onnxruntime-web fixes its thread pool when the first session is made,
// so changing them reloads the page. The last results are on window for the end-to-end test:
// window.lrfResult (generation), window.lrfSelfTest (self-test report), window.lrfError.

import * as ort from "onnxruntime-web";

import { loadBundle } from "./manifest.js";
import { BundleRuntime } from "./runtime.js";
import { runSelfTest } from "./selftest.js";
import { drawImage } from "./image.js";
import { MaskPainter, imageFromFile, maskFromFile } from "./edit.js";
import { canMeasurePage, formatMB, jsHeapBytes, pageBytes } from "./memory.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const cores = navigator.hardwareConcurrency || 1;
const requestedThreads = Math.max(1, Number.parseInt(params.get("threads") ?? String(Math.min(4, cores)), 10) || 1);
// Without cross-origin isolation there is no SharedArrayBuffer and onnxruntime-web runs one thread.
const threads = globalThis.crossOriginIsolated ? requestedThreads : 1;
const bundleUrl = params.get("bundle") ?? "./bundle/";

let runtime = null;
let busy = false;
let editImage = null; // {pixels, width, height}: the input image of an edit, at the model's size
let painter = null;

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function showError(e) {
  const message = e?.message ?? String(e);
  window.lrfError = message;
  $("error").textContent = message;
  $("error").hidden = false;
  setStatus("error", "Error");
  $("load").disabled = false;
  console.error(e);
}

function setBusy(value) {
  busy = value;
  for (const id of ["generate", "selftest", "load", "class", "steps", "seed", "threads", "init-image", "mask-file", "inpaint",
                    "strength", "clear-mask"]) $(id).disabled = value || !runtime;
  $("use-output").disabled = value || !runtime || !window.lrfResult;
  $("clear-image").disabled = value || !editImage;
  $("load").disabled = value;
}

function option(select, value, text, selected = false) {
  const o = document.createElement("option");
  o.value = String(value);
  o.textContent = text;
  o.selected = selected;
  select.append(o);
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
}

const nextFrame = () => new Promise((resolve) => setTimeout(resolve, 0)); // let the page repaint

function reloadWith(changes) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) q.set(k, v);
  location.search = q.toString();
}

function describeBundle(m) {
  const info = $("bundle-info");
  info.replaceChildren();
  const rows = [
    ["model", `${m.model.name} (${m.class_names.length} classes)`],
    ["artifacts", `${m.target} ${m.precision}, ${m.plan.loop.graph} graph`],
    ["sampler", `${m.sampler.solver}, ${m.sampler.steps} steps by default, CFG ${m.sampler.cfg}, ${m.sampler.recursions} recursions`],
    ["latent / image", `${m.latent.shape.join("×")} / ${m.image.shape.join("×")}`],
    ["verified", `${Object.keys(m.files).length} files, sha256 (crypto.subtle)`],
    ["runtime", `onnxruntime-web ${ort.env.versions?.web ?? "?"} wasm, ${threads} thread${threads > 1 ? "s" : ""}` +
      (globalThis.crossOriginIsolated ? " (cross-origin isolated)" : " (not cross-origin isolated: one thread only)")],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    info.append(dt, dd);
  }
}

async function init() {
  $("bundle-url").value = bundleUrl;
  for (let n = 1; n <= Math.max(cores, requestedThreads); n++) option($("threads"), n, String(n), n === requestedThreads);
  $("threads").addEventListener("change", () => reloadWith({ threads: $("threads").value }));
  $("bundle-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    reloadWith({ bundle: $("bundle-url").value });
  });
  $("generate").addEventListener("click", () => guard(generate));
  $("init-image").addEventListener("change", () => guard(loadEditImage));
  $("mask-file").addEventListener("change", () => guard(loadMaskFile));
  $("use-output").addEventListener("click", () => guard(async () => useImage({ pixels: window.lrfResult.pixels, width: 0, height: 0 }, "the last output")));
  $("clear-image").addEventListener("click", () => guard(async () => useImage(null)));
  $("clear-mask").addEventListener("click", () => painter?.clear());
  $("brush").addEventListener("change", () => { if (painter) painter.brush = Number($("brush").value); });
  $("strength").addEventListener("input", () => { $("strength-value").textContent = Number($("strength").value).toFixed(2); });
  $("selftest").addEventListener("click", () => guard(selfTest));
  setBusy(true);

  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "warning";
  setStatus("loading", `Verifying ${bundleUrl} …`);
  const bundle = await loadBundle(bundleUrl, (done, total) => setStatus("loading", `Verifying ${bundleUrl}: ${done}/${total} files (sha256)`));
  setStatus("loading", "Opening sessions…");
  runtime = await BundleRuntime.create(ort, bundle);
  const m = runtime.manifest;
  describeBundle(m);
  const wantClass = params.get("class");
  m.class_names.forEach((name, i) => option($("class"), i, name, wantClass === name || wantClass === String(i)));
  const wantSteps = Number(params.get("steps") ?? m.sampler.steps);
  for (const n of runtime.offeredSteps()) option($("steps"), n, String(n), n === wantSteps);
  if (params.has("seed")) $("seed").value = params.get("seed");
  const [, side] = m.image.shape;
  painter = new MaskPainter($("edit-canvas"), side, () => { window.lrfMask = Array.from(painter.mask); });
  painter.brush = Number($("brush").value);
  painter.draw();
  $("edit-panel").hidden = !m.plan.edit;  // a fused bundle has its schedule baked in: no edits
  setBusy(false);
  setStatus("ready", `Ready: ${m.model.name}, ${m.precision}`);
}

async function guard(task) {
  if (busy || !runtime) return;
  $("error").hidden = true;
  setBusy(true);
  try {
    await task();
  } catch (e) {
    showError(e);
  } finally {
    setBusy(false);
  }
}

/** Show ``image`` ({pixels, width, height} at the model's size, or null) as the edit's input. */
function useImage(image, what = "") {
  editImage = image;
  painter.setImage(image ? image.pixels : null);
  painter.clear();
  $("edit-note").textContent = image ? `Editing ${what}: Generate runs image-to-image at the strength` +
    " (or inpaints the painted region), towards the class chosen above." : "";
}

async function loadEditImage() {
  const file = $("init-image").files[0];
  if (!file) return;
  const [, side] = runtime.manifest.image.shape;
  const image = await imageFromFile(file, side);
  useImage(image, file.name);
  if (image.note) $("edit-note").textContent = `${image.note}. ${$("edit-note").textContent}`;
}

async function loadMaskFile() {
  const file = $("mask-file").files[0];
  if (!file) return;
  if (!editImage) throw new Error("a mask needs an input image; pick an image first");
  if (!editImage.width) throw new Error("paint the mask on the output (a mask file is for an uploaded image)");
  const [, side] = runtime.manifest.image.shape;
  painter.setMask(await maskFromFile(file, editImage, side));
  $("inpaint").checked = true;
}

/** The edit's plan inputs (image, strength, mask) from the panel, or none without an input image. */
function editInputs() {
  if (!editImage) return {};
  const inputs = { image: editImage.pixels, strength: Number($("strength").value) };
  if ($("inpaint").checked) {
    if (!painter.painted()) throw new Error("the mask is empty: paint the region to regenerate, or untick Inpaint");
    inputs.mask = painter.mask;
  }
  return inputs;
}

function readSeed() {
  const seed = Number($("seed").value);
  if (!Number.isSafeInteger(seed)) throw new Error(`seed ${$("seed").value} is not an integer`);
  return seed;
}

async function generate() {
  const m = runtime.manifest;
  const edit = editInputs();
  const values = runtime.inputs({ class: Number($("class").value), seed: readSeed(), steps: Number($("steps").value), ...edit });
  const { class: classId, seed, steps } = values;
  const ts = runtime.schedule(values);
  const first = runtime.firstInterval(values);
  const what = edit.mask ? "Inpainting" : edit.image ? `Editing (strength ${edit.strength})` : "Generating";
  setStatus("busy", `${what} ${m.class_names[classId]}, seed ${seed}…`);
  const body = $("steps-table").tBodies[0];
  body.replaceChildren();
  $("progress").max = ts ? ts.length - 1 - first : m.plan.loop.repeat.count;
  $("progress").value = 0;
  const stepMs = [];
  const heap = [];
  const t0 = performance.now();
  const state = await runtime.iterate(values, async (i, _state, ms) => {
    stepMs.push(ms);
    heap.push(jsHeapBytes());
    $("progress").value = i + 1;
    const tr = document.createElement("tr");
    cell(tr, String(first + i + 1));
    cell(tr, ts ? `${ts[first + i]} → ${ts[first + i + 1]}` : "all steps (fused)");
    cell(tr, ms.toFixed(2));
    cell(tr, formatMB(heap[i]));
    body.append(tr);
    await nextFrame();
  });
  const d0 = performance.now();
  const pixels = await runtime.finish(state, values);
  const decodeMs = performance.now() - d0;
  const totalMs = performance.now() - t0;
  const [, h, w] = m.image.shape;
  const rgba = drawImage($("canvas"), pixels, h, w);
  const mean = stepMs.length ? stepMs.reduce((a, b) => a + b, 0) / stepMs.length : 0;
  const editCaption = edit.mask ? ", inpainted" : edit.image ? `, edited at strength ${edit.strength}` : "";
  $("caption").textContent = `${m.class_names[classId]}, seed ${seed}, ${steps} step${steps > 1 ? "s" : ""}${editCaption}`;
  $("timing").textContent = `${mean.toFixed(2)} ms/step (mean of ${stepMs.length}), decode ${decodeMs.toFixed(2)} ms, ` +
    `total ${totalMs.toFixed(1)} ms on ${threads} thread${threads > 1 ? "s" : ""}`;
  window.lrfResult = { classId, className: m.class_names[classId], seed, steps, threads, precision: m.precision,
                       strength: edit.strength ?? null, inpaint: Boolean(edit.mask), stepMs, decodeMs, totalMs,
                       jsHeapBytes: heap, pixels, rgba, shape: m.image.shape };
  setStatus("done", `Done: ${m.class_names[classId]}, seed ${seed}`);
  measurePage();
}

// One page measurement at a time; after one went unanswered (threads > 1) the page stops asking.
let measuring = false;
let pageMemoryUnanswered = null;
function measurePage() {
  const heap = `JS heap ${formatMB(jsHeapBytes())}`;
  if (!canMeasurePage()) {
    $("memory").textContent = `Page memory: n/a (measureUserAgentSpecificMemory unavailable); ${heap}`;
    return;
  }
  if (pageMemoryUnanswered) {
    $("memory").textContent = `Page memory: n/a (${pageMemoryUnanswered}); ${heap}`;
    return;
  }
  if (measuring) return;
  measuring = true;
  $("memory").textContent = `Page memory: measuring (waits for a garbage collection)…; ${heap}`;
  pageBytes().then(({ bytes, reason }) => {
    measuring = false;
    window.lrfPageBytes = bytes;
    if (bytes === null) pageMemoryUnanswered = reason;
    $("memory").textContent = bytes === null ? `Page memory: n/a (${reason}); ${heap}`
      : `Page memory (measureUserAgentSpecificMemory, wasm included): ${formatMB(bytes)}; ${heap}`;
  });
}

async function selfTest() {
  setStatus("busy", "Self-test: running the bundle's checks…");
  $("selftest-panel").hidden = false;
  $("selftest-verdict").textContent = "";
  const body = $("selftest-table").tBodies[0];
  body.replaceChildren();
  const fmt = (metric, v) => (Number.isNaN(v) ? "nan" : !Number.isFinite(v) ? "inf" : metric === "psnr" ? v.toFixed(2) : v.toExponential(2));
  const report = await runSelfTest(runtime, (c) => {
    const tr = document.createElement("tr");
    cell(tr, c.name);
    cell(tr, c.metric);
    cell(tr, fmt(c.metric, c.value));
    cell(tr, `${c.metric === "psnr" ? "≥" : "≤"} ${fmt(c.metric, c.limit)}`);
    cell(tr, c.passed ? "pass" : "FAIL", c.passed ? "pass" : "fail");
    body.append(tr);
  });
  const failed = report.checks.filter((c) => !c.passed).length;
  $("selftest-verdict").textContent = report.passed ? "PASS" : `FAIL (${failed} check${failed > 1 ? "s" : ""})`;
  $("selftest-verdict").className = report.passed ? "pass" : "fail";
  console.log(report.table);
  window.lrfSelfTest = report;
  setStatus(report.passed ? "selftest-pass" : "selftest-fail", `Self-test ${report.passed ? "passed" : "FAILED"}`);
}

init().catch(showError);

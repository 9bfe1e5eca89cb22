// End-to-end check and benchmark of the web page in Debian's Chromium, through playwright-core.
// The page must already be served (serve.py); this script only drives a browser.
//
// Test mode: generate the case of the bundle's whole-plan "output" check from the form and
// compare its pixels with the check's expected tensor; generate another class/seed and compare
// with lrf-run's PNG; check the canvas shows exactly the pixels, upscaled without smoothing; make
// the bundle's edits from the edit panel as a user would (upload the edit image, set the strength,
// upload the mask and tick Inpaint) and compare each with its reference; paint a stroke on the
// mask canvas and clear it; run the Self-test (must pass); open a tampered copy of the bundle (one
// tensor changed, its sha256 updated) and require that its Self-test fails on the numbers; save a
// screenshot.
//
//   node tests/e2e.mjs --url http://127.0.0.1:PORT/ --out report.json --screenshot shot.png \
//     --other-png other.png --other-class ship --other-seed 7 --corrupt-bundle ./bundle-bad/ \
//     --unhashed-bundle ./bundle-unhashed/   (a file changed, manifest not: the page must refuse it) \
//     --edit-image in.png --edit-mask mask.png   (the bundle's edit.image / edit.mask as PNG files)
//
// Bench mode: for each thread count, warm up, then generate --images images and report per-step
// latency (median, p90) and decode time; the self-test runs too.
//
//   node tests/e2e.mjs --mode bench --url http://127.0.0.1:PORT/ --threads 1,2 --images 20 --out bench.json
//
// Self-test mode: open the page, run its Self-test and report the checks (for
// tests/test_selftest_agreement.py, which compares the verdicts with Python's and lrf-native's).
//
//   node tests/e2e.mjs --mode selftest --url http://127.0.0.1:PORT/ --out selftest.json
//
// Exit status 0 when every check passes; the JSON report says what was measured either way.

import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

import { metric } from "../src/compare.js";
import { parseTensor } from "../src/tensor.js";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    mode: { type: "string", default: "test" },
    out: { type: "string" },
    screenshot: { type: "string" },
    threads: { type: "string", default: "2" },
    images: { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
    "screenshot-class": { type: "string", default: "cat" },
    "other-png": { type: "string" },
    "other-class": { type: "string", default: "ship" },
    "other-seed": { type: "string", default: "7" },
    "corrupt-bundle": { type: "string" },
    "unhashed-bundle": { type: "string" },
    "edit-image": { type: "string" },
    "edit-mask": { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    timeout: { type: "string", default: "90" },
  },
});
if (!args.url) {
  console.error("usage: node tests/e2e.mjs --url http://127.0.0.1:PORT/ [--mode test|bench] ...");
  process.exit(2);
}
const base = args.url.endsWith("/") ? args.url : args.url + "/";
const timeoutMs = Number(args.timeout) * 1000;
const threadList = args.threads.split(",").map(Number);

const LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--enable-blink-features=ForceEagerMeasureMemory"];

const failures = [];
const check_ = (ok, message) => check(ok, message);
function check(ok, message) {
  console.log(`${ok ? "ok  " : "FAIL"} ${message}`);
  if (!ok) failures.push(message);
  return ok;
}

async function fetchBytes(rel) {
  const r = await fetch(new URL(rel, base));
  if (!r.ok) throw new Error(`${new URL(rel, base)}: HTTP ${r.status}`);
  return r.arrayBuffer();
}

/** Open the page with ``query`` and wait until it is ready (or says why not). */
async function openPage(browser, query, { allowError = false } = {}) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  page.on("pageerror", (e) => console.log(`  [page error] ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") console.log(`  [console] ${m.text()}`); });
  await page.goto(`${base}?${new URLSearchParams(query)}`);
  await page.waitForFunction(() => ["ready", "error"].includes(document.getElementById("status").dataset.state), null, { timeout: timeoutMs });
  const error = await page.evaluate(() => window.lrfError ?? null);
  if (error && !allowError) throw new Error(`the page did not load the bundle: ${error}`);
  return page;
}

async function waitState(page, states) {
  await page.waitForFunction((s) => s.includes(document.getElementById("status").dataset.state), states, { timeout: timeoutMs });
  const error = await page.evaluate(() => window.lrfError ?? null);
  if (error) throw new Error(error);
  return page.evaluate(() => document.getElementById("status").dataset.state);
}

/** Pick class/seed/steps in the form, click Generate, return window.lrfResult (pixels as an array). */
async function generate(page, { className, seed, steps }) {
  await page.waitForFunction(() => !document.getElementById("generate").disabled, null, { timeout: timeoutMs });
  await page.selectOption("#class", { label: className });
  await page.fill("#seed", String(seed));
  if (steps) await page.selectOption("#steps", String(steps));
  await page.click("#generate");
  await waitState(page, ["done"]);
  return page.evaluate(() => {
    const r = window.lrfResult;
    return { ...r, pixels: Array.from(r.pixels), rgba: Array.from(r.rgba) };
  });
}

/** The canvas, read back: is it the pixels, each pixel a uniform block (no smoothing)? */
async function canvasMatches(page) {
  return page.evaluate(() => {
    const { rgba, shape } = window.lrfResult;
    const [, h, w] = shape;
    const canvas = document.getElementById("canvas");
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const sy = canvas.height / h;
    const sx = canvas.width / w;
    let mismatched = 0;
    for (let y = 0; y < canvas.height; y++) {
      for (let x = 0; x < canvas.width; x++) {
        const src = 4 * (Math.floor(y / sy) * w + Math.floor(x / sx));
        const dst = 4 * (y * canvas.width + x);
        for (let c = 0; c < 4; c++) if (px[dst + c] !== rgba[src + c]) { mismatched++; break; }
      }
    }
    return { mismatched, pixels: canvas.width * canvas.height, scale: sx };
  });
}

/** Decode a PNG (lrf-run's output) in the page: its RGB values (H, W, 3) and RGBA bytes. */
async function decodePng(page, path) {
  const b64 = readFileSync(path).toString("base64");
  return page.evaluate(async (data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }), { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = c.getContext("2d");
    ctx.drawImage(bmp, 0, 0);
    const px = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
    const rgb = Array.from(px).filter((_v, i) => i % 4 !== 3);
    return { width: bmp.width, height: bmp.height, rgb, rgba: Array.from(px) };
  }, b64);
}

function uint8Diff(a, b) {
  let max = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    if (i % 4 === 3) continue;
    const d = Math.abs(a[i] - b[i]);
    if (d) n++;
    max = Math.max(max, d);
  }
  return { max, differing: n };
}

/** Each of the bundle's edit checks (a plan "output" check with an image input) made from the edit
 * panel: upload the image, set the strength, for inpainting upload the mask and tick Inpaint. */
async function edits(page, manifest) {
  const results = [];
  for (const check of manifest.checks.filter((c) => c.kind === "plan" && c.compare === "output" && typeof c.inputs.image === "string")) {
    const { class: classId, seed, steps, strength = 1 } = check.inputs;
    const inpaint = typeof check.inputs.mask === "string";
    await page.setInputFiles("#init-image", args["edit-image"]);
    await page.waitForFunction(() => !document.getElementById("clear-image").disabled, null, { timeout: timeoutMs });
    await page.$eval("#strength", (el, v) => { el.value = String(v); el.dispatchEvent(new Event("input")); }, strength);
    await page.setChecked("#inpaint", inpaint);
    if (inpaint) await page.setInputFiles("#mask-file", args["edit-mask"]);
    const got = await generate(page, { className: manifest.class_names[classId], seed, steps });
    const spec = manifest.tensors[check.expected];
    const ref = parseTensor(await fetchBytes(`bundle/${spec.file}`), spec).data;
    const value = metric("psnr", got.pixels, ref);
    results.push({ check: check.name, strength, inpaint, psnr_db: value, gate_db: check.limit, step_ms: got.stepMs,
                   pixels: got.pixels });
    check_(value >= check.limit && got.stepMs.length === steps - (steps - Math.floor(steps * strength + 0.5)),
           `${check.name}: ${inpaint ? "inpainting" : `image-to-image at strength ${strength}`} from the edit panel, ` +
           `${got.stepMs.length} of ${steps} steps, PSNR ${value.toFixed(2)} dB against ${spec.file} (gate ${check.limit} dB)`);
  }
  return results;
}

/** A stroke across the mask canvas paints cells; Clear mask empties it. */
async function paintAndClear(page) {
  const box = await page.locator("#edit-canvas").boundingBox();
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5, { steps: 12 });
  await page.mouse.up();
  const painted = await page.evaluate(() => (window.lrfMask ?? []).filter((v) => v > 0).length);
  await page.click("#clear-mask");
  const cleared = await page.evaluate(() => (window.lrfMask ?? []).filter((v) => v > 0).length);
  return { painted, cleared };
}

async function selfTest(page) {
  await page.click("#selftest");
  await waitState(page, ["selftest-pass", "selftest-fail"]);
  return page.evaluate(() => window.lrfSelfTest);
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return {
    n: s.length,
    median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2,
    p90: s[Math.max(0, Math.ceil(0.9 * s.length) - 1)],
    min: s[0],
    max: s[s.length - 1],
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

async function runTest(browser, manifest) {
  const report = { mode: "test", url: base, threads: threadList[0] };
  const tol = manifest.tolerance;
  const imageCheck = manifest.checks.find((c) => c.kind === "plan" && c.compare === "output");
  const page = await openPage(browser, { threads: threadList[0] });
  const env = await page.evaluate(() => ({ crossOriginIsolated, userAgent: navigator.userAgent, cores: navigator.hardwareConcurrency }));
  report.browser = env;
  check(env.crossOriginIsolated === true, "page is cross-origin isolated (COOP/COEP served): wasm threads available");

  if (args["other-png"]) {
    const other = await generate(page, { className: args["other-class"], seed: Number(args["other-seed"]) });
    const png = await decodePng(page, args["other-png"]);
    const value = metric("psnr", other.pixels, png.rgb);
    const diff = uint8Diff(other.rgba, png.rgba);
    report.lrf_run = { class: args["other-class"], seed: Number(args["other-seed"]), psnr_db: value, uint8_max_diff: diff.max,
                       uint8_differing: diff.differing, step_ms: other.stepMs, pixels: other.pixels };
    check(value >= tol.image_psnr_db, `${args["other-class"]} seed ${args["other-seed"]}: PSNR ${value.toFixed(2)} dB against lrf-run's PNG ` +
          `(gate ${tol.image_psnr_db} dB; uint8 max diff ${diff.max}, ${diff.differing} values differ)`);
  }

  const spec = manifest.tensors[imageCheck.expected];
  const refPixels = parseTensor(await fetchBytes(`bundle/${spec.file}`), spec).data;
  const { class: classId, seed, steps } = imageCheck.inputs;
  const className = manifest.class_names[classId];
  const traj = await generate(page, { className, seed, steps });
  const value = metric("psnr", traj.pixels, refPixels);
  report.reference = { class: className, seed, steps, psnr_db: value, gate_db: imageCheck.limit,
                       step_ms: traj.stepMs, decode_ms: traj.decodeMs, pixels: traj.pixels };
  check(value >= imageCheck.limit, `${className} seed ${seed}: PSNR ${value.toFixed(2)} dB against ${spec.file} (gate ${imageCheck.limit} dB)`);
  const canvas = await canvasMatches(page);
  report.canvas = canvas;
  check(canvas.mismatched === 0, `canvas shows the pixels upscaled ${canvas.scale}x without smoothing (${canvas.mismatched} of ${canvas.pixels} pixels differ)`);

  if (args["edit-image"]) {
    report.edits = await edits(page, manifest);
    check(report.edits.length === 2, `the bundle's two edits ran from the edit panel (${report.edits.map((e) => e.check).join(", ")})`);
    report.painting = await paintAndClear(page);
    check(report.painting.painted > 0 && report.painting.cleared === 0,
          `a stroke on the mask canvas paints ${report.painting.painted} cells; Clear mask leaves ${report.painting.cleared}`);
  }

  const st = await selfTest(page);
  report.selftest = st;
  const bad = st.checks.filter((c) => !c.passed).map((c) => c.name);
  check(st.passed, `self-test passes (${st.checks.length} checks${bad.length ? `; failed: ${bad.join(", ")}` : ""})`);
  const noise = st.checks.find((c) => c.name === "noise");
  check(noise?.value === 0, `JS noise equals Python's (max abs diff ${noise?.value})`);
  if (args.screenshot) {
    await page.screenshot({ path: args.screenshot, fullPage: true });
    report.screenshot = args.screenshot;
  }
  await page.close();

  if (args["corrupt-bundle"]) {
    const bad = await openPage(browser, { threads: threadList[0], bundle: args["corrupt-bundle"] });
    const loaded = await bad.evaluate(() => document.getElementById("status").dataset.state === "ready");
    check(loaded, "the tampered bundle still passes the sha256 check (its manifest was updated)");
    const cst = await selfTest(bad);
    const failed = cst.checks.filter((c) => !c.passed).map((c) => c.name);
    report.corrupt_selftest = { passed: cst.passed, failed };
    check(!cst.passed && failed.length > 0, `the tampered bundle's self-test fails on the numbers (${failed.join("; ") || "nothing failed"})`);
    await bad.close();
  }
  if (args["unhashed-bundle"]) {
    const bad = await openPage(browser, { threads: threadList[0], bundle: args["unhashed-bundle"] }, { allowError: true });
    const error = await bad.evaluate(() => window.lrfError ?? null);
    const buttons = await bad.evaluate(() => [document.getElementById("generate").disabled, document.getElementById("selftest").disabled]);
    report.unhashed_bundle = { error };
    check(/sha256/.test(error ?? "") && buttons.every(Boolean),
          `a bundle whose file no longer matches its sha256 is refused before any use (${error})`);
    await bad.close();
  }
  return report;
}

async function runBench(browser, manifest) {
  const report = { mode: "bench", url: base, precision: manifest.precision, steps: manifest.sampler.steps, images: Number(args.images),
                   warmup: Number(args.warmup), runs: [] };
  for (const threads of threadList) {
    const page = await openPage(browser, { threads });
    const env = await page.evaluate(() => ({ crossOriginIsolated, userAgent: navigator.userAgent, cores: navigator.hardwareConcurrency }));
    report.browser = env;
    for (let i = 0; i < Number(args.warmup); i++) await generate(page, { className: args["screenshot-class"], seed: 1000 + i });
    const stepMs = [];
    const decodeMs = [];
    const totalMs = [];
    let last;
    for (let i = 0; i < Number(args.images); i++) {
      const className = manifest.class_names[i % manifest.class_names.length];
      last = await generate(page, { className, seed: i });
      stepMs.push(...last.stepMs);
      decodeMs.push(last.decodeMs);
      totalMs.push(last.totalMs);
    }
    const st = await selfTest(page);
    const shot = args.screenshot && threads === threadList[0];
    if (shot) {
      await generate(page, { className: args["screenshot-class"], seed: 0 });
      // Let the page-memory line settle (it answers at once with one thread, gives up after 25 s otherwise).
      await page.waitForFunction(() => !document.getElementById("memory").textContent.includes("measuring"), null, { timeout: 40000 })
        .catch(() => {});
      await page.screenshot({ path: args.screenshot, fullPage: true });
    }
    const memory = await page.evaluate(() => ({ js_heap_bytes: performance.memory?.usedJSHeapSize ?? null, page_bytes: window.lrfPageBytes ?? null,
                                                shown: document.getElementById("memory").textContent }));
    const run = { threads, cross_origin_isolated: env.crossOriginIsolated, step_ms: stats(stepMs), decode_ms: stats(decodeMs),
                  image_ms: stats(totalMs), memory, selftest_passed: st.passed,
                  selftest: st.checks };
    report.runs.push(run);
    check(st.passed, `${manifest.precision} ${threads} thread(s): self-test passes`);
    console.log(`${manifest.precision} threads=${threads}: step median ${run.step_ms.median.toFixed(2)} ms, p90 ${run.step_ms.p90.toFixed(2)} ms, ` +
                `decode median ${run.decode_ms.median.toFixed(2)} ms (${stepMs.length} steps, ${decodeMs.length} images)`);
    await page.close();
  }
  if (args.screenshot) report.screenshot = args.screenshot;
  return report;
}

async function runSelfTestOnly(browser) {
  const page = await openPage(browser, { threads: threadList[0] });
  const st = await selfTest(page);
  await page.close();
  return { mode: "selftest", url: base, selftest: st };
}

async function main() {
  const manifest = JSON.parse(new TextDecoder().decode(await fetchBytes("bundle/manifest.json")));
  const browser = await chromium.launch({ executablePath: args.chromium, headless: true, args: LAUNCH_ARGS, timeout: timeoutMs });
  let report;
  try {
    const run = { bench: runBench, selftest: runSelfTestOnly, test: runTest }[args.mode];
    if (!run) throw new Error(`unknown --mode ${args.mode}; use test, bench or selftest`);
    report = await run(browser, manifest);
    report.chromium = browser.version();
  } catch (e) {
    failures.push(e.message);
    report = { mode: args.mode, error: e.message };
    console.log(`FAIL ${e.message}`);
  } finally {
    await browser.close();
  }
  report.failures = failures;
  report.passed = failures.length === 0;
  if (args.out) writeFileSync(args.out, JSON.stringify(report, (k, v) => (Number.isNaN(v) ? "NaN" : v === Infinity ? "Infinity" : v), 2) + "\n");
  process.exit(report.passed ? 0 : 1);
}

main();

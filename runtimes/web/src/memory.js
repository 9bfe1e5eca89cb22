// Memory, where the browser tells: performance.memory (Chromium's JS heap, synchronous, cheap
// enough per step) and performance.measureUserAgentSpecificMemory() (the whole page, wasm
// memory included; needs cross-origin isolation and may take seconds, since it waits for a GC).
// Elsewhere both are null and the page says n/a. Measured here (Chromium 156): with more than one
// onnxruntime-web thread the page measurement never resolves (the wasm worker threads sit blocked in
// Atomics.wait), so it gives up after PAGE_TIMEOUT_MS and says so; with one thread it answers.
// performance.memory's JS heap does not include the wasm memory; the page measurement does.

export const PAGE_TIMEOUT_MS = 25000;

/** Bytes of used JS heap (performance.memory.usedJSHeapSize), or null where not available. */
export function jsHeapBytes() {
  const m = performance.memory;
  return m && typeof m.usedJSHeapSize === "number" ? m.usedJSHeapSize : null;
}

export function canMeasurePage() {
  return typeof performance.measureUserAgentSpecificMemory === "function" && globalThis.crossOriginIsolated === true;
}

/**
 * The page's memory by measureUserAgentSpecificMemory: {bytes} or {bytes: null, reason}
 * (unavailable, an error, or no answer within ``timeoutMs``).
 */
export async function pageBytes(timeoutMs = PAGE_TIMEOUT_MS) {
  if (!canMeasurePage()) return { bytes: null, reason: "measureUserAgentSpecificMemory unavailable" };
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ bytes: null, reason: `no answer in ${timeoutMs / 1000} s (wasm worker threads block it; use 1 thread)` }), timeoutMs);
  });
  try {
    return await Promise.race([performance.measureUserAgentSpecificMemory().then((r) => ({ bytes: r.bytes })), timeout]);
  } catch (e) {
    return { bytes: null, reason: e.message };
  } finally {
    clearTimeout(timer);
  }
}

export function formatMB(bytes) {
  return bytes === null || bytes === undefined ? "n/a" : `${(bytes / 1048576).toFixed(1)} MB`;
}

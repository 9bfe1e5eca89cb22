// The checks' metrics, once in JS: lrf_export.checks.metric in float64 (rel, max_abs, psnr on
// 8-bit pixels). NaN anywhere, or a size mismatch, gives NaN, which never passes.

export function metric(name, got, ref) {
  if (got.length !== ref.length || ref.length === 0) return NaN;
  let maxDiff = 0;
  let peak = 0;
  let sum = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(Number(got[i]) - Number(ref[i]));
    if (Number.isNaN(d)) return NaN;
    if (d > maxDiff) maxDiff = d;
    peak = Math.max(peak, Math.abs(Number(ref[i])));
    sum += d * d;
  }
  if (name === "max_abs") return maxDiff;
  if (name === "rel") return maxDiff / Math.max(peak, 1e-8);
  if (name === "psnr") {
    const mse = sum / ref.length;
    return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
  }
  throw new Error(`a check uses the metric ${name}, which this page does not know; update the web runtime`);
}

/** The metric iteration by iteration over arrays stacked along a first axis of ``rows`` (a plan's
 * states), the worst one (export/checks.py worst): a late step is not hidden by the noise's scale. */
export function worstRow(name, got, ref, rows) {
  if (got.length !== ref.length || rows < 1 || ref.length % rows) return NaN;
  const size = ref.length / rows;
  let w = name === "psnr" ? Infinity : 0;
  for (let r = 0; r < rows; r++) {
    const v = metric(name, got.slice(r * size, (r + 1) * size), ref.slice(r * size, (r + 1) * size));
    if (Number.isNaN(v)) return NaN;
    w = name === "psnr" ? Math.min(w, v) : Math.max(w, v);
  }
  return w;
}

export function passes(name, value, limit) {
  if (Number.isNaN(value)) return false;
  return name === "psnr" ? value >= limit : value <= limit;
}

export function allFinite(a) {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

// The parity metrics of export/parity.py, in float64 as there.

/** max |got - ref|. */
export function maxAbs(got, ref) {
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= m)) m = d; // NaN propagates
  }
  return m;
}

/** rel error = max |got - ref| / max(max |ref|, 1e-8). */
export function relError(got, ref) {
  let peak = 0;
  for (let i = 0; i < ref.length; i++) peak = Math.max(peak, Math.abs(ref[i]));
  return maxAbs(got, ref) / Math.max(peak, 1e-8);
}

/** PSNR of images in [-1, 1] (peak-to-peak 2): got is clipped, ref is not; Infinity when equal, NaN for NaN. */
export function psnr(got, ref) {
  let sum = 0;
  for (let i = 0; i < ref.length; i++) {
    const g = Math.min(Math.max(got[i], -1), 1);
    const d = g - ref[i];
    sum += d * d;
  }
  const mse = sum / ref.length;
  return mse === 0 ? Infinity : 10 * Math.log10(4.0 / mse);
}

export function allFinite(a) {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

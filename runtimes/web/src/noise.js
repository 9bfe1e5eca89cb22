// The portable seeded noise, a line-for-line mirror of lrf_model/noise.py:
// lowbias32 counter hash, then Box-Muller in float64, rounded to float32 at the end.
// One seed gives the same latent noise here as in Python, C++, Kotlin and Swift.

export const SEED_SALT = 0x9e3779b9; // keeps seed 0 away from hash32's fixed point hash32(0) == 0

/** Chris Wellons' lowbias32 integer hash of one uint32 (returned as an unsigned Number). */
export function hash32(x) {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** The seed's low 32 bits, as Python's ``seed & 0xFFFFFFFF`` (negative and large seeds too). */
export function seedBits(seed) {
  if (!Number.isSafeInteger(seed) && typeof seed !== "bigint") throw new Error(`seed ${seed} is not an integer`);
  return Number(BigInt.asUintN(32, BigInt(seed)));
}

/** ``key = hash32(seed ^ SEED_SALT)``: the per-seed key of uniformBits. */
export function seedKey(seed) {
  return hash32((seedBits(seed) ^ SEED_SALT) >>> 0);
}

/** 32 random bits for one counter: ``hash32(key ^ hash32(counter))``. */
export function uniformBits(key, counter) {
  return hash32((key ^ hash32(counter)) >>> 0);
}

/**
 * Standard normal noise of ``shape`` (Float32Array, row-major) from ``seed``.
 * Values 2k and 2k+1 come from one Box-Muller pair built from counters 2k and 2k+1:
 * u = ((bits >> 8) + 0.5) / 2**24, r = sqrt(-2 ln u1), r cos(2 pi u2) and r sin(2 pi u2),
 * computed in float64 and rounded to float32 (the Float32Array store rounds to nearest even,
 * as NumPy's astype(float32)).
 */
export function noiseArray(seed, shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  const pairs = Math.floor((n + 1) / 2);
  const key = seedKey(seed);
  const out = new Float32Array(n);
  for (let k = 0; k < pairs; k++) {
    const u1 = ((uniformBits(key, 2 * k) >>> 8) + 0.5) / 16777216.0;
    const u2 = ((uniformBits(key, 2 * k + 1) >>> 8) + 0.5) / 16777216.0;
    const r = Math.sqrt(-2.0 * Math.log(u1));
    out[2 * k] = r * Math.cos(2.0 * Math.PI * u2);
    if (2 * k + 1 < n) out[2 * k + 1] = r * Math.sin(2.0 * Math.PI * u2);
  }
  return out;
}

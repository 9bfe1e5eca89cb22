// The sampler loop of export/run.py (BundleRuntime) on onnxruntime-web: the schedule and the
// CFG scale come from the manifest, the noise from noise.js, the guided step graph is called
// once per schedule interval, then the decoder. Nothing here computes a schedule or a guidance.

import { fileBytes } from "./manifest.js";
import { noiseArray } from "./noise.js";

const TYPED = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array };

/** A typed array of ``dtype`` from numbers, bigints or a typed array (cast_feeds of export/targets/base.py). */
export function castArray(values, dtype) {
  const Typed = TYPED[dtype];
  if (!Typed) throw new Error(`input dtype ${dtype} is not supported by the web runtime`);
  if (values instanceof Typed) return values;
  const list = ArrayBuffer.isView(values) || Array.isArray(values) ? Array.from(values) : [values];
  return dtype === "int64" ? BigInt64Array.from(list, (v) => BigInt(v)) : Typed.from(list, Number);
}

export class BundleSampler {
  /** Open the bundle's artifacts (``kinds``) as onnxruntime-web sessions on the wasm backend. */
  static async create(ort, bundle, kinds = ["step", "decoder"]) {
    const s = new BundleSampler(ort, bundle);
    for (const kind of kinds) await s.open(kind);
    return s;
  }

  constructor(ort, bundle) {
    this.ort = ort;
    this.bundle = bundle;
    this.manifest = bundle.manifest;
    this.sessions = {};
  }

  get sampler() {
    return this.manifest.sampler;
  }

  async open(kind) {
    if (this.sessions[kind]) return this.sessions[kind];
    const art = this.manifest.artifacts[kind];
    if (!art) throw new Error(`the bundle has no ${kind} artifact`);
    const bytes = new Uint8Array(fileBytes(this.bundle, art.file));
    this.sessions[kind] = await this.ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    return this.sessions[kind];
  }

  /** Run one artifact: feeds by input name, cast to the declared dtypes and shapes; outputs by name. */
  async run(kind, feeds) {
    const art = this.manifest.artifacts[kind];
    const session = this.sessions[kind] ?? (await this.open(kind));
    const inputs = {};
    for (const spec of art.inputs) {
      if (!(spec.name in feeds)) throw new Error(`${kind}: missing input ${spec.name}`);
      const data = castArray(feeds[spec.name], spec.dtype);
      const count = spec.shape.reduce((a, b) => a * b, 1);
      if (data.length !== count) throw new Error(`${kind}: input ${spec.name} has ${data.length} values, its shape ${JSON.stringify(spec.shape)} needs ${count}`);
      inputs[spec.name] = new this.ort.Tensor(spec.dtype, data, spec.shape);
    }
    const result = await session.run(inputs);
    const out = {};
    for (const spec of art.outputs) out[spec.name] = result[spec.name].data;
    return out;
  }

  /** The step counts this bundle offers (the keys of sampler.schedules), ascending. */
  offeredSteps() {
    return Object.keys(this.sampler.schedules).map(Number).sort((a, b) => a - b);
  }

  /** The manifest's schedule for ``steps`` (default: the bundle's own step count), as BundleRuntime.schedule. */
  schedule(steps = null) {
    const s = this.sampler;
    if (steps === null || steps === undefined || steps === s.steps) return s.schedule;
    const ts = s.schedules[String(steps)];
    if (!ts) throw new Error(`this bundle offers steps ${Object.keys(s.schedules).join(", ")}, not ${steps}; pick one of those or re-export with --steps`);
    return ts;
  }

  /** The latent noise for ``seed`` (shape latent.shape, batch 1). */
  noise(seed) {
    return noiseArray(seed, this.manifest.latent.shape.slice(1));
  }

  /**
   * Final latent from ``noise``; ``await onStep(i, latent, ms)`` after each step, outside the timing
   * (so a page can repaint between steps without the repaint counting as step latency).
   */
  async denoise(noise, classId, steps = null, onStep = null) {
    const ts = this.schedule(steps);
    const cfg = this.sampler.cfg;
    let z = noise;
    for (let i = 0; i < ts.length - 1; i++) {
      const t0 = performance.now();
      z = (await this.run("step", { latent: z, t: [ts[i]], dt: [ts[i] - ts[i + 1]], class_id: [classId], cfg: [cfg] })).next_latent;
      const ms = performance.now() - t0;
      if (onStep) await onStep(i, z, ms);
    }
    return z;
  }

  async decode(latent) {
    return (await this.run("decoder", { latent })).image;
  }

  async encode(image) {
    return (await this.run("encoder", { image })).latent;
  }
}

// The plan executor of export/run.py (BundleRuntime) on onnxruntime-web: it runs the manifest's
// plan (export/plan.py): the start state from noise.js or a fill, the edit graph when an image is
// given, the loop graph once per schedule interval from the strength's start (or a fixed count)
// with each feed taken from the state, a user input or the schedule, then the end graph's 8-bit
// pixels. It names no graph or tensor of its own: a new plan needs
// no change here. Nothing here computes a schedule, a guidance or a pixel.

import { fileBytes } from "./manifest.js";
import { noiseArray } from "./noise.js";
import { TYPED } from "./tensor.js";

/** A typed array of ``dtype`` from numbers or a typed array, cast as the graph declares. */
function castArray(values, dtype) {
  const Typed = TYPED[dtype];
  if (!Typed) throw new Error(`input dtype ${dtype} is not supported by the web runtime; re-export the bundle`);
  if (values instanceof Typed) return values;
  return Typed.from(ArrayBuffer.isView(values) || Array.isArray(values) ? values : [values], Number);
}

/** Image-to-image's first schedule interval of N: N - floor(N * strength + 0.5) (lrf_model/editing.py). */
export function startIndex(numSteps, strength) {
  if (!(typeof strength === "number" && strength >= 0 && strength <= 1)) {
    throw new Error(`strength ${strength} is out of range; use a number in [0, 1] (1 = ignore the image)`);
  }
  return numSteps - Math.floor(numSteps * strength + 0.5);
}

export class BundleRuntime {
  /** Open the graphs the plan runs as onnxruntime-web sessions on the wasm backend. */
  static async create(ort, bundle) {
    const rt = new BundleRuntime(ort, bundle);
    await rt.open(rt.plan.loop.graph);
    await rt.open(rt.plan.end.graph);
    return rt;
  }

  constructor(ort, bundle) {
    this.ort = ort;
    this.bundle = bundle;
    this.manifest = bundle.manifest;
    this.plan = bundle.manifest.plan;
    this.sessions = {};
  }

  async open(graph) {
    if (this.sessions[graph]) return this.sessions[graph];
    const art = this.manifest.artifacts[graph];
    if (!art) throw new Error(`the plan runs a ${graph} graph the bundle does not hold; re-export it`);
    const bytes = new Uint8Array(fileBytes(this.bundle, art.file));
    this.sessions[graph] = await this.ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    return this.sessions[graph];
  }

  /** Every output of ``graph`` on ``feeds`` (by input name; each cast to the declared dtype, a scalar filled to its shape). */
  async run(graph, feeds) {
    const art = this.manifest.artifacts[graph];
    const session = this.sessions[graph] ?? (await this.open(graph));
    const inputs = {};
    for (const spec of art.inputs) {
      if (!(spec.name in feeds)) throw new Error(`${graph} takes an input ${spec.name} the plan does not feed; re-export the bundle`);
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const given = feeds[spec.name];
      const data = castArray(typeof given === "number" ? new Array(count).fill(given) : given, spec.dtype);
      if (data.length !== count) throw new Error(`${graph}: input ${spec.name} has ${data.length} values, its shape ${JSON.stringify(spec.shape)} needs ${count}`);
      inputs[spec.name] = new this.ort.Tensor(spec.dtype, data, spec.shape);
    }
    const result = await session.run(inputs);
    const out = {};
    for (const spec of art.outputs) out[spec.name] = result[spec.name].data;
    return out;
  }

  /** The step counts this bundle offers (the keys of sampler.schedules), ascending. */
  offeredSteps() {
    return Object.keys(this.manifest.sampler.schedules).map(Number).sort((a, b) => a - b);
  }

  /**
   * The plan's inputs: ``given`` (by name) checked, the rest defaulted. ``image`` (8-bit RGB,
   * (1, H, W, 3)) and ``mask`` (0/1, (1, 1, H, W)) are typed arrays of the plan's shapes.
   */
  inputs(given = {}) {
    const m = this.manifest;
    const values = {};
    const left = new Set(Object.keys(given).filter((k) => given[k] !== undefined && given[k] !== null));
    const image = left.has("image");
    if (!image && (left.has("mask") || (left.has("strength") && Number(given.strength) !== 1))) {
      throw new Error("a mask or a strength needs an input image; pick an image as well");
    }
    if (image && !this.plan.edit) {
      throw new Error(`this bundle's plan cannot edit images (its loop is the ${this.plan.loop.graph} graph); export it with --graph step`);
    }
    for (const spec of this.plan.inputs) {
      const tensor = spec.kind === "image" || spec.kind === "mask";
      const v = !left.has(spec.name) ? spec.default : tensor ? given[spec.name] : Number(given[spec.name]);
      left.delete(spec.name);
      if (spec.kind === "class" && !(Number.isInteger(v) && v >= 0 && v < m.class_names.length)) {
        throw new Error(`class ${given[spec.name]} is out of range; use 0-${m.class_names.length - 1}`);
      }
      if (spec.kind === "seed" && !(Number.isInteger(v) && v >= 0 && v <= 4294967295)) {
        throw new Error(`seed ${given[spec.name]} is invalid; use an integer in 0..4294967295`);
      }
      if (spec.kind === "steps" && !(String(v) in m.sampler.schedules)) {
        throw new Error(`this bundle offers steps ${Object.keys(m.sampler.schedules).join(", ")}, not ${v}; pick one of those or re-export with --steps`);
      }
      if (spec.kind === "strength") startIndex(1, v); // throws outside [0, 1]
      if (tensor && typeof v !== "number") {
        const count = spec.shape.reduce((a, b) => a * b, 1);
        if (v.length !== count) throw new Error(`the ${spec.name} has ${v.length} values but this bundle takes ${JSON.stringify(spec.shape)}; pass one of the model's size`);
      }
      values[spec.name] = v;
    }
    if (left.size) throw new Error(`this bundle's plan takes no input ${[...left].join(", ")}`);
    return values;
  }

  /** Whether ``values`` hold an input image (the plan's edit then runs). */
  edits(values) {
    return this.plan.inputs.some((spec) => spec.kind === "image" && typeof values[spec.name] !== "number");
  }

  /** The schedule the loop runs over for ``values`` (null when it repeats a fixed count). */
  schedule(values) {
    const repeat = this.plan.loop.repeat;
    return "schedule" in repeat ? this.manifest.sampler.schedules[String(values[repeat.schedule])] : null;
  }

  /** The first schedule interval the loop runs: the strength's start given an image, else 0. */
  firstInterval(values) {
    const repeat = this.plan.loop.repeat;
    const ts = this.schedule(values);
    return this.edits(values) && ts && repeat.strength ? startIndex(ts.length - 1, values[repeat.strength]) : 0;
  }

  feed(src, state, values, ts, i) {
    if ("state" in src) return state[src.state];
    if ("input" in src) return values[src.input];
    if (!ts) throw new Error("the plan feeds a schedule value outside its loop; re-export the bundle");
    // t of interval i (t_start: of the first interval run); dt in float64, then cast, as everywhere
    return src.schedule === "dt" ? ts[i] - ts[i + 1] : ts[i];
  }

  feeds(graphFeeds, state, values, ts, i) {
    const feeds = {};
    for (const [name, src] of Object.entries(graphFeeds)) feeds[name] = this.feed(src, state, values, ts, i);
    return feeds;
  }

  /**
   * The start state (edited, given an image) carried through every loop iteration; returns the
   * final state. ``await onStep(i, state, ms)`` after each iteration, outside the timing (so a
   * page can repaint between steps without the repaint counting as step latency).
   */
  async iterate(values, onStep = null) {
    const loop = this.plan.loop;
    const ts = this.schedule(values);
    const count = ts ? ts.length - 1 : loop.repeat.count;
    const state = {};
    for (const [name, src] of Object.entries(this.plan.start)) {
      state[name] = "noise" in src ? noiseArray(values[src.noise], src.shape.slice(1))
                                   : new Float32Array(src.shape.reduce((a, b) => a * b, 1)).fill(src.fill);
    }
    const first = this.firstInterval(values);
    if (this.edits(values)) {
      const edit = this.plan.edit;
      const out = await this.run(edit.graph, this.feeds(edit.feeds, state, values, ts, first));
      for (const [name, output] of Object.entries(edit.next)) state[name] = out[output];
    }
    for (let i = first; i < count; i++) {
      const feeds = this.feeds(loop.feeds, state, values, ts, i);
      const t0 = performance.now();
      const out = await this.run(loop.graph, feeds);
      const ms = performance.now() - t0;
      for (const [name, output] of Object.entries(loop.next)) state[name] = out[output];
      if (onStep) await onStep(i - first, state, ms);
    }
    return state;
  }

  /** The plan's end on a final state: the pixels (1, H, W, 3). A NaN/Inf state is refused. */
  async finish(state, values = {}) {
    for (const [name, value] of Object.entries(state)) {
      if (value instanceof Float32Array && !value.every(Number.isFinite)) {
        throw new Error(`the bundle produced NaN/Inf in its ${name}; re-export it (its parity gate should have failed)`);
      }
    }
    const end = this.plan.end;
    return (await this.run(end.graph, this.feeds(end.feeds, state, values, null, 0)))[end.output];
  }

  async generate(given = {}, onStep = null) {
    const values = this.inputs(given);
    return this.finish(await this.iterate(values, onStep), values);
  }
}

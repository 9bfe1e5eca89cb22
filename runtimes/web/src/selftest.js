// The self-test: the bundle's test vectors, run in this browser, judged as export/parity.py
// judges them with the manifest's tolerance. Checks: every single step, the portable noise of
// the trajectory seed against trajectory_latents[0], the whole trajectory step by step (from the
// reference noise, as parity.py), the decoder on the reference final latent, and the final image.

import { loadArray } from "./manifest.js";
import { allFinite, maxAbs, psnr, relError } from "./compare.js";

// The noise is no model output: it must equal Python's up to float32 rounding, whatever the precision.
export const NOISE_REL = 1e-6;

function differing(got, ref) {
  let n = 0;
  for (let i = 0; i < ref.length; i++) if (got[i] !== ref[i]) n++;
  return n;
}

/** Slice ``index`` of the leading axis of an .npy array (e.g. one latent of the trajectory). */
function row(array, index) {
  const size = array.data.length / array.shape[0];
  return array.data.slice(index * size, (index + 1) * size);
}

/**
 * Run the self-test; ``onCheck(check)`` as each check finishes. Returns
 * {passed, tolerance, checks: [{name, metric, value, limit, pass, gated, maxAbs?, detail?}], noise}.
 */
export async function runSelfTest(sampler, onCheck = () => {}) {
  const bundle = sampler.bundle;
  const m = sampler.manifest;
  const tol = m.tolerance;
  const tv = m.test_vectors;
  const checks = [];
  const add = (check) => {
    checks.push(check);
    onCheck(check);
  };
  const relCheck = (name, got, ref, limit, extra = {}) =>
    add({ name, metric: "rel", value: relError(got, ref), maxAbs: maxAbs(got, ref), limit, gated: true,
          pass: allFinite(got) && relError(got, ref) <= limit, ...extra });
  const psnrCheck = (name, got, ref) => {
    const value = psnr(got, ref);
    add({ name, metric: "PSNR dB", value, limit: tol.image_psnr_db, gated: true, pass: !Number.isNaN(value) && value >= tol.image_psnr_db });
  };

  for (const [k, c] of tv.steps.entries()) {
    const feeds = {};
    for (const [name, rel] of Object.entries(c)) if (name !== "next_latent") feeds[name] = loadArray(bundle, rel).data;
    const got = (await sampler.run("step", feeds)).next_latent;
    relCheck(`single step ${k} (t=${feeds.t[0].toFixed(4)})`, got, loadArray(bundle, c.next_latent).data, tol.step_rel);
  }

  const traj = loadArray(bundle, tv.trajectory.latents);
  const schedule = sampler.schedule();
  if (traj.shape[0] !== schedule.length) {
    throw new Error(`trajectory_latents holds ${traj.shape[0]} latents, the schedule has ${schedule.length} points`);
  }
  const refNoise = row(traj, 0);
  const jsNoise = sampler.noise(tv.trajectory.seed);
  const noise = { seed: tv.trajectory.seed, maxAbs: maxAbs(jsNoise, refNoise), differing: differing(jsNoise, refNoise), count: refNoise.length };
  relCheck(`noise of seed ${tv.trajectory.seed} (noise.js) vs trajectory_latents[0]`, jsNoise, refNoise, NOISE_REL,
           { detail: `${noise.differing} of ${noise.count} values differ` });

  const final = await sampler.denoise(refNoise, tv.trajectory.class_id, null, (i, z) => {
    relCheck(`trajectory step ${i} (t ${schedule[i]} → ${schedule[i + 1]})`, z, row(traj, i + 1), tol.step_rel);
  });
  const refImage = loadArray(bundle, tv.trajectory.image).data;
  const image = await sampler.decode(final);
  psnrCheck(`final image (class ${m.class_names[tv.trajectory.class_id]}, seed ${tv.trajectory.seed})`, image, refImage);
  psnrCheck("decoder on the reference final latent", await sampler.decode(row(traj, traj.shape[0] - 1)), refImage);

  if (m.artifacts.encoder && tv.encoder) {
    const enc = await sampler.encode(loadArray(bundle, tv.encoder.image).data);
    const ref = loadArray(bundle, tv.encoder.latent).data;
    add({ name: "encoder (reported, not gated: as in export/parity.py)", metric: "rel", value: relError(enc, ref),
          maxAbs: maxAbs(enc, ref), limit: null, gated: false, pass: allFinite(enc) });
  }
  const passed = checks.every((c) => !c.gated || c.pass);
  return { passed, tolerance: tol, checks, noise, image };
}

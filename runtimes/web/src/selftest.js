// The self-test: the manifest's "checks" run in this browser with one implementation of each
// metric (compare.js), the same list, metrics and table as export/checks.py (Python),
// lrf-native --selftest (C++) and the Swift package; tests/test_selftest_agreement.py compares
// their verdicts check by check.

import { fileBytes } from "./manifest.js";
import { metric, passes, worstRow } from "./compare.js";
import { noiseArray } from "./noise.js";
import { parseTensor } from "./tensor.js";

/** A verified bundle tensor by its manifest name. */
export function loadTensor(bundle, name) {
  const spec = bundle.manifest.tensors[name];
  if (!spec) throw new Error(`the bundle has no tensor ${name}; re-export it`);
  return parseTensor(fileBytes(bundle, spec.file), spec);
}

/** What this runtime gives for one check (export/checks.py run_check). */
async function runCheck(rt, check) {
  const bundle = rt.bundle;
  if (check.kind === "noise") return noiseArray(check.seed, bundle.manifest.tensors[check.expected].shape.slice(1));
  if (check.kind === "graph") {
    const feeds = {};
    for (const [input, tensor] of Object.entries(check.feeds)) feeds[input] = loadTensor(bundle, tensor).data;
    return (await rt.run(check.graph, feeds))[check.output];
  }
  const given = {};
  const kinds = Object.fromEntries(rt.plan.inputs.map((spec) => [spec.name, spec.kind]));
  for (const [name, v] of Object.entries(check.inputs)) {
    given[name] = kinds[name] === "image" || kinds[name] === "mask" ? loadTensor(bundle, v).data : v; // a tensor, by name
  }
  const values = rt.inputs(given);
  if (check.compare === "output") return rt.finish(await rt.iterate(values), values);
  const states = [];
  await rt.iterate(values, (_i, state) => {
    for (const name of Object.keys(rt.plan.loop.next)) states.push(...state[name]);
  });
  return states;
}

const fmt = (name, v) => (Number.isNaN(v) ? "nan" : !Number.isFinite(v) ? "inf" : name === "psnr" ? v.toFixed(2) : v.toExponential(3));

/** The table every runtime prints (export/checks.py table). */
export function table(checks) {
  const pad = (s, n, left = true) => (left ? s.padEnd(n) : s.padStart(n));
  const lines = [`${pad("check", 12)} ${pad("metric", 8)} ${pad("value", 10, false)} ${pad("limit", 10, false)}  verdict`];
  for (const c of checks) {
    lines.push(`${pad(c.name, 12)} ${pad(c.metric, 8)} ${pad(fmt(c.metric, c.value), 10, false)} ` +
               `${pad(fmt(c.metric, c.limit), 10, false)}  ${c.passed ? "pass" : "FAIL"}`);
  }
  lines.push(`self-test: ${checks.every((c) => c.passed) ? "PASS" : "FAIL"}`);
  return lines.join("\n");
}

/** Run every check; ``onCheck(check)`` as each finishes. Returns {passed, checks: [{name, metric, value, limit, passed}], table}. */
export async function runSelfTest(rt, onCheck = () => {}) {
  const checks = [];
  for (const check of rt.manifest.checks) {
    const expected = loadTensor(rt.bundle, check.expected);
    const ref = expected.data;
    let value;
    try {
      const got = await runCheck(rt, check);
      value = check.compare === "states" ? worstRow(check.metric, got, ref, expected.shape[0]) : metric(check.metric, got, ref);
    } catch (e) {
      throw new Error(`check ${check.name}: ${e.message}`);
    }
    const result = { name: check.name, metric: check.metric, value, limit: check.limit, passed: passes(check.metric, value, check.limit) };
    checks.push(result);
    onCheck(result);
  }
  return { passed: checks.length > 0 && checks.every((c) => c.passed), checks, table: table(checks) };
}

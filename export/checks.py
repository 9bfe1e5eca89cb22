"""The bundle's self-test, run in Python: its manifest's ``checks``, with one implementation of
each metric.

The same list runs in ``lrf-native --selftest`` (C++), the web page (JS) and the Swift package,
each with its own one copy of these metrics, and each prints :func:`table`'s layout, so their
verdicts can be compared line by line (``tests/test_selftest_agreement.py``). A check is:

- ``noise``: the runtime's portable noise for ``seed`` against ``expected``;
- ``graph``: one artifact on the tensors named in ``feeds``; its ``output`` against ``expected``;
- ``plan``: the whole plan on ``inputs`` (the ``image`` and ``mask`` inputs name tensors of the
  bundle); ``compare`` ``"states"`` (the states the loop sets, after each loop iteration, against
  the same row of ``expected``, judged iteration by iteration: the value is the worst
  iteration's) or ``"output"`` (the end graph's pixels) against ``expected``.

Metrics: ``rel`` = max|got - ref| / max(max|ref|, 1e-8) and ``max_abs`` (pass at or below the
limit), ``psnr`` on 8-bit pixels, 10 log10(255^2 / MSE), infinite when equal (pass at or above).
NaN never passes.
"""

from __future__ import annotations

import math

import numpy as np

from lrf_model.noise import noise_array

from .bundle import load_tensor

TENSOR_INPUTS = ("image", "mask")  # plan input kinds a check gives by tensor name


def metric(name: str, got: np.ndarray, ref: np.ndarray) -> float:
    d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    if name == "max_abs":
        return float(np.max(d))
    if name == "rel":
        return float(np.max(d)) / max(float(np.max(np.abs(ref.astype(np.float64)))), 1e-8)
    if name == "psnr":
        mse = float(np.mean(d * d))
        return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    raise ValueError(f"unknown metric {name}")


def passes(name: str, value: float, limit: float) -> bool:
    if math.isnan(value):
        return False
    return value >= limit if name == "psnr" else value <= limit


def run_check(rt, check: dict) -> np.ndarray:
    """What the runtime ``rt`` (a :class:`lrf_export.run.BundleRuntime`) gives for ``check``."""
    tensors = rt.manifest["tensors"]
    if check["kind"] == "noise":
        return noise_array(check["seed"], tensors[check["expected"]]["shape"][1:])[None]
    if check["kind"] == "graph":
        feeds = {name: load_tensor(rt.root, tensors[t]) for name, t in check["feeds"].items()}
        return rt.run(check["graph"], feeds)[check["output"]]
    kinds = {spec["name"]: spec["kind"] for spec in rt.plan["inputs"]}
    values = rt.inputs({name: load_tensor(rt.root, tensors[v]) if kinds.get(name) in TENSOR_INPUTS else v
                        for name, v in check["inputs"].items()})
    if check["compare"] == "states":
        rows: list[np.ndarray] = []  # per iteration, the loop's states flattened in the plan's (name) order
        rt.iterate(values, callback=lambda i, state, s: rows.append(np.concatenate([state[n].ravel() for n in rt.plan["loop"]["next"]])))
        return np.stack(rows).reshape(tensors[check["expected"]]["shape"])  # as the expected tensor stacks them
    return rt.finish(rt.iterate(values), values)


def worst(name: str, values: list[float]) -> float:
    """The worst of per-iteration values: the largest error, the smallest PSNR (NaN wins)."""
    if any(math.isnan(v) for v in values):
        return math.nan
    return min(values) if name == "psnr" else max(values)


def run_checks(rt) -> list[dict]:
    """Every check of the bundle: ``{name, metric, value, limit, passed}``."""
    results = []
    for check in rt.manifest["checks"]:
        got = run_check(rt, check)
        ref = load_tensor(rt.root, rt.manifest["tensors"][check["expected"]])
        if got.size != ref.size:
            value = math.nan
        elif check.get("compare") == "states":  # iteration by iteration: a late step is not hidden by the noise's scale
            got = got.reshape(ref.shape)
            value = worst(check["metric"], [metric(check["metric"], got[i], ref[i]) for i in range(len(ref))])
        else:
            value = metric(check["metric"], got.reshape(ref.shape), ref)
        results.append({"name": check["name"], "metric": check["metric"], "value": value, "limit": check["limit"],
                        "passed": passes(check["metric"], value, check["limit"])})
    return results


def fmt(metric_name: str, value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return f"{value:.2f}" if metric_name == "psnr" else f"{value:.3e}"


def table(results: list[dict]) -> str:
    """The self-test table every runtime prints: one line per check, then the verdict."""
    lines = [f"{'check':<12} {'metric':<8} {'value':>10} {'limit':>10}  verdict"]
    for r in results:
        lines.append(f"{r['name']:<12} {r['metric']:<8} {fmt(r['metric'], r['value']):>10} "
                     f"{fmt(r['metric'], r['limit']):>10}  {'pass' if r['passed'] else 'FAIL'}")
    lines.append(f"self-test: {'PASS' if all(r['passed'] for r in results) else 'FAIL'}")
    return "\n".join(lines)

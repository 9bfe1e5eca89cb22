"""The parity gate: run a bundle's artifacts on their host runtime against its test vectors.

Per precision: fp32 must match each step to rel <= 1e-3; fp16/int8 must keep the final image
at PSNR >= 30 dB with per-step rel <= 5e-2. Full-trajectory parity uses the same noise as the
reference, through the same sampler loop ``lrf-run`` uses. Core ML cannot execute on Linux: it
is checked structurally and recorded as ``"numeric": "needs macOS"``, never as a pass.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .bundle import load_array
from .run import BundleRuntime

TOLERANCES = {
    "fp32": {"step_rel": 1e-3, "image_psnr_db": 40.0},
    "fp16": {"step_rel": 5e-2, "image_psnr_db": 30.0},
    "int8": {"step_rel": 5e-2, "image_psnr_db": 30.0},
}


def rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / max(float(np.max(np.abs(ref))), 1e-8))


def psnr(got: np.ndarray, ref: np.ndarray) -> float:
    """PSNR of images in [-1, 1] (peak-to-peak 2)."""
    mse = float(np.mean((np.clip(got, -1, 1).astype(np.float64) - ref) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def int8_coverage(manifest: dict) -> tuple[dict[str, float], list[str]]:
    """Each artifact's recorded int8 share, and a problem line for each one of an "int8" bundle
    below the share its family declares (an int8 label on a mostly-float graph fails the gate)."""
    if manifest["precision"] != "int8":
        return {}, []
    need = manifest["model"]["family"]["int8_min_share"]
    shares, problems = {}, []
    for kind, art in manifest["artifacts"].items():
        cov = art.get("lowering", {}).get("int8_coverage")
        shares[kind] = cov["int8_share"] if cov else 0.0
        if shares[kind] < need:
            problems.append(f"{kind}: {shares[kind]:.1%} of its weights are int8, the family needs {need:.0%}")
    return shares, problems


def check_numeric(rt: BundleRuntime) -> dict:
    root, m = rt.root, rt.manifest
    tol = m["tolerance"]
    tv = m["test_vectors"]
    report: dict = {"tolerance": tol, "numeric": "checked"}
    if m["sampler"]["graph"] == "step":
        singles = []
        for case in tv["steps"]:
            feeds = {k: load_array(root, v) for k, v in case.items() if k != "next_latent"}
            got = rt.run("step", feeds, "next_latent")
            ref = load_array(root, case["next_latent"])
            singles.append({"max_abs": float(np.max(np.abs(got - ref))), "rel": rel_error(got, ref)})
        report["single_steps"] = singles
    ref_traj = load_array(root, tv["trajectory"]["latents"])
    per_step: list[dict] = []

    def record(i: int, z: np.ndarray, _s: float) -> None:
        per_step.append({"step": i, "max_abs": float(np.max(np.abs(z - ref_traj[i + 1]))), "rel": rel_error(z, ref_traj[i + 1])})

    final = rt.denoise(ref_traj[0], tv["trajectory"]["class_id"], callback=record)
    if m["sampler"]["graph"] == "fused":
        per_step = [{"step": len(ref_traj) - 2, "max_abs": float(np.max(np.abs(final - ref_traj[-1]))),
                     "rel": rel_error(final, ref_traj[-1])}]
    report["trajectory"] = per_step
    ref_image = load_array(root, tv["trajectory"]["image"])
    report["image_psnr_db"] = psnr(rt.decode(final), ref_image)
    report["decoder_psnr_db"] = psnr(rt.decode(ref_traj[-1]), ref_image)
    enc = rt.encode(load_array(root, tv["encoder"]["image"]))
    report["encoder_rel"] = rel_error(enc, load_array(root, tv["encoder"]["latent"]))
    worst = max([s["rel"] for s in per_step] + [s["rel"] for s in report.get("single_steps", [])])
    report["worst_step_rel"] = worst
    report["int8_share"], report["problems"] = int8_coverage(m)
    finite = not math.isnan(report["image_psnr_db"])  # NaN images give a NaN PSNR; identical give inf
    report["passed"] = bool(finite and worst <= tol["step_rel"] and report["image_psnr_db"] >= tol["image_psnr_db"]
                            and report["decoder_psnr_db"] >= tol["image_psnr_db"] and not report["problems"])
    return report


def check_structure(rt: BundleRuntime) -> dict:
    """Core ML on a host that cannot run it: names, shapes, ops and weight dtypes only."""
    from .targets.coreml import structure

    problems, artifacts = [], {}
    for kind, art in rt.manifest["artifacts"].items():
        s = structure(rt.root / art["file"])
        artifacts[kind] = s
        for declared, actual in ((art["inputs"], s["inputs"]), (art["outputs"], s["outputs"])):
            for d, a in zip(declared, actual):
                if d["name"] != a["name"] or list(d["shape"]) != [int(x) for x in a["shape"]]:
                    problems.append(f"{kind}: declared {d['name']}{d['shape']} but model has {a['name']}{a['shape']}")
            if len(declared) != len(actual):
                problems.append(f"{kind}: {len(declared)} declared tensors, model has {len(actual)}")
        if not s["ops"]:
            problems.append(f"{kind}: empty program")
    shares, coverage_problems = int8_coverage(rt.manifest)
    problems += coverage_problems
    return {"numeric": "needs macOS", "structure_ok": not problems, "problems": problems, "artifacts": artifacts,
            "int8_share": shares, "passed": None}


def check_bundle(root: str | Path) -> dict:
    """Parity report for a finished bundle (``passed``: True/False, or None when not executable here)."""
    rt = BundleRuntime(root, verify=False)
    return check_numeric(rt) if rt.executable else check_structure(rt)


def gate_ok(report: dict) -> bool:
    """Whether a report lets lrf-export exit 0: a numeric pass, or a clean structural check."""
    if report["numeric"] == "checked":
        return bool(report["passed"])
    return bool(report["structure_ok"])

"""The parity gate: a bundle's own checks (:mod:`lrf_export.checks`) run on its host runtime,
plus what only the exporter can judge (INT8 coverage).

Per precision: fp32 must match each step and the plan's states to rel <= 1e-3 and its pixels at
PSNR >= 40 dB; fp16/int8 keep rel <= 5e-2 and PSNR >= 30 dB. The whole-plan checks start from
the runtime's own portable noise, through the same plan executor ``lrf-run`` uses. Core ML cannot
execute on Linux: it is checked structurally and recorded as ``"numeric": "needs macOS"``,
never as a pass.
"""

from __future__ import annotations

from pathlib import Path


from .checks import run_checks
from .run import BundleRuntime

TOLERANCES = {
    "fp32": {"step_rel": 1e-3, "image_psnr_db": 40.0, "encoder_rel": 1e-3},
    "fp16": {"step_rel": 5e-2, "image_psnr_db": 30.0, "encoder_rel": 1e-1},
    "int8": {"step_rel": 5e-2, "image_psnr_db": 30.0, "encoder_rel": 1e-1},
}


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
    checks = run_checks(rt)
    shares, problems = int8_coverage(rt.manifest)
    problems += [f"check {c['name']}: {c['metric']} {c['value']:.4g} against the limit {c['limit']:g}"
                 for c in checks if not c["passed"]]
    by_name = {c["name"]: c for c in checks}
    # The sampler's error: single steps and whole runs (the encoder's is judged by its own limit).
    rel = [c["value"] for c, spec in zip(checks, rt.manifest["checks"])
           if c["metric"] == "rel" and (spec.get("graph") == "step" or spec["kind"] == "plan")]
    return {"tolerance": rt.manifest["tolerance"], "numeric": "checked", "checks": checks, "int8_share": shares,
            "worst_step_rel": max(rel), "image_psnr_db": by_name["image"]["value"],
            "decoder_psnr_db": by_name["decoder"]["value"], "problems": problems, "passed": not problems}


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

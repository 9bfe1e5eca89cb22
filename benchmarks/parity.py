"""Parity of every bundle against the PyTorch reference: per-step error and final-image PSNR.

    python benchmarks/parity.py [--fresh]

For the shipped model's 4-step bundles (ExecuTorch fp32/int8/fp16, ONNX fp32/int8, Core ML fp16/int8)
the gate of lrf_export.parity is re-run on this host (Python runtimes), and each ExecuTorch
bundle's checks are also run by the C++ runtime (``lrf-native --selftest``), whose plan
starts from its own noise. The per-step curve is the Python runtime's, step by step against the
trajectory check's expected states. Core ML cannot execute on Linux: its rows say so.
Writes benchmarks/results/parity.{json,md,png}; exit status 1 if any executable bundle fails.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from lrf_export.bundle import load_manifest, load_tensor  # noqa: E402
from lrf_export.checks import metric  # noqa: E402
from lrf_export.run import BundleRuntime  # noqa: E402
from lrf_export.parity import check_bundle  # noqa: E402

BUNDLES = [(t, q) for t in ("executorch", "onnx", "coreml") for q in ("none", "int8")] + [("executorch", "fp16")]


def native_selftest(path: Path, runner: list[str] | None = None) -> dict:
    """``lrf-native --selftest`` of a bundle, by the x86 build or by ``runner`` (e.g. the aarch64
    build under qemu: benchmarks/arm64.py)."""
    proc = subprocess.run([*(runner or [str(common.LRF_NATIVE)]), str(path), "--selftest", "--json", "--threads", "1"],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"lrf-native --selftest {path}: {proc.stderr.strip()}")
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["selftest"]}
    return {"passed": report["passed"], "worst_step_rel": max(
        c["value"] for name, c in checks.items() if c["metric"] == "rel" and name != "encoder"),
        "image_psnr_db": db(checks["image"]["value"]), "decoder_psnr_db": db(checks["decoder"]["value"]),
        "noise_max_abs": checks["noise"]["value"]}


def db(value: float | str) -> float:
    """lrf-native's JSON writes an infinite PSNR (identical pixels) as the string "inf"."""
    return float(value)


def trajectory_rel(path: Path) -> list[float]:
    """The rel error of the state after each step of the bundle's trajectory check (Python runtime)."""
    rt = BundleRuntime(path)
    check = next(c for c in rt.manifest["checks"] if c["kind"] == "plan" and c["compare"] == "states")
    expected = load_tensor(rt.root, rt.manifest["tensors"][check["expected"]])
    rel: list[float] = []
    rt.iterate(rt.inputs(check["inputs"]), callback=lambda i, state, _s: rel.append(
        metric("rel", state["latent"], expected[i])))
    return rel


def fmt_db(v: float | None) -> str:
    return "-" if v is None else ("inf" if math.isinf(v) else f"{v:.1f}")


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [
        "# Parity: every bundle against the PyTorch reference",
        "",
        f"`python benchmarks/parity.py` on {common.machine_line(machine)}. Shipped model, {common.STEPS} steps, the "
        "bundle's own test vectors (trajectory: class 3, seed 0). Per-step error is max|runtime - reference| / "
        "max|reference| of the latent after each step of the trajectory; PSNR is of the final decoded image "
        "(peak-to-peak 2). Gates: fp32 step <= 1e-3 and PSNR >= 40 dB; fp16/int8 step <= 5e-2 and PSNR >= 30 dB.",
        "",
        "| bundle | checked by | per-step error (steps 1..4) | worst step | image PSNR (dB) | decoder PSNR (dB) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for check in r["checks"]:
            per_step = " / ".join(f"{v:.1e}" for v in check.get("trajectory_rel", [])) or "-"
            worst = "-" if check.get("worst_step_rel") is None else f"{check['worst_step_rel']:.1e}"
            verdict = {True: "pass", False: "FAIL", None: check.get("note", "-")}[check["passed"]]
            lines.append(f"| {r['bundle']} | {check['by']} | {per_step} | {worst} | {fmt_db(check.get('image_psnr_db'))} | "
                         f"{fmt_db(check.get('decoder_psnr_db'))} | {verdict} |")
    lines += ["", "lrf-native also checks its noise against the Python noise of the trajectory seed: "
              + ", ".join(f"{r['bundle']}: max diff {c['noise_max_abs']:g}" for r in rows for c in r["checks"]
                          if "noise_max_abs" in c) + ".", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    names, psnrs = [], []
    for r in rows:
        for check in r["checks"]:
            if check["passed"] is None or not check.get("trajectory_rel"):
                continue
            label = f"{r['bundle']} ({check['by']})"
            ax1.plot(range(1, len(check["trajectory_rel"]) + 1), check["trajectory_rel"], marker="o", label=label)
            names.append(label.replace(" (", "\n("))
            psnrs.append(min(check["image_psnr_db"], 150))
    for gate, style in ((1e-3, "--"), (5e-2, ":")):
        ax1.axhline(gate, color="red", ls=style, lw=1)
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("relative error of the latent")
    ax1.set_title("Per-step error along the trajectory")
    ax1.legend(fontsize=6)
    ax1.grid(alpha=0.3, which="both")
    ax2.bar(range(len(psnrs)), psnrs)
    ax2.axhline(40, color="red", ls="--", lw=1, label="fp32 gate")
    ax2.axhline(30, color="red", ls=":", lw=1, label="int8 gate")
    ax2.set_xticks(range(len(psnrs)), names, fontsize=6, rotation=45, ha="right")
    ax2.set_ylabel("final image PSNR (dB, identical capped at 150)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fresh", action="store_true", help="re-export the bundles")
    args = p.parse_args(argv)
    common.build_native()
    rows = []
    for target, quantize in BUNDLES:
        path = common.bundle(target, quantize, fresh=args.fresh)
        manifest = load_manifest(path)
        report = check_bundle(path)
        name = f"{target} {manifest['precision']}"
        if report["numeric"] == "checked":
            host = {"by": "Python " + ("ExecuTorch" if target == "executorch" else "ONNX Runtime"), "passed": report["passed"],
                    "trajectory_rel": trajectory_rel(path), "worst_step_rel": report["worst_step_rel"],
                    "image_psnr_db": report["image_psnr_db"], "decoder_psnr_db": report["decoder_psnr_db"]}
        else:
            host = {"by": "structure only", "passed": None, "trajectory_rel": [],
                    "note": "needs macOS" if report["structure_ok"] else "STRUCTURE FAILED"}
        checks = [host]
        if target == "executorch":
            checks.append({"by": "lrf-native (C++)", **native_selftest(path)})
        rows.append({"bundle": name, "path": str(path.relative_to(common.ROOT)), "checks": checks})
        print(f"{name}: " + ", ".join(f"{c['by']} {c['passed']}" for c in checks), flush=True)
    machine = common.machine()
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, common.RESULTS / "parity.png")
    common.write_results("parity", {"machine": machine, "rows": rows}, markdown(rows, machine))
    return 0 if all(c["passed"] is not False for r in rows for c in r["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())

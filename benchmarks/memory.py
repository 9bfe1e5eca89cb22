"""Peak RAM per stage and runtime, checked against phone budgets with a real address-space cap.

    python benchmarks/memory.py [--fresh] [--scales 32,256,512]

Each configuration (runtime x precision x image size) is a fresh process that loads a bundle (or
the PyTorch checkpoint), generates one image and decodes it, reporting its peak RSS (VmHWM)
after each stage and its peak address space (VmPeak):

- ExecuTorch: ``lrf-native --json`` (runtimes/native), the runtime the Android app links;
- ONNX Runtime: this script's ``--worker onnx`` (Python, NumPy and onnxruntime only, no torch:
  the interpreter's own share is the ``after_import`` stage);
- PyTorch eager, the reference, for comparison (``--worker pytorch``; not a phone runtime, so
  reported and not checked).

Phones kill apps well below their total RAM (about 2 GiB on 4 GiB iPhones is reported), so the
budgets are an app's share, half the RAM: 1.5 GiB on a 3 GB phone, 2 GiB on a 4 GB phone. Every
phone runtime runs under ``RLIMIT_AS`` = the 3 GB phone's budget (an RSS limit is not enforced by
Linux; an address-space cap is, and address space bounds RSS), must finish there, and its peak
RSS must leave headroom on both phones. lrf-native also has the toolkit's own targets: 50 MB for
the shipped 32px model, 600 MB at 512x512. Exit status 1 if any configuration misses a budget it
is checked against. Writes benchmarks/results/memory.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GIB = 2**30
PHONE_BUDGETS = {"3 GB phone": int(1.5 * GIB), "4 GB phone": 2 * GIB}
AS_CAP = min(PHONE_BUDGETS.values())
NATIVE_TARGETS = {32: 50 * 2**20, 256: 600 * 2**20, 512: 600 * 2**20}
RUNTIMES = (("executorch", "none"), ("executorch", "int8"), ("executorch", "fp16"), ("onnx", "none"), ("onnx", "int8"),
            ("pytorch", "none"))


# --- the workers: one fresh process per configuration ---------------------------------------------

def reading() -> dict:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kib = {k: int(status[k].split()[0]) for k in ("VmRSS", "VmHWM", "VmPeak")}
    return {"rss_kib": kib["VmRSS"], "peak_rss_kib": kib["VmHWM"], "peak_vm_kib": kib["VmPeak"]}


def worker_onnx(bundle: str) -> dict:
    from lrf_export.run import BundleRuntime  # imports no torch for an ONNX bundle

    stages = {"after_import": reading()}
    rt = BundleRuntime(bundle)
    stages["after_load"] = reading()
    values = rt.inputs({"class": 3, "seed": 0})
    state = rt.iterate(values)
    stages["after_denoise"] = reading()
    rt.finish(state, values)
    stages["after_decode"] = reading()
    assert "torch" not in sys.modules, "the ONNX Runtime path must not import torch"
    return stages


def worker_pytorch(checkpoint: str) -> dict:
    import torch

    from lrf_model.pipeline import LRFPipeline

    torch.set_num_threads(2)
    stages = {"after_import": reading()}
    pipe = LRFPipeline.from_checkpoint(checkpoint or None)
    stages["after_load"] = reading()
    latent = pipe.generate_latents([3], [0], steps=common.STEPS)
    stages["after_denoise"] = reading()
    pipe.decode(latent)
    stages["after_decode"] = reading()
    return stages


# --- the driver --------------------------------------------------------------------------------------

def cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_CAP, AS_CAP))


def measure(runtime: str, quantize: str, side: int, fresh: bool) -> dict:
    """Run one configuration in a fresh process; phone runtimes under the address-space cap."""
    checked = runtime != "pytorch"
    if runtime == "executorch":
        path = common.bundle("executorch", quantize, side, fresh)
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [str(common.LRF_NATIVE), str(path), "--class", "3", "--json", "--out", f"{tmp}/x.png"]
            proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cap_address_space)
        stages = json.loads(proc.stdout)["memory"] if proc.returncode == 0 else None
        weights = sum((path / f).stat().st_size for f in ("step.pte", "decoder.pte"))
    else:
        if runtime == "onnx":
            path = common.bundle("onnx", quantize, side, fresh)
            weights = sum((path / f).stat().st_size for f in ("step.onnx", "decoder.onnx"))
        else:
            path = common.ROOT / "lrf_model" / "weights" / "cifar10" if side == 32 else common.scaled_checkpoint(side)
            weights = sum(p.stat().st_size for p in path.rglob("*.safetensors"))
        cmd = [sys.executable, __file__, "--worker", runtime, str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=cap_address_space if checked else None)
        stages = json.loads(proc.stdout.splitlines()[-1]) if proc.returncode == 0 else None
    result = {"runtime": runtime, "precision": common.precision_label(quantize), "side": side,
              "weights_bytes": weights, "stages": stages, "checked": checked,
              "address_space_cap_bytes": AS_CAP if checked else None, "exit_code": proc.returncode}
    if stages is None:
        result["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        result["passed"] = False
        return result
    peak = max(s["peak_rss_kib"] for s in stages.values()) * 1024
    result["peak_rss_bytes"] = peak
    result["peak_vm_bytes"] = max(s["peak_vm_kib"] for s in stages.values()) * 1024
    result["headroom_bytes"] = {name: budget - peak for name, budget in PHONE_BUDGETS.items()}
    limits = dict(PHONE_BUDGETS)
    if runtime == "executorch":
        limits["lrf-native target"] = NATIVE_TARGETS[side]
        result["target_bytes"] = NATIVE_TARGETS[side]
    result["passed"] = (not checked) or all(peak <= limit for limit in limits.values())
    return result


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def markdown(results: list[dict], machine: dict) -> str:
    lines = [
        "# Memory: peak RSS per stage against phone budgets",
        "",
        f"`python benchmarks/memory.py` on {common.machine_line(machine)}. One fresh process per row generates one "
        f"{common.STEPS}-step image (class 3, seed 0) and decodes it. Peak RSS is VmHWM after each stage (MiB). "
        f"Phone runtimes ran under an address-space cap of {AS_CAP / GIB:.1f} GiB (`RLIMIT_AS`) and must fit the app "
        "budgets: 1.5 GiB on a 3 GB phone, 2 GiB on a 4 GB phone (about half the RAM; 4 GiB iPhones are reported to "
        "kill apps near 2 GiB). lrf-native's own targets: 50 MB at 32px, 600 MB at 512px. "
        "256/512px rows: the same architecture with a TAESD-sized f=8 autoencoder and the linear-attention mixer, random weights.",
        "",
        "| image | runtime | precision | weights (MiB) | import | load | denoise | decode | peak VM | headroom 3 GB / 4 GB phone | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"executorch": "ExecuTorch (lrf-native)", "onnx": "ONNX Runtime (Python)", "pytorch": "PyTorch eager (reference)"}
    for r in results:
        s = r["stages"] or {}
        peak = lambda k: mib(s[k]["peak_rss_kib"] * 1024) if k in s else "-"  # noqa: E731
        if r["stages"] is None:
            verdict = f"FAILED: {r['error']}"
        elif not r["checked"]:
            verdict = "not checked (desktop reference)"
        else:
            verdict = "pass" if r["passed"] else "OVER BUDGET"
        headroom = " / ".join(mib(h) for h in r.get("headroom_bytes", {}).values()) or "-"
        earlier = " (earlier run)" if r.get("earlier_run") else ""
        lines.append(f"| {r['side']}px{earlier} | {names[r['runtime']]} | {r['precision']} | {mib(r['weights_bytes'])} | "
                     f"{peak('after_import')} | {peak('after_load')} | {peak('after_denoise')} | {peak('after_decode')} | "
                     f"{mib(r.get('peak_vm_bytes'))} | {headroom} | {verdict} |")
    lines += ["", "The stages are cumulative peaks: `decode` is the process's peak RSS for the whole image. "
              "The ONNX Runtime rows include the Python interpreter and NumPy (the `import` column); an app using the "
              "ONNX Runtime C/Java API would not carry them.", ""]
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = sorted({r["side"] for r in results})
    fig, axes = plt.subplots(1, len(sides), figsize=(5 * len(sides), 4.5), dpi=120, squeeze=False)
    colors = {"executorch": "#1f77b4", "onnx": "#ff7f0e", "pytorch": "#7f7f7f"}
    for ax, side in zip(axes[0], sides):
        rows = [r for r in results if r["side"] == side and r["stages"]]
        labels = [f"{r['runtime']}\n{r['precision']}" for r in rows]
        peaks = [r["peak_rss_bytes"] / 2**20 for r in rows]
        ax.bar(labels, peaks, color=[colors[r["runtime"]] for r in rows])
        for x, v in enumerate(peaks):
            ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
        for (name, budget), style in zip(PHONE_BUDGETS.items(), ("--", ":")):
            ax.axhline(budget / 2**20, color="red", ls=style, lw=1, label=f"{name} app budget")
        if side in NATIVE_TARGETS:
            ax.axhline(NATIVE_TARGETS[side] / 2**20, color="green", ls="-.", lw=1, label="lrf-native target")
        ax.set_yscale("log")
        ax.set_title(f"{side}x{side}")
        ax.set_ylabel("peak RSS (MiB, log)")
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Peak RSS generating one image (fresh process)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", default="32,256,512",
                   help="image sides to measure (32 = the shipped model); the other sides' rows are kept from the last run")
    p.add_argument("--fresh", action="store_true", help="re-export the bundles")
    p.add_argument("--worker", nargs=2, metavar=("RUNTIME", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        runtime, path = args.worker
        print(json.dumps((worker_onnx if runtime == "onnx" else worker_pytorch)(path)))
        return 0
    common.build_native()
    sides = [int(s) for s in args.scales.split(",")]
    results = []
    for side in sides:
        for runtime, quantize in RUNTIMES:
            r = measure(runtime, quantize, side, args.fresh)
            print(f"{side}px {runtime} {r['precision']}: peak RSS {mib(r.get('peak_rss_bytes'))} MiB "
                  f"{'' if r['passed'] else '(FAILED: ' + r.get('error', 'over budget') + ')'}", flush=True)
            results.append(r)
    previous = common.RESULTS / "memory.json"
    if previous.is_file():  # sides not measured now keep their last measurement
        results = [{**r, "earlier_run": True} for r in json.loads(previous.read_text())["results"]
                   if r["side"] not in sides] + results
        results.sort(key=lambda r: r["side"])
    machine = common.machine()
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    plot(results, common.RESULTS / "memory.png")
    common.write_results("memory", {"machine": machine, "budgets_bytes": PHONE_BUDGETS, "address_space_cap_bytes": AS_CAP,
                                    "native_targets_bytes": NATIVE_TARGETS, "results": results}, markdown(results, machine))
    failed = [r for r in results if not r["passed"]]
    for r in failed:
        print(f"over budget: {r['side']}px {r['runtime']} {r['precision']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-step latency, load time and full-image time per runtime, against eager PyTorch, with FLOPs.

    python benchmarks/latency.py [--images 50] [--warmup 5] [--threads 1,2] [--fresh]

For the shipped model's 4-step bundles, on 1 and 2 threads:
- ExecuTorch fp32/int8/fp16 through ``lrf-native --json --repeat`` (the C++ runtime the apps use;
  on x86 without AVX512-FP16, XNNPACK's fp16 converts to float32 around each op: the fp16 row
  measures that overhead, not a phone's fp16 speed);
- ONNX Runtime fp32/int8 through lrf-run's loop (``BundleRuntime``, Python);
- eager PyTorch, the reference: the same guided step module the exporters lower, and the decoder.
Per-step latency is the median and p90 over ``--images`` x 4 steps after ``--warmup`` images;
load is a fresh runtime opening the bundle (hash check included); the image time is 4 steps
plus decode. Every time is also a ratio to eager PyTorch measured in this run on the same
threads. The few-step student (``lrf_model/weights/cifar10-fewstep``, sampled at cfg 1, whose step
graph runs the conditional half only) is timed the same way from its 2-step bundles; a second
table gives the whole image at 1, 2 and 4 steps (steps x the step's median + the decode's
median) and the decode's share of it. The FLOPs of one guided step (both CFG halves) and of one decode are counted with
``torch.utils.flop_counter``; the machine's peak is a 2048x2048 fp32 matmul on the same threads,
so "% of peak" says how much of the CPU each runtime actually uses.
Writes benchmarks/results/latency.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from lrf_export.graphs import DecoderGraph, GuidedStepGraph  # noqa: E402
from lrf_export.run import BundleRuntime  # noqa: E402
from lrf_model.autoencoder import decoder_flops  # noqa: E402
from lrf_model.pipeline import DEFAULT_CFG, LRFPipeline, resolve_checkpoint  # noqa: E402
from lrf_model.sampling import portable_noise, schedule  # noqa: E402

FEWSTEP = "cifar10-fewstep"  # lrf-distill's student of the shipped model


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "n": int(a.size)}


def peak_gflops(threads: int) -> float:
    """The best of a few 2048^3 fp32 matmuls: what this CPU's BLAS reaches on ``threads``."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = float("inf")
    for _ in range(6):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048**3 / best / 1e9


def counted_flops(pipe: LRFPipeline, R: int) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    step = GuidedStepGraph(pipe.denoiser, R)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        step(*step.example_inputs())
    return {"step": counter.get_total_flops(), "decode": decoder_flops(pipe.autoencoder)}


def eager(pipe: LRFPipeline, R: int, threads: int, images: int, warmup: int) -> dict:
    """The reference on ``threads``: the guided step module and the decoder, timed like the runtimes."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    LRFPipeline.from_checkpoint()
    load_ms = 1000 * (time.perf_counter() - t0)
    step, decoder = GuidedStepGraph(pipe.denoiser, R).eval(), DecoderGraph(pipe.autoencoder).eval()
    ts = schedule(common.STEPS)
    side = pipe.image_side
    # The decoder graph pastes an input image outside a mask: with a mask of ones, none.
    blank, full = torch.zeros(1, side, side, 3, dtype=torch.uint8), torch.ones(1, 1, side, side)
    steps, decodes, totals = [], [], []
    with torch.no_grad():
        for img in range(warmup + images):
            z = eps = portable_noise(img, pipe.latent_shape)[None]
            known, everywhere = torch.zeros_like(z), torch.ones_like(z[:, :1])  # plain generation: the blend is the identity
            per = []
            t_img = time.perf_counter()
            for i in range(common.STEPS):
                t0 = time.perf_counter()
                z = step(z, torch.tensor([ts[i]]), torch.tensor([ts[i] - ts[i + 1]]), torch.tensor([img % 10]),
                         torch.tensor([DEFAULT_CFG]), known, eps, everywhere)
                per.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            decoder(z, blank, full)
            dec = 1000 * (time.perf_counter() - t0)
            if img >= warmup:
                steps += per
                decodes.append(dec)
                totals.append(1000 * (time.perf_counter() - t_img))
    return {"load_ms": load_ms, "step_ms": stats(steps), "decode_ms": stats(decodes), "image_ms": stats(totals)}


def onnx_runtime(bundle: Path, threads: int, images: int, warmup: int) -> dict:
    t0 = time.perf_counter()
    rt = BundleRuntime(bundle, threads=threads)
    load_ms = 1000 * (time.perf_counter() - t0)
    steps, decodes, totals = [], [], []
    for img in range(warmup + images):
        per: list[float] = []
        t_img = time.perf_counter()
        values = rt.inputs({"class": img % len(rt.manifest["class_names"]), "seed": img})
        state = rt.iterate(values, callback=lambda i, _state, s: per.append(1000 * s))
        t0 = time.perf_counter()
        rt.finish(state, values)
        dec = 1000 * (time.perf_counter() - t0)
        if img >= warmup:
            steps += per
            decodes.append(dec)
            totals.append(1000 * (time.perf_counter() - t_img))
    return {"load_ms": load_ms, "step_ms": stats(steps), "decode_ms": stats(decodes), "image_ms": stats(totals)}


def native(bundle: Path, threads: int, images: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([str(common.LRF_NATIVE), str(bundle), "--json", "--threads", str(threads), "--repeat", str(images),
                               "--warmup", str(warmup), "--out", f"{tmp}/x.png"], capture_output=True, text=True, check=True)
    r = json.loads(proc.stdout)
    return {"load_ms": r["load_ms"], "step_ms": stats([ms for run in r["steps_ms"] for ms in run]),
            "decode_ms": stats(r["decode_ms"]), "image_ms": stats(r["image_ms"])}


def markdown(data: dict) -> str:
    m, f = data["machine"], data["flops"]
    lines = [
        "# Latency: per step, per image, against eager PyTorch",
        "",
        f"`python benchmarks/latency.py` on {common.machine_line(m)}. Shipped 32px model, {common.STEPS}-step bundles, "
        f"median (p90) over {data['images']} images x {common.STEPS} steps after {data['warmup']} warm-up images. "
        f"One guided step (both CFG halves) is {f['step'] / 1e6:.1f} MFLOP, one decode {f['decode'] / 1e6:.1f} MFLOP "
        "(torch.utils.flop_counter: matmuls and convolutions). \"x eager\" is the time as a fraction of eager "
        "PyTorch's in the same run on the same threads (lower is faster); \"% peak\" is the step's FLOP rate against "
        "a 2048^3 fp32 matmul on the same threads.",
        "",
        "| threads | runtime | precision | load (ms) | step (ms) | x eager | decode (ms) | image (ms) | x eager | step GFLOP/s | % peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        base = next(r for r in data["rows"] if r["runtime"] == "pytorch" and r["threads"] == row["threads"])
        gflops = f["step"] / (row["step_ms"]["median"] / 1000) / 1e9
        lines.append(
            f"| {row['threads']} | {row['runtime']} | {row['precision']} | {row['load_ms']:.1f} | "
            f"{row['step_ms']['median']:.2f} ({row['step_ms']['p90']:.2f}) | {row['step_ms']['median'] / base['step_ms']['median']:.2f} | "
            f"{row['decode_ms']['median']:.2f} | {row['image_ms']['median']:.2f} | "
            f"{row['image_ms']['median'] / base['image_ms']['median']:.2f} | {gflops:.2f} | "
            f"{100 * gflops / data['peak_gflops'][str(row['threads'])]:.1f} |")
    peaks = ", ".join(f"{t} thread{'s' if t != '1' else ''}: {g:.1f} GFLOP/s" for t, g in data["peak_gflops"].items())
    lines += ["", f"Matmul peak: {peaks}. Runtimes: ExecuTorch = `lrf-native` (C++, XNNPACK); ONNX Runtime = "
              "`lrf-run`'s Python loop (MLAS); PyTorch = eager, the reference modules. Load for lrf-native includes "
              "the sha256 check of the bundle and XNNPACK's weight packing; for PyTorch it is loading the safetensors "
              "checkpoint.", ""]
    fewstep = data.get("fewstep_rows", [])
    if fewstep:
        lines += ["## The few-step student: one conditional step (cfg 1)", "",
                  "| threads | runtime | precision | load (ms) | step (ms) | x the guided step | decode (ms) | 2-step image (ms) |",
                  "|---|---|---|---|---|---|---|---|"]
        def teacher_of(row: dict) -> dict:
            """The shipped model's row of the same runtime, precision and threads."""
            return next(r for r in data["rows"] if (r["runtime"], r["precision"], r["threads"]) ==
                        (row["runtime"], row["precision"], row["threads"]))

        for row in fewstep:
            guided = teacher_of(row)
            lines.append(f"| {row['threads']} | {row['runtime']} | {row['precision']} | {row['load_ms']:.1f} | "
                         f"{row['step_ms']['median']:.2f} ({row['step_ms']['p90']:.2f}) | "
                         f"{row['step_ms']['median'] / guided['step_ms']['median']:.2f} | {row['decode_ms']['median']:.2f} | "
                         f"{row['image_ms']['median']:.2f} |")
        lines += ["", "## The whole image by step count", "",
                  "Steps x the step's median + the decode's median, from the rows above (ms); in brackets the decode's "
                  "share. The teacher runs the guided step (both CFG halves), the student the conditional one.", "",
                  "| threads | runtime | precision | teacher 4 steps | student 1 step | student 2 steps | student 4 steps |",
                  "|---|---|---|---|---|---|---|"]
        def image(r: dict, n: int) -> str:
            total = n * r["step_ms"]["median"] + r["decode_ms"]["median"]
            return f"{total:.2f} ({100 * r['decode_ms']['median'] / total:.0f}%)"

        for row in fewstep:
            lines.append(f"| {row['threads']} | {row['runtime']} | {row['precision']} | {image(teacher_of(row), 4)} | "
                         f"{image(row, 1)} | {image(row, 2)} | {image(row, 4)} |")
        lines.append("")
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    threads = sorted({r["threads"] for r in rows})
    labels = sorted({(r["runtime"], r["precision"]) for r in rows}, key=lambda k: (("pytorch", "executorch", "onnx").index(k[0]), k[1]))
    fig, ax = plt.subplots(figsize=(8, 4), dpi=120)
    width = 0.8 / len(labels)
    for k, (runtime, precision) in enumerate(labels):
        steps = [next(r for r in rows if (r["runtime"], r["precision"], r["threads"]) == (runtime, precision, t)) for t in threads]
        x = np.arange(len(threads)) + k * width
        step_total = [common.STEPS * r["step_ms"]["median"] for r in steps]
        decode = [r["decode_ms"]["median"] for r in steps]
        ax.bar(x, step_total, width, label=f"{runtime} {precision}")
        ax.bar(x, decode, width, bottom=step_total, color="black", alpha=0.25)
    ax.set_xticks(np.arange(len(threads)) + 0.4 - width / 2, [f"{t} thread{'s' if t > 1 else ''}" for t in threads])
    ax.set_ylabel(f"ms per image ({common.STEPS} steps + decode, shaded)")
    ax.set_title("Time per 32px image")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def time_bundle(target: str, quantize: str, path: Path, threads: int, args: argparse.Namespace, label: str) -> dict:
    """One bundle's row: ExecuTorch through lrf-native, ONNX through lrf-run's loop."""
    run = native if target == "executorch" else onnx_runtime
    row = {"runtime": target, "precision": common.precision_label(quantize), "threads": threads,
           **run(path, threads, args.images, args.warmup)}
    print(f"{threads} threads {target} {row['precision']}: step {row['step_ms']['median']:.2f} ms, "
          f"{label} {row['image_ms']['median']:.2f} ms", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--fresh", action="store_true", help="re-export the bundles")
    args = p.parse_args(argv)
    common.build_native()
    bundles = {(t, q): common.bundle(t, q, fresh=args.fresh) for t, q in
               (("executorch", "none"), ("executorch", "int8"), ("executorch", "fp16"), ("onnx", "none"), ("onnx", "int8"))}
    fewstep = {(t, q): common.bundle(t, q, fresh=args.fresh, shipped=FEWSTEP, steps=2)
               for t in ("executorch", "onnx") for q in ("none", "int8")} if resolve_checkpoint(FEWSTEP).is_dir() else {}
    pipe = LRFPipeline.from_checkpoint()
    R = pipe.check_recursions(None)
    rows, fewstep_rows, peaks = [], [], {}
    for threads in (int(t) for t in args.threads.split(",")):
        peaks[str(threads)] = peak_gflops(threads)
        rows.append({"runtime": "pytorch", "precision": "fp32", "threads": threads,
                     **eager(pipe, R, threads, args.images, args.warmup)})
        for (target, quantize), path in bundles.items():
            rows.append(time_bundle(target, quantize, path, threads, args, "image"))
        for (target, quantize), path in fewstep.items():
            fewstep_rows.append(time_bundle(target, quantize, path, threads, args, "few-step: 2-step image"))
    data = {"machine": common.machine(), "images": args.images, "warmup": args.warmup, "steps": common.STEPS,
            "flops": counted_flops(pipe, R), "peak_gflops": peaks, "rows": rows, "fewstep_rows": fewstep_rows}
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    plot(data, common.RESULTS / "latency.png")
    common.write_results("latency", data, markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())

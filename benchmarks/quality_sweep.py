"""The quality-for-compute menu: lrf-eval over steps x cfg x recursions for one checkpoint.

    python benchmarks/quality_sweep.py [--checkpoint DIR] [--num-per-class 20] [--steps 1,2,4,8,50]
                                       [--cfg 1,2,3,4] [--recursions 1,2,3,4] [--threads 1]

Each cell is one ``lrf-eval`` run (``evaluate_target``: the same code, seeds and classifier) at a
few samples per class; its cost is steps x R denoiser passes per image (both CFG halves), so the
table answers what a phone buys with more compute, and whether seed 001's budget-adaptive depth
(more recursions) buys quality at all. FID at 20 samples per class is biased upwards: compare
cells with each other, not with the 100-per-class numbers of the model card.
Writes benchmarks/results/quality_sweep.{json,md,png}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from lrf_model.evaluate import evaluate_target  # noqa: E402
from lrf_model.errors import cli_errors  # noqa: E402
from lrf_model.pipeline import LRFPipeline, default_checkpoint  # noqa: E402


def ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def floats(s: str) -> list[float]:
    return [float(v) for v in s.split(",")]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for (cfg, R) in sorted({(r["cfg"], r["recursions"]) for r in rows}):
        cell = sorted((r for r in rows if r["cfg"] == cfg and r["recursions"] == R), key=lambda r: r["steps"])
        if len({r["recursions"] for r in rows}) > 1 and R != 2 and cfg != 3:  # readable: every cfg at R=2, every R at cfg 3
            continue
        label = f"cfg {cfg:g}, R={R}"
        axes[0].plot([r["steps"] for r in cell], [r["class_consistency"] for r in cell], marker="o", label=label)
        axes[1].plot([r["steps"] for r in cell], [r["fid"] for r in cell], marker="o", label=label)
    for ax, title in zip(axes, ("class consistency", "FID (classifier features, not Inception)")):
        ax.set_xscale("log")
        ax.set_xlabel("Euler steps")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@cli_errors
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(default_checkpoint()))
    p.add_argument("--num-per-class", type=int, default=20)
    p.add_argument("--steps", type=ints, default=[1, 2, 4, 8, 50])
    p.add_argument("--cfg", type=floats, default=[1.0, 2.0, 3.0, 4.0])
    p.add_argument("--recursions", type=ints, default=None,
                   help="recursion counts to sweep (default: every R the checkpoint supports, 1 for a non-recursive family)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="quality_sweep", help="results file name")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = LRFPipeline.from_checkpoint(args.checkpoint)
    recursions = args.recursions or list(range(1, pipe.family.max_recursions(pipe.denoiser) + 1))
    for R in recursions:
        pipe.check_recursions(R)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for R in recursions:
            for cfg in args.cfg:
                for steps in args.steps:
                    ns = argparse.Namespace(classifier=None, data=None, num_per_class=args.num_per_class, steps=steps,
                                            cfg=cfg, recursions=R, seed=args.seed)
                    r = evaluate_target(Path(args.checkpoint), ns, Path(tmp) / f"s{steps}-c{cfg}-r{R}")
                    rows.append({"steps": steps, "cfg": cfg, "recursions": R, "passes_per_image": steps * R,
                                 "class_consistency": r["class_consistency"], "fid": r["fid"],
                                 "diversity_ratio": r["diversity_ratio"]})
                    print(f"steps {steps:2d} cfg {cfg:g} R={R}: consistency {r['class_consistency']:.3f}, "
                          f"FID {r['fid']:.2f}, diversity {r['diversity_ratio']:.3f}", flush=True)
    best = max(rows, key=lambda r: (r["class_consistency"], -r["fid"]))
    md = [f"# Quality sweep: {args.checkpoint}", "", f"{common.machine_line(common.machine())}", "",
          f"lrf-eval at {args.num_per_class} samples per class per cell (seeds {args.seed}+j); FID on the "
          "classifier's features (not Inception), biased upwards at this count: compare cells with each other.", "",
          "| steps | cfg | R | steps x R | class consistency | FID | diversity ratio |", "|---|---|---|---|---|---|---|"]
    md += [f"| {r['steps']} | {r['cfg']:g} | {r['recursions']} | {r['passes_per_image']} | {r['class_consistency']:.3f} | "
           f"{r['fid']:.2f} | {r['diversity_ratio']:.3f} |" for r in rows]
    md += ["", f"Best cell: {best['steps']} steps, cfg {best['cfg']:g}, R={best['recursions']} "
           f"(consistency {best['class_consistency']:.3f}, FID {best['fid']:.2f}).",
           "", f"![sweep]({args.name}.png)"]
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, common.RESULTS / f"{args.name}.png")
    common.write_results(args.name, {"checkpoint": args.checkpoint, "num_per_class": args.num_per_class, "rows": rows},
                         "\n".join(md) + "\n")


if __name__ == "__main__":
    main()

"""``lrf-generate``: PNG samples from a checkpoint (the shipped one by default)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from .errors import LRFError, cli_errors
from .pipeline import DEFAULT_CFG, DEFAULT_STEPS, LRFPipeline
from .plots import image_grid


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lrf-generate", description="Generate class-conditional images with LRF.")
    p.add_argument("--class", dest="classes", action="append", default=None,
                   help="class name or index; repeat for several; default: every class")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="Euler steps (>= 1)")
    p.add_argument("--cfg", type=float, default=DEFAULT_CFG, help="classifier-free guidance scale (1 = none)")
    p.add_argument("--recursions", type=int, default=None, help="recursion passes R (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0, help="image j of a class uses seed + j")
    p.add_argument("--num", type=int, default=1, help="images per class")
    p.add_argument("--out", default="samples", help="output folder for PNGs")
    p.add_argument("--grid", action="store_true", help="also write grid.png (one row per class)")
    p.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscale factor for the PNGs")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped CIFAR-10 model)")
    p.add_argument("--threads", type=int, default=None)
    return p


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.steps < 1:
        raise LRFError(f"--steps {args.steps} is invalid; use at least 1")
    if args.num < 1:
        raise LRFError(f"--num {args.num} is invalid; use at least 1")
    if not math.isfinite(args.cfg):
        raise LRFError(f"--cfg {args.cfg} is not a finite number")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = LRFPipeline.from_checkpoint(args.checkpoint)
    R = pipe.check_recursions(args.recursions)
    classes = [pipe.class_index(c) for c in (args.classes or range(len(pipe.class_names)))]
    labels = [c for c in classes for _ in range(args.num)]
    seeds = [args.seed + j for _ in classes for j in range(args.num)]
    images = pipe(labels, seeds, num_inference_steps=args.steps, guidance_scale=args.cfg, recursions=R,
                  output_type="pt").images
    if not torch.isfinite(images).all():
        raise LRFError("the model produced NaN/Inf values; the checkpoint is damaged, re-train or re-download it")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, (label, seed) in enumerate(zip(labels, seeds)):
        name = f"{pipe.class_names[label]}_seed{seed}.png"
        image_grid(images[i : i + 1], nrow=1, scale=args.scale, pad=0).save(out / name)
    if args.grid:
        image_grid(images, nrow=args.num, scale=4).save(out / "grid.png")
    print(f"wrote {len(labels)} image(s) to {out}/ ({args.steps} steps, cfg {args.cfg}, R={R})")

"""``lrf-generate``: PNG samples from a checkpoint (the shipped one by default), or edits of an image."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from .editing import load_image, start_index
from .errors import LRFError, cli_errors
from .pipeline import DEFAULT_CFG, DEFAULT_STEPS, LRFPipeline, shipped_checkpoints
from .plots import image_grid


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lrf-generate", description="Generate class-conditional images with LRF.")
    p.add_argument("--class", dest="classes", action="append", default=None,
                   help="class name or index; repeat for several; default: every class")
    p.add_argument("--steps", type=int, default=None,
                   help=f"Euler steps (>= 1; default: the checkpoint's sampling.json, else {DEFAULT_STEPS})")
    p.add_argument("--cfg", type=float, default=None,
                   help=f"classifier-free guidance scale (1 = none; default: the checkpoint's, else {DEFAULT_CFG:g})")
    p.add_argument("--recursions", type=int, default=None, help="recursion passes R (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=0, help="image j of a class uses seed + j")
    p.add_argument("--num", type=int, default=1, help="images per class")
    p.add_argument("--out", default="samples", help="output folder for PNGs")
    p.add_argument("--grid", action="store_true", help="also write grid.png (one row per class)")
    p.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscale factor for the PNGs")
    p.add_argument("--checkpoint", default=None, help=f"checkpoint folder or a shipped one by name: {', '.join(shipped_checkpoints())} (default: cifar10)")
    p.add_argument("--threads", type=int, default=None)
    e = p.add_argument_group("editing (image-to-image, inpainting)")
    e.add_argument("--init-image", default=None, help="PNG/JPEG to edit (resized to the model's size if needed)")
    e.add_argument("--strength", type=float, default=None,
                   help="how much of the schedule to run on it, 0..1 (0: the input reconstructed, 1: all of it; default 1)")
    e.add_argument("--mask", default=None, help="inpainting mask at the image's size: white = regenerate, black = keep")
    e.add_argument("--resample", type=int, default=1,
                   help="inpainting: redo each step R times, noising back in between (RePaint): a smoother seam "
                        "at R x the steps (benchmarks/results/editing.md); the reference model only")
    e.add_argument("--keep-unmasked", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the input's pixels outside the mask (default on)")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.steps is not None and args.steps < 1:
        raise LRFError(f"--steps {args.steps} is invalid; use at least 1")
    if args.num < 1:
        raise LRFError(f"--num {args.num} is invalid; use at least 1")
    if args.cfg is not None and not math.isfinite(args.cfg):
        raise LRFError(f"--cfg {args.cfg} is not a finite number")
    if args.resample != 1 and (not args.mask or args.resample < 1):
        raise LRFError(f"--resample {args.resample} is invalid; it takes a whole number >= 1, for inpainting (with --mask)")
    if (args.mask or args.strength is not None) and not args.init_image:
        raise LRFError(f"{'--mask' if args.mask else '--strength'} needs an image to edit; pass --init-image IN.png")
    strength = 1.0 if args.strength is None else args.strength
    start_index(1, strength)  # refuses a strength outside [0, 1] before anything loads
    image = load_image(args.init_image, "--init-image") if args.init_image else None
    mask = load_image(args.mask, "--mask") if args.mask else None
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = LRFPipeline.from_checkpoint(args.checkpoint)
    steps = pipe.sampling.steps if args.steps is None else args.steps
    cfg = pipe.sampling.cfg if args.cfg is None else args.cfg
    R = pipe.check_recursions(args.recursions)
    classes = [pipe.class_index(c) for c in (args.classes or range(len(pipe.class_names)))]
    labels = [c for c in classes for _ in range(args.num)]
    seeds = [args.seed + j for _ in classes for j in range(args.num)]
    images = pipe(labels, seeds, num_inference_steps=steps, guidance_scale=cfg, recursions=R,
                  output_type="pt", image=image, strength=strength, mask=mask, keep_unmasked=args.keep_unmasked,
                  resample=args.resample).images
    if not torch.isfinite(images).all():
        raise LRFError("the model produced NaN/Inf values; the checkpoint is damaged, re-train or re-download it")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, (label, seed) in enumerate(zip(labels, seeds)):
        name = f"{pipe.class_names[label]}_seed{seed}.png"
        image_grid(images[i : i + 1], nrow=1, scale=args.scale, pad=0).save(out / name)
    if args.grid:
        image_grid(images, nrow=args.num, scale=4).save(out / "grid.png")
    edit = (f", {'inpainting' if mask else 'image-to-image'} of {args.init_image} at strength {strength:g}"
            if image is not None else "")
    print(f"wrote {len(labels)} image(s) to {out}/ ({steps} steps, cfg {cfg:g}, R={R}{edit})")

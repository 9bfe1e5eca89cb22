"""What editing does, measured with lrf-eval's classifier: the strength curve and inpainting.

    python benchmarks/editing.py [--checkpoint DIR] [--num-per-class 20] [--steps 10] [--threads 2]

- **Strength curve**: ``num_per_class`` test images of every class are edited towards the next
  class (airplane -> automobile, ..., truck -> airplane) at strengths 0, 0.1, ..., 1. For each
  strength: the share the classifier labels as the requested class (how strongly it takes over),
  the share still labelled as the source class, and the PSNR against the input.
- **Inpainting**: the central half (16x16 of 32x32) of the same images is masked and regenerated,
  asking for the image's own class and for the next class. Reported: PSNR of the kept region
  against the input with ``keep_unmasked`` off (the autoencoder's, through the sampler) and on
  (the input's pixels, but for the one-pixel blending band), and class consistency of the result.
- **RePaint resampling** (Lugmayr et al. 2022) for the seam (``lrf-generate --resample R``):
  after each inpainting step the latent is noised back to the step's start and the step is
  redone, ``r`` times in all (r = 1: no resampling). The seam is the mean absolute difference of adjacent pixels across
  the mask's edge over that of the input at the same places (1: as smooth as the input), with
  the input's pixels kept outside the mask; plus class consistency, at the cost of r x the steps.
- A figure: one input at strengths 0.2 .. 1.0, and one inpainting edit.

Seeds: edit ``j`` of a class uses seed ``j``. Writes benchmarks/results/editing.{json,md,png}.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from lrf_model.classes import CIFAR10_CLASSES  # noqa: E402
from lrf_model.classifier import load_classifier  # noqa: E402
from lrf_model.data import from_pixels, load_cifar10  # noqa: E402
from lrf_model.editing import start_index  # noqa: E402
from lrf_model.errors import cli_errors  # noqa: E402
from lrf_model.metrics import classify  # noqa: E402
from lrf_model.pipeline import DEFAULT_CFG, LRFPipeline, default_checkpoint  # noqa: E402
from lrf_model.plots import image_grid  # noqa: E402

STRENGTHS = [round(0.1 * i, 1) for i in range(11)]


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    """PSNR (dB, [-1, 1] images: peak-to-peak 2) of ``a`` against ``b``, over ``where`` (B,1,H,W) if given."""
    sq = (a - b).pow(2)
    mse = float(sq.mean()) if where is None else float((sq * where).sum() / (where.sum() * a.shape[1]))
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


def edit(pipe: LRFPipeline, pixels: torch.Tensor, labels: list[int], steps: int, strength: float,
         mask: torch.Tensor | None = None, keep: bool = True, resample: int = 1, batch: int = 100) -> torch.Tensor:
    out = []
    for i in range(0, len(labels), batch):
        part = slice(i, i + batch)
        out.append(pipe.generate_tensor(labels[part], list(range(len(labels)))[part], image=pixels[part],
                                        mask=None if mask is None else mask[part], keep_unmasked=keep,
                                        strength=strength, steps=steps, cfg_scale=DEFAULT_CFG, resample=resample))
    return torch.cat(out)


def seam(images: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean |difference| of adjacent pixels across the mask's edge, over the input's at the same places."""
    def across(img: torch.Tensor) -> torch.Tensor:
        horizontal = (img[..., :, 1:] - img[..., :, :-1]).abs() * (mask[..., :, 1:] != mask[..., :, :-1])
        vertical = (img[..., 1:, :] - img[..., :-1, :]).abs() * (mask[..., 1:, :] != mask[..., :-1, :])
        return horizontal.sum() + vertical.sum()

    return float(across(images) / across(original))


def figure(pipe: LRFPipeline, pixels: torch.Tensor, source: int, target: int, steps: int, mask: torch.Tensor,
           path: Path) -> None:
    """One row: the input, its edits towards ``target`` at 0.2 .. 1.0; the mask and one inpainting edit."""
    x = pixels[None]
    row = [from_pixels(x)]
    row += [edit(pipe, x, [target], steps, s) for s in (0.2, 0.4, 0.6, 0.8, 1.0)]
    row += [mask[None].expand(1, 3, -1, -1) * 2 - 1, edit(pipe, x, [source], steps, 1.0, mask[None])]
    image_grid(torch.cat(row), nrow=len(row), scale=4).save(path)


@cli_errors
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(default_checkpoint()))
    p.add_argument("--num-per-class", type=int, default=20)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    pipe = LRFPipeline.from_checkpoint(args.checkpoint)
    classifier = load_classifier()
    x, y = load_cifar10(args.data, "test")
    idx = np.concatenate([np.flatnonzero(y == k)[: args.num_per_class] for k in range(len(CIFAR10_CLASSES))])
    pixels, source = torch.from_numpy(x[idx]), y[idx].tolist()
    target = [(c + 1) % len(CIFAR10_CLASSES) for c in source]
    original = from_pixels(pixels)

    curve = []
    for s in STRENGTHS:
        images = edit(pipe, pixels, target, args.steps, s)
        preds, _ = classify(classifier, images)
        row = {"strength": s, "steps_run": args.steps - start_index(args.steps, s),
               "requested_class": float((preds == torch.tensor(target)).float().mean()),
               "source_class": float((preds == torch.tensor(source)).float().mean()),
               "psnr_db": psnr(images, original)}
        curve.append(row)
        print(f"strength {s:.1f} ({row['steps_run']} steps): requested {row['requested_class']:.3f}, "
              f"source {row['source_class']:.3f}, PSNR {row['psnr_db']:.2f} dB", flush=True)

    side = pipe.image_side
    mask = torch.zeros(len(source), 1, side, side)
    mask[..., side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 1
    far = torch.ones_like(mask)  # the kept region, minus the blending band next to the mask
    far[..., side // 4 - 1 : 3 * side // 4 + 1, side // 4 - 1 : 3 * side // 4 + 1] = 0
    inpaint = []
    for ask, labels in (("own class", source), ("next class", target)):
        for keep in (False, True):
            images = edit(pipe, pixels, labels, args.steps, 1.0, mask, keep)
            preds, _ = classify(classifier, images)
            row = {"asked": ask, "keep_unmasked": keep,
                   "class_consistency": float((preds == torch.tensor(labels)).float().mean()),
                   "source_class": float((preds == torch.tensor(source)).float().mean()),
                   "kept_region_psnr_db": psnr(images, original, far), "masked_region_psnr_db": psnr(images, original, mask)}
            inpaint.append(row)
            print(f"inpaint ({ask}, keep {keep}): consistency {row['class_consistency']:.3f}, kept region "
                  f"{row['kept_region_psnr_db']:.2f} dB, masked region {row['masked_region_psnr_db']:.2f} dB", flush=True)
    resampling = []
    for r in (1, 2, 4):
        images = edit(pipe, pixels, target, args.steps, 1.0, mask, True, resample=r)
        preds, _ = classify(classifier, images)
        row = {"r": r, "steps_run": r * args.steps, "class_consistency": float((preds == torch.tensor(target)).float().mean()),
               "seam_ratio": seam(images, original, mask)}
        resampling.append(row)
        print(f"RePaint r={r}: seam {row['seam_ratio']:.3f} x the input's, consistency {row['class_consistency']:.3f}", flush=True)
    recon = pipe.decode(torch.cat([pipe.encode(pixels[i : i + 100]) for i in range(0, len(source), 100)]))
    ae_psnr = psnr(recon, original, far)

    common.RESULTS.mkdir(parents=True, exist_ok=True)
    first = args.num_per_class * 3  # the first cat
    figure(pipe, pixels[first], source[first], target[first], args.steps, mask[first], common.RESULTS / "editing.png")
    m = common.machine()
    md = [f"# Editing: {args.checkpoint}", "", common.machine_line(m), "",
          f"{len(source)} CIFAR-10 test images ({args.num_per_class} per class), {args.steps} steps, cfg {DEFAULT_CFG:g}, "
          "edit j of a class with seed j. Classes by lrf-eval's classifier.", "",
          "## Strength: each image edited towards the next class", "",
          "| strength | steps run | labelled as requested | labelled as source | PSNR vs input (dB) |", "|---|---|---|---|---|"]
    md += [f"| {r['strength']:.1f} | {r['steps_run']} | {r['requested_class']:.3f} | {r['source_class']:.3f} | "
           f"{r['psnr_db']:.2f} |" for r in curve]
    md += ["", "## Inpainting: the central 16x16 regenerated", "",
           f"Autoencoder reconstruction of the kept region (no sampling): {ae_psnr:.2f} dB.", "",
           "| asked for | keep unmasked | class consistency | labelled as source | kept region PSNR (dB) | masked region PSNR (dB) |",
           "|---|---|---|---|---|---|"]
    md += [f"| {r['asked']} | {'on' if r['keep_unmasked'] else 'off'} | {r['class_consistency']:.3f} | "
           f"{r['source_class']:.3f} | {r['kept_region_psnr_db']:.2f} | {r['masked_region_psnr_db']:.2f} |" for r in inpaint]
    md += ["", "## RePaint resampling: the central 16x16 regenerated towards the next class", "",
           "Seam: mean |difference| of adjacent pixels across the mask's edge over the input's (1 = as smooth as "
           "the input); the input's pixels kept outside the mask.", "",
           "| r | denoiser steps | seam ratio | class consistency |", "|---|---|---|---|"]
    md += [f"| {r['r']} | {r['steps_run']} | {r['seam_ratio']:.3f} | {r['class_consistency']:.3f} |" for r in resampling]
    md += ["", "![input, strengths 0.2-1.0 towards the next class, mask, inpainting](editing.png)"]
    common.write_results("editing", {"machine": m, "checkpoint": args.checkpoint, "num_per_class": args.num_per_class,
                                     "steps": args.steps, "strength_curve": curve, "inpainting": inpaint,
                                     "repaint": resampling,
                                     "autoencoder_kept_region_psnr_db": ae_psnr}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()

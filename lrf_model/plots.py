"""PNG outputs people look at instead of reading numbers: loss curves and image grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from .data import tensor_to_images  # noqa: E402


def save_loss_curve(log: list[dict], path: Path, title: str, key: str = "loss") -> None:
    """Loss against step (log scale), with a moving average over the noisy per-step values."""
    if not log:
        return
    steps = np.array([r["step"] for r in log])
    values = np.array([r[key] for r in log])
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(steps, values, alpha=0.35, lw=0.8, label=key)
    k = max(1, len(values) // 30)
    if k > 1:
        smooth = np.convolve(values, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, lw=1.6, label=f"{key} (moving avg)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def image_grid(images: torch.Tensor, nrow: int, scale: int = 2, pad: int = 1) -> Image.Image:
    """(N,3,H,W) in [-1,1] -> one PIL image, ``nrow`` images per row, nearest-upscaled."""
    x = tensor_to_images(images)
    n, h, w, _ = x.shape
    rows = (n + nrow - 1) // nrow
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = x[i]
    img = Image.fromarray(grid)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def save_image_grid(images: torch.Tensor, path: Path, nrow: int, scale: int = 2) -> None:
    image_grid(images, nrow, scale).save(path)

"""Editing inputs: image-to-image strength and inpainting masks, the same in every runtime.

Semantics (as Apple's ml-stable-diffusion and stable-diffusion.cpp):

- **Image-to-image** with ``strength`` s in [0, 1]: of N steps, sampling starts at index
  ``k = N - round_half_up(N * s)`` of the schedule, from ``noised(E(x), eps, t_k)`` with ``eps`` the
  portable seeded noise. s = 1 starts from ``eps`` itself (plain generation, bit for bit); s = 0
  runs no step and decodes ``E(x)`` (the autoencoder's reconstruction).
- **Inpainting** with a mask (image-sized, white = regenerate): the mask is reduced to the latent
  grid by the max over each cell, and after every step the known region is replaced by the
  input's latent noised to that step's t with the same ``eps`` (:func:`lrf_model.sampling.edit_start`,
  :func:`lrf_model.sampling.guided_step`). The decoded image keeps the input's pixels outside the
  mask (:func:`lrf_model.data.paste_unmasked`), blended over a one-pixel band around it so that no
  seam shows.

Rounding is half up (``floor(x + 0.5)``), not Python's half-to-even, so that C++, Kotlin, Swift and
JavaScript compute the same ``k``. This module holds what a user gives (files, strength, masks) and
imports no torch, so ``lrf-run`` reads edits with it; the arithmetic is in the modules named above.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import LRFError


def start_index(num_steps: int, strength: float) -> int:
    """The schedule index image-to-image starts at: ``N - round_half_up(N * strength)``."""
    if not (isinstance(strength, (int, float)) and math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise LRFError(f"strength {strength!r} is out of range; use a number in [0, 1] (1 = ignore the image)")
    return num_steps - math.floor(num_steps * strength + 0.5)


def load_image(path: str | Path, what: str = "image") -> Image.Image:
    """A PNG/JPEG file as a decoded PIL image, or a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise LRFError(f"{what} {path} does not exist; pass a PNG or JPEG file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise LRFError(f"{what} {path} is not a readable image ({type(e).__name__}); pass a PNG or JPEG file") from None


def as_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A PIL image, or an 8-bit array (H, W[, C]) as one."""
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))


def image_pixels(image: Image.Image, side: int, what: str = "image") -> np.ndarray:
    """8-bit RGB ``(side, side, 3)``: ``image`` as it is, or resized (bicubic) with a one-line note."""
    im = image.convert("RGB")
    if im.size != (side, side):
        print(f"note: {what} resized from {im.size[0]}x{im.size[1]} to {side}x{side}, the model's size", file=sys.stderr)
        im = im.resize((side, side), Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8)


def mask_pixels(mask: Image.Image, image_size: tuple[int, int], side: int) -> np.ndarray:
    """A mask as float ``(side, side)`` of 0 (keep) and 1 (regenerate: any pixel brighter than mid-grey).

    ``image_size`` (width, height) is the size of the image it belongs to, before any resize: a mask
    drawn for another picture is refused rather than stretched onto this one."""
    im = mask
    if im.size != tuple(image_size):
        raise LRFError(f"the mask is {im.size[0]}x{im.size[1]} but the image is {image_size[0]}x{image_size[1]}; "
                       "draw the mask at the image's size")
    im = im.convert("L")
    if im.size != (side, side):
        im = im.resize((side, side), Image.Resampling.NEAREST)
    return (np.asarray(im) > 127).astype(np.float32)

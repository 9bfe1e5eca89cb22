"""``LRFPipeline``: denoiser + autoencoder + sampler, orchestrated (diffusers style).

The pipeline owns no arithmetic of its own: the schedule, the noise and the Euler/CFG
step come from :mod:`lrf_model.sampling`, the velocity from the denoiser (any family of
:mod:`lrf_model.families`), pixels from the autoencoder. Checkpoints are diffusers pipeline folders::

    model_index.json  denoiser/{config.json, diffusion_pytorch_model.safetensors}
                      autoencoder/{config.json, diffusion_pytorch_model.safetensors}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from PIL import Image

from .autoencoder import Autoencoder, downsample_factor, encode_pixels, from_model_space, load_autoencoder
from .classes import class_index
from .data import from_pixels, paste_unmasked, tensor_to_images
from .editing import as_image, image_pixels, mask_pixels, start_index
from .errors import LRFError
from .families import Family, family_of, latent_shape, load_denoiser
from .families import class_names as family_class_names
from .sampling import batch_noise, edit_start, resample_seed, sample, schedule, velocity_fn

DEFAULT_STEPS = 4
DEFAULT_CFG = 3.0  # see the model card: cfg 4 scores higher but takes INT8 ExecuTorch over its gate
SAMPLING_FILE = "sampling.json"


def default_checkpoint() -> Path:
    """The checkpoint shipped inside the package (CIFAR-10, 32x32)."""
    return Path(__file__).resolve().parent / "weights" / "cifar10"


def shipped_checkpoints() -> list[str]:
    """The names of the checkpoints shipped inside the package (folders of ``lrf_model/weights/``
    with a denoiser), for the CLIs' help: a new shipped model needs no edit there."""
    return sorted(d.name for d in default_checkpoint().parent.iterdir() if (d / "denoiser").is_dir())


def resolve_checkpoint(path: str | Path | None) -> Path:
    """A checkpoint folder from what a user typed: a folder, the name of a shipped checkpoint
    (:func:`shipped_checkpoints`), or None for the default."""
    if path is None:
        return default_checkpoint()
    root = Path(path)
    shipped = default_checkpoint().parent / str(path)
    if not root.exists() and len(root.parts) == 1 and (shipped / "denoiser").is_dir():
        return shipped
    return root


@dataclass(frozen=True)
class SamplingDefaults:
    """The steps and guidance a checkpoint is meant to be sampled with, when a user gives none.

    A checkpoint folder may say so in ``sampling.json`` (a few-step student of ``lrf-distill``
    samples at 2 steps without guidance: the teacher's guidance is baked into it); without the
    file, the toolkit's defaults."""

    steps: int = DEFAULT_STEPS
    cfg: float = DEFAULT_CFG


def load_sampling_defaults(folder: str | Path) -> SamplingDefaults:
    path = Path(folder) / SAMPLING_FILE
    if not path.is_file():
        return SamplingDefaults()
    try:
        raw = json.loads(path.read_text())
        defaults = SamplingDefaults(steps=int(raw["steps"]), cfg=float(raw["cfg"]))
    except (ValueError, KeyError, TypeError) as e:
        raise LRFError(f"{path} is damaged ({type(e).__name__}); delete it or write {{\"steps\": N, \"cfg\": C}}") from None
    if defaults.steps < 1 or not math.isfinite(defaults.cfg):
        raise LRFError(f"{path} says steps {defaults.steps}, cfg {defaults.cfg}; use steps >= 1 and a finite cfg")
    return defaults


def save_sampling_defaults(folder: str | Path, steps: int, cfg: float) -> None:
    (Path(folder) / SAMPLING_FILE).write_text(json.dumps({"steps": steps, "cfg": cfg}, indent=2) + "\n")


class LRFPipeline(DiffusionPipeline):
    """Class-conditional generation: ``pipe(class_labels=[3], seeds=[0]).images[0]`` is a PIL image."""

    model_cpu_offload_seq = "denoiser->autoencoder"

    def __init__(self, denoiser: torch.nn.Module, autoencoder: Autoencoder):
        super().__init__()
        self.register_modules(denoiser=denoiser, autoencoder=autoencoder)
        self.sampling = SamplingDefaults()  # from_checkpoint reads the folder's own

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None) -> "LRFPipeline":
        """Load ``path`` (a folder or a shipped checkpoint's name; default: the shipped checkpoint)
        with one-line errors for bad input."""
        root = resolve_checkpoint(path)
        if not root.is_dir():
            raise LRFError(f"checkpoint folder {root} does not exist; pass --checkpoint DIR")
        denoiser = load_denoiser(root / "denoiser")
        if not (root / "autoencoder").is_dir():
            raise LRFError(f"checkpoint {root} has no autoencoder/ folder; copy the autoencoder it was trained with")
        autoencoder = load_autoencoder(root / "autoencoder")
        if autoencoder.config.latent_channels != denoiser.config.latent_channels:
            raise LRFError(f"checkpoint {root}: autoencoder has {autoencoder.config.latent_channels} latent channels but "
                           f"the denoiser expects {denoiser.config.latent_channels}; use the matching pair")
        pipe = cls(denoiser=denoiser, autoencoder=autoencoder)
        pipe.sampling = load_sampling_defaults(root)
        return pipe

    @property
    def family(self) -> Family:
        return family_of(self.denoiser)

    @property
    def class_names(self) -> tuple[str, ...]:
        return family_class_names(self.denoiser)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return latent_shape(self.denoiser)

    def check_recursions(self, recursions: int | None) -> int:
        """``recursions`` (default: the model's) if this model supports it, else a one-line error."""
        R = self.family.default_recursions(self.denoiser) if recursions is None else recursions
        top = self.family.max_recursions(self.denoiser)
        if not 1 <= R <= top:
            raise LRFError(f"--recursions {R} is out of range; this checkpoint supports 1-{top}")
        return R

    def class_index(self, name_or_index: str | int) -> int:
        return class_index(self.class_names, name_or_index)

    @property
    def image_side(self) -> int:
        """The side of the images this pipeline makes and edits (latent side x the autoencoder's factor)."""
        return self.latent_shape[-1] * downsample_factor(self.autoencoder)

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """8-bit RGB (B, H, W, 3) -> model-space latents (B, C, S, S)."""
        return encode_pixels(self.autoencoder, pixels.to(self.device))

    @torch.no_grad()
    def generate_latents(
        self,
        class_labels: Sequence[int],
        seeds: Sequence[int],
        steps: int | None = None,
        cfg_scale: float | None = None,
        recursions: int | None = None,
        shift: float = 1.0,
        callback: Callable[[int, torch.Tensor, dict | None], None] | None = None,
        image: torch.Tensor | None = None,
        strength: float = 1.0,
        mask: torch.Tensor | None = None,
        resample: int = 1,
    ) -> torch.Tensor:
        """Final latents in model space, (B, C, S, S). With ``image`` (8-bit RGB (B, H, W, 3)): an edit
        of it (:mod:`lrf_model.editing`) at ``strength``, inpainting where ``mask`` (B, 1, H, W) is 1,
        each step redone ``resample`` times (RePaint: a smoother seam at that many times the cost;
        the reference model only, bundles run 1). ``steps`` and ``cfg_scale`` default to the
        checkpoint's (:class:`SamplingDefaults`)."""
        steps = self.sampling.steps if steps is None else steps
        cfg_scale = self.sampling.cfg if cfg_scale is None else cfg_scale
        if len(class_labels) != len(seeds):
            raise LRFError(f"got {len(class_labels)} classes but {len(seeds)} seeds; give one seed per image")
        if image is None and (mask is not None or strength != 1.0):
            raise LRFError("a mask or a strength needs an input image; pass --init-image (image=) as well")
        if resample != 1 and (mask is None or not isinstance(resample, int) or resample < 1):
            raise LRFError(f"resample={resample} is invalid; resampling (a whole number >= 1) is for inpainting: pass a mask")
        ts = schedule(steps, shift)
        eps = batch_noise(seeds, self.latent_shape).to(self.device)
        labels = torch.tensor([self.class_index(c) for c in class_labels], device=self.device)
        start, inpaint = eps, None
        if image is not None:
            ts = ts[start_index(steps, strength):]
            B, H, W, _ = image.shape
            pixel_mask = torch.ones(B, 1, H, W, device=self.device) if mask is None else mask.to(self.device)
            t0 = torch.full((B,), ts[0], device=self.device)
            known, start, lmask = edit_start(self.autoencoder, image.to(self.device), pixel_mask, eps, t0)
            if mask is not None:
                inpaint = (known, eps, lmask)
        def fresh_noise(step: int, repeat: int) -> torch.Tensor:
            return batch_noise([resample_seed(s, step, repeat) for s in seeds], self.latent_shape).to(self.device)

        return sample(velocity_fn(self.denoiser), start, labels, ts, self.denoiser.config.num_classes, cfg_scale, recursions,
                      callback, inpaint, resample, fresh_noise)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Model-space latents -> images in [-1, 1]."""
        return self.autoencoder.decode(from_model_space(self.autoencoder, z)).sample.clamp(-1, 1)

    def generate_tensor(self, class_labels: Sequence[int], seeds: Sequence[int], image: torch.Tensor | None = None,
                        mask: torch.Tensor | None = None, keep_unmasked: bool = True, **kwargs) -> torch.Tensor:
        """Images in [-1, 1], (B, 3, H, W); an inpainting edit keeps the input's pixels outside the
        mask unless ``keep_unmasked`` is False."""
        images = self.decode(self.generate_latents(class_labels, seeds, image=image, mask=mask, **kwargs))
        if mask is not None and keep_unmasked:
            images = paste_unmasked(images, from_pixels(image.to(self.device)), mask.to(self.device))
        return images

    def edit_inputs(self, n: int, image, mask) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``image`` and ``mask`` (each a PIL image or array, or a list of n) as batched tensors at the
        model's size: (n, H, W, 3) uint8 and (n, 1, H, W) float."""
        if image is None:
            if mask is not None:
                raise LRFError("a mask needs an input image; pass --init-image (image=) as well")
            return None, None
        images = [as_image(im) for im in (image if isinstance(image, (list, tuple)) else [image])]
        masks = list(mask) if isinstance(mask, (list, tuple)) else [mask] * len(images)
        if len(images) not in (1, n) or len(masks) != len(images):
            raise LRFError(f"got {len(images)} images and {len(masks)} masks for {n} samples; give one, or one per sample")
        side = self.image_side
        masks_t = None
        if mask is not None:  # checked first: a mismatched mask is refused before any image is resized
            masks_t = torch.from_numpy(np.stack([mask_pixels(as_image(m), im.size, side)
                                                 for m, im in zip(masks, images)]))[:, None]
            masks_t = masks_t.expand(n, -1, -1, -1)
        pixels = torch.from_numpy(np.stack([image_pixels(im, side) for im in images])).expand(n, -1, -1, -1)
        return pixels, masks_t

    @torch.no_grad()
    def __call__(
        self,
        class_labels: Sequence[int | str],
        seeds: Sequence[int] | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        recursions: int | None = None,
        output_type: str = "pil",
        batch_size: int = 64,
        image=None,
        strength: float = 1.0,
        mask=None,
        keep_unmasked: bool = True,
        resample: int = 1,
    ) -> ImagePipelineOutput:
        """Generate one image per class label; image ``j`` uses ``seeds[j]`` (default ``j``). With
        ``image`` (a PIL image or 8-bit RGB array, or one per label): image-to-image at ``strength``,
        inpainting where ``mask`` (white = regenerate) is set."""
        labels = list(class_labels)
        seeds = list(range(len(labels))) if seeds is None else list(seeds)
        num_inference_steps = self.sampling.steps if num_inference_steps is None else num_inference_steps
        pixels, masks = self.edit_inputs(len(labels), image, mask)
        run_steps = num_inference_steps - (start_index(num_inference_steps, strength) if pixels is not None else 0)
        chunks = []
        batches = range(0, len(labels), batch_size)
        with self.progress_bar(total=len(batches) * run_steps) as bar:  # one tick per denoising step
            for i in batches:
                part = slice(i, i + batch_size)
                chunks.append(self.generate_tensor(
                    labels[part], seeds[part], image=None if pixels is None else pixels[part],
                    mask=None if masks is None else masks[part], keep_unmasked=keep_unmasked, strength=strength, resample=resample,
                    steps=num_inference_steps, cfg_scale=guidance_scale, recursions=recursions,
                    callback=lambda _i, _z, _s: bar.update()))
        images = torch.cat(chunks)
        if output_type == "pt":
            return ImagePipelineOutput(images=images)
        return ImagePipelineOutput(images=[Image.fromarray(a) for a in tensor_to_images(images)])

"""``LRFPipeline``: denoiser + autoencoder + sampler, orchestrated (diffusers style).

The pipeline owns no arithmetic of its own: the schedule, the noise and the Euler/CFG
step come from :mod:`lrf_model.sampling`, the velocity from the denoiser (any family of
:mod:`lrf_model.families`), pixels from the autoencoder. Checkpoints are diffusers pipeline folders::

    model_index.json  denoiser/{config.json, diffusion_pytorch_model.safetensors}
                      autoencoder/{config.json, diffusion_pytorch_model.safetensors}
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from diffusers import AutoencoderTiny, DiffusionPipeline, ImagePipelineOutput
from PIL import Image

from .autoencoder import from_model_space, load_autoencoder
from .classes import class_index
from .data import tensor_to_images
from .errors import LRFError
from .families import Family, family_of, latent_shape, load_denoiser
from .families import class_names as family_class_names
from .sampling import batch_noise, sample, schedule

DEFAULT_STEPS = 4
DEFAULT_CFG = 3.0


def default_checkpoint() -> Path:
    """The checkpoint shipped inside the package (CIFAR-10, 32x32)."""
    return Path(__file__).resolve().parent / "weights" / "cifar10"


class LRFPipeline(DiffusionPipeline):
    """Class-conditional generation: ``pipe(class_labels=[3], seeds=[0]).images[0]`` is a PIL image."""

    model_cpu_offload_seq = "denoiser->autoencoder"

    def __init__(self, denoiser: torch.nn.Module, autoencoder: AutoencoderTiny):
        super().__init__()
        self.register_modules(denoiser=denoiser, autoencoder=autoencoder)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None) -> "LRFPipeline":
        """Load ``path`` (default: the shipped checkpoint) with one-line errors for bad input."""
        root = Path(path) if path is not None else default_checkpoint()
        if not root.is_dir():
            raise LRFError(f"checkpoint folder {root} does not exist; pass --checkpoint DIR")
        denoiser = load_denoiser(root / "denoiser")
        if not (root / "autoencoder").is_dir():
            raise LRFError(f"checkpoint {root} has no autoencoder/ folder; copy the autoencoder it was trained with")
        autoencoder = load_autoencoder(root / "autoencoder")
        if autoencoder.config.latent_channels != denoiser.config.latent_channels:
            raise LRFError(f"checkpoint {root}: autoencoder has {autoencoder.config.latent_channels} latent channels but "
                           f"the denoiser expects {denoiser.config.latent_channels}; use the matching pair")
        return cls(denoiser=denoiser, autoencoder=autoencoder)

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

    @torch.no_grad()
    def generate_latents(
        self,
        class_labels: Sequence[int],
        seeds: Sequence[int],
        steps: int = DEFAULT_STEPS,
        cfg_scale: float = DEFAULT_CFG,
        recursions: int | None = None,
        shift: float = 1.0,
        callback: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Final latents in model space, (B, C, S, S)."""
        if len(class_labels) != len(seeds):
            raise LRFError(f"got {len(class_labels)} classes but {len(seeds)} seeds; give one seed per image")
        ts = schedule(steps, shift)
        noise = batch_noise(seeds, self.latent_shape).to(self.device)
        labels = torch.tensor([self.class_index(c) for c in class_labels], device=self.device)
        return sample(self.denoiser, noise, labels, ts, self.denoiser.config.num_classes, cfg_scale, recursions, callback)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Model-space latents -> images in [-1, 1]."""
        return self.autoencoder.decode(from_model_space(self.autoencoder, z)).sample.clamp(-1, 1)

    def generate_tensor(self, class_labels: Sequence[int], seeds: Sequence[int], **kwargs) -> torch.Tensor:
        return self.decode(self.generate_latents(class_labels, seeds, **kwargs))

    @torch.no_grad()
    def __call__(
        self,
        class_labels: Sequence[int | str],
        seeds: Sequence[int] | None = None,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_CFG,
        recursions: int | None = None,
        output_type: str = "pil",
        batch_size: int = 64,
    ) -> ImagePipelineOutput:
        """Generate one image per class label; image ``j`` uses ``seeds[j]`` (default ``j``)."""
        labels = list(class_labels)
        seeds = list(range(len(labels))) if seeds is None else list(seeds)
        chunks = []
        batches = range(0, len(labels), batch_size)
        with self.progress_bar(total=len(batches) * num_inference_steps) as bar:  # one tick per denoising step
            for i in batches:
                chunks.append(self.generate_tensor(labels[i : i + batch_size], seeds[i : i + batch_size],
                                                   steps=num_inference_steps, cfg_scale=guidance_scale,
                                                   recursions=recursions, callback=lambda _i, _z: bar.update()))
        images = torch.cat(chunks)
        if output_type == "pt":
            return ImagePipelineOutput(images=images)
        return ImagePipelineOutput(images=[Image.fromarray(a) for a in tensor_to_images(images)])

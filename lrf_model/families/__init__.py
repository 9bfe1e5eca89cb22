"""The model-family registry: adding a family is one file and one line of :data:`FAMILIES`.

``load_denoiser`` dispatches on the ``_class_name`` diffusers saves in a denoiser's
config.json, so every trainer, exporter, benchmark and runtime-side tool loads any family
through the same function and asks :func:`family_of` for what it needs to know.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import LRFError, first_line
from .base import Family
from .iris import IRIS
from .lrf import LRF
from .luminars import LUMINARS
from .microforge import MICROFORGE
from .unet2d import UNET2D

__all__ = ["FAMILIES", "IRIS", "LRF", "LUMINARS", "MICROFORGE", "UNET2D", "Family", "class_names", "family_named_in", "family_of", "get_family",
           "latent_shape", "load_denoiser"]

FAMILIES: dict[str, Family] = {f.name: f for f in (LRF, UNET2D, LUMINARS, IRIS, MICROFORGE)}
_BY_CLASS = {f.model_class.__name__: f for f in FAMILIES.values()}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise LRFError(f"unknown model family '{name}'; use one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_named_in(config: dict) -> Family:
    """The family of a saved denoiser config (its ``_class_name``)."""
    name = config.get("_class_name") if isinstance(config, dict) else None
    if name not in _BY_CLASS:
        raise LRFError(f"denoiser config: _class_name {name!r} is not a registered model family "
                       f"({', '.join(sorted(_BY_CLASS))}); use a checkpoint saved by lrf-train")
    return _BY_CLASS[name]


def family_of(model: torch.nn.Module) -> Family:
    """The family of a denoiser instance."""
    for cls in type(model).__mro__:
        if cls.__name__ in _BY_CLASS and _BY_CLASS[cls.__name__].model_class is cls:
            return _BY_CLASS[cls.__name__]
    raise LRFError(f"{type(model).__name__} is not a registered model family; register it in lrf_model/families")


def class_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The class names saved in the denoiser's config (indices as names for a config without them)."""
    names = model.config.get("class_names")
    return tuple(names) if names else tuple(str(i) for i in range(model.config.num_classes))


def latent_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    """(C, S, S) of the latents a denoiser works on."""
    c = model.config
    return (c.latent_channels, c.latent_size, c.latent_size)


def load_denoiser(path: str | Path) -> torch.nn.Module:
    """Load a denoiser folder of any family, turning every failure into one clear line."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise LRFError(f"no denoiser checkpoint at {path}: config.json is missing; pass --checkpoint DIR of a trained model")
    weights = path / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        raise LRFError(f"no denoiser weights at {weights}; the checkpoint is incomplete, re-save or re-train it")
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise LRFError(f"{path / 'config.json'} is not valid JSON ({e.msg}); restore the file") from None
    try:
        family = family_named_in(config)
    except LRFError as e:
        raise LRFError(f"{path}: {e}") from None
    try:
        model = family.model_class.from_pretrained(str(path), low_cpu_mem_usage=False)
    except LRFError:
        raise
    except Exception as e:  # diffusers/safetensors raise many types; keep only the gist
        msg = first_line(e)
        if "size mismatch" in str(e) or "Missing key" in str(e) or "Unexpected key" in str(e) or "shape" in str(e):
            raise LRFError(f"{path}: config.json does not match the weights ({msg[:160]}); use the config saved with them") from None
        raise LRFError(f"cannot load denoiser weights from {weights}: {msg[:160]}; the file is corrupt, re-download or re-train") from None
    return model.eval().requires_grad_(False)

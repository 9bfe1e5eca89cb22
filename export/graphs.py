"""The graphs every exporter consumes, built from the reference modules (never re-written).

Each graph is a small ``nn.Module`` wrapper plus its named inputs/outputs, declared once here
(:class:`GraphSpec`); every target lowers these same modules and names:

- ``step``: one classifier-free-guided Euler step, ``(latent, t, dt, class_id, cfg) -> next_latent``.
  It calls :func:`lrf_model.sampling.guided_step`, the function the PyTorch sampler uses.
- ``fused``: the whole N-step sampler with the schedule and CFG scale baked in,
  ``(noise, class_id) -> latent`` (see :mod:`lrf_export.passes.unroll`).
- ``decoder``: model-space latent -> image in [-1, 1] (latent un-scaling and clamp inside).
- ``encoder``: image in [-1, 1] -> model-space latent (for editing).

The recursion count R is fixed at construction, so tracing unrolls it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderTiny

from lrf_model.autoencoder import downsample_factor, from_model_space, to_model_space
from lrf_model.families import family_of
from lrf_model.families import latent_shape as family_latent_shape
from lrf_model.sampling import guided_step


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float32 | int64 | int32

    def example(self, fill: float = 0.5) -> torch.Tensor:
        if self.dtype.startswith("int"):
            return torch.zeros(self.shape, dtype=getattr(torch, self.dtype))
        return torch.full(self.shape, fill, dtype=torch.float32)

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass
class GraphSpec:
    """A module to lower and its named, static-shaped inputs and outputs."""

    kind: str
    module: torch.nn.Module
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # Paths (in ``module``) of the modules INT8 quantizes, as the family selects them; None: all.
    int8_modules: frozenset[str] | None = None

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        return tuple(spec.example() for spec in self.inputs)

    def with_class_dtype(self, dtype: str) -> "GraphSpec":
        """Same graph with ``class_id`` in another integer type (CoreML takes int32)."""
        inputs = [TensorSpec(s.name, s.shape, dtype) if s.name == "class_id" else s for s in self.inputs]
        return GraphSpec(self.kind, self.module, inputs, self.outputs, self.int8_modules)


class GuidedStepGraph(torch.nn.Module):
    def __init__(self, denoiser: torch.nn.Module, recursions: int):
        super().__init__()
        self.denoiser = denoiser
        self.recursions = recursions
        self.null_class = denoiser.config.num_classes

    def forward(self, latent: torch.Tensor, t: torch.Tensor, dt: torch.Tensor, class_id: torch.Tensor,
                cfg: torch.Tensor) -> torch.Tensor:
        return guided_step(self.denoiser, latent, t, dt, class_id, self.null_class, cfg, self.recursions)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return step_spec(self.denoiser, self.recursions, batch).example_inputs()


class DecoderGraph(torch.nn.Module):
    def __init__(self, autoencoder: AutoencoderTiny):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(from_model_space(self.autoencoder, latent)).sample.clamp(-1, 1)


class EncoderGraph(torch.nn.Module):
    def __init__(self, autoencoder: AutoencoderTiny):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return to_model_space(self.autoencoder, self.autoencoder.encode(image).latents)


def int8_paths(graph: torch.nn.Module, denoiser: torch.nn.Module) -> frozenset[str]:
    """Paths inside ``graph`` of the denoiser modules its family lets INT8 quantize."""
    chosen = {id(m) for m in family_of(denoiser).int8_modules(denoiser).values()}
    return frozenset(name for name, m in graph.named_modules() if id(m) in chosen)


def latent_shape(denoiser: torch.nn.Module, batch: int = 1) -> tuple[int, int, int, int]:
    return (batch, *family_latent_shape(denoiser))


def step_spec(denoiser: torch.nn.Module, recursions: int, batch: int = 1) -> GraphSpec:
    lat = latent_shape(denoiser, batch)
    graph = GuidedStepGraph(denoiser, recursions)
    return GraphSpec(
        "step",
        graph,
        [TensorSpec("latent", lat, "float32"), TensorSpec("t", (batch,), "float32"), TensorSpec("dt", (batch,), "float32"),
         TensorSpec("class_id", (batch,), "int64"), TensorSpec("cfg", (batch,), "float32")],
        [TensorSpec("next_latent", lat, "float32")],
        int8_paths(graph, denoiser),
    )


def image_shape(denoiser: torch.nn.Module, autoencoder: AutoencoderTiny, batch: int = 1) -> tuple[int, int, int, int]:
    side = denoiser.config.latent_size * downsample_factor(autoencoder)
    return (batch, 3, side, side)


def decoder_spec(denoiser: torch.nn.Module, autoencoder: AutoencoderTiny, batch: int = 1) -> GraphSpec:
    return GraphSpec("decoder", DecoderGraph(autoencoder), [TensorSpec("latent", latent_shape(denoiser, batch), "float32")],
                     [TensorSpec("image", image_shape(denoiser, autoencoder, batch), "float32")])


def encoder_spec(denoiser: torch.nn.Module, autoencoder: AutoencoderTiny, batch: int = 1) -> GraphSpec:
    return GraphSpec("encoder", EncoderGraph(autoencoder), [TensorSpec("image", image_shape(denoiser, autoencoder, batch), "float32")],
                     [TensorSpec("latent", latent_shape(denoiser, batch), "float32")])

"""The graphs every exporter consumes, built from the reference modules (never re-written).

Each graph is a small ``nn.Module`` wrapper plus its named inputs/outputs, declared once here
(:class:`GraphSpec`); every target lowers these same modules and names:

- ``step``: one classifier-free-guided Euler step with inpainting's blend,
  ``(latent, t, dt, class_id, cfg, known, noise, latent_mask[, state...]) -> next_latent[, next_state...]``
  (a family's carried state, e.g. MicroForge's ``plan``, after the step's own tensors). It calls
  :func:`lrf_model.sampling.guided_step`, the function the PyTorch sampler uses; ``latent_mask`` is
  on the latent grid (1 = regenerate), so a mask of ones is plain generation and image-to-image,
  bit for bit. For a model sampled without guidance (cfg 1: a guidance-distilled student) the
  graph has no ``cfg`` input and runs the conditional half only, at half the cost.
- ``fused``: the whole N-step sampler with the schedule and CFG scale baked in,
  ``(noise, class_id) -> latent`` (see :mod:`lrf_export.passes.unroll`).
- ``decoder``: ``(latent, image, mask) -> pixels`` (1, H, W, 3) 8-bit RGB: latent un-scaling, the
  input ``image``'s pixels pasted outside the pixel ``mask`` (:func:`lrf_model.data.paste_unmasked`;
  a mask of ones keeps the decoded image as it is) and the one pixel formula
  (:func:`lrf_model.data.to_pixels`) inside, so no runtime converts or blends pixels.
- ``text_encoder`` (its own artifact, outside bundles for now): ``(input_ids) -> tokens``, a CLIP text
  tower's last hidden states, the conditioning tokens a text-to-image step reads.
- ``encoder``: an edit's start, ``(image, mask, noise, t_start) -> (known, latent, latent_mask)``
  (:func:`lrf_model.sampling.edit_start`): the input's latent, it noised to the start time, the mask
  on the latent grid.

``class_id`` is int32 and pixels are uint8 in every traced program, so each graph is traced once;
a target without uint8 tensors (Core ML multiarrays) declares ``pixel_dtype = "int32"`` and a pass
retypes the pixel tensors (same values). The recursion count R is fixed at construction, so
tracing unrolls it.
"""

from __future__ import annotations

import copy

from dataclasses import dataclass

import torch

from lrf_model.autoencoder import Autoencoder, downsample_factor, from_model_space
from lrf_model.data import from_pixels, paste_unmasked, to_pixels
from lrf_model.families import family_of
from lrf_model.families import latent_shape as family_latent_shape
from lrf_model.sampling import edit_start, guided_step, velocity_fn


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float32 | int32 | uint8

    def example(self, fill: float = 0.5) -> torch.Tensor:
        if self.dtype != "float32":
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
    # Paths (in ``module``) of the modules INT8 may quantize: a denoiser's as its family selects
    # them (their linears and convs), or the autoencoder's subtree (every op XNNPACK quantizes in it).
    # Never the whole graph: the sampler's and the editing arithmetic (blends, masks, pixel
    # formulas) around them stays float, or a range calibrated on plain generation breaks edits.
    int8_modules: frozenset[str] = frozenset()
    int8_whole_modules: bool = False

    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        return tuple(spec.example() for spec in self.inputs)

    def with_pixel_dtype(self, dtype: str) -> "GraphSpec":
        """Same graph with its uint8 pixel tensors declared as ``dtype`` (a target's ``pixel_dtype``)."""
        def retype(specs: list[TensorSpec]) -> list[TensorSpec]:
            return [TensorSpec(s.name, s.shape, dtype) if s.dtype == "uint8" else s for s in specs]

        return GraphSpec(self.kind, self.module, retype(self.inputs), retype(self.outputs), self.int8_modules,
                         self.int8_whole_modules)

    def in_half(self) -> "GraphSpec":
        """Same graph computing in float16 (weights and arithmetic) between the same inputs and outputs."""
        return GraphSpec(self.kind, HalfPrecision(self.module), self.inputs, self.outputs)


class HalfPrecision(torch.nn.Module):
    """A graph run in float16 between float32 inputs and outputs.

    A traced program fixes every dtype (constants, casts, the modules' own ``self.dtype``
    choices such as diffusers' float32 timestep embedding), so float16 is a trace of the module
    converted by ``.half()``, not a pass over the float32 program. The boundary stays float32
    (integers and bytes untouched): the manifest, the test vectors and every runtime's feeds are
    those of the fp32 bundle, and the casts cost a few latent-sized copies per call."""

    def __init__(self, graph: torch.nn.Module):
        super().__init__()
        self.inner = copy.deepcopy(graph).half()  # not "graph": a GraphModule has its own

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.inner(*[x.half() if x.dtype == torch.float32 else x for x in inputs])
        outs = [o.float() if o.dtype == torch.float16 else o for o in (out if isinstance(out, tuple) else (out,))]
        return tuple(outs) if isinstance(out, tuple) else outs[0]


# The autoencoder's path inside the decoder and encoder graphs: INT8 quantizes its subtree only.
AUTOENCODER_INT8 = frozenset({"autoencoder"})


class GuidedStepGraph(torch.nn.Module):
    """The step; a denoiser that carries state (:attr:`Family.state`) takes it after the step's own
    inputs, in name order, and returns the next one after ``next_latent``."""

    def __init__(self, denoiser: torch.nn.Module, recursions: int):
        super().__init__()
        self.denoiser = denoiser
        self.recursions = recursions
        self.null_class = denoiser.config.num_classes
        self.state_names = list(family_of(denoiser).state_shapes(denoiser))

    def step(self, latent: torch.Tensor, t: torch.Tensor, dt: torch.Tensor, class_id: torch.Tensor, cfg: torch.Tensor | float,
             known: torch.Tensor, noise: torch.Tensor, latent_mask: torch.Tensor, state: tuple[torch.Tensor, ...]):
        velocity = velocity_fn(self.denoiser)
        if self.state_names:
            velocity.state = dict(zip(self.state_names, state))
        out = guided_step(velocity, latent, t, dt, class_id, self.null_class, cfg, self.recursions, (known, noise, latent_mask))
        return (out, *(velocity.state[name] for name in self.state_names)) if self.state_names else out

    def forward(self, latent: torch.Tensor, t: torch.Tensor, dt: torch.Tensor, class_id: torch.Tensor,
                cfg: torch.Tensor, known: torch.Tensor, noise: torch.Tensor, latent_mask: torch.Tensor, *state: torch.Tensor):
        return self.step(latent, t, dt, class_id, cfg, known, noise, latent_mask, state)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return step_spec(self.denoiser, self.recursions, batch).example_inputs()


class UnguidedStepGraph(GuidedStepGraph):
    """The step at cfg 1: the conditional velocity alone (no ``cfg`` input, half the batch)."""

    def forward(self, latent: torch.Tensor, t: torch.Tensor, dt: torch.Tensor, class_id: torch.Tensor,
                known: torch.Tensor, noise: torch.Tensor, latent_mask: torch.Tensor, *state: torch.Tensor):
        return self.step(latent, t, dt, class_id, 1.0, known, noise, latent_mask, state)

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        return step_spec(self.denoiser, self.recursions, batch, guided=False).example_inputs()


class DecoderGraph(torch.nn.Module):
    def __init__(self, autoencoder: Autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latent: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        decoded = self.autoencoder.decode(from_model_space(self.autoencoder, latent)).sample.clamp(-1, 1)
        return to_pixels(paste_unmasked(decoded, from_pixels(image, decoded.dtype), mask))  # (1, H, W, 3)


class EncoderGraph(torch.nn.Module):
    def __init__(self, autoencoder: Autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, image: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor,
                t_start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return edit_start(self.autoencoder, image, mask, noise, t_start)


def int8_paths(graph: torch.nn.Module, denoiser: torch.nn.Module) -> frozenset[str]:
    """Paths inside ``graph`` of the denoiser modules its family lets INT8 quantize."""
    chosen = {id(m) for m in family_of(denoiser).int8_modules(denoiser).values()}
    return frozenset(name for name, m in graph.named_modules() if id(m) in chosen)


def latent_shape(denoiser: torch.nn.Module, batch: int = 1) -> tuple[int, int, int, int]:
    return (batch, *family_latent_shape(denoiser))


def latent_mask_shape(lat: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The one-channel mask of an (N, C, S, S) latent: (N, 1, S, S)."""
    return (lat[0], 1, *lat[2:])


def pixel_mask_shape(pix: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The one-channel mask of an (N, H, W, 3) image: (N, 1, H, W)."""
    return (pix[0], 1, *pix[1:3])


def is_guided(cfg: float) -> bool:
    """Whether sampling at ``cfg`` needs the guided step: at exactly 1 its unconditional half is wasted."""
    return cfg != 1.0


def carried_state_shapes(denoiser: torch.nn.Module, guided: bool, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of the state the step carries, sorted by name: a row per denoiser call, so
    both halves of a guided batch carry their own."""
    rows = 2 * batch if guided else batch
    return {name: (rows, *shape) for name, shape in family_of(denoiser).state_shapes(denoiser).items()}


def step_spec(denoiser: torch.nn.Module, recursions: int, batch: int = 1, guided: bool = True) -> GraphSpec:
    """The step graph; ``guided=False``: at cfg 1, without the ``cfg`` input and the unconditional half."""
    lat = latent_shape(denoiser, batch)
    graph = (GuidedStepGraph if guided else UnguidedStepGraph)(denoiser, recursions)
    cfg = [TensorSpec("cfg", (batch,), "float32")] if guided else []
    state = carried_state_shapes(denoiser, guided, batch)
    return GraphSpec(
        "step",
        graph,
        [TensorSpec("latent", lat, "float32"), TensorSpec("t", (batch,), "float32"), TensorSpec("dt", (batch,), "float32"),
         TensorSpec("class_id", (batch,), "int32"), *cfg,
         TensorSpec("known", lat, "float32"), TensorSpec("noise", lat, "float32"),
         TensorSpec("latent_mask", latent_mask_shape(lat), "float32"),
         *(TensorSpec(name, shape, "float32") for name, shape in state.items())],
        [TensorSpec("next_latent", lat, "float32"), *(TensorSpec(f"next_{name}", shape, "float32") for name, shape in state.items())],
        int8_paths(graph, denoiser),
    )


def pixels_shape(denoiser: torch.nn.Module, autoencoder: Autoencoder, batch: int = 1) -> tuple[int, int, int, int]:
    side = denoiser.config.latent_size * downsample_factor(autoencoder)
    return (batch, side, side, 3)


def decoder_spec(denoiser: torch.nn.Module, autoencoder: Autoencoder, batch: int = 1) -> GraphSpec:
    pix = pixels_shape(denoiser, autoencoder, batch)
    return GraphSpec("decoder", DecoderGraph(autoencoder),
                     [TensorSpec("latent", latent_shape(denoiser, batch), "float32"), TensorSpec("image", pix, "uint8"),
                      TensorSpec("mask", pixel_mask_shape(pix), "float32")],
                     [TensorSpec("pixels", pix, "uint8")], AUTOENCODER_INT8, True)


def encoder_spec(denoiser: torch.nn.Module, autoencoder: Autoencoder, batch: int = 1) -> GraphSpec:
    pix, lat = pixels_shape(denoiser, autoencoder, batch), latent_shape(denoiser, batch)
    return GraphSpec("encoder", EncoderGraph(autoencoder),
                     [TensorSpec("image", pix, "uint8"), TensorSpec("mask", pixel_mask_shape(pix), "float32"),
                      TensorSpec("noise", lat, "float32"), TensorSpec("t_start", (batch,), "float32")],
                     [TensorSpec("known", lat, "float32"), TensorSpec("latent", lat, "float32"),
                      TensorSpec("latent_mask", latent_mask_shape(lat), "float32")], AUTOENCODER_INT8, True)


class TextEncoderGraph(torch.nn.Module):
    """Token ids (int32, as every traced program's integers) -> per-token hidden states: a
    transformers ``CLIPTextModel``'s ``last_hidden_state``, what a text-conditioned step attends to."""

    def __init__(self, text_model: torch.nn.Module):
        super().__init__()
        self.text_model = text_model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_model(input_ids=input_ids.long()).last_hidden_state  # (1, tokens, width)


def text_encoder_spec(text_model: torch.nn.Module) -> GraphSpec:
    """The text encoder graph at its full context (``max_position_embeddings`` tokens, batch 1)."""
    config = text_model.config
    tokens = config.max_position_embeddings
    return GraphSpec("text_encoder", TextEncoderGraph(text_model.eval()), [TensorSpec("input_ids", (1, tokens), "int32")],
                     [TensorSpec("tokens", (1, tokens, config.hidden_size), "float32")], frozenset({"text_model"}), True)

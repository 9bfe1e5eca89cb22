"""Unrolling. The recursion count R is fixed by the graph wrappers; for ``--graph fused`` the
whole N-step Euler loop (schedule and CFG scale as constants) is baked into one graph. Two
guards make the promise of unrolling concrete, on the program that is lowered:

- :class:`CheckNoControlFlow`: no higher-order ops (``cond``, ``while_loop``, ``map``...)
  remain, so every backend sees a straight-line program;
- :class:`CheckWeightsStoredOnce`: the program's stored tensors are the module's own
  weights, once, however many times the loops apply them (file size independent of N and R).
"""

from __future__ import annotations

import hashlib

import torch

from lrf_model.errors import LRFError
from lrf_model.sampling import integrate, velocity_fn

from ..graphs import GraphSpec, TensorSpec, int8_paths, latent_shape


class FusedSamplerGraph(torch.nn.Module):
    """``(noise, class_id) -> latent``: N guided Euler steps over a baked schedule."""

    def __init__(self, denoiser: torch.nn.Module, ts: list[float], cfg: float, recursions: int):
        super().__init__()
        self.denoiser, self.ts, self.cfg, self.recursions = denoiser, list(ts), float(cfg), recursions

    def forward(self, noise: torch.Tensor, class_id: torch.Tensor) -> torch.Tensor:
        return integrate(velocity_fn(self.denoiser), noise, class_id, self.ts, self.denoiser.config.num_classes, self.cfg,
                         self.recursions)


def fused_spec(denoiser: torch.nn.Module, ts: list[float], cfg: float, recursions: int, batch: int = 1) -> GraphSpec:
    lat = latent_shape(denoiser, batch)
    graph = FusedSamplerGraph(denoiser, ts, cfg, recursions)
    return GraphSpec("fused", graph, [TensorSpec("noise", lat, "float32"), TensorSpec("class_id", (batch,), "int32")],
                     [TensorSpec("latent", lat, "float32")], int8_paths(graph, denoiser))


class CheckNoControlFlow:
    name = "no control flow"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        for node in program.graph.nodes:
            if node.op == "call_function" and isinstance(node.target, torch._ops.HigherOrderOperator):
                raise LRFError(f"graph still has control flow ({node.target.__name__} at '{node.name}'); it must be unrolled")
        return program


def used_tensors(program: torch.export.ExportedProgram, constants_only: bool = False) -> list[torch.Tensor]:
    """The stored tensors (parameters, buffers, lifted constants; or the lifted constants alone:
    what constant folding and INT8 quantization created) the graph reads. A quantized program
    keeps the float originals of its folded int8 weights in its state dict, unused: no backend
    stores those."""
    sig = program.graph_signature
    lifted = dict(sig.inputs_to_lifted_tensor_constants)
    names = lifted if constants_only else {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **lifted}
    stored = {**program.state_dict, **program.constants}
    return [t for n in program.graph.nodes if n.op == "placeholder" and n.name in names and n.users
            and isinstance(t := stored[names[n.name]], torch.Tensor)]


def stored_bytes(program: torch.export.ExportedProgram, constants_only: bool = False) -> int:
    """Bytes of the distinct tensors the program reads."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in used_tensors(program, constants_only)}
    return sum(storages.values())


class CheckWeightsStoredOnce:
    """Guard: the program's weights are ``module``'s own (5% + 4 KiB of slack), and no constant
    derived from them (folded, or quantized) is stored twice.

    The constants folded from weights (IRIS's decay matrices, INT8's weights, DFT matrices) are
    the program's own and stored once each: a copy per application, which an unrolled loop
    folded use by use would make, is a second tensor of the same bytes."""

    name = "weights stored once"
    MIN_BYTES = 1024  # smaller folded constants (a scale, a zero row) may coincide by value

    def __init__(self, module: torch.nn.Module):
        tensors = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
        self.own = sum(t.untyped_storage().nbytes() for t in tensors.values())

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        got = stored_bytes(program) - stored_bytes(program, constants_only=True)
        if got > self.own * 1.05 + 4096:
            raise LRFError(f"unrolled graph stores {got} bytes of tensors for {self.own} bytes of weights; "
                           "weights were duplicated")
        seen: dict[tuple, int] = {}
        for t in {t.untyped_storage().data_ptr(): t for t in used_tensors(program, constants_only=True)}.values():
            if t.numel() * t.element_size() >= self.MIN_BYTES:
                key = (t.dtype, tuple(t.shape), hashlib.sha256(t.detach().contiguous().view(torch.uint8).numpy()).hexdigest())
                seen[key] = seen.get(key, 0) + 1
        copies = {k: n for k, n in seen.items() if n > 1}
        if copies:
            (dtype, shape, _), n = next(iter(copies.items()))
            raise LRFError(f"unrolled graph stores a folded {list(shape)} {dtype} constant {n} times; weights were "
                           "duplicated (merge common subexpressions before folding constants)")
        return program

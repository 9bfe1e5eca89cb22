"""Pass 2: unrolling. The recursion count R is fixed by the graph wrappers; for ``--graph fused``
this pass also bakes the whole N-step Euler loop (schedule and CFG scale as constants) into
one graph. Two checks make the promise of unrolling concrete:

- :func:`assert_no_control_flow`: no higher-order ops (``cond``, ``while_loop``, ``map``...)
  remain, so every backend sees a straight-line program;
- :func:`assert_weights_stored_once`: the program's stored tensors are the module's own
  weights, once, however many times the loops apply them (file size independent of N and R).
"""

from __future__ import annotations

import torch

from lrf_model.errors import LRFError
from lrf_model.sampling import integrate

from ..graphs import GraphSpec, TensorSpec, int8_paths, latent_shape


class FusedSamplerGraph(torch.nn.Module):
    """``(noise, class_id) -> latent``: N guided Euler steps over a baked schedule."""

    def __init__(self, denoiser: torch.nn.Module, ts: list[float], cfg: float, recursions: int):
        super().__init__()
        self.denoiser, self.ts, self.cfg, self.recursions = denoiser, list(ts), float(cfg), recursions

    def forward(self, noise: torch.Tensor, class_id: torch.Tensor) -> torch.Tensor:
        return integrate(self.denoiser, noise, class_id, self.ts, self.denoiser.config.num_classes, self.cfg,
                         self.recursions)


def fused_spec(denoiser: torch.nn.Module, ts: list[float], cfg: float, recursions: int, batch: int = 1) -> GraphSpec:
    lat = latent_shape(denoiser, batch)
    graph = FusedSamplerGraph(denoiser, ts, cfg, recursions)
    return GraphSpec("fused", graph, [TensorSpec("noise", lat, "float32"), TensorSpec("class_id", (batch,), "int64")],
                     [TensorSpec("latent", lat, "float32")], int8_paths(graph, denoiser))


def assert_no_control_flow(program: torch.export.ExportedProgram) -> None:
    for node in program.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.HigherOrderOperator):
            raise LRFError(f"graph still has control flow ({node.target.__name__} at '{node.name}'); it must be unrolled")


def stored_bytes(program: torch.export.ExportedProgram) -> int:
    """Bytes of distinct tensors the program stores (parameters, buffers, lifted constants)."""
    seen, total = set(), 0
    for t in list(program.state_dict.values()) + list(program.constants.values()):
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
    return total


def assert_weights_stored_once(program: torch.export.ExportedProgram, module: torch.nn.Module) -> None:
    own = sum(t.untyped_storage().nbytes() for t in {id(t): t for t in list(module.parameters()) + list(module.buffers())}.values())
    got = stored_bytes(program)
    if got > own * 1.05 + 4096:
        raise LRFError(f"unrolled graph stores {got} bytes of tensors for {own} bytes of weights; weights were duplicated")

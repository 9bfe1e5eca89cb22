"""Pass 1: trace a graph with ``torch.export`` at fixed shapes, and prove no dim is dynamic.

Phones want static shapes (XNNPACK and CoreML plan memory ahead of time). ``torch.export``
without ``dynamic_shapes`` specialises every dim; the guard catches a symbolic dim slipping
in anyway (e.g. through a data-dependent op) before any backend sees it.
"""

from __future__ import annotations

import torch

from lrf_model.errors import LRFError

from ..graphs import GraphSpec


def assert_static(program: torch.export.ExportedProgram) -> None:
    """Raise if any node's value carries a symbolic (dynamic) dimension."""
    for node in program.graph.nodes:
        val = node.meta.get("val")
        vals = val if isinstance(val, (list, tuple)) else [val]
        for v in vals:
            if isinstance(v, torch.Tensor) and not all(isinstance(d, int) for d in v.shape):
                raise LRFError(f"graph node '{node.name}' has a dynamic shape {tuple(v.shape)}; export needs static shapes")


def export_static(spec: GraphSpec) -> torch.export.ExportedProgram:
    """``torch.export`` of ``spec.module`` at the spec's example shapes, checked static."""
    spec.module.eval()
    with torch.no_grad():
        program = torch.export.export(spec.module, spec.example_inputs(), strict=False)
    assert_static(program)
    return program

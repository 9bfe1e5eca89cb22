"""Tracing a graph with ``torch.export`` at fixed shapes, and the guard that no dim is dynamic.

Phones want static shapes (XNNPACK and CoreML plan memory ahead of time). ``torch.export``
without ``dynamic_shapes`` specialises every dim; :class:`CheckStatic` catches a symbolic dim
slipping in anyway (e.g. through a data-dependent op) before any backend sees it.
"""

from __future__ import annotations

import torch

from lrf_model.errors import LRFError

from ..graphs import GraphSpec


def trace(spec: GraphSpec) -> torch.export.ExportedProgram:
    """``torch.export`` of ``spec.module`` at the spec's example shapes and dtypes: the one trace
    of a graph that every pass and target of an export works from."""
    spec.module.eval()
    with torch.no_grad():
        return torch.export.export(spec.module, spec.example_inputs(), strict=False)


class CheckStatic:
    """Guard: raise if any node's value carries a symbolic (dynamic) dimension."""

    name = "static shapes"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        for node in program.graph.nodes:
            val = node.meta.get("val")
            vals = val if isinstance(val, (list, tuple)) else [val]
            for v in vals:
                if isinstance(v, torch.Tensor) and not all(isinstance(d, int) for d in v.shape):
                    raise LRFError(f"graph node '{node.name}' has a dynamic shape {tuple(v.shape)}; export needs static shapes")
        return program


class CheckSignature:
    """Guard: the program's inputs and outputs are the spec's, in order, shape and dtype (what
    the manifest will declare), after every pass that retyped or rewrote them."""

    def __init__(self, spec: GraphSpec):
        self.spec = spec
        self.name = f"signature of {spec.kind}"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        user_inputs = set(program.graph_signature.user_inputs)
        inputs = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user_inputs]
        output = next(n for n in program.graph.nodes if n.op == "output")
        outputs = [a for a in output.args[0] if a.name in set(program.graph_signature.user_outputs)]
        for kind, nodes, specs in (("input", inputs, self.spec.inputs), ("output", outputs, self.spec.outputs)):
            got = [(tuple(n.meta["val"].shape), str(n.meta["val"].dtype).removeprefix("torch.")) for n in nodes]
            want = [(tuple(s.shape), s.dtype) for s in specs]
            if got != want:
                raise LRFError(f"the {self.spec.kind} program's {kind}s are {got}, its spec declares {want}; "
                               "a pass changed the graph's interface")
        return program

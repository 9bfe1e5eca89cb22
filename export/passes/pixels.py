"""Retyping the 8-bit pixel tensors of a program, for targets without uint8 tensors.

Decoder and encoder graphs take and give 8-bit RGB as uint8 (``lrf_model.data.to_pixels``), so
runtimes never convert pixels. Core ML multiarrays have no uint8: there the same program carries
its pixels as int32. The values are the same (0..255), so the pass changes types only: every uint8
tensor of the program (pixel inputs and the final cast) becomes ``dtype``.
"""

from __future__ import annotations

import torch

_DTYPES = {"int32": torch.int32}


class RetypePixels:
    """Program -> program: every uint8 tensor becomes ``dtype`` (int32), values unchanged."""

    def __init__(self, dtype: str):
        self.dtype = _DTYPES[dtype]
        self.name = f"pixels as {dtype}"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        for node in program.graph.nodes:
            val = node.meta.get("val")
            if not isinstance(val, torch.Tensor) or val.dtype != torch.uint8:
                continue
            if node.op == "call_function" and node.kwargs.get("dtype") == torch.uint8:
                node.kwargs = {**node.kwargs, "dtype": self.dtype}
            elif node.op != "placeholder":
                raise ValueError(f"cannot retype uint8 node {node.name} ({node.target}): only inputs and casts carry pixels")
            with val.fake_mode:
                node.meta["val"] = torch.empty_strided(val.shape, val.stride(), dtype=self.dtype, device=val.device)
        program.graph_module.recompile()
        return program


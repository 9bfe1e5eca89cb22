"""Decomposition to the core ATen op set, for converters that read ATen ops one by one.

coremltools converts a ``torch.export`` program op by op and knows the core ATen set;
converting ``torch.jit.trace`` output instead fails with numpy 2.x.
"""

from __future__ import annotations

import torch


class Decompose:
    name = "core ATen decompositions"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        return program.run_decompositions({})

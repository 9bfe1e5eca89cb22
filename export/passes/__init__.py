"""Export passes: each one small transformation from a ``torch.export`` program to a program,
composed in a list per target (ExecuTorch's ``exir`` style).

A graph is traced once (:func:`static_shapes.trace`); each target names the transformations it
needs (:meth:`Target.passes`: INT8 for ExecuTorch, decompositions for Core ML); the guards
(:data:`GUARDS`: static shapes, no control flow, weights stored once) run last, on the very
program the target then lowers. A guard is a pass that returns its input or raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch


class Pass(Protocol):
    name: str

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram: ...


def run_passes(program: torch.export.ExportedProgram, passes: Sequence[Pass]) -> torch.export.ExportedProgram:
    for p in passes:
        program = p(program)
    return program

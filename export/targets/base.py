"""What every target provides: the passes its programs need, lowering a program to a file, and
a host runner.

A runner takes and returns numpy arrays keyed by the spec's names, so the parity gate, the
sampler loop in ``lrf-run`` and the benchmarks are written once for every target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

if TYPE_CHECKING:  # runners must not import torch (see lrf_export.run)
    import torch

    from ..graphs import GraphSpec
    from ..passes import Pass

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class Lowered:
    """The artifact a target wrote, and facts about the lowering worth reporting."""

    path: Path
    precision: str
    seconds: float
    details: dict = field(default_factory=dict)


class Target(Protocol):
    name: str
    suffix: str
    pixel_dtype: str  # dtype of 8-bit pixel tensors on this target: uint8, or int32 where there is no uint8
    precisions: tuple[str, ...]
    # Precisions whose graphs are traced in float16 (:class:`lrf_export.graphs.HalfPrecision`), where
    # the backend computes in the program's own dtypes (XNNPACK); CoreML converts fp32 programs itself.
    half_traced: tuple[str, ...]

    def passes(self, spec: GraphSpec, precision: str, calibration: list[tuple] | None) -> list[Pass]:
        """The program-to-program transformations this target applies before lowering."""
        ...

    def lower(self, program: torch.export.ExportedProgram, spec: GraphSpec, path: Path, precision: str,
              calibration: list[tuple] | None = None) -> Lowered:
        """Write the artifact for ``program`` (the output of :meth:`passes`, checked by the guards).
        ``calibration`` (the graph's inputs, for INT8) serves a target that quantizes its own file
        after conversion (ONNX); the others quantize the program in :meth:`passes`."""
        ...

    def runner(self, path: Path, inputs: list[dict], outputs: list[dict], threads: int | None = None) -> Runner | None:
        """A host runner, or None where this host cannot execute the format (CoreML on Linux).

        ``threads`` sizes the runtime's CPU thread pool (None: the runtime's default), so the
        benchmarks compare runtimes on the same number of cores."""
        ...


def cast_feeds(feeds: dict[str, np.ndarray], inputs: list[dict]) -> list[np.ndarray]:
    """Order feeds as the artifact's inputs and cast to their declared dtypes."""
    return [np.ascontiguousarray(feeds[i["name"]], dtype=i["dtype"]) for i in inputs]

"""ExecuTorch (.pte) with the XNNPACK delegate; INT8 through the PT2E quantizer.

Reports how many XNNPACK partitions the graph lowered to and which ops stayed on portable
kernels: a design regression (an op XNNPACK cannot run) shows up here first.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from .base import Lowered, Runner, cast_feeds

if TYPE_CHECKING:
    from ..graphs import GraphSpec


def op_name(target) -> str:
    """'aten.cat.default' from an EdgeOpOverload's long repr."""
    m = re.search(r"EdgeOpOverload: ([\w.]+)", str(target))
    return m.group(1) if m else str(target)


def partition_report(edge_program) -> dict:
    nodes = [n for n in edge_program.graph_module.graph.nodes if n.op == "call_function"]
    delegates = sum("executorch_call_delegate" in str(n.target) for n in nodes)
    portable = Counter(op_name(n.target) for n in nodes
                       if "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target))
    return {"xnnpack_partitions": delegates, "portable_ops": dict(portable)}


# ExecuTorch's C++ sources whose Info lines the Python runtime prints on every start: the thread
# pool's CPU probe (five lines about ARM-only /sys files, printed on x86 too) and its resizing.
_STARTUP_LOG_SOURCES = ("[cpuinfo_utils.cpp:", "[threadpool.cpp:")


@contextlib.contextmanager
def _without_startup_log() -> Iterator[None]:
    """Drop the startup lines above from fd 2; pass every other line on.

    ExecuTorch's pybindings log from C++ straight to fd 2 and Python cannot set their level, so fd 2
    goes to a temporary file while the runtime starts; an error logged there still reaches the user.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            kept = [ln for ln in log.read().decode(errors="replace").splitlines() if not ln.startswith(_STARTUP_LOG_SOURCES)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


class ExecuTorchTarget:
    name = "executorch"
    suffix = ".pte"
    pixel_dtype = "uint8"
    precisions = ("fp32", "int8", "fp16")
    half_traced = ("fp16",)

    def passes(self, spec: GraphSpec, precision: str, calibration: list[tuple] | None) -> list:
        from ..passes.constants import FoldConstants
        from ..passes.quantize import QuantizePT2E
        from ..passes.xnnpack_ops import ForXnnpack

        quantize = [QuantizePT2E(spec.int8_modules, calibration, spec.int8_whole_modules)] if precision == "int8" else []
        # The rewrites' constant rows and kernels folded; in quantized programs only those (folding
        # weights around the quantizer's nodes broke the unet2d step's lowering).
        return [*quantize, ForXnnpack(), FoldConstants(after_rewrites=True, weights=precision != "int8")]

    def lower(self, program, spec: GraphSpec, path: Path, precision: str,
              calibration: list[tuple] | None = None) -> Lowered:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        from ..passes.quantize import program_coverage

        t0 = time.perf_counter()
        coverage = program_coverage(program) if precision == "int8" else None
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        report = partition_report(edge.exported_program())
        if coverage is not None:
            report["int8_coverage"] = coverage
        path.write_bytes(edge.to_executorch().buffer)
        return Lowered(path, precision, time.perf_counter() - t0, report)

    def runner(self, path: Path, inputs: list[dict], outputs: list[dict], threads: int | None = None) -> Runner:
        import torch
        from executorch.extension.pybindings import _C
        from executorch.runtime import Runtime

        with _without_startup_log():
            if threads:
                _C._unsafe_reset_threadpool(threads)  # one process-wide pool, as on a phone
            method = Runtime.get().load_program(Path(path)).load_method("forward")

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            args = [torch.from_numpy(a) for a in cast_feeds(feeds, inputs)]
            result = method.execute(args)
            return {o["name"]: r.numpy() for o, r in zip(outputs, result)}

        return run

"""ONNX (opset 18, single file) via the dynamo exporter; INT8 through ``onnxruntime.quantization``
(static QDQ, calibrated on the file: :func:`lrf_export.passes.quantize.quantize_onnx_int8`)."""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from .base import Lowered, Runner, cast_feeds

if TYPE_CHECKING:
    from ..graphs import GraphSpec

OPSET = 18  # opset 17 produced a model ONNX Runtime rejects


def share_identical_initializers(model) -> int:
    """Keep one copy of byte-identical initializers; returns how many copies were dropped.

    Constant folding materialises e.g. a transposed weight once per unrolled application;
    sharing them keeps the file size independent of the recursion count and the steps.
    """
    import hashlib

    graph, keep, rename = model.graph, {}, {}
    for init in list(graph.initializer):
        key = (init.data_type, tuple(init.dims), hashlib.sha256(init.raw_data or init.SerializeToString()).hexdigest())
        if key in keep:
            rename[init.name] = keep[key]
            graph.initializer.remove(init)
        else:
            keep[key] = init.name
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    return len(rename)


def simplify(model) -> None:
    """onnxscript's graph optimizer without its pattern rewriter, in place on the ``onnx_ir`` model.

    The exporter's ``optimize=True`` also runs onnxscript's pattern rewrite rules, which cost
    time superlinear in the graph: the unrolled scans of IRIS-Tiny's 256 px step (116k nodes)
    spent over 30 minutes there. Folding and pruning alone take that graph to 30k nodes in 30 s;
    the fusions the rewriter would add, ONNX Runtime makes itself when it loads the file.
    """
    import onnxscript.optimizer
    from onnx_ir.passes import common

    common.InlinePass()(model)
    onnxscript.optimizer.fold_constants(model)
    for step in (common.RemoveUnusedNodesPass(), common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
                 common.CommonSubexpressionEliminationPass(), common.RemoveUnusedOpsetsPass()):
        step(model)


class OnnxTarget:
    name = "onnx"
    suffix = ".onnx"
    pixel_dtype = "uint8"
    precisions = ("fp32", "int8")
    half_traced = ()

    def passes(self, spec: GraphSpec, precision: str, calibration: list[tuple] | None) -> list:
        return []  # INT8 works on the ONNX file (onnxruntime.quantization), after conversion: see lower

    def lower(self, program, spec: GraphSpec, path: Path, precision: str,
              calibration: list[tuple] | None = None) -> Lowered:
        import onnx
        import torch

        t0 = time.perf_counter()
        fp32_path = path.with_suffix(".fp32.onnx") if precision == "int8" else path
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(program, spec.example_inputs(), dynamo=True, opset_version=OPSET,
                                             input_names=[i.name for i in spec.inputs],
                                             output_names=[o.name for o in spec.outputs], verbose=False,
                                             optimize=False)
            simplify(onnx_program.model)
        model = onnx_program.model_proto
        removed = share_identical_initializers(model)
        for node in model.graph.node:  # per-node export metadata (stack traces) is most of the file
            del node.metadata_props[:]
            node.doc_string = ""
        onnx.checker.check_model(model)
        onnx.save(model, str(fp32_path))
        details = {"opset": OPSET, "nodes": len(model.graph.node), "shared_initializers": removed}
        if precision == "int8":
            from ..passes.quantize import quantize_onnx_int8

            details.update(quantize_onnx_int8(fp32_path, path, spec, calibration or [spec.example_inputs()]))
            fp32_path.unlink()
        return Lowered(path, precision, time.perf_counter() - t0, details)

    def runner(self, path: Path, inputs: list[dict], outputs: list[dict], threads: int | None = None) -> Runner:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            arrays = cast_feeds(feeds, inputs)
            result = session.run([o["name"] for o in outputs], {i["name"]: a for i, a in zip(inputs, arrays)})
            return {o["name"]: r for o, r in zip(outputs, result)}

        return run

"""INT8 weights, one scheme per target, each judged by the parity gate (not by whether it raises).

- ExecuTorch/XNNPACK: PT2E static int8 (per-channel symmetric weights, activations calibrated
  on real latents along real sampling trajectories) on the denoiser modules its family selects
  by type (``Family.int8_modules``: for LRF v2 every linear but the 4-channel input embedding
  and output projection), the whole autoencoder graphs. For LRF v2 the adaLN modulation
  linears are a third of the weights: leaving them float kept the step at 55% of its fp32
  size; quantized it is 29%, and the parity gate still holds (measured on 10 trajectories:
  worst per-step rel 0.050 -> 0.050, image PSNR median 47 -> 46 dB).
- ONNX: ``onnxruntime.quantization.quantize_dynamic`` (int8 per-channel weights; on x86
  without VNNI ``reduce_range=True`` avoids the 16-bit accumulation overflow), after ORT's
  ``quant_pre_process``: the exporter writes 3-D linears as ``MatMul(x, Transpose(W))``,
  which the quantizer skips until constant folding has made ``W^T`` an initializer.
- CoreML: ``coremltools.optimize.coreml.linear_quantize_weights`` (per-channel int8), or
  palettization to 4/6 bits as an option.

Every scheme reports its coverage (:func:`coverage`): the share of the graph's weights stored
as int8 and how many weight-bearing ops were quantized. The parity gate fails an "int8"
artifact whose share is below what its family declares, so a quantizer that silently matches
nothing cannot pass as int8 on its numerics alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch



def _in_modules(paths: frozenset[str], subtree: bool = False) -> Callable[[torch.fx.Node], bool]:
    """Whether an FX node was traced directly inside one of the modules at ``paths`` (``subtree``:
    anywhere below one). Weights and biases (attributes, no module stack) are judged by the op
    that consumes them: the conv annotator asks about them too."""
    def inside(node: torch.fx.Node) -> bool:
        if node.op in ("get_attr", "placeholder"):
            return True
        stack = [path for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
        if not subtree:
            return bool(stack) and stack[-1] in paths
        return any(p == q or p.startswith(q + ".") for p in stack for q in paths)

    return inside


def _modules_quantizer(config, paths: frozenset[str]):
    """Annotate the linears and convs of the chosen modules, nothing else.
    XNNPACKQuantizer.set_module_name also annotates shape ops (cat/reshape) outside those
    modules, observing the integer class id and quantizing the input latent."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import OP_TO_ANNOTATOR
    from torchao.quantization.pt2e.quantizer import Quantizer

    class ModulesQuantizer(Quantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            for op in ("linear", "conv"):
                OP_TO_ANNOTATOR[op](model, config, _in_modules(paths))
            return model

        def validate(self, model: torch.fx.GraphModule) -> None:
            pass

    return ModulesQuantizer()


def coverage(weights: Iterable[tuple[str, tuple[int, ...]]], ops_quantized: int, ops_total: int) -> dict:
    """``{"int8_share", "int8_weights", "float_weights", "ops_quantized", "ops_total"}`` from the
    (dtype, shape) of every stored tensor; weights are the tensors of 2 or more dims."""
    n8 = nf = 0
    for dtype, shape in weights:
        if len(shape) < 2:
            continue
        n = int(np.prod(shape))
        if dtype == "int8":
            n8 += n
        elif dtype in ("float32", "float16", "bfloat16"):
            nf += n
    return {"int8_share": n8 / max(n8 + nf, 1), "int8_weights": n8, "float_weights": nf,
            "ops_quantized": ops_quantized, "ops_total": ops_total}


def program_coverage(program: torch.export.ExportedProgram) -> dict:
    """Coverage of a PT2E-quantized program, over the stored tensors its graph reads."""
    from .unroll import used_tensors

    weights = [(str(t.dtype).removeprefix("torch."), tuple(t.shape)) for t in used_tensors(program)]
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    return coverage(weights, sum("dequantize_per_channel" in t for t in targets),
                    sum(t.startswith(("aten.linear", "aten.conv")) for t in targets))


class QuantizePT2E:
    """Program -> program: XNNPACK's static int8 (PT2E prepare, calibrate, convert) of the linears
    and convs of the modules at ``int8_modules`` or, with ``whole_modules`` (the autoencoder), of
    every op XNNPACKQuantizer annotates inside them; nothing outside them."""

    name = "int8 (PT2E, XNNPACK)"

    def __init__(self, int8_modules: frozenset[str], calibration: list[tuple], whole_modules: bool = False):
        self.int8_modules, self.calibration, self.whole_modules = int8_modules, calibration, whole_modules

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
        if self.whole_modules:  # the autoencoder: its convs, ReLUs and residual adds, all int8
            quantizer = XNNPACKQuantizer().set_global(config).set_filter_function(_in_modules(self.int8_modules, True))
        else:  # a denoiser: the modules its family selects
            quantizer = _modules_quantizer(config, self.int8_modules)
        args, _ = program.example_inputs
        with torch.no_grad():
            graph = prepare_pt2e(program.module(), quantizer)
            for batch in self.calibration or [args]:
                graph(*batch)
            return torch.export.export(convert_pt2e(graph), args, strict=False)


def quantize_onnx_int8(src: Path, dst: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    folded = dst.with_suffix(".folded.onnx")
    try:
        quant_pre_process(str(src), str(folded), skip_symbolic_shape=True)
        quantize_dynamic(str(folded), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    finally:
        folded.unlink(missing_ok=True)
    return {"scheme": "onnxruntime quant_pre_process + quantize_dynamic int8 per-channel, reduce_range",
            "int8_coverage": onnx_coverage(dst)}


def onnx_coverage(path: Path) -> dict:
    """Coverage of an ONNX file: int8 initializers, and integer matmuls/convs among all of them."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    weights = [(np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).name, tuple(t.dims)) for t in model.graph.initializer]
    ops = [n.op_type for n in model.graph.node]
    quantized = sum(op in ("MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv") for op in ops)
    return coverage(weights, quantized, quantized + sum(op in ("MatMul", "Gemm", "Conv") for op in ops))


def quantize_coreml(mlmodel, scheme: str = "int8"):
    import coremltools.optimize.coreml as cto

    if scheme == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    bits = {"palette4": 4, "palette6": 6}[scheme]
    op = cto.OpPalettizerConfig(nbits=bits, mode="kmeans", granularity="per_tensor")
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))

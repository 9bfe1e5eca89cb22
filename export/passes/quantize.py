"""INT8 weights, one scheme per target, each judged by the parity gate (not by whether it raises).

- ExecuTorch/XNNPACK: PT2E static int8 (per-channel symmetric weights, activations calibrated
  on real latents along real sampling trajectories) on the denoiser modules its family selects
  by type (``Family.int8_modules``: for LRF v2 every linear but the 4-channel input embedding
  and output projection), the whole autoencoder graphs. For LRF v2 the adaLN modulation
  linears are a third of the weights: leaving them float kept the step at 55% of its fp32
  size; quantized it is 29%, and the parity gate still holds (measured on 10 trajectories:
  worst per-step rel 0.050 -> 0.050, image PSNR median 47 -> 46 dB).
- ONNX: ``onnxruntime.quantization.quantize_static`` in QDQ form (:func:`quantize_onnx_int8`):
  the same layers as ExecuTorch (the convs/linears whose weights belong to those modules), the
  same calibration inputs and the same activation ranges (XNNPACK's histogram observer, run on
  the float ONNX graph's own tensors), int8 per-channel symmetric weights with
  ``reduce_range`` (7 bits: x86 without VNNI multiplies u8 x s8 pairs into saturating 16-bit
  sums). ONNX Runtime fuses each Q/DQ-wrapped conv into one QLinearConv. Measured on the shipped
  UNet's step (one session, 1 thread): 1.75 ms against fp32's 3.30; worst of 20 trajectories 3.9e-2.
  ``quantize_dynamic``, the earlier scheme, quantized every matmul's input per call and was
  slower than fp32 (step 7.9 vs 5.7 ms, decoder 7x); ORT's own MinMax ranges on the same layers
  reached 4.5e-2, and its Percentile ranges 5.0e-2.
- CoreML: ``coremltools.optimize.coreml.linear_quantize_weights`` (per-channel int8), or
  palettization to 4/6 bits as an option.

Every scheme reports its coverage (:func:`coverage`): the share of the graph's weights stored
as int8 and how many weight-bearing ops were quantized. The parity gate fails an "int8"
artifact whose share is below what its family declares, so a quantizer that silently matches
nothing cannot pass as int8 on its numerics alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from lrf_model.errors import LRFError

if TYPE_CHECKING:
    from ..graphs import GraphSpec


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
            quantized = torch.export.export(convert_pt2e(graph), args, strict=False)
        return _constants_stay_constants(program, quantized)


def _constants_stay_constants(before: torch.export.ExportedProgram,
                              after: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The re-export around PT2E lifts the input program's folded constants (``_prop_tensor_constant``:
    IRIS's Manhattan decay matrices) back as buffers, which would count as weights (and fail the
    "weights stored once" guard at 1,024 tokens, where they outweigh the distances they came from):
    they are constants again, in place."""
    from torch.export.graph_signature import InputKind, InputSpec

    constants = set(before.graph_signature.inputs_to_lifted_tensor_constants.values())
    specs = []
    for spec in after.graph_signature.input_specs:
        if spec.kind == InputKind.BUFFER and spec.target in constants and spec.target in after.state_dict:
            after.constants[spec.target] = after.state_dict.pop(spec.target)
            spec = InputSpec(InputKind.CONSTANT_TENSOR, spec.arg, spec.target)
        specs.append(spec)
    after.graph_signature.input_specs = specs
    return after


def xnnpack_activation_observer():
    """A fresh observer of XNNPACK's static int8 activation spec (histogram, affine int8): the
    ranges PT2E calibrates for ExecuTorch, reused for ONNX so both targets quantize alike."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    q = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False).input_activation
    return q.observer_or_fake_quant_ctr.with_args(dtype=q.dtype, quant_min=q.quant_min, quant_max=q.quant_max,
                                                  qscheme=q.qscheme)()


def name_transposed_weights(model, module: torch.nn.Module) -> int:
    """Give every transposed weight of an ONNX graph its parameter's name, ``<module path>.weight.T``;
    returns how many it named.

    The dynamo exporter writes a linear on 3-D input as ``MatMul(x, Transpose(W))``, and its
    optimizer folds most of those into anonymous initializers (``val_63``). The quantizer
    quantizes initializers only, and INT8 selects layers by module path: so the remaining
    ``Transpose(W)`` nodes are folded, and every anonymous initializer equal to the transpose of
    one of ``module``'s 2-D parameters is renamed after it."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    for node in [n for n in graph.node if n.op_type == "Transpose" and n.input[0] in inits]:
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        weight = np.ascontiguousarray(numpy_helper.to_array(inits[node.input[0]]).transpose(perm))
        graph.initializer.append(numpy_helper.from_array(weight, node.output[0]))
        graph.node.remove(node)

    def key(array: np.ndarray) -> tuple:
        return array.dtype.str, array.shape, hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()

    owners: dict[tuple, list[str]] = {}
    for name, p in module.named_parameters():
        if p.dim() == 2:
            owners.setdefault(key(p.detach().numpy().T), []).append(name)
    # A value two parameters share (equal initialisations) names neither: such a layer stays unselected.
    transposed = {k: names[0] for k, names in owners.items() if len(names) == 1}
    params = {name for name, _ in module.named_parameters()}
    rename = {}
    for init in graph.initializer:
        if init.name not in params and len(init.dims) == 2:
            name = transposed.get(key(numpy_helper.to_array(init)))
            if name is not None and f"{name}.T" not in rename.values():
                rename[init.name] = init.name = f"{name}.T"
    for node in graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    onnx.checker.check_model(model)
    return len(rename)


def onnx_nodes_in(model, paths: frozenset[str], subtree: bool) -> list:
    """The convs and linears of an ONNX graph whose weight belongs to a module at ``paths`` (or,
    with ``subtree``, anywhere below one): the dynamo exporter names initializers by module path
    (``<module>.weight``, or ``<module>.weight.T`` after :func:`name_transposed_weights`)."""
    def owned(weight: str) -> bool:
        weight = weight.removesuffix(".T")
        module = weight.removesuffix(".weight")
        return weight.endswith(".weight") and any(module == p or (subtree and module.startswith(p + ".")) for p in paths)

    return [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1 and owned(n.input[1])]


def activation_ranges(model, tensors: list[str], feeds: list[dict[str, np.ndarray]]) -> dict[str, list[dict]]:
    """ONNX Runtime's ``TensorQuantOverrides`` (scale, int8 zero point) for ``tensors``, from XNNPACK's
    activation observer fed every value those tensors take on the calibration feeds."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_value_info(t, onnx.TypeProto()) for t in tensors if t not in outputs)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    observers = {t: xnnpack_activation_observer() for t in tensors}
    for feed in feeds:
        for t, value in zip(tensors, session.run(tensors, feed)):
            observers[t](torch.from_numpy(value))
    ranges = {}
    for t, obs in observers.items():
        scale, zero_point = obs.calculate_qparams()
        ranges[t] = [{"scale": np.array(float(scale), np.float32), "zero_point": np.array(int(zero_point), np.int8)}]
    return ranges


def quantize_onnx_int8(src: Path, dst: Path, spec: GraphSpec, calibration: list[tuple]) -> dict:
    """Static QDQ int8 of the ONNX file ``src`` into ``dst``: the convs/linears of the modules
    ``spec`` names (see the module docstring), calibrated on ``calibration`` (the graph's inputs)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from ..targets.base import cast_feeds

    model = onnx.load(str(src))
    name_transposed_weights(model, spec.module)
    onnx.save(model, str(src))
    nodes = onnx_nodes_in(model, spec.int8_modules, spec.int8_whole_modules)
    if not nodes:
        raise LRFError(f"INT8 found no conv or linear of {sorted(spec.int8_modules)} in the ONNX {spec.kind} graph; "
                       "export with --quantize none, or report the model's family")
    inputs = [i.as_dict() for i in spec.inputs]
    feeds = [dict(zip([i["name"] for i in inputs], cast_feeds({i["name"]: t.numpy() for i, t in zip(inputs, batch)}, inputs)))
             for batch in calibration]
    ranges = activation_ranges(model, sorted({t for n in nodes for t in (n.input[0], n.output[0])}), feeds)

    class Feeds(CalibrationDataReader):  # every quantized tensor has its range: ORT's own calibration is unused
        def __init__(self):
            self.batches = iter(feeds[:1])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    root = logging.getLogger()  # ORT logs its "consider pre-processing" advice there: not needed, names are kept
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(str(src), str(dst), Feeds(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                        nodes_to_quantize=[n.name for n in nodes],
                        # ORT's calibrator (unused: the ranges are overrides) otherwise instruments every tensor of
                        # the graph, quadratic in its size: hours on IRIS-Tiny's 30k-node step.
                        op_types_to_quantize=sorted({n.op_type for n in nodes}),
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "TensorQuantOverrides": ranges,
                                       "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}})  # (in, out) weights: per out
    finally:
        root.setLevel(level)
    return {"scheme": "onnxruntime quantize_static QDQ: int8 per-channel weights (reduce_range), int8 activations "
                      "with XNNPACK's histogram ranges", "int8_coverage": onnx_coverage(dst)}


def onnx_coverage(path: Path) -> dict:
    """Coverage of an ONNX file: int8 initializers, and the matmuls/convs computing on int8 weights (integer
    ops, or float ops fed by a DequantizeLinear, which ONNX Runtime fuses into one) among all of them."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    weights = [(np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).name, tuple(t.dims)) for t in model.graph.initializer]
    dequantized = {out for n in model.graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    integer = [n for n in model.graph.node if n.op_type in ("MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv")]
    fp = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
    qdq = [n for n in fp if len(n.input) > 1 and n.input[1] in dequantized]  # QDQ form: int8 weight, DQ in front
    return coverage(weights, len(integer) + len(qdq), len(integer) + len(fp))


def quantize_coreml(mlmodel, scheme: str = "int8"):
    import coremltools.optimize.coreml as cto

    if scheme == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    bits = {"palette4": 4, "palette6": 6}[scheme]
    op = cto.OpPalettizerConfig(nbits=bits, mode="kmeans", granularity="per_tensor")
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))

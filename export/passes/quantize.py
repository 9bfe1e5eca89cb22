"""Pass 3: INT8 weights, one scheme per target, each judged by the parity gate (not by
whether it raises).

- ExecuTorch/XNNPACK: PT2E static int8 (per-channel symmetric weights, activations calibrated
  on real latents along real sampling trajectories). The conditioning path (adaLN
  modulation, time/class embedding, final modulation and output projection) stays in float:
  those layers scale every activation of the block, so their error is multiplied.
- ONNX: ``onnxruntime.quantization.quantize_dynamic`` (int8 per-channel weights; on x86
  without VNNI ``reduce_range=True`` avoids the 16-bit accumulation overflow).
- CoreML: ``coremltools.optimize.coreml.linear_quantize_weights`` (per-channel int8), or
  palettization to 4/6 bits as an option.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..graphs import GraphSpec

# Submodule name patterns kept in float for the PT2E scheme (see module docstring).
FLOAT_MODULE_PATTERNS = ("mod.", "final_shift", "final_scale", "out", "time_mlp", "embed")


def quantize_pt2e_xnnpack(spec: GraphSpec, calibration: list[tuple]) -> torch.export.ExportedProgram:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    for name, module in spec.module.named_modules():
        if isinstance(module, torch.nn.Linear) and any(p in name for p in FLOAT_MODULE_PATTERNS):
            quantizer.set_module_name(name, None)
    with torch.no_grad():
        graph = torch.export.export(spec.module, spec.example_inputs(), strict=False).module()
        graph = prepare_pt2e(graph, quantizer)
        for args in calibration:
            graph(*args)
        graph = convert_pt2e(graph)
        return torch.export.export(graph, spec.example_inputs(), strict=False)


def quantize_onnx_int8(src: Path, dst: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    return {"scheme": "onnxruntime quantize_dynamic int8 per-channel, reduce_range"}


def quantize_coreml(mlmodel, scheme: str = "int8"):
    import coremltools.optimize.coreml as cto

    if scheme == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    bits = {"palette4": 4, "palette6": 6}[scheme]
    op = cto.OpPalettizerConfig(nbits=bits, mode="kmeans", granularity="per_tensor")
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))

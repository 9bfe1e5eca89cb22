"""Each export pass alone, on a tiny graph: guards raise on what they guard against and return
their input otherwise; transformations return a program that computes the same thing."""

import dataclasses

import pytest
import torch

from lrf_export.exporter import guards
from lrf_export.graphs import decoder_spec, step_spec
from lrf_export.passes import run_passes
from lrf_export.passes.decompose import Decompose
from lrf_export.passes.static_shapes import CheckStatic, trace
from lrf_export.passes.unroll import CheckNoControlFlow, CheckWeightsStoredOnce, fused_spec, stored_bytes
from lrf_model.autoencoder import build_autoencoder
from lrf_model.errors import LRFError
from lrf_model.sampling import sample, schedule


def test_static_guard(tiny_denoiser):
    program = trace(step_spec(tiny_denoiser, 2))
    assert CheckStatic()(program) is program
    x = torch.export.Dim("batch")
    dynamic = torch.export.export(torch.nn.Linear(3, 3), (torch.randn(2, 3),), dynamic_shapes=({0: x},))
    with pytest.raises(LRFError, match="dynamic shape"):
        CheckStatic()(dynamic)


def test_fused_graph_is_straight_line_and_stores_weights_once(tiny_denoiser):
    ts = schedule(3)
    spec = fused_spec(tiny_denoiser, ts, 2.5, 2)
    program = run_passes(trace(spec), guards(spec))
    one = stored_bytes(trace(fused_spec(tiny_denoiser, schedule(1), 2.5, 1)))
    assert abs(stored_bytes(program) - one) <= 64  # independent of N and R
    noise, cls = torch.randn(1, 4, 8, 8), torch.tensor([6])
    expected = sample(tiny_denoiser, noise, cls, ts, 10, 2.5, 2)
    torch.testing.assert_close(program.module()(noise, cls), expected, atol=1e-6, rtol=1e-5)


def test_duplicated_weights_are_detected():
    class Copies(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(64, 64)
            self.register_buffer("copy", torch.randn(8, 64, 64))  # 8 more weight-sized tensors

        def forward(self, x):
            return self.lin(x) + (x @ self.copy).sum(0)

    module = Copies()
    program = torch.export.export(module, (torch.randn(2, 64),))
    assert CheckWeightsStoredOnce(module)(program) is program  # its own buffers are its weights
    with pytest.raises(LRFError, match="weights were duplicated"):
        CheckWeightsStoredOnce(module.lin)(program)


def test_control_flow_is_detected():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda y: y + 1, lambda y: y - 1, (x,))

    program = torch.export.export(Branchy(), (torch.randn(3),))
    with pytest.raises(LRFError, match="control flow"):
        CheckNoControlFlow()(program)


def test_decompose_keeps_the_numbers(tiny_denoiser):
    spec = step_spec(tiny_denoiser, 2)
    program = trace(spec)
    out = Decompose()(program)
    assert out is not program
    args = spec.example_inputs()
    torch.testing.assert_close(out.module()(*args), program.module()(*args))


def test_pt2e_quantize_covers_what_the_family_selects(tiny_denoiser):
    pytest.importorskip("executorch")
    from lrf_export.passes.quantize import QuantizePT2E, program_coverage

    spec = step_spec(tiny_denoiser, 2)
    program = trace(spec)
    calib = [spec.example_inputs()]
    quantized = QuantizePT2E(spec.int8_modules, calib)(program)
    cov = program_coverage(quantized)
    # Float: the input embedding, the output projection, and the depthwise convs (2 blocks x R=2).
    assert cov["int8_share"] > 0.9 and cov["ops_total"] - cov["ops_quantized"] == 6, cov
    assert program_coverage(QuantizePT2E(frozenset(), calib)(program))["int8_share"] == 0.0  # selects nothing
    run_passes(quantized, guards(spec))  # the quantized program stores less than the float weights
    ae = decoder_spec(tiny_denoiser, build_autoencoder(4, 4, 16).eval())
    assert program_coverage(QuantizePT2E(ae.int8_modules, [ae.example_inputs()], True)(trace(ae)))["int8_share"] == 1.0


def test_pt2e_quantize_keeps_folded_constants_constants():
    """A tensor folded from the weights (IRIS's decay matrices) stays a constant through the
    quantizer's re-export: as a buffer it would count as a weight, and a large one failed the
    "weights stored once" guard of IRIS-Tiny's 512 px INT8 step."""
    pytest.importorskip("executorch")
    from lrf_export.passes.constants import FoldConstants
    from lrf_export.passes.quantize import QuantizePT2E

    class Decayed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(32, 32)
            self.gamma = torch.nn.Parameter(torch.full((4,), 0.9))
            self.register_buffer("distance", torch.arange(32.0))

        def forward(self, x):  # (B, 32) -> (B, 4, 32): a (4, 32) weight-derived matrix, 4x the distances
            return self.proj(x).reshape(-1, 1, 32) * self.gamma.reshape(4, 1) ** self.distance

    x = torch.randn(2, 32)
    program = run_passes(torch.export.export(Decayed().eval(), (x,)), [FoldConstants()])
    assert len(program.constants) == 1  # the decay matrix, folded
    quantized = QuantizePT2E(frozenset({"proj"}), [(x,)])(program)

    def folded(tensors) -> list:
        return [name for name, t in tensors if tuple(t.shape) == (4, 32) and t.dtype == torch.float32]

    assert len(folded(quantized.constants.items())) == 1
    assert not folded((name, quantized.state_dict[name]) for name in quantized.graph_signature.inputs_to_buffers.values())
    torch.testing.assert_close(quantized.module()(x), program.module()(x), atol=0.05, rtol=0.05)


def test_onnx_static_int8_quantizes_what_the_family_selects_with_xnnpack_ranges(tiny_denoiser, tmp_path):
    """ONNX INT8 selects the layers ExecuTorch's does (by module path, through the exporter's
    transposed weights); a selection that matches nothing is refused before writing."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("executorch")
    import onnx

    from lrf_export.passes.quantize import onnx_coverage, quantize_onnx_int8
    from lrf_export.targets.onnx import OnnxTarget

    spec = step_spec(tiny_denoiser, 2)
    OnnxTarget().lower(trace(spec), spec, tmp_path / "fp32.onnx", "fp32")
    calib = [spec.example_inputs()]
    quantize_onnx_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", spec, calib)
    cov = onnx_coverage(tmp_path / "int8.onnx")
    selected = {name for name, m in spec.module.named_modules() if name in spec.int8_modules and hasattr(m, "weight")}
    assert cov["int8_share"] > 0.9 and cov["ops_quantized"] < cov["ops_total"], cov
    model = onnx.load(str(tmp_path / "int8.onnx"))
    quantized = {i.name.removesuffix("_quantized").removesuffix(".T").removesuffix(".weight")
                 for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2}
    assert quantized == selected  # each selected layer, by its module path; nothing else
    nothing = dataclasses.replace(spec, int8_modules=frozenset())
    with pytest.raises(LRFError, match="no conv or linear"):
        quantize_onnx_int8(tmp_path / "fp32.onnx", tmp_path / "none.onnx", nothing, calib)
    assert not (tmp_path / "none.onnx").exists()


def test_onnx_activation_ranges_are_xnnpack_observers(tmp_path):
    """The ranges handed to ONNX Runtime are those XNNPACK's observer takes of the same values."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("executorch")
    import numpy as np
    from onnx import TensorProto, helper

    from lrf_export.passes.quantize import activation_ranges, xnnpack_activation_observer

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["r"], ["y"])],
                                                "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    feeds = [{"x": np.random.default_rng(i).normal(size=(2, 8)).astype(np.float32) * (i + 1)} for i in range(3)]
    ranges = activation_ranges(model, ["r", "y"], feeds)
    for name, f in (("r", lambda a: np.maximum(a, 0)), ("y", lambda a: -np.maximum(a, 0))):
        obs = xnnpack_activation_observer()
        for feed in feeds:
            obs(torch.from_numpy(f(feed["x"])))
        scale, zero_point = obs.calculate_qparams()
        assert float(ranges[name][0]["scale"]) == pytest.approx(float(scale)) and int(ranges[name][0]["zero_point"]) == int(zero_point)
    assert int(ranges["r"][0]["zero_point"]) == -128 and int(ranges["y"][0]["zero_point"]) == 127  # one-sided ranges

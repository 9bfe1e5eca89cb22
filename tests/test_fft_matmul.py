"""The FFT-as-matmul export pass alone, against torch.fft: same numbers, no complex op left, and
the rewritten Fourier mixer runs where no FFT kernel does (one XNNPACK partition, ONNX Runtime)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lrf_export.passes import run_passes
from lrf_export.passes.constants import FoldConstants
from lrf_export.passes.fft_matmul import COMPLEX_OPS, FFTAsMatmul
from lrf_model.errors import LRFError


class FourierMixer(torch.nn.Module):
    """A per-frequency complex filter on (real, imaginary) pairs, the form the pass expects."""

    def __init__(self, channels: int, h: int, w: int, norm: str | None, two_dims: bool):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(channels, h if two_dims else 1, w // 2 + 1, 2, generator=g))
        self.h, self.w, self.norm, self.two_dims = h, w, norm, two_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        f = torch.fft.rfft2(x, norm=self.norm) if self.two_dims else torch.fft.rfft(x, norm=self.norm)
        pairs = torch.view_as_real(f)  # (B, C, H, W/2+1, 2)
        re = pairs[..., :1] * self.weight[..., :1] - pairs[..., 1:] * self.weight[..., 1:]
        im = pairs[..., :1] * self.weight[..., 1:] + pairs[..., 1:] * self.weight[..., :1]
        y = torch.view_as_complex(torch.cat([re, im], dim=-1))
        if self.two_dims:
            return torch.fft.irfft2(y, s=(self.h, self.w), norm=self.norm)
        return torch.fft.irfft(y, n=self.w, norm=self.norm)


CASES = [(8, 8, None, True), (8, 7, "ortho", True), (5, 10, "forward", True), (4, 9, "backward", False)]


def rewritten(h: int, w: int, norm: str | None, two_dims: bool):
    model = FourierMixer(3, h, w, norm, two_dims).eval()
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1))
    return model, x, run_passes(torch.export.export(model, (x,)), [FFTAsMatmul(), FoldConstants()])


@pytest.mark.parametrize("h,w,norm,two_dims", CASES)
def test_the_rewrite_computes_torch_fft_with_real_ops_only(h, w, norm, two_dims):
    model, x, program = rewritten(h, w, norm, two_dims)
    left = {n.target for n in program.graph.nodes if n.op == "call_function"} & set(COMPLEX_OPS)
    assert not left, left
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), atol=1e-5, rtol=1e-5)
    # The core-ATen form of the same program (_fft_r2c / _fft_c2r) is rewritten alike.
    core = FFTAsMatmul()(torch.export.export(model, (x,)).run_decompositions())
    with torch.no_grad():
        torch.testing.assert_close(core.module()(x), model(x), atol=1e-5, rtol=1e-5)


def test_the_rewritten_mixer_is_one_xnnpack_partition_and_runs_in_executorch_and_onnx_runtime(tmp_path):
    pytest.importorskip("executorch")
    ort = pytest.importorskip("onnxruntime")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    model, x, program = rewritten(8, 8, None, True)
    expected = model(x).detach()
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    ops = [n for n in edge.exported_program().graph.nodes if n.op == "call_function" and "getitem" not in str(n.target)]
    assert len(ops) == 1 and "executorch_call_delegate" in str(ops[0].target), [str(n.target) for n in ops]
    (tmp_path / "mixer.pte").write_bytes(edge.to_executorch().buffer)
    out = Runtime.get().load_program(str(tmp_path / "mixer.pte")).load_method("forward").execute([x])[0]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    _, x, program = rewritten(8, 8, None, True)
    torch.onnx.export(program, (x,), dynamo=True, opset_version=18).save(str(tmp_path / "mixer.onnx"))
    session = ort.InferenceSession(str(tmp_path / "mixer.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=1e-5)


def test_complex_arithmetic_between_the_transforms_is_refused():
    class ComplexFilter(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.irfft2(torch.fft.rfft2(x) * 2j, s=x.shape[-2:])

    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(LRFError, match="complex values remain"):
        FFTAsMatmul()(torch.export.export(ComplexFilter(), (x,)))


class Transform(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@pytest.mark.parametrize("fn,message", [
    (lambda x: torch.view_as_real(torch.fft.rfft(x, dim=1)), "last one or two dims"),  # another dim
    (lambda x: torch.view_as_real(torch.fft.rfft2(x, dim=(-1, -2))), "last one or two dims"),  # halves dim -2
    (lambda x: torch.view_as_real(torch.fft.rfft(x, n=6)), "last one or two dims"),  # pads the input
    (lambda x: torch.fft.irfft(torch.fft.rfft(x), n=4), "last one or two dims"),  # drops bins first
    (lambda x: torch.view_as_real(torch.fft.fft2(x)), "complex values remain"),  # a complex FFT: no rewrite
])
def test_what_the_rewrite_cannot_express_is_refused(fn, message):
    with pytest.raises(LRFError, match=message):
        FFTAsMatmul()(torch.export.export(Transform(fn), (torch.randn(1, 4, 4, 8),)))

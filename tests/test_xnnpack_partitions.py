"""The exported graphs must lower to few XNNPACK partitions: a regression shows here.

The softmax mixer (the shipped default) is checked on every ExecuTorch bundle the export tests
make (tests/test_export.py); this file covers the linear-attention mixer, which no bundle test uses."""

import pytest
import torch

pytest.importorskip("executorch")
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: E402
from executorch.exir import to_edge_transform_and_lower  # noqa: E402

from lrf_export.graphs import GuidedStepGraph, decoder_spec, step_spec  # noqa: E402
from lrf_export.passes.static_shapes import trace  # noqa: E402
from lrf_export.passes.xnnpack_ops import ForXnnpack  # noqa: E402
from lrf_export.targets.executorch import partition_report  # noqa: E402
from lrf_model.autoencoder import build_autoencoder  # noqa: E402
from lrf_model.classes import CIFAR10_CLASSES  # noqa: E402
from lrf_model.families import UNET2D  # noqa: E402
from lrf_model.model import LRFDenoiser  # noqa: E402

from .conftest import randomize  # noqa: E402


@pytest.mark.parametrize("mixer", ["linear"])
def test_guided_step_is_one_xnnpack_partition(mixer):
    graph = GuidedStepGraph(randomize(LRFDenoiser(hidden_dim=32, num_heads=2, num_blocks=2, mixer=mixer)).eval(), 2)
    inputs = graph.example_inputs()
    program = torch.export.export(graph, inputs)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    nodes = [n for n in edge.exported_program().graph_module.graph.nodes if n.op == "call_function"]
    delegates = [n for n in nodes if "executorch_call_delegate" in str(n.target)]
    assert len(delegates) == 1, f"{len(delegates)} XNNPACK partitions"
    # What stays outside is only the cheap input plumbing (CFG batch concat, null class, one-hot compare).
    outside = {str(n.target).split(":")[0] for n in nodes if n not in delegates and "getitem" not in str(n.target)}
    heavy = {o for o in outside if any(op in o for op in ("linear", "mm", "conv", "softmax", "mul", "div"))}
    assert not heavy, heavy
    # The lowered program computes the same thing as the eager step.
    from executorch.runtime import Runtime

    buffer = edge.to_executorch().buffer
    method = Runtime.get().load_program(buffer).load_method("forward")
    out = method.execute(list(inputs))[0]
    torch.testing.assert_close(out, graph(*inputs), atol=1e-4, rtol=1e-3)


def _lower(program):
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    return edge, partition_report(edge.exported_program())


def test_unet_step_and_decoder_lower_without_portable_norms_attention_or_upsampling(tmp_path):
    """ForXnnpack rewrites group norm, attention and nearest upsampling in XNNPACK's ops: without it the
    unet2d step falls apart into ~30 partitions around portable kernels."""
    from executorch.runtime import Runtime

    torch.manual_seed(0)
    den = randomize(UNET2D.build(**UNET2D.tiny_config, class_names=list(CIFAR10_CLASSES)), std=0.1).eval()
    for spec in (step_spec(den, 1), decoder_spec(den, build_autoencoder(4, 4, 8).eval())):
        program = trace(spec)
        targets = {str(n.target) for n in program.graph.nodes}
        assert any(op in name for op in ("group_norm", "upsample") for name in targets)
        rewritten = ForXnnpack()(program)
        inputs = spec.example_inputs()
        torch.testing.assert_close(rewritten.module()(*inputs), program.module()(*inputs), atol=1e-5, rtol=1e-4)
        edge, after = _lower(rewritten)
        rewritten_ops = ("group_norm", "upsample", "any.dim", "logical_not", "where", "expand_copy")
        assert not any(op in name for op in rewritten_ops for name in after["portable_ops"]), after
        assert after["xnnpack_partitions"] <= (4 if spec.kind == "step" else 1), after
        path = tmp_path / f"{spec.kind}.pte"
        path.write_bytes(edge.to_executorch().buffer)
        out = Runtime.get().load_program(path).load_method("forward").execute(list(inputs))[0]
        expected = spec.module(*inputs)
        if expected.dtype == torch.uint8:  # pixels: rounding may move a value by one level
            assert (out.int() - expected.int()).abs().max() <= 1
        else:
            torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-3)


def test_masked_attention_and_odd_upsampling_are_left_alone():
    class Odd(torch.nn.Module):
        def forward(self, q, mask):
            a = torch.nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=mask)
            return torch.nn.functional.interpolate(a, scale_factor=1.5, mode="nearest")

    program = torch.export.export(Odd(), (torch.randn(1, 2, 4, 4), torch.ones(4, 4, dtype=torch.bool)))
    assert ForXnnpack()(program) is program


def test_float16_silu_stays_float16_in_one_partition():
    """The edge decomposition computes a float16 SiLU in float32, between two casts that XNNPACK
    leaves to portable kernels (the fp16 UNet step fell into 39 partitions); ForXnnpack writes it
    as ``x * sigmoid(x)`` in its own dtype."""
    net = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                              torch.nn.SiLU(), torch.nn.Conv2d(8, 8, 3, padding=1)).half().eval()
    x = torch.randn(1, 8, 8, 8, dtype=torch.float16)
    program = torch.export.export(net, (x,))
    assert _lower(program)[1]["xnnpack_partitions"] > 1  # upstream behaviour: if this changes, the rewrite may go
    rewritten = ForXnnpack()(program)
    assert _lower(rewritten)[1]["xnnpack_partitions"] == 1
    torch.testing.assert_close(rewritten.module()(x), net(x), atol=2e-3, rtol=2e-3)


def test_float16_tanh_gelu_is_delegated_and_erf_gelu_is_left_alone():
    """XNNPACK's partitioner refuses float16 ``gelu`` (LuminaRS's fp16 step fell into a partition per
    ConvNeXt MLP); ForXnnpack writes the tanh form out with ``tanh``, exactly, and keeps the erf form."""
    def mlp(approximate: str) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(approximate), torch.nn.Linear(64, 16),
                                   torch.nn.GELU(approximate), torch.nn.Linear(16, 16)).half().eval()

    x = torch.randn(2, 16, dtype=torch.float16)
    net = mlp("tanh")
    program = torch.export.export(net, (x,))
    assert _lower(program)[1]["xnnpack_partitions"] > 1  # upstream behaviour: if this changes, the rewrite may go
    rewritten = ForXnnpack()(program)
    assert _lower(rewritten)[1]["xnnpack_partitions"] == 1
    torch.testing.assert_close(rewritten.module()(x), net(x), atol=2e-3, rtol=2e-3)
    exact = torch.export.export(mlp("none"), (x,))
    assert ForXnnpack()(exact) is exact


def test_softplus_is_delegated_and_exact():
    """softplus's edge decomposition (``gt``, ``log1p``, ``where``) runs on portable kernels and cut
    MicroForge's step at each selective scan's ``dt``; ForXnnpack writes it in XNNPACK's ops, equal
    to float rounding on both sides of the threshold; a beta other than 1 is left alone."""
    net = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Softplus(), torch.nn.Linear(16, 16), torch.nn.Softplus(),
                              torch.nn.Linear(16, 16)).eval()
    x = torch.randn(4, 16) * 30  # beyond the threshold (20) and below it
    program = torch.export.export(net, (x,))
    assert _lower(program)[1]["xnnpack_partitions"] > 1  # upstream behaviour: if this changes, the rewrite may go
    rewritten = ForXnnpack()(program)
    assert _lower(rewritten)[1]["xnnpack_partitions"] == 1
    torch.testing.assert_close(rewritten.module()(x), net(x), atol=1e-5, rtol=1e-6)
    other = torch.export.export(torch.nn.Softplus(beta=2.0), (x,))
    assert ForXnnpack()(other) is other


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_dc_autoencoder_lowers_to_one_partition_each_way(tmp_path, precision):
    """DC-AE's channel RMSNorms and group-mean shortcuts (means over one dim), its up-block shortcut
    (``repeat_interleave`` of channels) and its down blocks (``pixel_unshuffle``) ran on portable
    kernels: decoder 10 partitions, encoder 12 (INT8: 6 and 12). The ExecuTorch target's passes
    (ForXnnpack, then the constant folding; INT8: quantized first, only the rewrites' constants
    folded) make each one partition, and the program computes what the autoencoder does (INT8: close
    to it), through ExecuTorch."""
    from executorch.runtime import Runtime

    from lrf_export.graphs import encoder_spec
    from lrf_export.targets.executorch import ExecuTorchTarget
    from lrf_model.autoencoder import build_dc_autoencoder

    torch.manual_seed(0)
    den = UNET2D.build(**UNET2D.tiny_config, latent_channels=8, latent_size=4, class_names=list(CIFAR10_CLASSES)).eval()
    ae = build_dc_autoencoder(downsample=8, latent_channels=8, channels=8, layers_per_block=1).eval()
    for spec in (decoder_spec(den, ae), encoder_spec(den, ae)):
        program = trace(spec)
        assert _lower(program)[1]["xnnpack_partitions"] > 4  # upstream behaviour: if this changes, the rewrites may go
        calibration = [spec.example_inputs() for _ in range(2)]
        for step in ExecuTorchTarget().passes(spec, precision, calibration):
            program = step(program)
        edge, after = _lower(program)
        assert after["xnnpack_partitions"] == 1, after
        inputs = spec.example_inputs()
        path = tmp_path / f"{spec.kind}.pte"
        path.write_bytes(edge.to_executorch().buffer)
        outs = Runtime.get().load_program(path).load_method("forward").execute(list(inputs))
        for out, expected in zip(outs, (lambda r: r if isinstance(r, tuple) else (r,))(spec.module(*inputs))):
            if expected.dtype == torch.uint8:
                assert (out.int() - expected.int()).abs().max() <= (1 if precision == "fp32" else 24)
            elif precision == "fp32":
                torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-3)
            else:  # INT8 of random weights: close, not equal
                assert torch.linalg.norm(out - expected) <= 0.1 * torch.linalg.norm(expected)


def test_one_dim_means_repeats_and_unshuffles_are_rewritten_exactly():
    """Each rewrite against its reference op (an upsampling by 7 too: two levels of cats); XNNPACK's own spatial mean and group norm's stay means."""
    class Ops(torch.nn.Module):
        def forward(self, x):
            return (x.movedim(1, -1).pow(2).mean(-1, keepdim=True), x.unflatten(1, (-1, 4)).mean(dim=2),
                    x.mean(dim=(2, 3), keepdim=True), torch.nn.functional.pixel_unshuffle(x, 2),
                    x.repeat_interleave(7, dim=1), torch.nn.functional.group_norm(x, 4),
                    torch.nn.functional.interpolate(x, scale_factor=(7, 1), mode="nearest"))

    x = torch.randn(2, 16, 8, 8)
    program = torch.export.export(Ops(), (x,))
    rewritten = ForXnnpack()(program)
    ops = [str(n.target) for n in rewritten.graph.nodes if n.op == "call_function"]
    assert not any(name in op for name in ("pixel_unshuffle", "repeat_interleave", "upsample") for op in ops)
    assert ops.count("aten.mean.dim") == 3  # the spatial mean and group norm's two statistics
    for got, want in zip(rewritten.module()(x), Ops()(x)):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_layer_norms_and_4d_matmuls_lower_to_one_partition(tmp_path):
    """A transformer block as a text tower writes it (a layer norm over the last dim, attention by 4-D
    matmuls with an additive causal mask): layer norm and the operands' expand copies ran portable (a
    302M CLIP text tower lowered to 81 partitions); rewritten, one partition computing the same."""
    from executorch.runtime import Runtime

    from lrf_export.passes.constants import FoldConstants

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.q, self.k, self.v = torch.nn.LayerNorm(32), *(torch.nn.Linear(32, 32) for _ in range(3))
            self.register_buffer("mask", torch.full((8, 8), -1e4).triu(1))

        def forward(self, x):                                                   # (B, N, 32)
            h = self.norm(x)
            q, k, v = (f(h).unflatten(-1, (2, 16)).transpose(1, 2) for f in (self.q, self.k, self.v))  # (B, heads, N, 16)
            w = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * 0.25 + self.mask, dim=-1)
            return x + torch.matmul(w, v).transpose(1, 2).flatten(2)

    torch.manual_seed(0)
    block, x = Block().eval(), torch.randn(2, 8, 32)
    program = torch.export.export(block, (x,))
    assert _lower(program)[1]["xnnpack_partitions"] > 1  # upstream behaviour: if this changes, the rewrites may go
    edge, after = _lower(FoldConstants(after_rewrites=True)(ForXnnpack()(program)))
    assert after["xnnpack_partitions"] == 1 and not after["portable_ops"], after
    (tmp_path / "block.pte").write_bytes(edge.to_executorch().buffer)
    (out,) = Runtime.get().load_program(tmp_path / "block.pte").load_method("forward").execute([x])
    torch.testing.assert_close(out, block(x), atol=1e-5, rtol=1e-4)

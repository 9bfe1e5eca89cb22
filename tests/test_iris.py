"""IRIS (seed 001) as a family: its operators against their reference form, each export pass
alone against the op it replaces, its recursion and its published size. (Training, saving,
loading and exporting to every target with a passing gate, lrf-native and the browser included,
are test_families' for every family.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lrf_export.passes import run_passes
from lrf_export.passes.constants import FoldConstants
from lrf_export.passes.scan import FORMS, SCAN, ScanAsOps
from lrf_export.passes.unroll import CheckWeightsStoredOnce
from lrf_model.errors import LRFError
from lrf_model.families import FAMILIES, latent_shape
from lrf_model.families.iris import PUBLISHED_CONFIG, FourierMixer, ManhattanAttention, softshrink
from lrf_model.ops import linear_scan

from .conftest import tiny_family_denoiser


def reference_scan(a: torch.Tensor, u: torch.Tensor, reverse: bool) -> torch.Tensor:
    """The recurrence as the seed writes it, one token at a time in Python."""
    h, out = torch.zeros_like(u[:, 0]), [None] * u.shape[1]
    for t in (reversed(range(u.shape[1])) if reverse else range(u.shape[1])):
        h = a[:, t] * h + u[:, t]
        out[t] = h
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_scan_op_and_its_backward_are_the_recurrence(reverse):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 9, 3, dtype=torch.float64, generator=g).requires_grad_()
    u = torch.randn(2, 9, 3, dtype=torch.float64, generator=g).requires_grad_()
    torch.testing.assert_close(linear_scan(a, u, reverse), reference_scan(a, u, reverse))
    assert torch.autograd.gradcheck(lambda a, u: linear_scan(a, u, reverse), (a, u))


@pytest.mark.parametrize("length", [64, 128])  # by_length unrolls the first, chunks the second
@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_scan_form_computes_the_reference_scan(form, length):
    """The pass alone, on a program of nothing but two scans (both directions, RG-LRU's decays)."""

    class Bidirectional(torch.nn.Module):
        def forward(self, a, u):
            return linear_scan(a, u, False) + linear_scan(a, u, True)

    g = torch.Generator().manual_seed(1)
    a, u = 0.5 + 0.5 * torch.rand(2, length, 8, generator=g), torch.randn(2, length, 8, generator=g)
    program = ScanAsOps(form)(torch.export.export(Bidirectional(), (a, u)))
    assert not any(n.target == SCAN for n in program.graph.nodes)
    expected = reference_scan(a, u, False) + reference_scan(a, u, True)
    torch.testing.assert_close(program.module()(a, u), expected, atol=1e-5, rtol=1e-5)


def test_the_chunked_scan_has_as_many_ops_at_any_length():
    """Long scans are chunked so that graphs stay small: a form whose op count grew with the length
    (carrying the state chunk by chunk) made IRIS-Tiny's 512 px step too large to lower in 17 GB."""

    class Forward(torch.nn.Module):
        def forward(self, a, u):
            return linear_scan(a, u, False)

    def ops(length: int) -> int:
        a, u = torch.rand(1, length, 4), torch.randn(1, length, 4)
        program = ScanAsOps("chunked")(torch.export.export(Forward(), (a, u)))
        return sum(n.op == "call_function" for n in program.graph.nodes)

    assert ops(128) == ops(1024)


def test_an_unknown_scan_form_is_one_line():
    with pytest.raises(LRFError, match="unknown scan form 'cumsum'; use one of"):
        ScanAsOps("cumsum")


def test_softshrink_is_torchs():
    x = torch.linspace(-0.05, 0.05, 101)
    torch.testing.assert_close(softshrink(x, 0.01), F.softshrink(x, 0.01))


def test_the_float16_fourier_mixer_computes_the_float32_one():
    """float16 has no torch.fft kernel: the mixer's DFT matmuls must be the same transform."""
    torch.manual_seed(0)
    mixer = FourierMixer(48, 8, 2)
    torch.nn.init.normal_(mixer.b1, std=0.1)
    x = torch.randn(2, 64, 48)
    with torch.no_grad():
        ref = mixer(x)
        half = mixer.half()(x.half()).float()
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(half, ref, atol=3e-3, rtol=3e-3)


def test_the_spatial_decay_is_gamma_to_the_manhattan_distance():
    attn = ManhattanAttention(8, 4, 2)
    d = attn.distance.reshape(4, 4, 4, 4)  # (row_n, col_n, row_m, col_m)
    assert d[0, 0, 3, 3] == 6 and d[1, 2, 2, 0] == 3 and d[2, 2, 2, 2] == 0
    gamma = torch.sigmoid(attn.decay)
    assert 0 < gamma.min() < gamma.max() < 1  # a local head and a near-global one


def test_the_core_is_shared_and_iteration_aware():
    model = tiny_family_denoiser("iris")
    z, t, y = torch.randn(1, *latent_shape(model)), torch.tensor([0.5]), torch.tensor([1])
    with torch.no_grad():
        outs = [model(z, t, y, r) for r in (1, 2)]
    assert (outs[0] - outs[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="recursions=3 is out of range"):
        model(z, t, y, 3)


def test_weight_derived_constants_are_folded_once_however_many_iterations_use_them():
    """Each core iteration derives the same decay matrices and complex weights from the weights:
    merged before folding they are stored once; folded use by use the guard refuses the copies."""
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass

    from lrf_export.graphs import step_spec
    from lrf_export.passes.fft_matmul import FFTAsMatmul
    from lrf_export.passes.static_shapes import trace

    model = tiny_family_denoiser("iris")
    spec = step_spec(model, 2)
    guard = CheckWeightsStoredOnce(spec.module)
    program = run_passes(trace(spec), [FFTAsMatmul(), ScanAsOps(), FoldConstants()])
    assert guard(program) is program
    per_use = constant_prop_pass(run_passes(trace(spec), [FFTAsMatmul(), ScanAsOps()]))
    with pytest.raises(LRFError, match="constant 2 times; weights were duplicated"):
        guard(per_use)


def test_published_configuration_matches_the_seeds_parameter_count():
    """IRIS-Tiny: a 19M generator on the f=16 latent of 256x256 images."""
    with torch.device("meta"):
        model = FAMILIES["iris"].build(**PUBLISHED_CONFIG)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - 19e6) <= 1.9e6, n

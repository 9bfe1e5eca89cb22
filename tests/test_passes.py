"""Each export pass alone, on a tiny graph."""

import pytest
import torch

from lrf_export.graphs import step_spec
from lrf_export.passes.static_shapes import assert_static, export_static
from lrf_export.passes.unroll import assert_no_control_flow, assert_weights_stored_once, fused_spec, stored_bytes
from lrf_model.errors import LRFError
from lrf_model.sampling import sample, schedule


def test_static_export_has_only_static_shapes(tiny_denoiser):
    program = export_static(step_spec(tiny_denoiser, 2))
    assert_static(program)
    x = torch.export.Dim("batch")
    dynamic = torch.export.export(torch.nn.Linear(3, 3), (torch.randn(2, 3),), dynamic_shapes=({0: x},))
    with pytest.raises(LRFError, match="dynamic shape"):
        assert_static(dynamic)


def test_fused_graph_is_straight_line_and_stores_weights_once(tiny_denoiser):
    ts = schedule(3)
    spec = fused_spec(tiny_denoiser, ts, 2.5, 2)
    program = export_static(spec)
    assert_no_control_flow(program)
    assert_weights_stored_once(program, spec.module)
    one = stored_bytes(export_static(fused_spec(tiny_denoiser, schedule(1), 2.5, 1)))
    assert abs(stored_bytes(program) - one) <= 64  # independent of N and R
    noise, cls = torch.randn(1, 4, 8, 8), torch.tensor([6])
    expected = sample(tiny_denoiser, noise, cls, ts, 10, 2.5, 2)
    torch.testing.assert_close(program.module()(noise, cls), expected, atol=1e-6, rtol=1e-5)


def test_control_flow_is_detected():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return torch.cond(x.sum() > 0, lambda y: y + 1, lambda y: y - 1, (x,))

    program = torch.export.export(Branchy(), (torch.randn(3),))
    with pytest.raises(LRFError, match="control flow"):
        assert_no_control_flow(program)

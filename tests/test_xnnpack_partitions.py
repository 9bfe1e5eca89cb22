"""The exported guided step must lower to ONE XNNPACK partition: a regression shows here.

The softmax mixer (the shipped default) is checked on every ExecuTorch bundle the export tests
make (tests/test_export.py); this file covers the linear-attention mixer, which no bundle test uses."""

import pytest
import torch

pytest.importorskip("executorch")
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: E402
from executorch.exir import to_edge_transform_and_lower  # noqa: E402

from lrf_export.graphs import GuidedStepGraph  # noqa: E402
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

"""Fold what the weights alone determine into stored constants, once.

After :class:`~lrf_export.passes.fft_matmul.FFTAsMatmul` a program builds its DFT matrices from
``arange``/``cos``, and a model may derive tensors from its weights (IRIS's block complex weights
and Manhattan decay matrices): computed at every step, these are ops the runtimes run for
nothing (and ``cos``/``exp`` on constants cut XNNPACK partitions). ExecuTorch's constant
propagation folds them into stored constants, but folds each *use* separately: a weight-derived
tensor that the unrolled recursion computes R times would be stored R times, which the
"weights stored once" guard rightly refuses. So common subexpressions are merged first (the
same op on the same inputs is one node), then constants are propagated.

Merging also shares activations computed alike on every recursion (IRIS's cross-attention keys
and values of the conditioning tokens): the same numbers, computed once.
"""

from __future__ import annotations

import torch
from torch.fx.node import map_aggregate


def _key(node: torch.fx.Node):
    """What makes two nodes the same computation: op and arguments (lists as tuples, so hashable)."""
    def freeze(a):
        return tuple(a) if isinstance(a, list) else a
    return (node.target, map_aggregate(node.args, freeze), tuple(sorted(map_aggregate(dict(node.kwargs), freeze).items())))


def merge_common_subexpressions(program: torch.export.ExportedProgram) -> int:
    """Replace every pure node that repeats an earlier one's op and inputs by that one, in place;
    returns how many were merged."""
    graph, seen, merged = program.graph_module.graph, {}, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.is_impure():
            continue
        try:
            key = _key(node)
            hash(key)
        except TypeError:  # an unhashable argument: leave the node alone
            continue
        if key in seen:
            node.replace_all_uses_with(seen[key])
            graph.erase_node(node)
            merged += 1
        else:
            seen[key] = node
    program.graph_module.recompile()
    return merged


class FoldConstants:
    """Pass: merge common subexpressions, then fold every subgraph of constants and weights alone."""

    name = "fold constants"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        from executorch.exir.passes.constant_prop_pass import constant_prop_pass

        merge_common_subexpressions(program)
        return constant_prop_pass(program)

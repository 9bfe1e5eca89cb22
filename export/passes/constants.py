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
from typing import Callable

from torch.fx.node import map_aggregate, map_arg


def _key(node: torch.fx.Node):
    """What makes two nodes the same computation: op and arguments (lists as tuples, so hashable)."""
    def freeze(a):
        return tuple(a) if isinstance(a, list) else a
    return (node.target, map_aggregate(node.args, freeze), tuple(sorted(map_aggregate(dict(node.kwargs), freeze).items())))


def activations(program: torch.export.ExportedProgram) -> set[torch.fx.Node]:
    """The nodes that depend on the program's user inputs (the rest derive from weights and constants)."""
    users = set(program.graph_signature.user_inputs)
    out: set[torch.fx.Node] = set()
    for node in program.graph.nodes:
        if (node.op == "placeholder" and node.name in users) or any(a in out for a in node.all_input_nodes):
            out.add(node)
    return out


def merge_common_subexpressions(program: torch.export.ExportedProgram,
                                keep: Callable[[torch.fx.Node], bool] = lambda node: False) -> int:
    """Replace every pure node that repeats an earlier one's op and inputs by that one, in place,
    except the nodes ``keep`` names; returns how many were merged."""
    graph, seen, merged = program.graph_module.graph, {}, 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.is_impure() or keep(node):
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


def fold_weightless(program: torch.export.ExportedProgram, skip: frozenset) -> torch.export.ExportedProgram:
    """Fold the subgraphs that read no placeholder at all (no input, no weight: ``full``/``arange``
    chains) into stored constants, in place, the ops in ``skip`` excepted."""
    from executorch.exir.passes.constant_prop_pass import create_constant_nodes_and_return_specs

    values: dict[torch.fx.Node, torch.Tensor] = {}
    for node in program.graph.nodes:
        if (node.op != "call_function" or node.is_impure() or node.target in skip
                or not all(a in values for a in node.all_input_nodes)):
            continue
        args, kwargs = map_arg((node.args, node.kwargs), values.__getitem__)
        with torch.no_grad():
            value = node.target(*args, **kwargs)
        values[node] = value.contiguous() if isinstance(value, torch.Tensor) and 0 in value.stride() else value
    if not values:
        return program
    specs = {s.arg.name: s for s in program.graph_signature.input_specs}
    specs.update(create_constant_nodes_and_return_specs(values, program))
    program.graph_signature.input_specs = [specs[n.name] for n in program.graph.find_nodes(op="placeholder")]
    program.graph.eliminate_dead_code()
    program.graph_module.recompile()
    return program


class FoldConstants:
    """Pass: merge common subexpressions, then fold every subgraph of constants and weights alone.

    ``after_rewrites``: the run after the rewrites for XNNPACK (which build constant rows and
    kernels): the rewrites' copies of one tensor stay distinct views (XNNPACK concatenates distinct
    inputs only). Quantize/dequantize nodes are never merged (each consumer has its own dequantize,
    the pattern the delegate matches) nor folded. ``weights=False`` (quantized programs) folds only
    what reads no weight either, the rewrites' own rows and kernels: ExecuTorch's constant
    propagation of weights around the quantizer's nodes broke the unet2d INT8 step's lowering."""

    name = "fold constants"

    def __init__(self, after_rewrites: bool = False, weights: bool = True):
        self.after_rewrites, self.weights = after_rewrites, weights

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        from executorch.exir.operator.util import _QUANT_PRIMITIVES
        from executorch.exir.passes.constant_prop_pass import _DEFAULT_SKIP_TARGETS, constant_prop_pass

        quant = frozenset(_QUANT_PRIMITIVES)
        if self.after_rewrites:
            moving = activations(program)
            merge_common_subexpressions(program, lambda n: n.target in quant or (
                n.target == torch.ops.aten.view.default and n in moving))
        else:
            merge_common_subexpressions(program, lambda n: n.target in quant)
        if not self.weights:
            return fold_weightless(program, quant)
        return constant_prop_pass(program, custom_skip_targets=set(_DEFAULT_SKIP_TARGETS) | set(_QUANT_PRIMITIVES))

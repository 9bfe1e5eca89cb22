"""Operators the model families share that PyTorch has no single op for.

``lrf::linear_scan`` is the first-order linear recurrence ``h_t = a_t * h_{t-1} + u_t`` along
dim 1 (``h_{-1} = 0``), forward or reversed: the gated linear recurrences (IRIS's RG-LRU,
MicroForge's selective scan) are this scan around elementwise gates. It is one custom op, not a
Python loop in each model, for two reasons:

- training: its backward is the same scan run the other way (below), so autograd records one
  node per scan instead of three per token;
- export: ``torch.export`` keeps it as one node, and one pass (``lrf_export.passes.scan``)
  decides how every target computes it (unrolled, or as a decay matrix), proven against this
  reference on the family's own graphs.
"""

from __future__ import annotations

import torch


@torch.library.custom_op("lrf::linear_scan", mutates_args=())
def linear_scan(a: torch.Tensor, u: torch.Tensor, reverse: bool) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + u_t`` over dim 1 of same-shaped ``a`` and ``u`` (B, L, ...), from
    the last element back to the first when ``reverse``; the reference, token by token."""
    if a.shape != u.shape or a.dim() < 2:
        raise ValueError(f"linear_scan: a {tuple(a.shape)} and u {tuple(u.shape)} must have one shape (B, L, ...)")
    h = torch.empty_like(u)
    order = range(u.shape[1] - 1, -1, -1) if reverse else range(u.shape[1])
    prev = torch.zeros_like(u[:, 0])
    for t in order:
        prev = a[:, t] * prev + u[:, t]
        h[:, t] = prev
    return h


@linear_scan.register_fake
def _(a: torch.Tensor, u: torch.Tensor, reverse: bool) -> torch.Tensor:
    return torch.empty_like(u)


def _setup(ctx, inputs, output) -> None:
    a, _, reverse = inputs
    ctx.save_for_backward(a, output)
    ctx.reverse = reverse


def _backward(ctx, grad: torch.Tensor):
    """The adjoint of a scan is a scan the other way: with G_t = dL/dh_t (through every later h),
    ``G_t = grad_t + a_{t+1} G_{t+1}`` (forward scan), so ``du = G`` and ``da_t = G_t h_{t-1}``."""
    a, h = ctx.saved_tensors
    zero = torch.zeros_like(a[:, :1])
    if ctx.reverse:  # h_t = a_t h_{t+1} + u_t: G runs forward with a_{t-1}; h's neighbour is h_{t+1}
        g = linear_scan(torch.cat([zero, a[:, :-1]], dim=1), grad.contiguous(), False)
        neighbour = torch.cat([h[:, 1:], torch.zeros_like(h[:, :1])], dim=1)
    else:
        g = linear_scan(torch.cat([a[:, 1:], zero], dim=1), grad.contiguous(), True)
        neighbour = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
    return g * neighbour, g, None


linear_scan.register_autograd(_backward, setup_context=_setup)

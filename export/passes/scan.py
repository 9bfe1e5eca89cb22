"""Write ``lrf::linear_scan`` (``h_t = a_t h_{t-1} + u_t`` along dim 1, :mod:`lrf_model.ops`) in
ops every target runs. No runtime has a scan kernel: ExecuTorch would need the custom op
registered in C++, Core ML and ONNX have no converter for it, and XNNPACK delegates no
cumulative sum.

Three forms and a rule choosing between two of them, all program -> program and exact to float
rounding:

- ``unrolled``: one multiply-add per position, the positions concatenated back. L small
  ops, all XNNPACK's (mul, add, slice, cat); cost O(L) per channel.
- ``decay_matrix``: the closed form ``h_t = sum_{s<=t} exp(L_t - L_s) u_s`` with ``L`` the
  running sum of ``log a``: the running sum as a matmul with a constant triangular matrix, the
  masked decay matrix ``exp(L_t - L_s + mask)`` and one batched matmul per channel; O(L^2)
  per channel, a few large ops instead of L small ones;
- ``chunked``: the decay matrix inside chunks of 16 positions, the chunks' end states through one
  more decay matrix over the L/16 chunks: O(L * 16 + (L/16)^2) per channel, a fixed number of ops
  whatever L (Mamba-2's SSD form).
- ``by_length``: unrolled for short scans, chunked for long ones (the default, see :func:`by_length`).

Measured on IRIS's step graph (``benchmarks/scan_forms.py``, partitions, latency and error
against the reference op): :data:`DEFAULT_FORM` is the one every export uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lrf_model.errors import LRFError
from lrf_model.ops import linear_scan  # noqa: F401  (registers lrf::linear_scan)

SCAN = torch.ops.lrf.linear_scan.default


def unrolled(a: torch.Tensor, u: torch.Tensor, reverse: bool) -> torch.Tensor:
    L = u.shape[1]
    order = range(L - 1, -1, -1) if reverse else range(L)
    h, out = None, [None] * L
    for t in order:
        u_t = u.narrow(1, t, 1)  # (B, 1, ...): slices, no select (XNNPACK has static slices, not select)
        h = u_t if h is None else a.narrow(1, t, 1) * h + u_t
        out[t] = h
    return _cat(out)


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along dim 1 in a tree of at most 4-way cats (XNNPACK concatenates 2 to 5 inputs)."""
    while len(parts) > 1:
        parts = [torch.cat(parts[i:i + 4], dim=1) if len(parts[i:i + 4]) > 1 else parts[i] for i in range(0, len(parts), 4)]
    return parts[0]


def _column(x: torch.Tensor) -> torch.Tensor:
    """(..., L) -> (..., L, 1) as a reshape: XNNPACK delegates reshapes, not ``unsqueeze``."""
    return x.reshape(*x.shape, 1)


def _row(x: torch.Tensor) -> torch.Tensor:
    """(..., L) -> (..., 1, L)."""
    return x.reshape(*x.shape[:-1], 1, x.shape[-1])


def _log_decay(a: torch.Tensor) -> torch.Tensor:
    """``log a``, decays of 0 clamped to the dtype's smallest safe value (a decay matrix of exp(-69) is 0)."""
    return torch.log(a.clamp_min(1e-7 if a.dtype == torch.float16 else 1e-30))


def decay_matrix(a: torch.Tensor, u: torch.Tensor, reverse: bool) -> torch.Tensor:
    return _decay_matrix_log(_log_decay(a), u, reverse)


def _decay_matrix_log(log_a: torch.Tensor, u: torch.Tensor, reverse: bool) -> torch.Tensor:
    """:func:`decay_matrix` from ``log a`` (the chunked form's chunk-level scan has its decays as logs)."""
    B, L = u.shape[:2]
    rest = u.shape[2:]
    C = u[0, 0].numel()
    log_a = log_a.reshape(B, L, C).permute(0, 2, 1)  # (B, C, L)
    t, s = torch.arange(L).reshape(L, 1), torch.arange(L).reshape(1, L)
    # Running sums of log a as a product with a triangular 0/1 matrix: cum[t] = sum of log a over (s, t] or [t, s).
    upto = (s <= t) if not reverse else (s >= t)
    cum = F.linear(log_a, upto.to(u.dtype))  # (B, C, L)
    # h_t = sum_{s on t's past side} exp(cum_t - cum_s) u_s; the future side masked to exp(-large) = 0.
    mask = torch.where(upto, 0.0, -1e4).to(u.dtype)  # (L, L)
    decay = torch.exp(_column(cum) - _row(cum) + mask)  # (B, C, L, L)
    uc = u.reshape(B, L, C).permute(0, 2, 1).reshape(B * C, L, 1)
    h = torch.bmm(decay.reshape(B * C, L, L), uc)  # (B*C, L, 1)
    return h.reshape(B, C, L).permute(0, 2, 1).reshape(B, L, *rest)


def chunked(a: torch.Tensor, u: torch.Tensor, reverse: bool, chunk: int = 16) -> torch.Tensor:
    """Mamba-2's SSD form: the decay-matrix form inside chunks of ``chunk`` positions, then the
    chunks' end states as one more decay-matrix scan over the L/chunk chunks (each chunk's total
    decay and its end value from a zero state), each chunk's start state added back in.

    O(L * chunk + (L/chunk)^2) per channel, and a fixed number of ops whatever L: carrying the state
    chunk by chunk instead (L/chunk sequential multiply-adds) made IRIS-Tiny's 512 px step a
    14,700-node graph whose ExecuTorch lowering was killed at 17 GB.
    """
    B, L = u.shape[:2]
    if L % chunk or L <= chunk:
        return decay_matrix(a, u, reverse)
    rest, C, n, K = u.shape[2:], u[0, 0].numel(), L // chunk, chunk
    log_a = _log_decay(a).reshape(B, n, K, C).permute(0, 1, 3, 2)  # (B, n, C, K)
    t, s = torch.arange(K).reshape(K, 1), torch.arange(K).reshape(1, K)
    upto = (s <= t) if not reverse else (s >= t)
    cum = F.linear(log_a, upto.to(u.dtype))  # (B, n, C, K): log of the decay from the chunk's start to t
    mask = torch.where(upto, 0.0, -1e4).to(u.dtype)
    decay = torch.exp(_column(cum) - _row(cum) + mask)  # (B, n, C, K, K)
    uc = u.reshape(B, n, K, C).permute(0, 1, 3, 2).reshape(B * n * C, K, 1)
    local = torch.bmm(decay.reshape(B * n * C, K, K), uc).reshape(B, n, C, K)  # each chunk from a zero state
    last = 0 if reverse else K - 1  # where a chunk hands its state on (and cum holds its total decay)
    # The state leaving chunk j: S_j = exp(total_j) S_{j-1} + local_end_j, a scan over the n chunks.
    ends = _decay_matrix_log(cum.narrow(3, last, 1), local.narrow(3, last, 1), reverse)  # (B, n, C, 1)
    zero = torch.zeros(B, 1, C, 1, dtype=u.dtype)
    # The state entering each chunk: its neighbour's on the past side, zero for the first chunk.
    entering = torch.cat([ends.narrow(1, 1, n - 1), zero] if reverse else [zero, ends.narrow(1, 0, n - 1)], dim=1)
    h = local + torch.exp(cum) * entering  # (B, n, C, K)
    return h.permute(0, 1, 3, 2).reshape(B, L, *rest)


# Scans of up to this many positions are unrolled, longer ones chunked (see :func:`by_length`).
UNROLL_LIMIT = 64


def by_length(a: torch.Tensor, u: torch.Tensor, reverse: bool) -> torch.Tensor:
    """``unrolled`` up to :data:`UNROLL_LIMIT` positions, ``chunked`` beyond.

    Unrolled is the fastest form at run time (one RG-LRU over 256 tokens of width 320, 1 thread:
    1.4 ms on ExecuTorch against chunked's 6.6, 2.2 against 7.4 on ONNX Runtime), but its graph grows
    by a few ops per position: at 256 positions IRIS-Tiny's 32 scans make a 116k-node step (ONNX
    export 262 s against chunked's 108) that ExecuTorch's lowering could not hold in 18 GB, where the
    chunked form, a fixed number of ops at any length, lowers IRIS-Tiny's 512 px step (1,024 tokens)
    in 2.3 GB. At CIFAR-10's 64 tokens unrolled lowers in about two minutes and runs up to 30% faster
    than chunked (ExecuTorch; 20% on ONNX Runtime).
    """
    return (unrolled if u.shape[1] <= UNROLL_LIMIT else chunked)(a, u, reverse)


FORMS = {"by_length": by_length, "unrolled": unrolled, "decay_matrix": decay_matrix, "chunked": chunked}
DEFAULT_FORM = "by_length"


class ScanAsOps:
    """Pass: every ``lrf::linear_scan`` node in the chosen form (a no-op without scans)."""

    name = "linear scan as ops"

    def __init__(self, form: str = DEFAULT_FORM):
        if form not in FORMS:
            raise LRFError(f"unknown scan form '{form}'; use one of {', '.join(FORMS)}")
        self.form = form

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        if not any(n.op == "call_function" and n.target == SCAN for n in program.graph.nodes):
            return program
        return program.run_decompositions({SCAN: FORMS[self.form]})

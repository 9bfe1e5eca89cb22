"""Building blocks the token-layout families (LuminaRS, IRIS, MicroForge) share, each written in
the ops every target runs: the step graphs of these families lower to one XNNPACK partition.

- :class:`LayerNorm`: means as linears with a constant row (XNNPACK has no layer_norm);
- :func:`to_map` / :func:`to_tokens`: (B, N, C) tokens <-> (B, C, S, S) maps;
- :func:`sinusoids` / :func:`one_hot`: the time embedding's input and the class lookup as a
  matmul (no embedding op, which XNNPACK does not run);
- :func:`attention`: softmax attention over heads folded into the batch of 3-D matmuls;
- :class:`ClassTimeConditioned`: the time-embedding MLP and the class-token lookup built from them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm(nn.Module):
    """LayerNorm over the last dim without a learned affine (adaLN supplies it).

    The means are a linear with a constant 1/C row (XNNPACK delegates no layer_norm, and a 3-D
    ``matmul`` with a batch above 1 exports as a broadcast ``expand`` it refuses too, cutting the
    step into a partition per norm)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean_row", torch.full((1, dim), 1.0 / dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - F.linear(x, self.mean_row)  # (B, N, C)
        return d / torch.sqrt(F.linear(d * d + self.eps, self.mean_row))  # eps inside, as LRF's RMSNorm


def to_map(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, N, C) tokens -> (B, C, side, side) map."""
    B, N, C = x.shape
    return x.permute(0, 2, 1).reshape(B, C, side, side)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map -> (B, H*W, C) tokens."""
    B, C, H, W = x.shape
    return x.reshape(B, C, H * W).permute(0, 2, 1)


def frequencies(dim: int) -> torch.Tensor:
    """(1, dim/2) angular frequencies of the sinusoidal time embedding, for t in [0, 1] scaled by 1000."""
    half = dim // 2
    return torch.exp(-math.log(10_000.0) * torch.arange(half) / half).reshape(1, half) * 1000.0


def sinusoids(t: torch.Tensor, freqs: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,) times -> (B, dim) cosines and sines, computed in float32 whatever the model's dtype
    (float16 would keep about one bit of the angle's fraction), then cast to ``dtype``."""
    args = t.reshape(-1, 1).float() * freqs.float()  # (B, dim/2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(dtype)


def one_hot(labels: torch.Tensor, class_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,) class ids -> (B, classes) one-hot rows (``class_ids`` is the (1, classes) buffer 0..n-1)."""
    return (labels.reshape(-1, 1) == class_ids).to(dtype)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head softmax attention of (B, N, C) queries over (B, M, C) keys and values, the heads
    folded into the batch of 3-D ``bmm``s (a 4-D matmul exports as a broadcast XNNPACK refuses)."""
    B, N, C = q.shape
    M, d = k.shape[1], C // heads
    q = q.reshape(B, N, heads, d).permute(0, 2, 1, 3).reshape(B * heads, N, d)
    k = k.reshape(B, M, heads, d).permute(0, 2, 1, 3).reshape(B * heads, M, d)
    v = v.reshape(B, M, heads, d).permute(0, 2, 1, 3).reshape(B * heads, M, d)
    w = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(d), dim=-1)  # (B*heads, N, M)
    return torch.bmm(w, v).reshape(B, heads, N, d).permute(0, 2, 1, 3).reshape(B, N, C)


class ClassTimeConditioned(nn.Module):
    """A denoiser conditioned on time through a two-layer SiLU MLP over :func:`sinusoids` and on its
    class through ``cond_tokens`` learned tokens per class (row ``num_classes``: the null class of
    guidance), looked up as a one-hot matmul. The parameter names (``time_mlp1``, ``time_mlp2``,
    ``class_tokens``) are the saved checkpoints' and stay. List it before ``ModelMixin``: after
    ``ConfigMixin`` its ``__getattr__`` would shadow ``nn.Module``'s lookup of submodules."""

    def init_conditioning(self, time_freq_dim: int, time_dim: int, num_classes: int, cond_tokens: int,
                          cond_dim: int) -> None:
        self.register_buffer("freqs", frequencies(time_freq_dim), persistent=False)
        self.time_mlp1 = nn.Linear(time_freq_dim, time_dim)
        self.time_mlp2 = nn.Linear(time_dim, time_dim)
        self.register_buffer("class_ids", torch.arange(num_classes + 1).reshape(1, -1), persistent=False)
        self.class_tokens = nn.Parameter(torch.randn(num_classes + 1, cond_tokens * cond_dim) * 0.02)
        self._cond_shape = (cond_tokens, cond_dim)

    def conditioning(self, t: torch.Tensor, class_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) times and labels -> time embedding (B, time_dim) and conditioning tokens (B, K, cond_dim)."""
        temb = sinusoids(t, self.freqs, self.time_mlp1.weight.dtype)  # (B, F)
        temb = F.silu(self.time_mlp2(F.silu(self.time_mlp1(temb))))  # (B, time_dim)
        cond = torch.matmul(one_hot(class_labels, self.class_ids, temb.dtype), self.class_tokens)  # (B, K*cond_dim)
        return temb, cond.reshape(-1, *self._cond_shape)

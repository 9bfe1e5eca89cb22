"""Real discrete Fourier transforms as matmuls with constant DFT matrices: the arithmetic of
``torch.fft.rfft``/``rfft2`` and their inverses, on (real, imaginary) pairs, in ops every
runtime and every dtype has.

Two users, one formula: ``lrf_export.passes.fft_matmul`` rewrites a program's FFTs into these
matmuls for the targets (no target runs an FFT), and a float16 model computes its transforms
with them directly (``torch.fft`` has no CPU float16 kernel, so neither eager float16 nor a
float16 trace can call it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def dft_matrices(n: int, bins: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` of ``2 pi k j / n``, shaped (n, bins): row j (sample), column k (frequency).

    Built from ops (``arange``, ``cos``) rather than as a tensor literal, which a decomposition
    cannot lift into the program's constants: the exporter folds them into constants afterwards. In float64, with the angle reduced modulo n, so the rounding is the dtype's alone."""
    j = torch.arange(n, dtype=torch.float64).reshape(n, 1)
    k = torch.arange(bins, dtype=torch.float64).reshape(1, bins)
    angle = (j * k).remainder(n) * (2.0 * math.pi / n)
    return torch.cos(angle).to(dtype), torch.sin(angle).to(dtype)


def _right(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``x @ m`` as a linear layer with a constant weight: XNNPACK's fully-connected op, where a
    batched ``matmul`` with a 2-D operand exports as a broadcast ``expand`` it does not delegate."""
    return F.linear(x, m.transpose(0, 1))


def _left(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` over dim -2 of ``x``, written as a right product."""
    return F.linear(x.transpose(-1, -2), m).transpose(-1, -2)


def rfft_pairs(x: torch.Tensor, two_dims: bool, scale: float) -> torch.Tensor:
    """The onesided real DFT of ``x`` over its last dim (and the full DFT over the one before), as
    matmuls: ``view_as_real(rfft(x))`` (or rfft2), scaled by ``scale``, shaped (..., bins, 2)."""
    H, W = (x.shape[-2] if two_dims else 1), x.shape[-1]
    cw, sw = dft_matrices(W, W // 2 + 1, torch.float64)
    re, im = _right(x, (cw * scale).to(x.dtype)), _right(x, (sw * -scale).to(x.dtype))  # (..., H, bins)
    if two_dims:  # the full DFT along dim -2: (Ch - i Sh)(re + i im)
        ch, sh = dft_matrices(H, H, x.dtype)
        re, im = _left(ch, re) + _left(sh, im), _left(ch, im) - _left(sh, re)
    return torch.stack([re, im], dim=-1)


def irfft_pairs(pairs: torch.Tensor, two_dims: bool, scale: float, last_dim_size: int) -> torch.Tensor:
    """The inverse of :func:`rfft_pairs` (``irfft``/``irfft2`` of ``view_as_complex(pairs)``), as
    matmuls of the (real, imaginary) pairs kept interleaved: no op picks a half out (XNNPACK
    delegates no ``select``)."""  # pairs: (..., H, bins, 2)
    *lead, bins, _ = pairs.shape
    H, W = (lead[-1] if two_dims else 1), last_dim_size
    flat = pairs.reshape(*lead, 2 * bins)  # (..., H, 2*bins): re0, im0, re1, im1, ...
    if two_dims:  # the inverse DFT along dim -2: (Ch + i Sh)(re + i im) = Ch (re, im) + Sh (-im, re)
        ch, sh = dft_matrices(H, H, flat.dtype)
        turned = torch.cat([-pairs[..., 1:2], pairs[..., 0:1]], dim=-1).reshape(*lead, 2 * bins)
        flat = _left(ch, flat) + _left(sh, turned)
    # Hermitian inverse along the last dim: every bin but DC (and Nyquist for even W) counts twice;
    # the imaginary parts of those two bins meet sin(0) = sin(pi w) = 0, as irfft ignores them.
    cw, sw = dft_matrices(W, bins, torch.float64)  # (W, bins)
    k = torch.arange(bins, dtype=torch.float64).reshape(1, bins)
    nyquist = W // 2 if W % 2 == 0 and bins == W // 2 + 1 else -1
    weight = torch.where((k == 0) | (k == nyquist), scale, 2.0 * scale)  # (1, bins)
    inverse = torch.stack([cw * weight, -sw * weight], dim=-1).reshape(W, 2 * bins)  # interleaved like ``flat``
    return F.linear(flat, inverse.to(flat.dtype))  # (..., H, W)

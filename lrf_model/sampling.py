"""Rectified-flow sampling: the schedule, the portable noise generator and the Euler sampler.

Conventions (seed 000): ``z_t = (1 - t) z0 + t eps``, the model predicts ``v = eps - z0``,
and the Euler sampler integrates from t=1 (noise) to t=0 (data): ``z <- z - dt * v``.

Everything a runtime needs to reproduce a sample bit-for-bit lives here and is written so
that C++, Kotlin, Swift and JavaScript can mirror it line for line:
- :func:`schedule` is the one place the list of t values is computed; exporters write its
  output into the bundle manifest and runtimes read it from there.
- :func:`portable_noise` is a counter-based PRNG (a 32-bit integer hash) plus Box-Muller in
  float64, cast to float32 at the end.
- :func:`guided_step` is one classifier-free-guided Euler step: the unit the ``step`` export
  graph contains.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import LRFError

VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def schedule(num_steps: int, shift: float = 1.0) -> list[float]:
    """The ``num_steps + 1`` time points from 1.0 down to 0.0.

    ``shift = 1`` is uniform; ``shift > 1`` spends more steps at high noise (SD3's
    ``t' = shift * t / (1 + (shift - 1) * t)``).
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise LRFError(f"steps={num_steps} is invalid; use at least 1 sampling step")
    if shift <= 0:
        raise LRFError(f"schedule shift={shift} is invalid; use a positive number (1 = uniform)")
    ts = [1.0 - i / num_steps for i in range(num_steps + 1)]
    return [shift * t / (1.0 + (shift - 1.0) * t) for t in ts]


# --- portable noise -------------------------------------------------------------------------

_M32 = np.uint64(0xFFFFFFFF)


def hash32(x: np.ndarray) -> np.ndarray:
    """Chris Wellons' ``lowbias32`` integer hash on uint32 values (vectorised)."""
    x = x.astype(np.uint64) & _M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & _M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & _M32
    x ^= x >> np.uint64(16)
    return x


SEED_SALT = 0x9E3779B9  # keeps seed 0 away from hash32's fixed point hash32(0) == 0


def uniform_bits(seed: int, counters: np.ndarray) -> np.ndarray:
    """32 random bits per counter: ``hash32(key ^ hash32(counter))``, ``key = hash32(seed ^ SEED_SALT)``."""
    key = hash32(np.array([(seed & 0xFFFFFFFF) ^ SEED_SALT], dtype=np.uint64))[0]
    return hash32(key ^ hash32(counters))


def portable_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """Standard normal noise of ``shape`` (float32, row-major) from ``seed``.

    Value ``2k`` and ``2k+1`` come from one Box-Muller pair built from counters ``2k`` and
    ``2k+1``: ``u = ((bits >> 8) + 0.5) / 2**24`` (never 0 or 1),
    ``r = sqrt(-2 ln u1)``, values ``r cos(2 pi u2)`` and ``r sin(2 pi u2)``, computed in
    float64 and rounded to float32.
    """
    n = int(np.prod(shape))
    pairs = (n + 1) // 2
    bits = uniform_bits(seed, np.arange(2 * pairs, dtype=np.uint64))
    u = ((bits >> np.uint64(8)).astype(np.float64) + 0.5) / 16777216.0
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    out = np.empty(2 * pairs, dtype=np.float64)
    out[0::2] = r * np.cos(2.0 * math.pi * u2)
    out[1::2] = r * np.sin(2.0 * math.pi * u2)
    return torch.from_numpy(out[:n].astype(np.float32).reshape(tuple(shape)))


def batch_noise(seeds: Sequence[int], latent_shape: Sequence[int]) -> torch.Tensor:
    """Noise for a batch: image ``j`` uses ``portable_noise(seeds[j], latent_shape)``.

    Per-image seeds (not one seed per batch) mean one seed gives one image whatever the
    batch size, on every runtime.
    """
    return torch.stack([portable_noise(s, latent_shape) for s in seeds])


# --- the sampler ----------------------------------------------------------------------------


def guided_velocity(
    model: Callable[..., torch.Tensor],
    z: torch.Tensor,
    t: torch.Tensor,
    class_labels: torch.Tensor,
    null_class: int,
    cfg_scale: torch.Tensor | float,
    recursions: int | None = None,
) -> torch.Tensor:
    """Classifier-free guided velocity ``v_u + s (v_c - v_u)``, both halves in one batch."""
    B = z.shape[0]
    null = torch.full_like(class_labels, null_class)
    v = model(torch.cat([z, z]), torch.cat([t, t]), torch.cat([class_labels, null]), recursions)
    v_cond, v_uncond = v[:B], v[B:]
    return v_uncond + cfg_scale * (v_cond - v_uncond)


def guided_step(
    model: Callable[..., torch.Tensor],
    z: torch.Tensor,
    t: torch.Tensor,
    dt: torch.Tensor,
    class_labels: torch.Tensor,
    null_class: int,
    cfg_scale: torch.Tensor | float,
    recursions: int | None = None,
) -> torch.Tensor:
    """One Euler step from ``t`` to ``t - dt``: ``z - dt * v_guided``. ``t``, ``dt``: (B,)."""
    v = guided_velocity(model, z, t, class_labels, null_class, cfg_scale, recursions)
    return z - dt.reshape(-1, 1, 1, 1) * v


def integrate(
    model: Callable[..., torch.Tensor],
    noise: torch.Tensor,
    class_labels: torch.Tensor,
    ts: Sequence[float],
    null_class: int,
    cfg_scale: torch.Tensor | float,
    recursions: int | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Euler-integrate from ``noise`` at ``ts[0]`` to ``ts[-1]``; returns the final latent.

    ``callback(i, z)`` is called after step ``i`` (progress bars, trajectory capture).
    Free of any grad context, so ``torch.export`` can unroll it; :func:`sample` is the same
    under ``torch.no_grad``.
    """
    z = noise
    B = z.shape[0]
    for i in range(len(ts) - 1):
        t = torch.full((B,), ts[i], dtype=z.dtype)
        dt = torch.full((B,), ts[i] - ts[i + 1], dtype=z.dtype)
        z = guided_step(model, z, t, dt, class_labels, null_class, cfg_scale, recursions)
        if callback is not None:
            callback(i, z)
    return z


sample = torch.no_grad()(integrate)

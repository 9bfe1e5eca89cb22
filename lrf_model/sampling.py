"""Rectified-flow sampling: the schedule, the portable noise generator and the Euler sampler.

Conventions (seed 000): ``z_t = (1 - t) z0 + t eps``, the model predicts ``v = eps - z0``,
and the Euler sampler integrates from t=1 (noise) to t=0 (data): ``z <- z - dt * v``.

Everything a runtime needs to reproduce a sample bit-for-bit lives here and is written so
that C++, Kotlin, Swift and JavaScript can mirror it line for line:
- :func:`schedule` is the one place the list of t values is computed; exporters write its
  output into the bundle manifest and runtimes read it from there.
- :func:`portable_noise` is :mod:`lrf_model.noise`'s counter-based PRNG (a 32-bit integer
  hash) plus Box-Muller in float64, cast to float32 at the end.
- :func:`guided_step` is one classifier-free-guided Euler step, with inpainting's blend of the
  known region when given: the unit the ``step`` export graph contains (which always blends:
  with a mask of ones the blend is the identity, bit for bit).
"""

from __future__ import annotations

from typing import Callable, Sequence

import math

import torch
import torch.nn.functional as F

from .autoencoder import downsample_factor, encode_pixels
from .errors import LRFError
from .families import family_of
from .noise import noise_array

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


def portable_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """:func:`lrf_model.noise.noise_array` as a tensor: the noise every runtime reproduces."""
    return torch.from_numpy(noise_array(seed, shape))


def batch_noise(seeds: Sequence[int], latent_shape: Sequence[int]) -> torch.Tensor:
    """Noise for a batch: image ``j`` uses ``portable_noise(seeds[j], latent_shape)``.

    Per-image seeds (not one seed per batch) mean one seed gives one image whatever the
    batch size, on every runtime.
    """
    return torch.stack([portable_noise(s, latent_shape) for s in seeds])


# --- the sampler ----------------------------------------------------------------------------


def noised(z0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The point of the straight path at time ``t``: ``(1 - t) z0 + t eps`` (``t``: a float or (B,)).

    Training's noisy input, image-to-image's start latent and inpainting's known region are all
    this one formula; at ``t = 1`` it is ``eps`` exactly and at ``t = 0`` it is ``z0`` exactly."""
    if torch.is_tensor(t):
        t = t.reshape(-1, 1, 1, 1)
    return (1 - t) * z0 + t * eps


def latent_mask(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """Pixel mask (B, 1, H, W) -> latent-grid mask (B, 1, H/f, W/f): 1 where any pixel of the cell is 1."""
    return F.max_pool2d(mask, factor, stride=factor)  # stride explicit: coremltools needs the argument


def edit_start(autoencoder, pixels: torch.Tensor, mask: torch.Tensor, eps: torch.Tensor,
               t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Everything an edit (:mod:`lrf_model.editing`) starts from, in one function (the pipeline's
    and every bundle's ``encoder`` graph): ``known = E(pixels)``, the start latent
    ``noised(known, eps, t)`` and the mask on the latent grid. ``pixels``: 8-bit (B, H, W, 3);
    ``mask``: (B, 1, H, W), ones for image-to-image; ``t``: (B,) float32, the start time ``t_k``
    (a tensor, so that graph and pipeline round alike)."""
    known = encode_pixels(autoencoder, pixels)
    return known, noised(known, eps, t), latent_mask(mask, downsample_factor(autoencoder))


Inpaint = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (known latent, start eps, latent mask (B, 1, S, S))


def inpaint_blend(z: torch.Tensor, known: torch.Tensor, eps: torch.Tensor, mask: torch.Tensor,
                  t: torch.Tensor | float) -> torch.Tensor:
    """Inpainting after a step that reached ``t``: the sample where ``mask`` is 1 (regenerate), the
    known latent noised to ``t`` (with the start's ``eps``) where it is 0. ``mask``: (B, 1, S, S).
    With a mask of ones it returns ``z`` exactly (``1 * z + 0 * finite``)."""
    return mask * z + (1 - mask) * noised(known, eps, t)


def renoised(z: torch.Tensor, t_from: float, t_to: float, noise: torch.Tensor) -> torch.Tensor:
    """A sample at ``t_from`` taken back to ``t_to >= t_from`` along the straight path's marginal:
    ``a z + b noise`` with ``a = (1 - t_to) / (1 - t_from)`` and ``b^2 = t_to^2 - (a t_from)^2``
    (RePaint's step back, for rectified flow). ``noise``: fresh standard normal noise."""
    a = (1 - t_to) / (1 - t_from)
    return a * z + math.sqrt(max(t_to**2 - (a * t_from) ** 2, 0.0)) * noise


def resample_seed(seed: int, step: int, repeat: int) -> int:
    """The portable noise seed of RePaint's step back ``repeat`` of ``step`` for image ``seed``
    (integer arithmetic only, so that any runtime can derive it)."""
    return (seed * 1_000_003 + 7_919 * (step * 64 + repeat + 1)) % 2**32


class CarriedState:
    """A denoiser that carries state from step to step (a family with ``state``: MicroForge's plan)
    as the samplers' velocity function ``(z, t, class_labels, recursions) -> v``: each call feeds the
    state the previous call returned (``state``: the first call's, None for the model's own start)
    and keeps the one it returns. One per trajectory: a guided batch carries both halves' states."""

    def __init__(self, model: Callable[..., tuple[torch.Tensor, dict]], state: dict[str, torch.Tensor] | None = None):
        self.model, self.state = model, state

    def __call__(self, z: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor,
                 recursions: int | None = None) -> torch.Tensor:
        v, self.state = self.model(z, t, class_labels, recursions, state=self.state)
        return v


def velocity_fn(model: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """What the samplers call for any family's denoiser: the model itself, or a fresh
    :class:`CarriedState` around it when its family carries state between steps."""
    return CarriedState(model) if family_of(model).state is not None else model


def guided_velocity(
    model: Callable[..., torch.Tensor],
    z: torch.Tensor,
    t: torch.Tensor,
    class_labels: torch.Tensor,
    null_class: int,
    cfg_scale: torch.Tensor | float,
    recursions: int | None = None,
) -> torch.Tensor:
    """Classifier-free guided velocity ``v_u + s (v_c - v_u)``, both halves in one batch. A scale
    of exactly 1 given as a number (not a tensor: a graph input cannot branch) is the conditional
    velocity alone, at half the cost: what a guidance-distilled model samples with."""
    if not torch.is_tensor(cfg_scale) and cfg_scale == 1:
        return model(z, t, class_labels, recursions)
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
    inpaint: Inpaint | None = None,
) -> torch.Tensor:
    """One Euler step from ``t`` to ``t - dt``: ``z - dt * v_guided``, then, with ``inpaint``, the
    known region put back at ``t - dt`` (:func:`inpaint_blend`). ``t``, ``dt``: (B,).

    The blend's time is ``t - dt`` in the tensors' dtype, not the schedule's next float, so the
    exported step graph (which takes ``t`` and ``dt``) computes exactly this."""
    v = guided_velocity(model, z, t, class_labels, null_class, cfg_scale, recursions)
    z = z - dt.reshape(-1, 1, 1, 1) * v
    return z if inpaint is None else inpaint_blend(z, *inpaint, t - dt)


def integrate(
    model: Callable[..., torch.Tensor],
    noise: torch.Tensor,
    class_labels: torch.Tensor,
    ts: Sequence[float],
    null_class: int,
    cfg_scale: torch.Tensor | float,
    recursions: int | None = None,
    callback: Callable[[int, torch.Tensor, dict | None], None] | None = None,
    inpaint: Inpaint | None = None,
    resample: int = 1,
    fresh_noise: Callable[[int, int], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Euler-integrate from ``noise`` (the start latent) at ``ts[0]`` to ``ts[-1]``; returns the final latent.

    ``inpaint = (known, eps, mask)`` applies :func:`inpaint_blend` after every step (in :func:`guided_step`).
    ``resample > 1`` (RePaint, for inpainting) redoes each step that many times, taking the result
    back to the step's start with ``fresh_noise(step, repeat)`` in between (:func:`renoised`).
    ``callback(i, z, state)`` is called after step ``i`` (progress bars, trajectory capture); ``state``
    is what a :class:`CarriedState` ``model`` carries into the next step (None for other models). Free of any
    grad context, so ``torch.export`` can unroll it; :func:`sample` is the same under ``torch.no_grad``.
    """
    z = noise
    B = z.shape[0]
    for i in range(len(ts) - 1):
        t = torch.full((B,), ts[i], dtype=z.dtype)
        dt = torch.full((B,), ts[i] - ts[i + 1], dtype=z.dtype)
        for u in range(resample):
            if u:
                z = renoised(z, ts[i + 1], ts[i], fresh_noise(i, u - 1))
            z = guided_step(model, z, t, dt, class_labels, null_class, cfg_scale, recursions, inpaint)
        if callback is not None:
            callback(i, z, getattr(model, "state", None))
    return z


sample = torch.no_grad()(integrate)

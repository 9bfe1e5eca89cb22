"""Family ``luminars``: LuminaRS (seed 003), a recursive ConvNeXt U-Net with multi-query
cross-attention, as a rectified-flow velocity model on the latent grid.

One readable file, nanoGPT style. Faithful to the seed where it is specific:
- a U-Net (encoder levels, a bottleneck, decoder levels with skips) of **ConvNeXt blocks**:
  7x7 depthwise conv, LayerNorm modulated by the time embedding (adaptive LayerNorm), a GELU
  MLP (expansion 4), and **multi-query cross-attention** to the conditioning tokens;
- **recursive shared-weight refinement**: ``for _ in range(T): h = h + unet(h, cond, t)``, with
  T chosen at call time (``recursions``, like LRF's R), so the effective depth is T x L;
- **flow matching in the seed's convention**: ``x_t = t x_clean + (1 - t) noise`` and
  ``v = x_clean - noise`` (t = 1 is clean). :meth:`LuminaRSDenoiser.seed_velocity` is that
  network; :meth:`LuminaRSDenoiser.forward` converts at the boundary to the toolkit's
  ``v = noise - z0`` at ``t_toolkit = 1 - t_seed`` (t = 1 is noise), so every sampler, trainer
  and exporter of the toolkit uses it unchanged.

Where it deviates, and why:
- the seed's "z" being refined is read as the U-Net's working feature map ``h`` (a stem conv
  in, a head conv out): refining the 4-to-16-channel latent itself would squeeze every pass
  through the latent's few channels;
- conditioning is a class label turned into ``cond_tokens`` learned tokens (the seed's CLIP text
  tokens' place), so a text encoder's tokens can replace them without touching the U-Net.

Export-minded, like LRF v2's core: the U-Net works on (B, N, C) tokens, so the ConvNeXt
block's 1x1 convs, the resampling and the skip fusion are linears (see :class:`UNet` for why
that matters to INT8 under recursion) and only the depthwise 7x7 conv sees an NCHW map; the
LayerNorm's means are matmuls against a constant vector (XNNPACK has no layer_norm), the class
tokens are a one-hot matmul (no embedding op), and multi-query attention is two 3-D batched
matmuls (the single key/value head is shared by folding the query heads into the token axis).
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from ..errors import ConfigError
from .base import Family, check_class_names, comma_ints
from .layers import ClassTimeConditioned, LayerNorm, to_map, to_tokens


class MultiQueryCrossAttention(nn.Module):
    """Pixels attend to the conditioning tokens: ``heads`` query heads, one shared key/value head."""

    def __init__(self, dim: int, cond_dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm = LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(cond_dim, self.head_dim)
        self.v = nn.Linear(cond_dim, self.head_dim)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)  # starts as the identity of the residual
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h, d = self.heads, self.head_dim
        q = self.q(self.norm(x)).reshape(B, N * h, d)  # (B, N*heads, d): every head of every pixel is one query
        k, v = self.k(cond), self.v(cond)  # (B, K, d) each: the single shared head
        att = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(d), dim=-1)  # (B, N*heads, K)
        return x + self.out(torch.bmm(att, v).reshape(B, N, C))  # (B, N, C)


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise conv -> adaptive LayerNorm (time) -> GELU MLP (x4), then cross-attention.

    GELU in its tanh form, which :class:`lrf_export.passes.xnnpack_ops.ForXnnpack` writes in ops
    XNNPACK runs at every precision (its partitioner refuses a float16 ``gelu``)."""

    def __init__(self, dim: int, side: int, time_dim: int, cond_dim: int, heads: int, kernel_size: int):
        super().__init__()
        self.side = side
        self.dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm(dim)
        self.scale = nn.Linear(time_dim, dim)  # one linear per modulation: no chunk/split in the graph
        self.shift = nn.Linear(time_dim, dim)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)
        nn.init.zeros_(self.pw2.weight)
        nn.init.zeros_(self.pw2.bias)
        self.cross = MultiQueryCrossAttention(dim, cond_dim, heads)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h = self.norm(to_tokens(self.dw(to_map(x, self.side))))  # (B, N, C)
        h = h * (1 + self.scale(temb).reshape(B, 1, C)) + self.shift(temb).reshape(B, 1, C)
        x = x + self.pw2(F.gelu(self.pw1(h), approximate="tanh"))
        return self.cross(x, cond)


class Downsample(nn.Module):
    """A 2x2 stride-2 conv written as space-to-depth + linear, (B, N, C) -> (B, N/4, C')."""

    def __init__(self, dim: int, out_dim: int, side: int):
        super().__init__()
        self.side = side
        self.proj = nn.Linear(4 * dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        s = self.side // 2
        x = x.reshape(B, s, 2, s, 2, C).permute(0, 1, 3, 2, 4, 5).reshape(B, s * s, 4 * C)  # each 2x2 patch
        return self.proj(x)


class Upsample(nn.Module):
    """Linear to the finer level's width, then nearest 2x: (B, N, C') -> (B, 4N, C)."""

    def __init__(self, dim: int, out_dim: int, side: int):
        super().__init__()
        self.side = side
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The linear before the upsampling: the same map as after it, at a quarter of the FLOPs.
        return to_tokens(F.interpolate(to_map(self.proj(x), self.side), scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """The shared-weight body on (B, N, C) tokens: ConvNeXt levels down, a bottleneck, and up, each
    decoder level fusing its skip by concat + linear.

    Every weight-bearing layer that recursion shares is a linear (only the small depthwise convs
    stay convs): ExecuTorch 1.5.1's XNNPACK loads a program that applies one int8 linear twice,
    but refuses one that applies an int8 conv twice ("Failed to create convolution node ...
    xnn_status_invalid_parameter"), which every recursion count above 1 would."""

    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...], bottleneck_depth: int, side: int,
                 time_dim: int, cond_dim: int, heads: int, kernel_size: int):
        super().__init__()
        L = len(widths)
        sides = [side // 2**i for i in range(L)]

        def blocks(i: int, n: int) -> nn.ModuleList:
            return nn.ModuleList(ConvNeXtBlock(widths[i], sides[i], time_dim, cond_dim, heads, kernel_size) for _ in range(n))

        self.down = nn.ModuleList(blocks(i, depths[i]) for i in range(L))
        self.downsample = nn.ModuleList(Downsample(widths[i], widths[i + 1], sides[i]) for i in range(L - 1))
        self.mid = blocks(L - 1, bottleneck_depth)
        self.upsample = nn.ModuleList(Upsample(widths[i + 1], widths[i], sides[i + 1]) for i in range(L - 1))
        self.fuse = nn.ModuleList(nn.Linear(2 * widths[i], widths[i]) for i in range(L))
        self.up = nn.ModuleList(blocks(i, depths[i]) for i in range(L))
        self.out = nn.Linear(widths[0], widths[0])
        nn.init.zeros_(self.out.weight)  # each refinement pass starts as "add nothing"
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, level in enumerate(self.down):
            for block in level:
                x = block(x, temb, cond)
            skips.append(x)
            if i < len(self.downsample):
                x = self.downsample[i](x)  # (B, N/4, C_{i+1})
        for block in self.mid:
            x = block(x, temb, cond)
        for i in reversed(range(len(self.up))):
            if i < len(self.upsample):
                x = self.upsample[i](x)  # (B, 4N, C_i)
            x = self.fuse[i](torch.cat([x, skips[i]], dim=-1))
            for block in self.up[i]:
                x = block(x, temb, cond)
        return self.out(x)


class LuminaRSDenoiser(ClassTimeConditioned, ModelMixin, ConfigMixin):
    """``forward(z (B,C,S,S), t (B,), class_labels (B,), recursions=None) -> v (B,C,S,S)`` in the
    toolkit's convention; :meth:`seed_velocity` is the same network in the seed's."""

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        latent_size: int = 8,
        num_classes: int = 10,
        class_names: list[str] | None = None,
        widths: tuple[int, ...] = (64, 128),
        depths: tuple[int, ...] = (1, 1),
        bottleneck_depth: int = 1,
        heads: int = 4,
        kernel_size: int = 7,
        cond_tokens: int = 4,
        cond_dim: int = 128,
        time_freq_dim: int = 64,
        recursions: int = 2,
        max_recursions: int = 3,
    ):
        super().__init__()
        _validate(latent_size, num_classes, class_names, tuple(widths), tuple(depths), bottleneck_depth, heads,
                  kernel_size, cond_tokens, cond_dim, time_freq_dim, recursions, max_recursions)
        C0, T = widths[0], 4 * widths[0]
        self.init_conditioning(time_freq_dim, T, num_classes, cond_tokens, cond_dim)
        self.stem = nn.Conv2d(latent_channels, C0, 3, padding=1)
        self.unet = UNet(tuple(widths), tuple(depths), bottleneck_depth, latent_size, T, cond_dim, heads, kernel_size)
        self.head_norm = LayerNorm(C0)
        self.head = nn.Conv2d(C0, latent_channels, 3, padding=1)

    def seed_velocity(self, x: torch.Tensor, t_seed: torch.Tensor, class_labels: torch.Tensor,
                      recursions: int | None = None) -> torch.Tensor:
        """The seed's network: ``v = x_clean - noise`` at ``x_t = t x_clean + (1 - t) noise``."""
        R = self.config.recursions if recursions is None else int(recursions)
        if not 1 <= R <= self.config.max_recursions:
            raise ConfigError(f"recursions={R} is out of range; use 1..{self.config.max_recursions}")
        temb, cond = self.conditioning(t_seed, class_labels)
        h = to_tokens(self.stem(x))  # (B, S*S, C0)
        for _ in range(R):  # shared weights; a static loop that export unrolls
            h = h + self.unet(h, temb, cond)
        return self.head(to_map(F.silu(self.head_norm(h)), x.shape[-1]))  # (B, C, S, S)

    def forward(self, z: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor,
                recursions: int | None = None) -> torch.Tensor:
        # Toolkit: z_t = (1 - t) z0 + t noise, v = noise - z0. Seed: t_seed = 1 - t, v_seed = -v.
        return -self.seed_velocity(z, 1.0 - t, class_labels, recursions)


# The seed's published size: a ~90M U-Net (encoder ~35M, bottleneck ~15M, decoder ~35M, embeds ~5M)
# on 16 x 32 x 32 latents (256 px through an f=8, 16-channel VAE), conditioned on CLIP text tokens
# (77 x 768, here as many learned tokens per class). Measured by :func:`parameter_budget`: 35.7 /
# 15.7 / 35.9 / 2.1M, 89.4M in all; the embeddings are smaller than the seed's because its text
# path (CLIP's projection) is the text encoder's here.
PUBLISHED_CONFIG = dict(latent_channels=16, latent_size=32, widths=(288, 576, 768), depths=(2, 3, 2), bottleneck_depth=2,
                        heads=8, cond_tokens=77, cond_dim=768)


def parameter_budget(model: LuminaRSDenoiser) -> dict[str, int]:
    """Parameters per part, as the seed's budget table counts them."""
    parts = {"encoder": ("unet.down.", "unet.downsample."), "bottleneck": ("unet.mid.",),
             "decoder": ("unet.up.", "unet.upsample.", "unet.fuse.", "unet.out.")}
    budget = dict.fromkeys([*parts, "embeds"], 0)
    for name, p in model.named_parameters():
        part = next((k for k, prefixes in parts.items() if name.startswith(prefixes)), "embeds")
        budget[part] += p.numel()
    return budget


def _validate(latent_size: int, num_classes: int, class_names, widths: tuple[int, ...], depths: tuple[int, ...],
              bottleneck_depth: int, heads: int, kernel_size: int, cond_tokens: int, cond_dim: int, time_freq_dim: int,
              recursions: int, max_recursions: int) -> None:
    if not widths or len(widths) != len(depths):
        raise ConfigError(f"config: widths {widths} and depths {depths} need the same non-zero length (one per level)")
    if heads < 1 or any(c % heads for c in widths):
        raise ConfigError(f"config: heads={heads} must be positive and divide every width {widths}")
    if latent_size % (2 ** (len(widths) - 1)):
        raise ConfigError(f"config: latent_size {latent_size} cannot be halved {len(widths) - 1} times; "
                          "use fewer levels or a larger latent")
    if min(*depths, bottleneck_depth, cond_tokens, cond_dim, num_classes) < 1 or kernel_size % 2 == 0 or time_freq_dim % 2:
        raise ConfigError("config: depths, bottleneck_depth, cond_tokens, cond_dim and num_classes must be positive, "
                          "kernel_size and time_freq_dim odd and even respectively")
    if not 1 <= recursions <= max_recursions:
        raise ConfigError(f"config: recursions={recursions} must lie in 1..max_recursions={max_recursions}")
    check_class_names(class_names, num_classes)


def _add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--widths", type=comma_ints, default=(64, 128), help="LuminaRS: U-Net width per level (comma-separated)")
    g.add_argument("--depths", type=comma_ints, default=(1, 1), help="LuminaRS: ConvNeXt blocks per level, each side")
    g.add_argument("--bottleneck-depth", type=int, default=1, help="LuminaRS: ConvNeXt blocks in the bottleneck")


def _config_from_args(args: argparse.Namespace) -> dict:
    return dict(widths=args.widths, depths=args.depths, bottleneck_depth=args.bottleneck_depth, cond_tokens=args.cond_tokens,
                recursions=args.recursions, max_recursions=max(args.recursion_choices))


LUMINARS = Family(
    name="luminars",
    model_class=LuminaRSDenoiser,
    description="LuminaRS (seed 003): recursive ConvNeXt U-Net, adaptive LayerNorm, multi-query cross-attention",
    # Every linear (the MLP, attention, modulation, resampling, skip fusion, time MLP), none of the
    # convs: the stem and head on the latent, whose error lands in the velocity unscaled (LRF's and
    # the UNet's first and last layers stay float too), and the 7x7 depthwise convs (5% of the
    # weights), which recursion applies more than once (see :class:`UNet`).
    int8_module_types=(nn.Linear,),
    int8_min_share=0.85,
    recursive=True,
    train_recursions=(1, 2, 3),
    add_arguments=_add_arguments,
    config_from_args=_config_from_args,
    tiny_config=dict(widths=(32, 64), depths=(1, 1), bottleneck_depth=1, heads=4, cond_tokens=2, cond_dim=32,
                     time_freq_dim=16, recursions=2, max_recursions=3),
    resume_keys=("widths", "depths", "bottleneck_depth", "cond_tokens", "recursions", "recursion_choices"),
    # The seed's stage 2 trains the cross-attention alone (lrf-train --init-from RUN --train-only cross_attention).
    train_groups={"cross_attention": (MultiQueryCrossAttention,)},
)

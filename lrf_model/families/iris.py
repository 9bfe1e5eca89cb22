"""Family ``iris``: IRIS (seed 001), a Prelude-Core-Coda denoiser whose shared-weight core mixes
tokens with the Gated Recurrent Fourier Mixer (GRFM), as a rectified-flow velocity model.

One readable file, nanoGPT style. Faithful to the seed:
- **Prelude**: 2 conv blocks (unique weights, adaLN from the time embedding);
- **Core**: ``core_depth`` layers of [GRFM -> cross-attention to the conditioning tokens -> FFN],
  with shared weights iterated r times (``recursions``, chosen at call time), iteration-aware
  through adaLN (an embedding of the iteration index added to the time embedding), r drawn from
  a set in training;
- **Coda**: 2 local-attention blocks (self-attention inside ``window`` x ``window`` tiles);
  a **long skip** from the prelude to the coda;
- **GRFM**: ``out = gate * x_fourier + (1 - gate) * x_recurrent + alpha * x_spatial`` with
  - Fourier: rfft2 over the token grid -> block-diagonal complex MLP -> softshrink -> irfft2;
  - bidirectional RG-LRU over the tokens in raster order:
    ``h_t = a_t h_{t-1} + sqrt(1 - a_t^2) (i_t x_t)``, ``a_t = sigmoid(Lambda)^(c sigmoid(W_a x_t))``, c = 8;
  - Manhattan spatial decay attention: ``softmax(q k^T) * gamma_head^(|dr| + |dc|)`` (RMT's form);
- velocity ``v = noise - z0`` at ``z_t = (1 - t) z0 + t noise``: the seed's convention is the toolkit's;
- adaLN-Zero: every residual branch's gate starts at zero, so the model starts as the identity
  of its stem and head.

Where it deviates, and why:
- conditioning is a class label turned into ``cond_tokens`` learned tokens in CLIP's place, so a
  text encoder's tokens can replace them later without touching the core;
- the Fourier MLP's complex product is the real block matrix ``[[Wr, Wi], [-Wi, Wr]]`` applied
  to (real, imaginary) pairs, one batched matmul per layer (no complex arithmetic, which no
  target runs); ``lrf_export.passes.fft_matmul`` turns the FFTs into DFT matmuls for every
  target, and a float16 model computes those matmuls itself (:mod:`lrf_model.dft`: ``torch.fft``
  has no CPU float16 kernel), a bfloat16 one (training's autocast) its FFTs in float32;
- softshrink is written ``x - clamp(x, -l, l)`` (the same function; ``torch.export`` would
  otherwise decompose ``softshrink`` into masks and ``where``);
- the scans are ``lrf::linear_scan`` (:mod:`lrf_model.ops`), which ``lrf_export.passes.scan``
  writes out per target.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from ..dft import irfft_pairs, rfft_pairs
from ..errors import ConfigError
from ..ops import linear_scan
from .base import Family, check_class_names
from .layers import ClassTimeConditioned, LayerNorm, attention, to_map, to_tokens


class Modulation(nn.Module):
    """adaLN-Zero for one residual branch: ``x + gate * f(norm(x) * (1 + scale) + shift)``, with
    shift, scale and gate linear in the conditioning vector (one linear each: no chunk/split in
    the graph) and the gate zero-initialised."""

    def __init__(self, dim: int, cond_dim: int):
        super().__init__()
        self.norm = LayerNorm(dim)
        self.shift, self.scale, self.gate = (nn.Linear(cond_dim, dim) for _ in range(3))
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, branch) -> torch.Tensor:
        B, N, C = x.shape
        h = self.norm(x) * (1 + self.scale(c).reshape(B, 1, C)) + self.shift(c).reshape(B, 1, C)
        return x + self.gate(c).reshape(B, 1, C) * branch(h)


class FFN(nn.Module):
    def __init__(self, dim: int, expansion: int):
        super().__init__()
        self.up, self.down = nn.Linear(dim, expansion * dim), nn.Linear(expansion * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x), approximate="tanh"))


def softshrink(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """``sign(x) max(|x| - l, 0)``, written as ``x - clamp(x, -l, l)``."""
    return x - torch.clamp(x, -threshold, threshold)


class FourierMixer(nn.Module):
    """AFNO's global pathway on the (side x side) token grid: rfft2 -> block-diagonal complex
    2-layer MLP on the channels of every frequency -> softshrink -> irfft2."""

    def __init__(self, dim: int, side: int, blocks: int, threshold: float = 0.01):
        super().__init__()
        self.side, self.blocks, self.bs, self.threshold = side, blocks, dim // blocks, threshold
        bs = self.bs
        self.w1r, self.w1i, self.w2r, self.w2i = (nn.Parameter(torch.randn(blocks, bs, bs) * 0.02) for _ in range(4))
        self.b1, self.b2 = nn.Parameter(torch.zeros(blocks, 1, 2 * bs)), nn.Parameter(torch.zeros(blocks, 1, 2 * bs))

    @staticmethod
    def complex_weight(wr: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
        """(blocks, bs, bs) real and imaginary parts -> the real (blocks, 2bs, 2bs) matrix that
        multiplies ``[re, im]`` rows as the complex weight multiplies ``re + i im``."""
        return torch.cat([torch.cat([wr, wi], dim=2), torch.cat([-wi, wr], dim=2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        S, F_, nb, bs = self.side, self.side // 2 + 1, self.blocks, self.bs
        half = x.dtype == torch.float16  # torch.fft has no CPU float16 kernel: the same DFT as matmuls
        if half:
            pairs = rfft_pairs(to_map(x, S), True, 1.0 / S)  # (B, C, S, F, 2), "ortho": 1/sqrt(S*S)
        else:
            pairs = torch.view_as_real(torch.fft.rfft2(to_map(x, S).float(), norm="ortho")).to(x.dtype)
        h = pairs.reshape(B, nb, bs, S, F_, 2).permute(1, 0, 3, 4, 5, 2).reshape(nb, B * S * F_, 2 * bs)  # (nb, M, [re, im])
        h = F.relu(torch.bmm(h, self.complex_weight(self.w1r, self.w1i)) + self.b1)
        h = softshrink(torch.bmm(h, self.complex_weight(self.w2r, self.w2i)) + self.b2, self.threshold)
        pairs = h.reshape(nb, B, S, F_, 2, bs).permute(1, 0, 5, 2, 3, 4).reshape(B, C, S, F_, 2)
        if half:
            return to_tokens(irfft_pairs(pairs, True, 1.0 / S, S))
        spectrum = torch.view_as_complex(pairs.float().contiguous())
        return to_tokens(torch.fft.irfft2(spectrum, s=(S, S), norm="ortho").to(x.dtype))  # (B, N, C)


class RGLRU(nn.Module):
    """Griffin's Real-Gated Linear Recurrent Unit, run both ways over the tokens and summed."""

    def __init__(self, dim: int, c: float = 8.0):
        super().__init__()
        self.c = c
        self.gate_a, self.gate_x = nn.Linear(dim, dim), nn.Linear(dim, dim)
        # Griffin's init: a^c uniform in [0.9, 0.999], so sigmoid(Lambda) = a.
        a = torch.empty(dim).uniform_(0.9**2, 0.999**2).sqrt() ** (1.0 / c)
        self.decay = nn.Parameter(torch.log(a / (1 - a)))  # Lambda

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_a = self.c * torch.sigmoid(self.gate_a(x)) * F.logsigmoid(self.decay)  # (B, N, C), <= 0
        a = torch.exp(log_a)
        u = torch.sqrt((1 - a * a).clamp_min(1e-6)) * (torch.sigmoid(self.gate_x(x)) * x)
        return linear_scan(a, u, False) + linear_scan(a, u, True)


class ManhattanAttention(nn.Module):
    """Multi-head self-attention whose weights decay with the tokens' Manhattan distance on the
    grid, ``gamma_head ** (|row_n - row_m| + |col_n - col_m|)``, gamma learned per head."""

    def __init__(self, dim: int, side: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        r, c = torch.arange(side).repeat_interleave(side), torch.arange(side).repeat(side)
        self.register_buffer("distance", ((r[:, None] - r[None]).abs() + (c[:, None] - c[None]).abs()).float(),
                             persistent=False)  # (N, N)
        # Multi-scale: gamma from 1 - 1/2 (local) to 1 - 1/2^(heads+1) (near-global), as RMT's.
        gamma = 1 - 2.0 ** (-1.0 - torch.arange(heads, dtype=torch.float32) * 4.0 / max(heads - 1, 1))
        self.decay = nn.Parameter(torch.log(gamma / (1 - gamma)))  # gamma = sigmoid(decay)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        h, d = self.heads, C // self.heads
        q = self.q(x).reshape(B, N, h, d).permute(0, 2, 1, 3).reshape(B * h, N, d)
        k = self.k(x).reshape(B, N, h, d).permute(0, 2, 1, 3).reshape(B * h, N, d)
        v = self.v(x).reshape(B, N, h, d).permute(0, 2, 1, 3).reshape(B * h, N, d)
        w = torch.softmax(torch.bmm(q, k.transpose(1, 2)) / math.sqrt(d), dim=-1)  # (B*h, N, N)
        decay = torch.exp(self.distance * F.logsigmoid(self.decay).reshape(h, 1, 1))  # (h, N, N)
        w = (w.reshape(B, h, N, N) * decay).reshape(B * h, N, N)
        return torch.bmm(w, v).reshape(B, h, N, d).permute(0, 2, 1, 3).reshape(B, N, C)


class GRFM(nn.Module):
    """The Gated Recurrent Fourier Mixer: three pathways, a learned gate, a learned alpha."""

    def __init__(self, dim: int, side: int, heads: int, fourier_blocks: int):
        super().__init__()
        self.fourier = FourierMixer(dim, side, fourier_blocks)
        self.recurrent = RGLRU(dim)
        self.spatial = ManhattanAttention(dim, side, heads)
        self.gate = nn.Linear(dim, dim)
        self.alpha = nn.Parameter(torch.full((1,), 0.5))
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(x))
        return self.out(g * self.fourier(x) + (1 - g) * self.recurrent(x) + self.alpha * self.spatial(x))


class CrossAttention(nn.Module):
    """Tokens attend to the conditioning tokens (the seed's CLIP text tokens' place)."""

    def __init__(self, dim: int, cond_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = LayerNorm(dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(cond_dim, dim), nn.Linear(cond_dim, dim)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)  # starts as the identity of the residual
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return x + self.out(attention(self.q(self.norm(x)), self.k(cond), self.v(cond), self.heads))


class CoreLayer(nn.Module):
    """GRFM -> cross-attention -> FFN; the core iterates a stack of these with shared weights."""

    def __init__(self, dim: int, side: int, cond_dim: int, heads: int, fourier_blocks: int, expansion: int):
        super().__init__()
        self.mix_mod, self.ffn_mod = Modulation(dim, dim), Modulation(dim, dim)
        self.mixer = GRFM(dim, side, heads, fourier_blocks)
        self.cross = CrossAttention(dim, cond_dim, heads)
        self.ffn = FFN(dim, expansion)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.mix_mod(x, c, self.mixer)
        x = self.cross(x, cond)
        return self.ffn_mod(x, c, self.ffn)


class ConvBlock(nn.Module):
    """Prelude block: adaLN -> 3x3 depthwise conv -> GELU MLP, one gated residual."""

    def __init__(self, dim: int, side: int, expansion: int):
        super().__init__()
        self.side = side
        self.mod = Modulation(dim, dim)
        self.dw = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.ffn = FFN(dim, expansion)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.mod(x, c, lambda h: self.ffn(to_tokens(self.dw(to_map(h, self.side)))))


class LocalAttentionBlock(nn.Module):
    """Coda block: self-attention inside non-overlapping ``window`` x ``window`` tiles, then an FFN."""

    def __init__(self, dim: int, side: int, heads: int, window: int, expansion: int):
        super().__init__()
        self.side, self.window, self.heads = side, window, heads
        self.attn_mod, self.ffn_mod = Modulation(dim, dim), Modulation(dim, dim)
        self.qkv = nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)
        self.ffn = FFN(dim, expansion)

    def local_attention(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        S, w = self.side, self.window
        n = S // w
        tiles = x.reshape(B, n, w, n, w, C).permute(0, 1, 3, 2, 4, 5).reshape(B * n * n, w * w, C)  # (B*tiles, w*w, C)
        out = attention(*(lin(tiles) for lin in self.qkv), self.heads)
        out = out.reshape(B, n, n, w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(B, N, C)
        return self.proj(out)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.ffn_mod(self.attn_mod(x, c, self.local_attention), c, self.ffn)


class IRISDenoiser(ClassTimeConditioned, ModelMixin, ConfigMixin):
    """``forward(z (B,C,S,S), t (B,), class_labels (B,), recursions=None) -> v (B,C,S,S)``."""

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        latent_size: int = 8,
        num_classes: int = 10,
        class_names: list[str] | None = None,
        dim: int = 128,
        core_depth: int = 1,
        heads: int = 4,
        fourier_blocks: int = 4,
        window: int = 4,
        expansion: int = 4,
        cond_tokens: int = 4,
        cond_dim: int = 128,
        time_freq_dim: int = 64,
        recursions: int = 4,
        max_recursions: int = 8,
    ):
        super().__init__()
        _validate(latent_size, num_classes, class_names, dim, core_depth, heads, fourier_blocks, window, cond_tokens,
                  cond_dim, time_freq_dim, recursions, max_recursions)
        S = latent_size
        self.init_conditioning(time_freq_dim, dim, num_classes, cond_tokens, cond_dim)
        self.iteration_embedding = nn.Parameter(torch.zeros(max_recursions, dim))
        self.stem = nn.Conv2d(latent_channels, dim, 3, padding=1)
        self.prelude = nn.ModuleList(ConvBlock(dim, S, expansion) for _ in range(2))
        self.core = nn.ModuleList(CoreLayer(dim, S, cond_dim, heads, fourier_blocks, expansion) for _ in range(core_depth))
        self.skip = nn.Linear(2 * dim, dim)
        self.coda = nn.ModuleList(LocalAttentionBlock(dim, S, heads, window, expansion) for _ in range(2))
        self.head_norm = LayerNorm(dim)
        self.head = nn.Linear(dim, latent_channels)

    def forward(self, z: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor,
                recursions: int | None = None) -> torch.Tensor:
        R = self.config.recursions if recursions is None else int(recursions)
        if not 1 <= R <= self.config.max_recursions:
            raise ConfigError(f"recursions={R} is out of range; use 1..{self.config.max_recursions}")
        temb, cond = self.conditioning(t, class_labels)  # (B, D), (B, K, cond_dim)
        x = to_tokens(self.stem(z))  # (B, N, D)
        for block in self.prelude:
            x = block(x, temb)
        prelude = x
        for r in range(R):  # shared weights, a static loop that export unrolls; adaLN knows the iteration
            c = temb + self.iteration_embedding[r]
            for layer in self.core:
                x = layer(x, c, cond)
        x = self.skip(torch.cat([x, prelude], dim=-1))  # the long skip
        for block in self.coda:
            x = block(x, temb)
        return to_map(self.head(self.head_norm(x)), z.shape[-1])  # (B, C, S, S)


# IRIS-Tiny as the seed publishes it: a 19M generator on the 16 x 16 x 16 wavelet latent of 256 px
# images (f=16), conditioned on CLIP-L/14's 77 x 768 text tokens (here as many learned tokens per
# class: the text encoder is its own artifact), 4 mobile core iterations, up to 16. A 4-layer core
# of width 320: 18.6M parameters (the 0.65M class-token table included).
PUBLISHED_CONFIG = dict(latent_channels=16, latent_size=16, dim=320, core_depth=4, heads=5, fourier_blocks=8, window=4,
                        cond_tokens=77, cond_dim=768, recursions=4, max_recursions=16)


def snr_weight(t: torch.Tensor) -> torch.Tensor:
    """The seed's loss weight ``t / (1 - t)``, clamped to [0.1, 5] (it is unbounded at t -> 1)."""
    return (t / (1 - t).clamp_min(1e-4)).clamp(0.1, 5.0)


def _validate(latent_size: int, num_classes: int, class_names, dim: int, core_depth: int, heads: int, fourier_blocks: int,
              window: int, cond_tokens: int, cond_dim: int, time_freq_dim: int, recursions: int, max_recursions: int) -> None:
    if heads < 1 or dim % heads or fourier_blocks < 1 or dim % fourier_blocks:
        raise ConfigError(f"config: heads={heads} and fourier_blocks={fourier_blocks} must be positive and divide dim={dim}")
    if window < 1 or latent_size % window:
        raise ConfigError(f"config: window={window} must divide latent_size={latent_size} (the coda's tiles)")
    if min(core_depth, cond_tokens, cond_dim, num_classes) < 1 or time_freq_dim % 2:
        raise ConfigError("config: core_depth, cond_tokens, cond_dim and num_classes must be positive, time_freq_dim even")
    if not 1 <= recursions <= max_recursions:
        raise ConfigError(f"config: recursions={recursions} must lie in 1..max_recursions={max_recursions}")
    check_class_names(class_names, num_classes)


def _add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--core-depth", type=int, default=1, help="IRIS: layers in the shared-weight core")
    g.add_argument("--fourier-blocks", type=int, default=4, help="IRIS: blocks of the Fourier MLP's block-diagonal weight")


def _config_from_args(args: argparse.Namespace) -> dict:
    return dict(dim=args.dim, core_depth=args.core_depth, fourier_blocks=args.fourier_blocks, cond_tokens=args.cond_tokens,
                recursions=args.recursions, max_recursions=max(args.recursion_choices))


IRIS = Family(
    name="iris",
    model_class=IRISDenoiser,
    description="IRIS (seed 001): Prelude-Core-Coda, GRFM token mixer (Fourier, RG-LRU, Manhattan decay), shared-weight core",
    # Every linear but the head (the velocity's last layer, float in every family); the Fourier
    # MLP's block weights are batched matmuls, not linears, and stay float.
    int8_module_types=(nn.Linear,),
    int8_excluded=("head",),
    int8_min_share=0.8,
    recursive=True,
    train_recursions=(2, 4, 6, 8),
    add_arguments=_add_arguments,
    config_from_args=_config_from_args,
    # A 4 x 4 latent: the unrolled scans' lowering time grows with the tokens (CI time)
    tiny_config=dict(latent_size=4, dim=48, core_depth=1, heads=2, fourier_blocks=2, window=4, expansion=2, cond_tokens=2,
                     cond_dim=48, time_freq_dim=16, recursions=1, max_recursions=2),
    resume_keys=("dim", "core_depth", "fourier_blocks", "cond_tokens", "recursions", "recursion_choices"),
    loss_weight=snr_weight,
)

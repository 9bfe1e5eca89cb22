"""LRF v2 denoiser: a recursive latent core that predicts the rectified-flow velocity.

One readable file, nanoGPT style. The core is ``num_blocks`` transformer-style blocks whose
weights are *shared* across ``recursions`` passes (seed 000's recursive refinement; seed
001's budget-adaptive depth: R is chosen at call time, and a learned embedding of the pass
index tells the blocks which pass they are in).

Designed for export from the first line:
- static shapes; the only Python control flow is the loop over a fixed R (unrolled by tracing);
- every op is one that XNNPACK, CoreML and ONNX run natively: linear, 3-D bmm, softmax,
  depthwise conv2d, permute/reshape, add/mul/div/sqrt, sigmoid. In particular: RMSNorm is
  written by hand with its mean as a matmul against a constant vector (XNNPACK does not
  delegate ``mean`` over the last dim of a 3-D tensor), adaLN uses one linear per modulation
  (no ``chunk``/``split``), attention uses 3-D ``bmm`` (no 4-D batched matmul with
  ``expand``), and class embedding is a one-hot matmul (no ``embedding``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .errors import ConfigError

MIXERS = ("softmax", "linear")


class RMSNorm(nn.Module):
    """RMSNorm without a learned scale (adaLN supplies it); mean computed as a matmul."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean_vec", torch.full((dim, 1), 1.0 / dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean(x^2 + eps) == mean(x^2) + eps; adding eps before the matmul avoids a
        # "matmul + scalar" pattern that coremltools 9.0's fuse_linear_bias pass crashes on.
        ms = torch.matmul(x * x + self.eps, self.mean_vec)  # (B, N, 1)
        return x / torch.sqrt(ms)


class SpatialMixer(nn.Module):
    """Global attention (softmax or softmax-free linear) plus a local 3x3 depthwise conv."""

    def __init__(self, dim: int, heads: int, side: int, mixer: str):
        super().__init__()
        self.heads, self.side, self.mixer = heads, side, mixer
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.local = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        # Token sum for linear attention as a matmul with a constant (XNNPACK runs no 'sum').
        self.register_buffer("token_ones", torch.ones(1, side * side), persistent=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        x = x.reshape(B, N, self.heads, D // self.heads).permute(0, 2, 1, 3)  # (B, heads, N, dh)
        return x.reshape(B * self.heads, N, D // self.heads)  # (B*heads, N, dh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        if self.mixer == "softmax":
            scores = torch.bmm(q, k.transpose(1, 2)) * (1.0 / math.sqrt(D // self.heads))  # (B*h, N, N)
            out = torch.bmm(torch.softmax(scores, dim=-1), v)  # (B*h, N, dh)
        else:  # linear attention with a ReLU feature map: O(N d^2) instead of O(N^2 d)
            q, k = F.relu(q) + 1e-3, F.relu(k) + 1e-3
            kv = torch.bmm(k.transpose(1, 2), v)  # (B*h, dh, dh)
            ksum = F.linear(k.transpose(1, 2), self.token_ones)  # (B*h, dh, 1)
            out = torch.bmm(q, kv) / torch.bmm(q, ksum)  # (B*h, N, dh)
        out = out.reshape(B, self.heads, N, D // self.heads).permute(0, 2, 1, 3).reshape(B, N, D)
        grid = x.permute(0, 2, 1).reshape(B, D, self.side, self.side)  # (B, D, H, W)
        local = self.local(grid).reshape(B, D, N).permute(0, 2, 1)  # (B, N, D)
        return self.proj(out) + local


class Block(nn.Module):
    """Pre-norm block with adaLN-Zero modulation from the conditioning vector."""

    def __init__(self, dim: int, heads: int, side: int, mlp_ratio: float, mixer: str):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm = RMSNorm(dim)
        self.mix = SpatialMixer(dim, heads, side, mixer)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        # One linear per modulation (shift, scale, gate for mixer and MLP): no chunk/split.
        self.mod = nn.ModuleList(nn.Linear(dim, dim) for _ in range(6))
        for m in self.mod:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = (m(c).reshape(B, 1, D) for m in self.mod)
        x = x + gate1 * self.mix(self.norm(x) * (1 + scale1) + shift1)
        h = self.norm(x) * (1 + scale2) + shift2
        return x + gate2 * self.fc2(F.silu(self.fc1(h)))


class LRFDenoiser(ModelMixin, ConfigMixin):
    """Predicts the velocity ``v = noise - z0`` of a latent ``z_t`` at time ``t`` for a class.

    ``forward(z (B,C,S,S), t (B,), class_labels (B,) int, recursions=None) -> v (B,C,S,S)``.
    Class id ``num_classes`` is the null class used for classifier-free guidance;
    ``class_names`` (saved in the config) name the others. Family ``lrf`` of
    :mod:`lrf_model.families`.
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        latent_size: int = 8,
        hidden_dim: int = 144,
        num_blocks: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        num_classes: int = 10,
        recursions: int = 2,
        max_recursions: int = 4,
        mixer: str = "softmax",
        time_freq_dim: int = 64,
        class_names: list[str] | None = None,
    ):
        super().__init__()
        _validate(dict(latent_channels=latent_channels, latent_size=latent_size, hidden_dim=hidden_dim,
                       num_blocks=num_blocks, num_heads=num_heads, mlp_ratio=mlp_ratio, num_classes=num_classes,
                       recursions=recursions, max_recursions=max_recursions, mixer=mixer, time_freq_dim=time_freq_dim,
                       class_names=class_names))
        D, N = hidden_dim, latent_size * latent_size
        self.embed = nn.Linear(latent_channels, D)
        self.pos = nn.Parameter(torch.randn(1, N, D) * 0.02)
        half = time_freq_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10_000.0) * torch.arange(half) / half).reshape(1, half) * 1000.0,
                             persistent=False)
        self.time_mlp1 = nn.Linear(time_freq_dim, D)
        self.time_mlp2 = nn.Linear(D, D)
        self.register_buffer("class_ids", torch.arange(num_classes + 1).reshape(1, -1), persistent=False)
        self.class_table = nn.Parameter(torch.randn(num_classes + 1, D) * 0.02)
        self.pass_table = nn.Parameter(torch.randn(max_recursions, D) * 0.02)
        self.blocks = nn.ModuleList(Block(D, num_heads, latent_size, mlp_ratio, mixer) for _ in range(num_blocks))
        self.final_norm = RMSNorm(D)
        self.final_shift = nn.Linear(D, D)
        self.final_scale = nn.Linear(D, D)
        self.out = nn.Linear(D, latent_channels)
        for m in (self.final_shift, self.final_scale, self.out):  # zero-initialised output
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def condition(self, t: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        """Time + class conditioning vector, (B, D)."""
        # The sinusoids in float32 whatever the model's dtype (as diffusers' timestep embedding):
        # in float16 the arguments (up to ~1000) would keep one bit of fraction.
        args = t.reshape(-1, 1).float() * self.freqs.float()  # (B, F/2)
        temb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.time_mlp1.weight.dtype)  # (B, F)
        temb = self.time_mlp2(F.silu(self.time_mlp1(temb)))  # (B, D)
        onehot = (class_labels.reshape(-1, 1) == self.class_ids).to(temb.dtype)  # (B, K+1)
        return temb + torch.matmul(onehot, self.class_table)  # (B, D)

    def forward(self, z: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor, recursions: int | None = None) -> torch.Tensor:
        R = self.config.recursions if recursions is None else int(recursions)
        if not 1 <= R <= self.config.max_recursions:
            raise ConfigError(f"recursions={R} is out of range; use 1..{self.config.max_recursions}")
        B, C, S, _ = z.shape
        x = self.embed(z.reshape(B, C, S * S).permute(0, 2, 1)) + self.pos  # (B, N, D)
        c = self.condition(t, class_labels)  # (B, D)
        for r in range(R):  # shared weights, R passes; a static loop that export unrolls
            cr = F.silu(c + self.pass_table[r : r + 1])  # (B, D)
            for block in self.blocks:
                x = block(x, cr)
        cf = F.silu(c)
        B_, N, D = x.shape
        x = self.final_norm(x) * (1 + self.final_scale(cf).reshape(B, 1, D)) + self.final_shift(cf).reshape(B, 1, D)
        v = self.out(x)  # (B, N, C)
        return v.permute(0, 2, 1).reshape(B, C, S, S)


def _validate(cfg: dict) -> None:
    """Raise ConfigError naming the first invalid field."""
    positive = ("latent_channels", "latent_size", "hidden_dim", "num_blocks", "num_heads", "num_classes",
                "recursions", "max_recursions", "time_freq_dim")
    for name in positive:
        v = cfg[name]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"config field '{name}'={v!r} is invalid; it must be a positive integer")
    if cfg["hidden_dim"] % cfg["num_heads"]:
        raise ConfigError(f"config field 'hidden_dim'={cfg['hidden_dim']} must be divisible by num_heads={cfg['num_heads']}")
    if cfg["time_freq_dim"] % 2:
        raise ConfigError(f"config field 'time_freq_dim'={cfg['time_freq_dim']} must be even")
    if cfg["recursions"] > cfg["max_recursions"]:
        raise ConfigError(f"config field 'recursions'={cfg['recursions']} exceeds max_recursions={cfg['max_recursions']}")
    if not isinstance(cfg["mlp_ratio"], (int, float)) or cfg["mlp_ratio"] <= 0:
        raise ConfigError(f"config field 'mlp_ratio'={cfg['mlp_ratio']!r} is invalid; it must be a positive number")
    if cfg["class_names"] is not None and len(cfg["class_names"]) != cfg["num_classes"]:
        raise ConfigError(f"config field 'class_names' has {len(cfg['class_names'])} names for num_classes="
                          f"{cfg['num_classes']}; give one name per class")
    if cfg["mixer"] not in MIXERS:
        raise ConfigError(f"config field 'mixer'={cfg['mixer']!r} is unknown; use one of {', '.join(MIXERS)}")

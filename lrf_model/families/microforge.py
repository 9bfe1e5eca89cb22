"""Family ``microforge``: MicroForge (seed 002), an SSM-conv hybrid denoiser with a recurrent latent
planner whose plan tokens are carried from one denoising step to the next.

One readable file, nanoGPT style. Faithful to the seed:
- **Recurrent Latent Planner**: ``plan_tokens`` tokens; the plan carried in from the previous step is
  blended with a fresh one, ``p = sigmoid(w) p_prev + (1 - sigmoid(w)) p_init(cond)``, then READs
  the latent (cross-attention from plan to tokens), REASONs (self-attention among plan tokens) and
  goes back out as the next step's ``p_prev`` (self-conditioning across steps). The backbone
  reads it through its cross-attention;
- **SSM-conv hybrid backbone**, per block: AdaLN-Group (channels in groups share shift, scale and
  gate, from time + pooled conditioning) -> a bidirectional **selective scan** in zigzag order
  (Mamba's ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t``, ``y_t = C_t h_t + D x_t``, input-dependent
  ``dt``, ``B``, ``C``) beside a local depthwise conv -> cross-attention to the conditioning tokens
  concatenated with the plan tokens -> FFN (expansion 3); after every ``shared_every`` blocks one
  globally-shared multi-query attention block (a single instance, reused);
- the loss weight ``w(t) = 1 / (1 + |2t - 1|)`` (:func:`balanced_weight`), the family's own;
- velocity ``v = noise - z0`` at ``z_t = (1 - t) z0 + t noise``: the seed's convention is the toolkit's.

Carried state: ``forward(z, t, class_labels, recursions=None, state=None) -> (v, {"plan": next_plan})``;
no state is the first step's (a zero plan: the blend gives ``(1 - sigmoid(w)) p_init``). The samplers carry it
(:class:`lrf_model.sampling.CarriedState`), the step graph takes ``plan`` and returns ``next_plan``,
and a bundle's plan declares it as loop state, so every runtime carries it and the self-test checks
it after every step. ``planner=False`` is the seed's ablation A1 (no planner, no state).

Where it deviates, and why:
- conditioning is a class label turned into ``cond_tokens`` learned tokens in the text encoder's
  place; the pooled conditioning is their mean;
- the zigzag orders (ZigMa's snake over rows, then over columns, alternating by block) are line
  reversals by a small constant linear and 0/1 masks (:class:`ZigZag`): exact, and ops every target
  runs (no gather, no L x L permutation matrix stored per block);
- each scan direction has its own ``dt``, ``B``, ``C`` and ``A``; the scan is ``lrf::linear_scan``
  over ``dim x state_dim`` channels (:mod:`lrf_model.ops`), written out per target by
  ``lrf_export.passes.scan``;
- the editing concatenation ``[z_noisy || z_source]`` with a task token is the editing issue's.
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
from ..ops import linear_scan
from .base import Family, check_class_names
from .layers import ClassTimeConditioned, LayerNorm, attention, to_map, to_tokens
from .luminars import MultiQueryCrossAttention


class ZigZag(nn.Module):
    """ZigMa's snake order over the token grid: rows (or columns) walked alternately forwards and
    backwards, so neighbours in the scan are neighbours in the image.

    Written without a gather or an L x L permutation matrix: the grid as (B, lines, S, D), every line
    reversed by a linear with the S x S anti-identity (exact: one product by 1 per output), and the
    odd lines taken from the reversed copy by 0/1 masks (exact too). The order is its own inverse
    up to the transpose that puts columns first."""

    def __init__(self, side: int, by_columns: bool):
        super().__init__()
        self.side, self.by_columns = side, by_columns
        self.register_buffer("reverse", torch.eye(side).flip(0), persistent=False)  # (S, S) anti-identity
        odd = (torch.arange(side) % 2).float().reshape(side, 1, 1)
        self.register_buffer("odd", odd, persistent=False)  # (S, 1, 1): 1 on the lines walked backwards
        self.register_buffer("even", 1 - odd, persistent=False)

    def _snake(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, lines, S, D) -> the same with every odd line reversed."""
        flipped = F.linear(grid.transpose(2, 3), self.reverse).transpose(2, 3)  # (B, lines, S, D), lines reversed
        return grid * self.even + flipped * self.odd

    def to_scan(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) tokens in raster order -> (B, L, D) in snake order."""
        B, L, D = x.shape
        grid = x.reshape(B, self.side, self.side, D)  # (B, rows, cols, D)
        if self.by_columns:
            grid = grid.transpose(1, 2)  # (B, cols, rows, D)
        return self._snake(grid).reshape(B, L, D)

    def from_scan(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_scan`."""
        B, L, D = y.shape
        grid = self._snake(y.reshape(B, self.side, self.side, D))
        return (grid.transpose(1, 2) if self.by_columns else grid).reshape(B, L, D)


class GroupModulation(nn.Module):
    """AdaLN-Group for one residual branch: ``x + gate * f(norm(x) * (1 + scale) + shift)`` where
    the channels fall into ``groups`` groups sharing shift, scale and gate (the seed's A6: full
    adaLN costs 46% more parameters for a marginal gain). Zero-initialised: the branch starts off."""

    def __init__(self, dim: int, cond_dim: int, groups: int):
        super().__init__()
        self.norm = LayerNorm(dim)
        self.shift, self.scale, self.gate = (nn.Linear(cond_dim, groups) for _ in range(3))
        for lin in (self.shift, self.scale, self.gate):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        # group -> its channels, as a matmul (no repeat_interleave in the graph)
        self.register_buffer("spread", torch.repeat_interleave(torch.eye(groups), dim // groups, dim=1), persistent=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor, branch) -> torch.Tensor:
        B = x.shape[0]
        shift, scale, gate = (torch.matmul(lin(c), self.spread).reshape(B, 1, -1) for lin in (self.shift, self.scale, self.gate))
        return x + gate * branch(self.norm(x) * (1 + scale) + shift)  # (B, N, D)


class SelectiveScan(nn.Module):
    """Bidirectional selective SSM in zigzag order beside a local depthwise conv (Mamba's block).

    ``u = silu(dwconv(W_in x))``, per direction ``h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t`` with
    ``h_t`` of ``dim x state_dim``, ``y = C_t h_t``, summed over directions with ``D u``, gated by
    ``silu(W_z x)`` and projected out."""

    def __init__(self, dim: int, side: int, state_dim: int, by_columns: bool):
        super().__init__()
        self.side, self.state_dim = side, state_dim
        self.inp = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.dt = nn.ModuleList(nn.Linear(dim, dim) for _ in range(2))
        self.bc = nn.ModuleList(nn.Linear(dim, 2 * state_dim) for _ in range(2))
        # S4D-real init: A = -(1..N) for every channel; dt's bias so that softplus gives 1e-3..1e-1 (Mamba)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, state_dim + 1).float()).repeat(2, dim, 1))  # (2, D, N)
        for lin in self.dt:
            dt = torch.exp(torch.rand(dim) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
            with torch.no_grad():
                lin.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1
        self.skip = nn.Parameter(torch.ones(dim))
        self.out = nn.Linear(dim, dim)
        self.order = ZigZag(side, by_columns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        N = self.state_dim
        u = F.silu(to_tokens(self.conv(to_map(self.inp(x), self.side))))  # (B, L, D) raster order
        u = self.order.to_scan(u)  # (B, L, D) zigzag order
        y = u * self.skip
        for d, reverse in enumerate((False, True)):
            dt = F.softplus(self.dt[d](u))  # (B, L, D)
            bc = self.bc[d](u)  # (B, L, 2N)
            Bt, Ct = bc[..., :N], bc[..., N:]  # (B, L, N) each
            A = -torch.exp(self.A_log[d])  # (D, N)
            a = torch.exp(dt.reshape(B, L, D, 1) * A)  # (B, L, D, N)
            w = (dt * u).reshape(B, L, D, 1) * Bt.reshape(B, L, 1, N)  # (B, L, D, N)
            h = linear_scan(a.reshape(B, L, D * N), w.reshape(B, L, D * N), reverse)  # (B, L, D*N)
            y = y + torch.bmm(h.reshape(B * L, D, N), Ct.reshape(B * L, N, 1)).reshape(B, L, D)  # C_t h_t
        y = self.order.from_scan(y)  # back to raster order
        return self.out(y * F.silu(self.gate(x)))  # (B, L, D)


class CrossAttention(nn.Module):
    """Multi-head attention of (B, N, D) queries over (B, M, D) context tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.out(attention(self.q(x), self.k(context), self.v(context), self.heads))


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, expansion: int):
        super().__init__(nn.Linear(dim, expansion * dim), nn.GELU(approximate="tanh"), nn.Linear(expansion * dim, dim))


class Block(nn.Module):
    """AdaLN-Group -> [selective scan + local conv] -> cross-attention to (cond || plan) -> FFN."""

    def __init__(self, dim: int, side: int, state_dim: int, heads: int, groups: int, expansion: int, by_columns: bool):
        super().__init__()
        self.mix = GroupModulation(dim, dim, groups)
        self.scan = SelectiveScan(dim, side, state_dim, by_columns)
        self.cross_norm = LayerNorm(dim)
        self.cross = CrossAttention(dim, heads)
        self.ffn_mod = GroupModulation(dim, dim, groups)
        self.ffn = FeedForward(dim, expansion)
        nn.init.zeros_(self.cross.out.weight)  # starts as the identity of the residual
        nn.init.zeros_(self.cross.out.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.mix(x, c, self.scan)
        x = x + self.cross(self.cross_norm(x), context)
        return self.ffn_mod(x, c, self.ffn)  # (B, N, D)


class Planner(nn.Module):
    """The Recurrent Latent Planner: blend the carried plan with a fresh one, READ the latent,
    REASON among plan tokens, think (FFN); returns the plan the backbone reads and the next step carries."""

    def __init__(self, tokens: int, dim: int, heads: int, expansion: int):
        super().__init__()
        self.init = nn.Parameter(torch.randn(tokens, dim) * 0.02)  # p_init's learned part
        self.init_cond = nn.Linear(dim, dim)  # p_init's conditioning (pooled) part
        self.time = nn.Linear(dim, dim)
        self.carry = nn.Parameter(torch.zeros(1))  # sigmoid(w): 0.5 at the start
        self.read_norm, self.latent_norm = LayerNorm(dim), LayerNorm(dim)
        self.read = CrossAttention(dim, heads)
        self.reason_norm = LayerNorm(dim)
        self.reason = CrossAttention(dim, heads)
        self.ffn_norm = LayerNorm(dim)
        self.ffn = FeedForward(dim, expansion)

    def forward(self, prev: torch.Tensor, x: torch.Tensor, pooled: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.carry)
        p_init = self.init + self.init_cond(pooled).reshape(-1, 1, self.init.shape[1])  # (B, K, D)
        p = g * prev + (1 - g) * p_init + self.time(temb).reshape(-1, 1, self.init.shape[1])
        p = p + self.read(self.read_norm(p), self.latent_norm(x))  # READ: plan <- latent tokens
        q = self.reason_norm(p)
        p = p + self.reason(q, q)  # REASON: plan <-> plan
        return p + self.ffn(self.ffn_norm(p))  # (B, K, D)


class MicroForgeDenoiser(ClassTimeConditioned, ModelMixin, ConfigMixin):
    """``forward(z (B,C,S,S), t (B,), class_labels (B,), recursions=None, state=None) -> (v, next_state)``
    with ``state = {"plan": (B, plan_tokens, dim)}``; without the planner the state is ``{}``."""

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        latent_size: int = 8,
        num_classes: int = 10,
        class_names: list[str] | None = None,
        dim: int = 128,
        depth: int = 6,
        state_dim: int = 4,
        heads: int = 4,
        groups: int = 8,
        shared_every: int = 3,
        expansion: int = 3,
        planner: bool = True,
        plan_tokens: int = 16,
        cond_tokens: int = 4,
        time_freq_dim: int = 64,
    ):
        super().__init__()
        _validate(latent_size, num_classes, class_names, dim, depth, state_dim, heads, groups, shared_every, plan_tokens,
                  cond_tokens, time_freq_dim)
        S = latent_size
        self.init_conditioning(time_freq_dim, dim, num_classes, cond_tokens, dim)
        self.register_buffer("mean_tokens", torch.full((1, cond_tokens), 1.0 / cond_tokens), persistent=False)
        self.stem = nn.Conv2d(latent_channels, dim, 3, padding=1)
        self.latent_planner = Planner(plan_tokens, dim, heads, expansion) if planner else None
        self.blocks = nn.ModuleList(Block(dim, S, state_dim, heads, groups, expansion, by_columns=i % 2 == 1)
                                    for i in range(depth))
        self.shared_attention = MultiQueryCrossAttention(dim, dim, heads)  # one instance, reused
        self.shared_norm = LayerNorm(dim)
        self.head_norm = LayerNorm(dim)
        self.head = nn.Linear(dim, latent_channels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _plan(self, z: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor,
              state: dict[str, torch.Tensor] | None):
        """Everything before the backbone: the stem's tokens, the conditioning and the next plan,
        which reads only these (so :meth:`carried_state` can stop here)."""
        B, D = z.shape[0], self.config.dim
        temb, cond = self.conditioning(t, class_labels)  # (B, D), (B, K, D)
        pooled = F.linear(cond.transpose(1, 2), self.mean_tokens.to(temb.dtype)).reshape(B, D)  # (B, D): the mean as a linear
        x = to_tokens(self.stem(z))  # (B, N, D)
        next_state, context = {}, cond
        if self.latent_planner is not None:
            prev = state["plan"] if state else x.new_zeros(B, self.config.plan_tokens, D)  # the first step: no plan yet
            next_state["plan"] = self.latent_planner(prev, x, pooled, temb)  # (B, P, D)
            context = torch.cat([cond, next_state["plan"]], dim=1)  # (B, K + P, D)
        return x, temb + pooled, context, next_state  # c = time + pooled conditioning: AdaLN-Group's input

    def carried_state(self, z: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor, recursions: int | None = None,
                      state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """``forward``'s next state without its velocity: self-conditioning's extra pass in training
        (the state the model leaves at an earlier time) costs the planner, not the backbone."""
        return self._plan(z, t, class_labels, state)[3]

    def forward(self, z: torch.Tensor, t: torch.Tensor, class_labels: torch.Tensor, recursions: int | None = None,
                state: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, c, context, next_state = self._plan(z, t, class_labels, state)  # (B, N, D), (B, D), (B, K + P, D)
        for i, block in enumerate(self.blocks):
            x = block(x, c, context)
            if (i + 1) % self.config.shared_every == 0:
                x = self.shared_attention(x, self.shared_norm(x))
        v = to_map(self.head(self.head_norm(x)), z.shape[-1])  # (B, C, S, S)
        return v, next_state


# MicroForge-tiny's backbone as the seed publishes it: depth 6, width 256 (~8M), 32 plan tokens, on
# the 16 x 16 x 16 latent of 512 px images through its f=32 DC-AE, conditioned on TinyCLIP's tokens
# (here as many learned tokens per class).
PUBLISHED_CONFIG = dict(latent_channels=16, latent_size=16, dim=256, depth=6, state_dim=8, heads=4, groups=16,
                        shared_every=3, expansion=3, plan_tokens=32, cond_tokens=77)


def balanced_weight(t: torch.Tensor) -> torch.Tensor:
    """The seed's loss weight ``w(t) = 1 / (1 + |2t - 1|)``: 1 at t = 0.5, 1/2 at the ends."""
    return 1.0 / (1.0 + (2 * t - 1).abs())


def _validate(latent_size: int, num_classes: int, class_names, dim: int, depth: int, state_dim: int, heads: int,
              groups: int, shared_every: int, plan_tokens: int, cond_tokens: int, time_freq_dim: int) -> None:
    if heads < 1 or dim % heads or groups < 1 or dim % groups:
        raise ConfigError(f"config: heads={heads} and groups={groups} must be positive and divide dim={dim}")
    if min(depth, state_dim, shared_every, plan_tokens, cond_tokens, num_classes, latent_size) < 1 or time_freq_dim % 2:
        raise ConfigError("config: depth, state_dim, shared_every, plan_tokens, cond_tokens, num_classes and latent_size "
                          "must be positive, time_freq_dim even")
    check_class_names(class_names, num_classes)


def _add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--backbone-depth", type=int, default=6, help="MicroForge: backbone blocks (the width is --dim)")
    g.add_argument("--state-dim", type=int, default=4, help="MicroForge: selective-scan state per channel")
    g.add_argument("--plan-tokens", type=int, default=16, help="MicroForge: planner tokens (0: no planner, the seed's A1)")


def _config_from_args(args: argparse.Namespace) -> dict:
    return dict(dim=args.dim, depth=args.backbone_depth, state_dim=args.state_dim, planner=args.plan_tokens > 0,
                plan_tokens=max(args.plan_tokens, 1), cond_tokens=args.cond_tokens)


def plan_state(model: MicroForgeDenoiser) -> dict[str, tuple[int, ...]]:
    """The carried state per image: the plan tokens (none without a planner)."""
    c = model.config
    return {"plan": (c.plan_tokens, c.dim)} if c.planner else {}


MICROFORGE = Family(
    name="microforge",
    model_class=MicroForgeDenoiser,
    description="MicroForge (seed 002): selective-scan + conv hybrid, shared MQA, recurrent latent planner (carried state)",
    # Every linear but the head (the velocity's last layer, float in every family); convs (stem,
    # depthwise) stay float.
    int8_module_types=(nn.Linear,),
    int8_excluded=("head",),
    int8_min_share=0.8,
    add_arguments=_add_arguments,
    config_from_args=_config_from_args,
    # One block on a 4 x 4 latent: lowering time grows with the unrolled scans (CI time); the
    # column-wise zigzag of odd blocks is tested alone (tests/test_microforge.py)
    tiny_config=dict(latent_size=4, dim=48, depth=1, state_dim=2, heads=2, groups=4, shared_every=1, expansion=2,
                     plan_tokens=4, cond_tokens=2, time_freq_dim=16),
    resume_keys=("dim", "backbone_depth", "state_dim", "plan_tokens", "cond_tokens"),
    loss_weight=balanced_weight,
    state=plan_state,
)

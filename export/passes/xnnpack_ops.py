"""Rewrite the ops XNNPACK cannot run into the same arithmetic in ops it can.

Every op the XNNPACK partitioner refuses runs on ExecuTorch's portable kernels and cuts the
graph into one more delegate call. The ``unet2d`` step lowered to 31 partitions: 21 group
norms (``native_group_norm`` has no XNNPACK kernel), 4 attentions (the edge decomposition of
``scaled_dot_product_attention`` guards fully-masked rows with ``any``/``logical_not``/``where``
and expands 4-D matmuls with ``expand_copy``) and a nearest upsample. Written as below, the
same step is 3 partitions and the autoencoder's decoder one:

- group norm: statistics by ``mean`` over the last two dims of a 4-D view (XNNPACK's global
  average pooling), normalised with ``rsqrt``;
- attention without a mask: ``softmax(q k^T * scale) v`` as 3-D batched matmuls;
- nearest upsampling by an integer factor (up to 25): copies concatenated, then viewed (exact:
  every output pixel is one input pixel);
- SiLU as ``x * sigmoid(x)`` in the input's dtype: the edge decomposition computes a float16
  SiLU in float32, and each of the UNet's 25 SiLUs cut the fp16 step into another partition
  (39 in all) between two casts;
- GELU's tanh form written out with ``tanh`` (exact: the same formula): XNNPACK's partitioner
  refuses float16 ``gelu``, which cut LuminaRS's fp16 step at each of its ConvNeXt MLPs;
- softplus as ``relu(x) + log(1 + exp(-|x|))``: its edge decomposition (``gt``, ``log1p``, ``where``
  for the threshold) cut MicroForge's step at each selective scan's ``dt``;
- a mean over one dim (XNNPACK averages only the spatial dims of a 4-D map) as a linear with a
  constant 1/n row, the dim moved last first: DC-AE's channel RMSNorms and its shortcuts' channel-group
  means cut its decoder into 10 partitions and its encoder into 12;
- layer norm over the last dim (a transformer's; XNNPACK has none) by its two means, as above, and a
  4-D ``matmul`` as a 3-D ``bmm`` (its edge decomposition copies both operands through ``expand_copy``):
  a CLIP text tower's 41 layer norms and 80 such copies cut it into 81 partitions;
- ``repeat_interleave`` of channels (DC-AE's up-block shortcut) as concatenated copies, and
  ``pixel_unshuffle`` (its down blocks) as a grouped stride-r convolution with a constant one-hot
  kernel (exact: each output is one input times 1), where the portable kernels copied the permuted
  tensor. Their constants are folded by the :class:`~lrf_export.passes.constants.FoldConstants`
  that follows this pass.

The rewrite is arithmetic-preserving up to float rounding (the parity gate measures it), runs
after INT8 quantization (so the quantizer sees the modules it annotates unchanged), and leaves
every other op alone.
"""

from __future__ import annotations

import torch

aten = torch.ops.aten


def group_norm(x: torch.Tensor, num_groups: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 1e-5, cudnn_enabled: bool = True) -> torch.Tensor:
    B, C = x.shape[:2]
    xg = x.reshape(B, num_groups, C // num_groups, -1)                  # (B, G, C/G, H*W)
    mean = xg.mean(dim=(2, 3), keepdim=True)                            # (B, G, 1, 1)
    d = xg - mean
    var = (d * d).mean(dim=(2, 3), keepdim=True)
    y = (d * torch.rsqrt(var + eps)).reshape(x.shape)
    per_channel = [1, C] + [1] * (x.dim() - 2)
    if weight is not None:
        y = y * weight.reshape(per_channel)
    if bias is not None:
        y = y + bias.reshape(per_channel)
    return y


def silu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None,
              dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
              enable_gqa: bool = False) -> torch.Tensor:
    *lead, n, d = q.shape
    s = d ** -0.5 if scale is None else scale
    q3, k3, v3 = q.reshape(-1, n, d), k.reshape(-1, k.shape[-2], d), v.reshape(-1, v.shape[-2], v.shape[-1])
    w = torch.softmax(torch.bmm(q3 * s, k3.transpose(1, 2)), dim=-1)   # (B*heads, N, M)
    return torch.bmm(w, v3).reshape(*lead, n, v.shape[-1])


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """The tanh form of GELU, written out (only rewritten where the model asked for that form)."""
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def softplus(x: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    """``log(1 + exp(x))`` in its overflow-free form ``relu(x) + log(1 + exp(-|x|))`` (equal to float
    rounding, past ``threshold`` too, where torch returns ``x``: the second term is below 2e-9 there)."""
    return torch.relu(x) + torch.log(1.0 + torch.exp(-torch.abs(x)))


def mean_one_dim(x: torch.Tensor, dim: list[int], keepdim: bool = False, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The mean over one dim as a linear with a constant 1/n row (``_rewritable``: a single dim, no dtype).
    Means the other rewrites emit (group norm's spatial one) reach it too and stay as they are."""
    if len(dim) != 1 or dtype is not None:
        return NotImplemented  # the op as it is
    d = dim[0] % x.dim()
    n = x.shape[d]
    y = torch.nn.functional.linear(x.movedim(d, -1), torch.full((1, n), 1.0 / n, dtype=x.dtype))  # (..., 1)
    return y.movedim(-1, d) if keepdim else y.reshape(y.shape[:-1])  # a reshape: XNNPACK runs no squeeze


def _copies(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """``r`` copies of ``x`` concatenated along ``dim``, at most 5 inputs per ``cat`` (XNNPACK's limit),
    each copy its own view node (XNNPACK's cat counts distinct inputs)."""
    parts = [torch.cat([x.view(x.shape) for _ in range(k)], dim=dim) if k > 1 else x
             for k in [min(5, r - i) for i in range(0, r, 5)]]
    return torch.cat(parts, dim=dim) if len(parts) > 1 else parts[0]


def repeat_interleave_channels(x: torch.Tensor, repeats: int, dim: int | None = None,
                               output_size: int | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C*r, H, W), channel c repeated at c*r .. c*r + r-1 (``_rewritable``: dim 1 of a map)."""
    B, C, H, W = x.shape
    return _copies(x.reshape(B, C, 1, H * W), repeats, dim=2).reshape(B, C * repeats, H, W)


def pixel_unshuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C*r*r, H/r, W/r), ``out[c*r*r + i*r + j, h, w] = x[c, h*r + i, w*r + j]``:
    a stride-r convolution, one group per input channel, whose kernel picks that one input: group
    output k reads offset (i, j) = (k // r, k % r), so each group's kernel is eye(r*r) viewed as
    (r*r, 1, r, r) (r**4 weights a group; a dense kernel would be (C r^2)^2)."""
    C, n = x.shape[1], r * r
    index = torch.arange(n, dtype=torch.int64)  # eye(n) by hand: torch.eye's decomposition builds
    pick = (index.reshape(n, 1) == index.reshape(1, n)).to(x.dtype)  # float aranges the edge verifier refuses
    return torch.nn.functional.conv2d(x, pick.reshape(n, 1, r, r).repeat(C, 1, 1, 1), stride=r, groups=C)


def layer_norm(x: torch.Tensor, normalized_shape: list[int], weight: torch.Tensor | None = None,
               bias: torch.Tensor | None = None, eps: float = 1e-5, cudnn_enable: bool = True) -> torch.Tensor:
    """Over the last dim (``_rewritable``): its two means become the 1/n-row linears of ``mean_one_dim``."""
    d = x - mean_one_dim(x, [-1], keepdim=True)
    y = d * torch.rsqrt(mean_one_dim(d * d, [-1], keepdim=True) + eps)
    y = y * weight if weight is not None else y
    return y + bias if bias is not None else y


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A batched matmul of two tensors with the same leading dims as one 3-D ``bmm`` (the edge
    decomposition of a 4-D ``matmul`` copies both operands through ``expand_copy`` first)."""
    if a.dim() < 3 or a.dim() != b.dim() or a.shape[:-2] != b.shape[:-2]:
        return NotImplemented  # broadcasting or 2-D: the op as it is
    out = torch.bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))   # (B*heads, N, M)
    return out.reshape(*a.shape[:-2], *out.shape[-2:])


def _upsampled_size(h: int, w: int, output_size, scale_factors) -> list[int]:
    return list(output_size) if output_size is not None else [int(h * scale_factors[0]), int(w * scale_factors[1])]


def upsample_nearest(x: torch.Tensor, output_size, scale_factors) -> torch.Tensor:
    B, C, H, W = x.shape
    oh, ow = _upsampled_size(H, W, output_size, scale_factors)
    sh, sw = oh // H, ow // W
    # Rank-4 views only (XNNPACK's cat), a factor of 1 no copy.
    x = _copies(x.reshape(B, C, H * W, 1), sw, dim=3).reshape(B, C, H, ow)        # columns repeated
    return _copies(x.reshape(B, C * H, 1, ow), sh, dim=2).reshape(B, C, oh, ow)   # then rows


_REWRITES = {
    aten.group_norm.default: group_norm,
    aten.scaled_dot_product_attention.default: attention,
    aten.upsample_nearest2d.vec: upsample_nearest,
    aten.silu.default: silu,
    aten.gelu.default: gelu,
    aten.softplus.default: softplus,
    aten.mean.dim: mean_one_dim,
    aten.repeat_interleave.self_int: repeat_interleave_channels,
    aten.pixel_unshuffle.default: pixel_unshuffle,
    aten.layer_norm.default: layer_norm,
    aten.matmul.default: matmul,
}


def _rewritable(node: torch.fx.Node) -> bool:
    """Whether the rewrite of ``node``'s op computes exactly what the node does."""
    if node.target == aten.scaled_dot_product_attention.default:
        args = dict(zip(("q", "k", "v", "attn_mask", "dropout_p", "is_causal"), node.args)) | node.kwargs
        return (args.get("attn_mask") is None and not args.get("dropout_p") and not args.get("is_causal")
                and not args.get("enable_gqa"))
    if node.target == aten.upsample_nearest2d.vec:
        h, w = node.args[0].meta["val"].shape[-2:]
        out = _upsampled_size(h, w, *(list(node.args[1:]) + [None, None])[:2])
        # Integer factors (a fractional one keeps the portable kernel), at most 25 copies a dim (two cats deep).
        return node.args[0].meta["val"].dim() == 4 and all(o % i == 0 and 1 <= o // i <= 25 for o, i in zip(out, (h, w)))
    if node.target == aten.gelu.default:  # the erf form has no XNNPACK equivalent: kept as it is
        return node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none") == "tanh"
    if node.target == aten.softplus.default:  # beta 1 only (the form above)
        return (list(node.args[1:2]) or [node.kwargs.get("beta", 1.0)])[0] == 1.0
    if node.target == aten.mean.dim:  # the rewrite itself keeps any other mean (XNNPACK's spatial one) as it is
        return True
    if node.target == aten.layer_norm.default:  # over the last dim only (one 1/n row)
        return len(node.args[1]) == 1
    if node.target == aten.repeat_interleave.self_int:
        args = dict(zip(("x", "repeats", "dim"), node.args)) | node.kwargs
        return node.args[0].meta["val"].dim() == 4 and args.get("dim") in (1, -3) and 1 < args["repeats"] <= 25
    return True


class ForXnnpack:
    """Pass: group norm, unmasked attention, integer nearest upsampling, SiLU, tanh-GELU, softplus,
    one-dim means, last-dim layer norm, batched 4-D matmuls, channel repeat_interleave and pixel_unshuffle
    in XNNPACK's ops. Each op is rewritten only where all its nodes can be (a graph mixing tanh- and
    erf-GELU keeps both as they are: the table is per op)."""

    name = "XNNPACK op rewrites"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        nodes = [n for n in program.graph.nodes if n.op == "call_function" and n.target in _REWRITES]
        # An op is rewritten only if every node of it can be (the table applies to all of them).
        table = {op: fn for op, fn in _REWRITES.items()
                 if any(n.target == op for n in nodes) and all(_rewritable(n) for n in nodes if n.target == op)}
        return program.run_decompositions(table) if table else program

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
- nearest upsampling by an integer factor (2-5): copies concatenated, then viewed (exact:
  every output pixel is one input pixel);
- SiLU as ``x * sigmoid(x)`` in the input's dtype: the edge decomposition computes a float16
  SiLU in float32, and each of the UNet's 25 SiLUs cut the fp16 step into another partition
  (39 in all) between two casts;
- GELU's tanh form written out with ``tanh`` (exact: the same formula): XNNPACK's partitioner
  refuses float16 ``gelu``, which cut LuminaRS's fp16 step at each of its ConvNeXt MLPs;
- softplus as ``relu(x) + log(1 + exp(-|x|))``: its edge decomposition (``gt``, ``log1p``, ``where``
  for the threshold) cut MicroForge's step at each selective scan's ``dt``.

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


def _upsampled_size(h: int, w: int, output_size, scale_factors) -> list[int]:
    return list(output_size) if output_size is not None else [int(h * scale_factors[0]), int(w * scale_factors[1])]


def upsample_nearest(x: torch.Tensor, output_size, scale_factors) -> torch.Tensor:
    B, C, H, W = x.shape
    oh, ow = _upsampled_size(H, W, output_size, scale_factors)
    sh, sw = oh // H, ow // W
    # Rank-4 views only, and one view node per copy: XNNPACK's cat counts distinct inputs.
    x = torch.cat([x.reshape(B, C, H * W, 1) for _ in range(sw)], dim=3).reshape(B, C, H, ow)     # columns repeated
    return torch.cat([x.reshape(B, C * H, 1, ow) for _ in range(sh)], dim=2).reshape(B, C, oh, ow)  # then rows


_REWRITES = {
    aten.group_norm.default: group_norm,
    aten.scaled_dot_product_attention.default: attention,
    aten.upsample_nearest2d.vec: upsample_nearest,
    aten.silu.default: silu,
    aten.gelu.default: gelu,
    aten.softplus.default: softplus,
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
        # XNNPACK concatenates 2 to 5 tensors; a factor of 1 or above 5 keeps the portable kernel.
        return node.args[0].meta["val"].dim() == 4 and all(o % i == 0 and 2 <= o // i <= 5 for o, i in zip(out, (h, w)))
    if node.target == aten.gelu.default:  # the erf form has no XNNPACK equivalent: kept as it is
        return node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none") == "tanh"
    if node.target == aten.softplus.default:  # beta 1 only (the form above)
        return (list(node.args[1:2]) or [node.kwargs.get("beta", 1.0)])[0] == 1.0
    return True


class ForXnnpack:
    """Pass: group norm, unmasked attention, integer nearest upsampling, SiLU, tanh-GELU and softplus in
    XNNPACK's ops. Each op is rewritten only where all its nodes can be (a graph mixing tanh- and
    erf-GELU keeps both as they are: the table is per op)."""

    name = "XNNPACK op rewrites"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        nodes = [n for n in program.graph.nodes if n.op == "call_function" and n.target in _REWRITES]
        # An op is rewritten only if every node of it can be (the table applies to all of them).
        table = {op: fn for op, fn in _REWRITES.items()
                 if any(n.target == op for n in nodes) and all(_rewritable(n) for n in nodes if n.target == op)}
        return program.run_decompositions(table) if table else program

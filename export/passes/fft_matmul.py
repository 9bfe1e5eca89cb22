"""Rewrite fixed-size real FFTs (``rfft``/``rfft2`` and their inverses) as matmuls with constant
DFT matrices, so a Fourier token mixer runs where no FFT kernel does.

Measured by others and re-read here (the IRIS issue): XNNPACK delegates no fft or complex op,
ExecuTorch's fft kernels exist only in its optimized kernel library, coremltools has no converter
for torch.export's ``_fft_r2c``/``_fft_c2r``, ONNX Runtime rejected the DFT that the ONNX exporter
wrote for ``irfft2``, and onnxruntime-web's WebGPU has no DFT. A DFT of a fixed size is a
matrix product, which every target runs.

The reference model keeps the natural form: ``torch.fft.rfft2`` -> ``torch.view_as_real`` ->
arithmetic on (real, imaginary) pairs -> ``torch.view_as_complex`` -> ``torch.fft.irfft2``. This
pass (program -> program) decomposes each forward transform into two real matmul stages returning
``view_as_complex(stack([re, im], -1))`` and each inverse into matmuls of ``view_as_real(z)``,
kept interleaved; then every ``view_as_real(view_as_complex(t))`` is ``t``, so no complex tensor
is left; :class:`lrf_export.passes.constants.FoldConstants` then folds the DFT matrices into
stored constants. The matmuls are linear layers with constant weights (XNNPACK's fully-connected
op): a Fourier mixer lowers to one XNNPACK partition, exact to ~4e-7 of ``torch.fft`` in float32. A program that computes on complex values between the transforms (instead of
on pairs) keeps complex ops, and :class:`FFTAsMatmul` refuses it with one line.

The transforms run over the last one or two dims (``rfft``/``rfft2`` of a token grid), any
normalization; the last dim is the real one, the one before it a full complex DFT.
"""

from __future__ import annotations

import math

import torch

from lrf_model.dft import irfft_pairs, rfft_pairs
from lrf_model.errors import LRFError

aten = torch.ops.aten
COMPLEX_OPS = (aten.view_as_complex.default, aten.view_as_real.default, aten.complex.default,
               aten._fft_r2c.default, aten._fft_c2r.default, aten._fft_c2c.default, aten.fft_rfft.default,
               aten.fft_rfft2.default, aten.fft_irfft.default, aten.fft_irfft2.default, aten.fft_fft.default,
               aten.fft_fft2.default, aten.fft_ifft.default, aten.fft_ifft2.default)


def _dims(x: torch.Tensor, dim) -> list[int]:
    """The transformed dims, normalized and in their given order (the last one listed is the halved one)."""
    return [d % x.dim() for d in ([dim] if isinstance(dim, int) else dim)]


def r2c(x: torch.Tensor, two_dims: bool, scale: float) -> torch.Tensor:
    return torch.view_as_complex(rfft_pairs(x, two_dims, scale))


def c2r(z: torch.Tensor, two_dims: bool, scale: float, last_dim_size: int) -> torch.Tensor:
    return irfft_pairs(torch.view_as_real(z), two_dims, scale, last_dim_size)


# Forward transforms scale by 1 ("backward"), 1/sqrt(n) ("ortho") or 1/n ("forward"); inverse ones the other way.
_FORWARD = {None: 0, "backward": 0, "ortho": 1, "forward": 2}
_INVERSE = {None: 2, "backward": 2, "ortho": 1, "forward": 0}


def _scale(code: int, n: int) -> float:
    """ATen's normalization codes: 0 none, 1 by 1/sqrt(n), 2 by 1/n."""
    return (1.0, 1.0 / math.sqrt(n), 1.0 / n)[code]


def _n(x: torch.Tensor, two_dims: bool, last: int) -> int:
    return (x.shape[-2] if two_dims else 1) * last


def _fft_r2c(x, dim, normalization, onesided):
    two = len(_dims(x, dim)) == 2
    return r2c(x, two, _scale(normalization, _n(x, two, x.shape[-1])))


def _fft_c2r(z, dim, normalization, last_dim_size):
    two = len(_dims(z, dim)) == 2
    return c2r(z, two, _scale(normalization, _n(z, two, last_dim_size)), last_dim_size)


def _rfft(x, n=None, dim=-1, norm=None):
    return r2c(x, False, _scale(_FORWARD[norm], x.shape[-1]))


def _rfft2(x, s=None, dim=(-2, -1), norm=None):
    return r2c(x, True, _scale(_FORWARD[norm], x.shape[-2] * x.shape[-1]))


def _irfft(z, n=None, dim=-1, norm=None):
    last = n if n is not None else 2 * (z.shape[-1] - 1)
    return c2r(z, False, _scale(_INVERSE[norm], last), last)


def _irfft2(z, s=None, dim=(-2, -1), norm=None):
    last = s[-1] if s is not None else 2 * (z.shape[-1] - 1)
    return c2r(z, True, _scale(_INVERSE[norm], z.shape[-2] * last), last)


# torch.export keeps torch.fft's composite ops (fft_rfft2, ...); a core-ATen program has _fft_r2c/_fft_c2r.
TABLE = {aten._fft_r2c.default: _fft_r2c, aten._fft_c2r.default: _fft_c2r, aten.fft_rfft.default: _rfft,
         aten.fft_rfft2.default: _rfft2, aten.fft_irfft.default: _irfft, aten.fft_irfft2.default: _irfft2}


def _rewritable(node: torch.fx.Node) -> bool:
    """Whether the node is a onesided real transform over the trailing one or two dims, in order,
    at their own size (no padding or cropping of the input, no dropped bins for the inverse)."""
    x = node.args[0].meta["val"]
    args = dict(zip((a.name for a in node.target._schema.arguments), node.args)) | node.kwargs
    rank, inverse = x.dim(), node.target in (aten._fft_c2r.default, aten.fft_irfft.default, aten.fft_irfft2.default)
    if node.target in (aten._fft_r2c.default, aten._fft_c2r.default):
        dims, last = _dims(x, args["dim"]), args.get("last_dim_size")
        if node.target == aten._fft_r2c.default and not args["onesided"]:
            return False
    else:
        two = node.target in (aten.fft_rfft2.default, aten.fft_irfft2.default)
        dims = _dims(x, args.get("dim", (-2, -1) if two else -1))
        size = args.get("s" if two else "n")
        size = None if size is None else ([size] if isinstance(size, int) else list(size))
        if size is not None and len(dims) == 2 and size[0] != x.shape[-2]:
            return False  # the complex dim padded or cropped
        last = size[-1] if size is not None else (2 * (x.shape[-1] - 1) if inverse else x.shape[-1])
        if not inverse and last != x.shape[-1]:
            return False  # the real input padded or cropped
    if inverse and x.shape[-1] != last // 2 + 1:
        return False  # irfft would drop or add bins first
    return dims in ([rank - 1], [rank - 2, rank - 1])


def cancel_complex_round_trips(program: torch.export.ExportedProgram) -> None:
    """``view_as_real(view_as_complex(t))`` -> ``t``, in place; then drops what is no longer used."""
    graph = program.graph_module.graph
    for node in list(graph.nodes):
        src = node.args[0] if node.target == aten.view_as_real.default else None
        if isinstance(src, torch.fx.Node) and src.target == aten.view_as_complex.default:
            node.replace_all_uses_with(src.args[0])
            graph.erase_node(node)
    graph.eliminate_dead_code()
    program.graph_module.recompile()


class FFTAsMatmul:
    """Pass: real FFTs over the last one or two dims as constant-matrix matmuls; no complex op left."""

    name = "FFT as DFT matmuls"

    def __call__(self, program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        ffts = [n for n in program.graph.nodes if n.op == "call_function" and n.target in TABLE]
        if not ffts:
            _refuse_complex(program)
            return program
        unsupported = [n for n in ffts if not _rewritable(n)]
        if unsupported:
            raise LRFError(f"{unsupported[0].name}: only real FFTs over the last one or two dims, in order and at "
                           "their own size, become matmuls; write the model's transform as rfft/rfft2 over its trailing dims")
        program = program.run_decompositions({op: fn for op, fn in TABLE.items() if any(n.target == op for n in ffts)})
        cancel_complex_round_trips(program)
        _refuse_complex(program)
        return program


def _refuse_complex(program: torch.export.ExportedProgram) -> None:
    left = sorted({str(n.target) for n in program.graph.nodes if n.op == "call_function" and n.target in COMPLEX_OPS})
    if left:
        raise LRFError(f"complex values remain in the graph ({', '.join(left)}), which no target runs: compute on "
                       "torch.view_as_real pairs between rfft/rfft2 and their inverses, as the Fourier mixers here do")

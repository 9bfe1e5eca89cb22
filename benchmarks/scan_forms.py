"""How IRIS's bidirectional RG-LRU scan should reach the runtimes: each form of
``lrf_export.passes.scan`` measured on real graphs.

    python benchmarks/scan_forms.py [--repeats 30]

Graphs (random weights: partitions, latency and agreement do not depend on training):
- ``iris-cifar step``: the guided denoising step of the IRIS configuration trained on CIFAR-10
  (width 128, 8 x 8 latent = 64 tokens, r = 4 core iterations): 8 scans;
- ``rg-lru 16x16``: one bidirectional RG-LRU at IRIS-Tiny's published size (256 tokens of
  width 320), the scan alone with its gates.

Per form and graph: XNNPACK partitions, ExecuTorch and ONNX Runtime latency (1 thread, median
of ``--repeats``), the worst absolute difference from the reference op (``lrf::linear_scan`` in
PyTorch) relative to the output's largest value, lowering seconds. Writes
benchmarks/results/scan_forms.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from lrf_export import test_vectors  # noqa: E402
from lrf_export.graphs import GraphSpec, TensorSpec, step_spec  # noqa: E402
from lrf_export.passes import run_passes  # noqa: E402
from lrf_export.passes.constants import FoldConstants  # noqa: E402
from lrf_export.passes.fft_matmul import FFTAsMatmul  # noqa: E402
from lrf_export.passes.scan import FORMS, UNROLL_LIMIT, ScanAsOps  # noqa: E402
from lrf_export.passes.static_shapes import trace  # noqa: E402
from lrf_export.targets import get_target  # noqa: E402
from lrf_model.families import FAMILIES  # noqa: E402
from lrf_model.families.iris import RGLRU  # noqa: E402
from lrf_model.sampling import schedule  # noqa: E402


class Scan(torch.nn.Module):
    """The recurrent pathway alone: gates, both scans."""

    def __init__(self, dim: int):
        super().__init__()
        torch.manual_seed(0)
        self.lru = RGLRU(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lru(x)


def graphs() -> dict[str, tuple[GraphSpec, list[torch.Tensor], int]]:
    """Each graph, its inputs and its scans' length."""
    torch.manual_seed(0)
    den = FAMILIES["iris"].build(latent_channels=8, latent_size=8, dim=128, core_depth=1, recursions=4, max_recursions=8)
    with torch.no_grad():  # adaLN-Zero starts every branch closed: open them so the scans count
        for p in den.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    den.eval()
    step = step_spec(den, 4)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(step.inputs[0].shape, generator=g)
    feeds = list(test_vectors.step_inputs(noise, schedule(4), 1, 3, 3.0, noise, {}))  # plain generation, 2nd of 4 steps
    lru = Scan(320).eval()
    x = TensorSpec("x", (1, 256, 320), "float32")
    scan = GraphSpec("scan", lru, [x], [TensorSpec("h", (1, 256, 320), "float32")])
    return {"iris-cifar step": (step, feeds, 64), "rg-lru 16x16": (scan, [torch.randn(1, 256, 320, generator=g)], 256)}


def median_ms(run, feeds: dict, repeats: int) -> float:
    run(feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for gname, (spec, feeds, length) in graphs().items():
        with torch.no_grad():
            ref = spec.module(*feeds).numpy()
        feed = {s.name: f.numpy() for s, f in zip(spec.inputs, feeds)}
        for form in (f for f in FORMS if f != "by_length"):  # the rule is one of these per graph
            program = run_passes(trace(spec), [FFTAsMatmul(), ScanAsOps(form), FoldConstants()])
            row = {"graph": gname, "form": form, "default": form == ("unrolled" if length <= UNROLL_LIMIT else "chunked")}
            for tname in ("executorch", "onnx"):
                target = get_target(tname)
                with tempfile.TemporaryDirectory() as tmp:
                    p = run_passes(copy.deepcopy(program), target.passes(spec, "fp32", None))
                    t0 = time.perf_counter()
                    lowered = target.lower(p, spec, Path(tmp) / f"g{target.suffix}", "fp32")
                    row[f"{tname}_lower_s"] = round(time.perf_counter() - t0, 1)
                    if "xnnpack_partitions" in lowered.details:
                        row["xnnpack_partitions"] = lowered.details["xnnpack_partitions"]
                    run = target.runner(lowered.path, [s.as_dict() for s in spec.inputs],
                                        [s.as_dict() for s in spec.outputs], threads=1)
                    out = next(iter(run(feed).values()))
                    row[f"{tname}_ms"] = round(median_ms(run, feed, args.repeats), 3)
                    row[f"{tname}_rel_err"] = float(np.abs(out - ref).max() / np.abs(ref).max())
            rows.append(row)
            print(row, flush=True)
            del program
    m = common.machine()
    md = ["# Scan forms: the bidirectional RG-LRU on the runtimes", "", common.machine_line(m), "",
          "fp32, 1 thread, median of %d calls; error: max |out - reference| / max |reference|; "
          "**bold**: the form exports use at that length (``by_length``)." % args.repeats, "",
          "| graph | form | XNNPACK partitions | ExecuTorch ms | ONNX Runtime ms | ExecuTorch error | ONNX error | lowering s (ET / ONNX) |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"**{r['form']}**" if r["default"] else r["form"]
        md.append(f"| {r['graph']} | {name} | {r.get('xnnpack_partitions', '-')} | {r['executorch_ms']:.2f} | "
                  f"{r['onnx_ms']:.2f} | {r['executorch_rel_err']:.1e} | {r['onnx_rel_err']:.1e} | "
                  f"{r['executorch_lower_s']} / {r['onnx_lower_s']} |")
    common.write_results("scan_forms", {"machine": m, "rows": rows}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()

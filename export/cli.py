"""``lrf-export``: reference model -> bundles for CoreML / ExecuTorch / ONNX, parity-gated."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from lrf_model.errors import cli_errors
from lrf_model.pipeline import shipped_checkpoints

from .exporter import ExportOptions, export_bundles, progress_display, verdict


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lrf-export", description="Export LRF to on-device runtimes with a parity gate.")
    p.add_argument("--target", required=True, help="coreml | executorch | onnx | all")
    p.add_argument("--steps", type=int, required=True, help="sampling steps N baked into the bundle's schedule")
    p.add_argument("--recursions", type=int, default=None, help="recursion passes R (default: the checkpoint's)")
    p.add_argument("--quantize", default="none", help="none | int8 | fp16 (ExecuTorch: float16 weights and arithmetic; "
                   "phones with ARMv8.2 fp16 run it natively)")
    p.add_argument("--graph", default="step", help="step (runtime loops; default) | fused (one graph for all N steps)")
    p.add_argument("--checkpoint", default=None, help=f"checkpoint folder or a shipped one by name: {', '.join(shipped_checkpoints())} (default: cifar10)")
    p.add_argument("--out", default=None, help="bundle folder (default: dist/<model>-<target>-<quant>-s<N>/)")
    p.add_argument("--cfg", type=float, default=None, help="guidance scale (default: lrf-generate's)")
    p.add_argument("--calibration-per-class", type=int, default=ExportOptions.calibration_per_class,
                   help=f"INT8: sampled trajectories per class whose steps calibrate the ranges (default {ExportOptions.calibration_per_class}; "
                        "fewer export faster: a published-size model's 8 take most of an hour on 2 cores)")
    return p


@cli_errors
def main(argv: list[str] | None = None) -> None:
    a = build_parser().parse_args(argv)
    opts = ExportOptions(target=a.target, steps=a.steps, recursions=a.recursions, quantize=a.quantize, graph=a.graph,
                         checkpoint=a.checkpoint, out=a.out, cfg=a.cfg,
                         calibration_per_class=a.calibration_per_class)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    with progress_display() as progress:
        results = export_bundles(opts, progress)
    table = Table(title="lrf-export")
    for col in ("bundle", "artifact", "size", "time", "XNNPACK partitions", "parity"):
        table.add_column(col)
    for r in results:
        for art in r.artifacts:
            table.add_row(r.path.name, art["artifact"], f"{art['bytes'] / 1024:.0f} KiB", f"{art['seconds']:.1f}s",
                          str(art.get("xnnpack_partitions", "-")), verdict(r.parity))
    console.print(table)
    if not all(r.ok for r in results):
        console.print("parity gate failed: see parity.json in the bundle")
        sys.exit(1)

"""Where INT8 error enters the step: each quantizable layer alone, on real trajectories.

    python benchmarks/int8_sensitivity.py [--checkpoint cifar10] [--steps 4] [--trajectories 2]

The ExecuTorch INT8 step is PT2E static int8 (lrf_export.passes.quantize.QuantizePT2E). Here the
quantized program runs in PyTorch (its quantize/dequantize ops simulate XNNPACK's int8 arithmetic)
along ``--trajectories`` per class of the sampler's own trajectories, fed its own outputs, and the
error of each trajectory is the gate's metric: the worst over steps of max |z - z_ref| / max |z_ref|.
Rows: every layer the family may quantize (``Family.int8_candidates``), quantized alone, ranked by
error per weight; then the family's selection (``Family.int8_modules``) and all candidates together.
Ranking uses a cheaper calibration (2 trajectories per class) than the export (8); the two
whole-selection rows use the export's. Writes benchmarks/results/int8_sensitivity.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from lrf_export import test_vectors  # noqa: E402
from lrf_export.graphs import is_guided, step_spec  # noqa: E402
from lrf_export.passes.quantize import QuantizePT2E  # noqa: E402
from lrf_export.passes.static_shapes import trace  # noqa: E402
from lrf_model.pipeline import LRFPipeline, resolve_checkpoint  # noqa: E402
from lrf_model.sampling import schedule  # noqa: E402


def trajectory_errors(step: torch.nn.Module, refs: list[tuple[int, tuple[list[torch.Tensor], list[dict]]]], ts: list[float],
                      cfg: float) -> np.ndarray:
    """The gate's trajectory metric of ``step`` (a step graph's module) on each reference trajectory."""
    errors = []
    for k, (ref, carried) in refs:
        z, worst, state = ref[0], 0.0, carried[0]
        for i in range(len(ts) - 1):
            out = step(*test_vectors.step_inputs(z, ts, i, k, cfg, ref[0], state))
            z, *rest = out if isinstance(out, (tuple, list)) else (out,)
            state = dict(zip(sorted(state), rest))  # the step's carried state feeds the next step
            worst = max(worst, float((z - ref[i + 1]).abs().max() / ref[i + 1].abs().max()))
        errors.append(worst)
    return np.array(errors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="cifar10")
    ap.add_argument("--steps", type=int, default=common.STEPS)
    ap.add_argument("--trajectories", type=int, default=2, help="evaluation trajectories per class")
    args = ap.parse_args()
    torch.set_num_threads(2)

    pipe = LRFPipeline.from_checkpoint(resolve_checkpoint(args.checkpoint))
    den, cfg, R, ts = pipe.denoiser, pipe.sampling.cfg, 1, schedule(args.steps)
    spec = step_spec(den, R, guided=is_guided(cfg))
    program = trace(spec)
    prefix = next(name for name, m in spec.module.named_modules() if m is den)  # the denoiser's path in the graph
    calib_rank = test_vectors.calibration(pipe, ts, cfg, R, per_class=2)["step"]
    calib_export = test_vectors.calibration(pipe, ts, cfg, R)["step"]
    with torch.no_grad():
        refs = [(k, test_vectors.trajectory(pipe, 7 + 31 * j, k, ts, cfg, R))
                for k in range(den.config.num_classes) for j in range(args.trajectories)]

        def errors(names: list[str], calib: list[tuple]) -> np.ndarray:
            paths = frozenset(f"{prefix}.{n}" for n in names)
            return trajectory_errors(QuantizePT2E(paths, calib)(copy.deepcopy(program)).module(), refs, ts, cfg)

        candidates = pipe.family.int8_candidates(den)
        chosen = pipe.family.int8_modules(den)
        rows = []
        for name, module in candidates.items():
            e = errors([name], calib_rank)
            n = module.weight.numel()
            rows.append({"layer": name, "weights": n, "quantized_in_export": name in chosen, "max": float(e.max()),
                         "mean": float(e.mean()), "mean_per_mweight": float(e.mean()) / n * 1e6})
            print(f"{name:50s} {n:8d} max {e.max():.4f} mean {e.mean():.4f}", flush=True)
        rows.sort(key=lambda r: -r["mean_per_mweight"])
        total = sum(p.numel() for p in den.parameters() if p.dim() >= 2)
        wholes = {}
        for label, names in (("the family's selection", list(chosen)), ("every candidate", list(candidates))):
            e = errors(names, calib_export)
            wholes[label] = {"layers": len(names), "int8_share": sum(candidates[n].weight.numel() for n in names) / total,
                             "max": float(e.max()), "median": float(np.median(e)), "mean": float(e.mean())}

    m = common.machine()
    data = {"machine": m, "checkpoint": args.checkpoint, "steps": args.steps, "cfg": cfg,
            "trajectories": len(refs), "layers": rows, "selections": wholes}
    md = [f"# INT8 sensitivity of the step ({args.checkpoint}, {args.steps} steps, cfg {cfg})", "",
          f"{len(refs)} trajectories, PT2E int8 simulated in PyTorch; error = the gate's trajectory metric "
          "(worst step of max|z - z_ref| / max|z_ref|, gate 5e-2). Measured on " + common.machine_line(m) + ".", "",
          "| selection | layers | int8 share | worst | median |", "|---|---:|---:|---:|---:|"]
    md += [f"| {k} | {v['layers']} | {v['int8_share']:.3f} | {v['max']:.4f} | {v['median']:.4f} |" for k, v in wholes.items()]
    md += ["", "Each layer quantized alone (calibration: 2 trajectories per class), most sensitive per weight first:", "",
           "| layer | weights | in export | worst | mean | mean per M weights |", "|---|---:|:-:|---:|---:|---:|"]
    md += [f"| `{r['layer']}` | {r['weights']:,} | {'int8' if r['quantized_in_export'] else 'float'} | {r['max']:.4f} | "
           f"{r['mean']:.4f} | {r['mean_per_mweight']:.3f} |" for r in rows]
    common.write_results("int8_sensitivity", data, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()

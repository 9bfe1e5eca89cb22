"""Orchestration of one export: passes -> artifacts -> plan + test vectors + checks -> manifest -> parity.

The exporter owns no model arithmetic: graphs come from :mod:`lrf_export.graphs` (wrapping
the reference modules), the schedule from :func:`lrf_model.sampling.schedule`, lowering
from the target, and the verdict from :mod:`lrf_export.parity`.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from lrf_model.autoencoder import latent_scaling
from lrf_model.errors import LRFError
from lrf_model.noise import SEED_SALT
from lrf_model.pipeline import LRFPipeline, resolve_checkpoint
from lrf_model.sampling import schedule

from . import test_vectors
from .bundle import staged_directory, write_manifest
from .graphs import GraphSpec, decoder_spec, encoder_spec, is_guided, step_spec
from .parity import TOLERANCES, check_bundle, gate_ok
from .passes import Pass, run_passes
from .passes.constants import FoldConstants
from .passes.fft_matmul import FFTAsMatmul
from .passes.scan import ScanAsOps
from .passes.static_shapes import CheckSignature, CheckStatic, trace
from .plan import build_plan
from .passes.unroll import CheckNoControlFlow, CheckWeightsStoredOnce, fused_spec
from .targets import Target, get_target, precision_for
from .targets.base import Lowered

GRAPHS = ("step", "fused")
QUANTIZE = ("none", "int8", "fp16")
# Step counts a step-graph bundle offers besides its default: the step graph takes t and dt as
# inputs, so any schedule runs; the manifest lists them so that no runtime computes a schedule.
OFFERED_STEPS = (1, 2, 4, 8, 16)


@dataclass
class ExportOptions:
    target: str
    steps: int
    recursions: int | None = None
    quantize: str = "none"
    graph: str = "step"
    checkpoint: str | None = None
    out: str | None = None
    cfg: float | None = None
    shift: float = 1.0
    calibration_per_class: int = 8  # INT8: trajectories per class whose every step calibrates


@dataclass
class BundleResult:
    path: Path
    target: str
    precision: str
    artifacts: list[dict] = field(default_factory=list)
    parity: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return gate_ok(self.parity)


def validate(opts: ExportOptions) -> list[str]:
    targets = ["coreml", "executorch", "onnx"] if opts.target == "all" else [opts.target]
    if opts.calibration_per_class < 1:
        raise LRFError(f"--calibration-per-class {opts.calibration_per_class}: INT8 needs at least one trajectory per class")
    if opts.quantize not in QUANTIZE:
        raise LRFError(f"--quantize {opts.quantize} is unknown; use one of {', '.join(QUANTIZE)}")
    for t in targets:
        precision_for(get_target(t), opts.quantize)
    if not isinstance(opts.steps, int) or opts.steps < 1:
        raise LRFError(f"--steps {opts.steps} is invalid; use at least 1")
    if opts.graph not in GRAPHS:
        raise LRFError(f"--graph {opts.graph} is unknown; use one of {', '.join(GRAPHS)}")
    if opts.cfg is not None and not math.isfinite(opts.cfg):
        raise LRFError(f"--cfg {opts.cfg} is not a finite number")
    return targets


def model_name(checkpoint: Path) -> str:
    return f"lrf-{checkpoint.resolve().name}"


def export_bundles(opts: ExportOptions, progress: Progress | None = None) -> list[BundleResult]:
    """Export one bundle per target; raises LRFError on bad input before writing anything."""
    targets = validate(opts)
    ckpt = resolve_checkpoint(opts.checkpoint)
    pipe = LRFPipeline.from_checkpoint(ckpt)
    R = pipe.check_recursions(opts.recursions)
    cfg = pipe.sampling.cfg if opts.cfg is None else float(opts.cfg)
    ts = schedule(opts.steps, opts.shift)
    den, ae = pipe.denoiser, pipe.autoencoder
    specs: dict[str, GraphSpec] = {
        # At cfg 1 (a guidance-distilled model's) the step runs the conditional half only.
        opts.graph: step_spec(den, R, guided=is_guided(cfg)) if opts.graph == "step" else fused_spec(den, ts, cfg, R),
        "decoder": decoder_spec(den, ae),
        "encoder": encoder_spec(den, ae),
    }
    ref = test_vectors.reference(pipe, ts, cfg, R)
    calib = test_vectors.calibration(pipe, ts, cfg, R, opts.calibration_per_class) if opts.quantize == "int8" else {}
    traces = Traces(specs)
    results = []
    for name in targets:
        target = get_target(name)
        precision = precision_for(target, opts.quantize)
        quant = opts.quantize if opts.quantize != "none" else "float"
        default_out = Path("dist") / f"{model_name(ckpt)}-{name}-{quant}-s{opts.steps}"
        out = Path(opts.out) / default_out.name if (opts.out and len(targets) > 1) else Path(opts.out or default_out)
        results.append(_export_one(target, precision, traces, ref, calib, pipe, ts, cfg, R, opts, ckpt, out, progress))
    return results


class Traces:
    """Each graph traced once per compute dtype (float32, or float16: :meth:`GraphSpec.in_half`),
    on first use, with its FFTs as DFT matmuls (:class:`lrf_export.passes.fft_matmul.FFTAsMatmul`)
    and its linear scans written out (:class:`lrf_export.passes.scan.ScanAsOps`), each a no-op
    where the graph has none, then what the weights alone determine folded into constants
    (:class:`lrf_export.passes.constants.FoldConstants`); every target's passes start from a copy of that program (ExecuTorch's lowering
    edits the program it is given in place)."""

    def __init__(self, specs: dict[str, GraphSpec]):
        self.specs, self._programs = specs, {}

    def spec(self, kind: str, half: bool) -> GraphSpec:
        return self.specs[kind].in_half() if half else self.specs[kind]

    def get(self, kind: str, half: bool):
        if (kind, half) not in self._programs:  # FFTs and scans run on no target: every target gets these forms
            self._programs[kind, half] = run_passes(trace(self.spec(kind, half)), [FFTAsMatmul(), ScanAsOps(), FoldConstants()])
        return copy.deepcopy(self._programs[kind, half])


def guards(spec: GraphSpec) -> list[Pass]:
    """The checks every lowered program passes, run on that program (after the target's passes)."""
    return [CheckSignature(spec), CheckStatic(), CheckNoControlFlow(), CheckWeightsStoredOnce(spec.module)]


def lower_graph(target: Target, spec: GraphSpec, program, precision: str, calibration: list[tuple] | None,
                path: Path) -> Lowered:
    """One traced graph through ``target``'s passes and the guards, written to ``path``."""
    program = run_passes(program, target.passes(spec, precision, calibration) + guards(spec))
    return target.lower(program, spec, path, precision, calibration)


def export_graph(spec: GraphSpec, target_name: str, quantize: str, path: Path,
                 calibration: list[tuple] | None = None) -> Lowered:
    """A graph outside any bundle (a text encoder as its own artifact) lowered as a bundle's graphs are:
    the same trace, passes, guards and target. INT8 needs ``calibration`` (tuples of the graph's inputs)."""
    target = get_target(target_name)
    precision = precision_for(target, quantize)
    half = precision in target.half_traced
    traces = Traces({spec.kind: spec})
    spec_t = traces.spec(spec.kind, half).with_pixel_dtype(target.pixel_dtype)
    return lower_graph(target, spec_t, traces.get(spec.kind, half), precision, calibration, Path(path))


def _export_one(target: Target, precision: str, traces: Traces, ref, calib, pipe: LRFPipeline,
                ts: list[float], cfg: float, R: int, opts: ExportOptions, ckpt: Path, out: Path,
                progress: Progress | None) -> BundleResult:
    result = BundleResult(out, target.name, precision)
    with staged_directory(out) as tmp:
        artifacts = {}
        for kind in traces.specs:
            task = progress.add_task(f"{target.name}:{kind} lower ({precision})", total=None) if progress else None
            half = precision in target.half_traced
            spec_t = traces.spec(kind, half).with_pixel_dtype(target.pixel_dtype)
            file = f"{kind}{target.suffix}"
            lowered = lower_graph(target, spec_t, traces.get(kind, half), precision, calib.get(kind), tmp / file)
            artifacts[kind] = {"file": file, "target": target.name, "precision": precision,
                               "inputs": [i.as_dict() for i in spec_t.inputs], "outputs": [o.as_dict() for o in spec_t.outputs],
                               "lowering": {k: v for k, v in lowered.details.items() if k not in ("inputs", "outputs")}}
            size = sum(p.stat().st_size for p in (tmp / file).rglob("*") if p.is_file()) if (tmp / file).is_dir() \
                else (tmp / file).stat().st_size
            result.artifacts.append({"artifact": file, "bytes": size, "seconds": lowered.seconds, **{
                k: lowered.details[k] for k in ("xnnpack_partitions",) if k in lowered.details}})
            if progress:
                progress.update(task, total=1, completed=1, description=f"{target.name}:{kind} lowered in {lowered.seconds:.1f}s")
        den, ae = pipe.denoiser, pipe.autoencoder
        specs = {kind: spec.with_pixel_dtype(target.pixel_dtype) for kind, spec in traces.specs.items()}
        plan = build_plan(specs[opts.graph], specs["decoder"], specs["encoder"], opts.steps, cfg)
        tensors, checks = test_vectors.write(tmp, ref, plan, TOLERANCES[precision])
        pixels = specs["decoder"].outputs[0]
        manifest = {
            "model": {"name": model_name(ckpt), "family": pipe.family.describe(den), "denoiser": dict(_public(den.config)),
                      "autoencoder": dict(_public(ae.config))},
            "class_names": list(pipe.class_names),
            "null_class": den.config.num_classes,
            "target": target.name,
            "precision": precision,
            "sampler": {"graph": opts.graph, "steps": opts.steps, "schedule": ts, "schedules": offered_schedules(opts),
                        "shift": opts.shift, "cfg": cfg, "recursions": R, "solver": "euler",
                        "prediction": "velocity (noise - z0)"},
            "tolerance": TOLERANCES[precision],
            "latent": {"shape": [1, *pipe.latent_shape],
                       **dict(zip(("scaling_factor", "shift_factor"), latent_scaling(ae))),
                       "note": "artifacts take and return model-space latents; the decoder un-scales inside"},
            "image": {"shape": list(pixels.shape), "dtype": pixels.dtype, "layout": "NHWC, 8-bit RGB",
                      "note": "the decoder outputs pixels: round((clip(x, -1, 1) + 1) * 127.5) inside the graph"},
            "noise": {"generator": "lowbias32 counter hash + Box-Muller (lrf_model.sampling.portable_noise)",
                      "seed_salt": SEED_SALT, "per_image_seed": True},
            "artifacts": artifacts,
            "plan": plan,
            "tensors": tensors,
            "checks": checks,
        }
        write_manifest(tmp, manifest)
        task = progress.add_task(f"{target.name}: parity gate", total=None) if progress else None
        result.parity = check_bundle(tmp)
        (tmp / "parity.json").write_text(json.dumps(result.parity, indent=2) + "\n")
        write_manifest(tmp, manifest)  # re-hash: parity.json is part of the bundle
        if progress:
            progress.update(task, total=1, completed=1, description=f"{target.name}: parity {verdict(result.parity)}")
    return result


def offered_schedules(opts: ExportOptions) -> dict[str, list[float]]:
    """``{"N": schedule(N)}`` for every step count the bundle runs (only its own N when fused)."""
    steps = {opts.steps} if opts.graph == "fused" else {opts.steps, *OFFERED_STEPS}
    return {str(n): schedule(n, opts.shift) for n in sorted(steps)}


def _public(config) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def verdict(report: dict) -> str:
    if report.get("numeric") == "needs macOS":
        return "structure ok, numeric needs macOS" if report["structure_ok"] else "STRUCTURE FAILED"
    return "pass" if report["passed"] else "FAIL"


def progress_display() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=False)

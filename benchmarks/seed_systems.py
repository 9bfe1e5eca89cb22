"""The seed systems at their published sizes, measured against their own claims and phone budgets.

    python benchmarks/seed_systems.py [--systems luminars] [--fresh] [--export-only]

For each seed system the script builds what the seed describes, at its published size with random
weights (memory and latency do not depend on what the weights learned): the denoiser (its family's
``PUBLISHED_CONFIG``), an autoencoder of the seed's kind and size (LuminaRS: diffusers'
``AutoencoderKL``; IRIS: the wavelet autoencoder; MicroForge: a DC-AE) and a text encoder of the
seed's size (transformers' ``CLIPTextModel``). Denoiser and autoencoder are exported
as bundles to ExecuTorch, ONNX and Core ML (fp32; INT8 on the first two); the text encoder, which no
bundle plan feeds yet, as its own artifact through the same trace, passes and targets
(:func:`lrf_export.exporter.export_graph`). Then each stage runs in a fresh process and reports its
peak RSS (VmHWM):

- text encoder: ONNX Runtime (a Python worker, no torch) and ExecuTorch (its Python runtime: lrf-native
  runs bundles, not single programs); the worker's own interpreter is the ``import`` reading, and
  ``peak_rss_mib`` is the peak minus it, what the encoder adds;
- denoise + decode: ``lrf-native --json`` (ExecuTorch, the runtime the Android app links) and
  ONNX Runtime (the worker of ``memory.py``);
- the whole system in one ONNX Runtime process: text encoder, then the bundle, with the encoder
  released before the denoiser loads (``sequential``) or kept (``resident``).

Core ML bundles are converted and sized; running them needs macOS. Every row carries the seed's own
claim for what it measures (or null) and verdicts against the app budgets of ``memory.py`` (half a
phone's RAM: 1.5 GiB on a 3 GB phone, 2 GiB on a 4 GB phone). Latency runs on this machine's CPU
with 2 threads. Writes benchmarks/results/seed_systems.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from memory import PHONE_BUDGETS, reading  # noqa: E402

MIB = 2**20
THREADS = 2
# ONNX first: its exports take seconds, ExecuTorch's lowering of a published-size graph tens of minutes.
PRECISIONS = {"onnx": ("none", "int8"), "executorch": ("none", "int8"), "coreml": ("none",)}
# INT8 ranges from one trajectory per class: with lrf-export's default of 8, LuminaRS's INT8 export was still
# calibrating after 35 minutes, and random weights calibrate nothing a user keeps (real ranges are enough to time).
CALIBRATION_PER_CLASS = 1


@dataclass(frozen=True)
class System:
    """A seed system at its published size: what to build and what the seed claims about it."""

    family: str
    seed: str  # the seed document's file in ../shared/seeds
    resolution: int
    steps: int  # the seed's default sampling steps
    text: dict  # transformers CLIPTextConfig arguments
    autoencoder: tuple[str, dict]  # (kind of AUTOENCODERS, its builder's arguments)
    claims: dict[str, str] = field(default_factory=dict)  # row config -> the seed's own figure
    claim_source: str = ""
    overrides: dict = field(default_factory=dict)  # the denoiser's PUBLISHED_CONFIG changed here (another resolution)


def clip_text(width: int, layers: int) -> dict:
    """A CLIP text tower (77 tokens, CLIP's 49,408-token vocabulary, 64-wide heads) of ``width`` x ``layers``."""
    return dict(vocab_size=49408, hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                num_attention_heads=width // 64, max_position_embeddings=77)


def autoencoders() -> dict:
    """The builders of :mod:`lrf_model.autoencoder`, by the kind a :class:`System` names."""
    from functools import partial

    from lrf_model.autoencoder import build_autoencoder, build_dc_autoencoder, build_kl_autoencoder

    return {"kl": build_kl_autoencoder, "wavelet": partial(build_autoencoder, wavelet=True), "dc": build_dc_autoencoder}


SYSTEMS = {
    # Seed 003: "~90M params, <500MB" (the generator), "VAE (frozen) ~83M", "CLIP (frozen) ~303M",
    # "Inference VRAM (b=1) ~1.5-2GB"; quick start: 16 x 32 x 32 latents (256 px), 12 steps.
    # A 303M CLIP text tower: CLIP's width 1024 (OpenCLIP ViT-H's text width), 20 layers.
    "luminars": System(
        family="luminars", seed="003", resolution=256, steps=12, text=clip_text(1024, 20),
        autoencoder=("kl", dict(latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2)),
        claims={"denoiser + VAE": "~90M params, <500MB (the generator)", "whole system": "~1.5-2GB inference (b=1)"},
        claim_source="seed 003 (LuminaRS): header and parameter budget table"),
    # Seed 001: IRIS-Tiny "19M generator, ~60M total system, 545 MB (fp16)"; CLIP-L/14's text tower
    # (77 x 768 tokens, 123M); a HaarDWT + WaveletVAE at f=16 (256 px -> 16 x 16). The total less the
    # generator leaves ~41M for the wavelet autoencoder: width 256 gives 39.1M.
    "iris": System(
        family="iris", seed="001", resolution=256, steps=4, text=clip_text(768, 12),
        autoencoder=("wavelet", dict(downsample=16, latent_channels=16, channels=256)),
        claims={"denoiser + VAE": "19M generator, ~60M total system", "whole system": "545 MB inference (fp16)"},
        claim_source="seed 001 (IRIS): model variants table"),
    # The same IRIS-Tiny at 512 px (the second resolution): a 32 x 32 latent, 1,024 tokens.
    "iris-512": System(
        family="iris", seed="001", resolution=512, steps=4, text=clip_text(768, 12),
        autoencoder=("wavelet", dict(downsample=16, latent_channels=16, channels=256)),
        claims={"denoiser + VAE": "19M generator, ~60M total system", "whole system": "545 MB inference (fp16)"},
        claim_source="seed 001 (IRIS): model variants table", overrides={"latent_size": 32}),
    # Seed 002: MicroForge-tiny "28M params, ~56 MB fp16, ~0.13s/image on CPU", "~76 MB inference @ 512px",
    # "with TinyCLIP (+120 MB) under 500 MB"; DC-AE tiny [32,64,128,256], latent 16, 16M, f=32
    # (512 px -> 16 x 16). A TinyCLIP-sized text tower: width 512, 12 layers (63M; the seed: ~60M).
    # The backbone's cross-attention reads dim-wide tokens: a text encoder's would pass one linear.
    "microforge": System(
        family="microforge", seed="002", resolution=512, steps=4, text=clip_text(512, 12),
        autoencoder=("dc", dict(latent_channels=16, widths=(32, 64, 128, 128, 256, 256), layers_per_block=2)),
        claims={"denoiser + VAE": "28M params, ~56 MB fp16, ~0.13s/image on CPU",
                "whole system": "~76 MB inference @ 512px; under 500 MB with TinyCLIP"},
        claim_source="seed 002 (MicroForge): variants, DC-AE table and memory budget"),
}


# --- building and exporting ---------------------------------------------------------------------------

def checkpoint(system: System) -> Path:
    """The system's denoiser + autoencoder as a pipeline folder (random weights, saved once)."""
    import torch

    from lrf_model.families import FAMILIES
    from lrf_model.pipeline import LRFPipeline

    family = FAMILIES[system.family]
    config = published_config(system)
    if "cond_dim" in config:  # the conditioning tokens are the text encoder's
        config["cond_dim"] = system.text["hidden_size"]
    root = common.BUNDLES / f"seed-{system.family}-{system.resolution}px"
    wanted = {"denoiser": config, "autoencoder": list(system.autoencoder)}
    stamp = root / "seed_system.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == json.loads(json.dumps(wanted)):
        return root
    torch.manual_seed(0)
    denoiser = common.random_weights(family.build(**config)).eval()
    kind, arguments = system.autoencoder
    autoencoder = autoencoders()[kind](**arguments).eval()
    LRFPipeline(denoiser, autoencoder).save_pretrained(root)
    stamp.write_text(json.dumps(wanted))
    return root


def system_bundle(system: System, root: Path, target: str, quantize: str, fresh: bool) -> Path:
    """The system's ``target`` bundle at ``quantize`` (exported once into the benchmarks' cache)."""
    return common.bundle(target, quantize, system.resolution, fresh, steps=system.steps, checkpoint=root,
                         calibration_per_class=CALIBRATION_PER_CLASS)


def published_config(system: System) -> dict:
    """The family's ``PUBLISHED_CONFIG`` (each seed family's module declares its published size)."""
    import importlib

    return dict(importlib.import_module(f"lrf_model.families.{system.family}").PUBLISHED_CONFIG) | system.overrides


def text_encoder(system: System, target: str, quantize: str, fresh: bool) -> tuple[Path, dict]:
    """The text encoder artifact (exported once) and what its lowering reported."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from lrf_export.exporter import export_graph
    from lrf_export.graphs import text_encoder_spec

    precision = "float" if quantize == "none" else quantize
    path = common.BUNDLES / f"seed-{system.family}-text-{precision}{'.pte' if target == 'executorch' else '.onnx'}"
    report = path.with_name(path.name + ".json")  # one per artifact: the .onnx and the .pte share a stem
    if path.is_file() and report.is_file() and not fresh:
        return path, json.loads(report.read_text())
    torch.manual_seed(0)
    model = CLIPTextModel(CLIPTextConfig(**system.text, attn_implementation="eager")).eval()
    spec = text_encoder_spec(model)
    calibration = [(torch.randint(0, system.text["vocab_size"], (1, 77), dtype=torch.int32),) for _ in range(4)]
    print(f"exporting {path.name} ...", flush=True)
    lowered = export_graph(spec, target, quantize, path, calibration if quantize == "int8" else None)
    details = {"params": sum(p.numel() for p in model.parameters()), "seconds": lowered.seconds,
               **{k: v for k, v in lowered.details.items() if k in ("xnnpack_partitions", "portable_ops")}}
    report.write_text(json.dumps(details))
    return path, details


# --- the workers: one fresh process per measurement ----------------------------------------------------

def worker_text(runtime: str, path: str) -> dict:
    """Load the text encoder, encode one prompt's ids; readings after each stage and the run's time."""
    import numpy as np

    stages = {"after_import": reading()}
    ids = np.arange(77, dtype=np.int32)[None] % 49408
    if runtime == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        run = lambda: session.run(None, {"input_ids": ids})  # noqa: E731
    else:
        import torch
        from executorch.extension.pybindings import _C
        from executorch.runtime import Runtime

        _C._unsafe_reset_threadpool(THREADS)
        stages["after_import"] = reading()  # torch and the runtime's library are the interpreter's share here
        method = Runtime.get().load_program(Path(path)).load_method("forward")
        run = lambda: method.execute([torch.from_numpy(ids)])  # noqa: E731
    stages["after_load"] = reading()
    t0 = time.perf_counter()
    run()
    ms = (time.perf_counter() - t0) * 1e3
    stages["after_run"] = reading()
    return {"stages": stages, "run_ms": ms}


def worker_onnx_bundle(bundle: str, text: str | None, keep_text: bool) -> dict:
    """One image from an ONNX bundle; with ``text``, the text encoder runs first in the same process
    (released before the bundle loads unless ``keep_text``)."""
    import gc

    import numpy as np
    import onnxruntime as ort

    from lrf_export.run import BundleRuntime

    stages = {"after_import": reading()}
    if text:
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        session = ort.InferenceSession(text, options, providers=["CPUExecutionProvider"])
        session.run(None, {"input_ids": np.zeros((1, 77), dtype=np.int32)})
        stages["after_text"] = reading()
        if not keep_text:
            del session
            gc.collect()
    rt = BundleRuntime(bundle, threads=THREADS)
    stages["after_load"] = reading()
    values = rt.inputs({"class": 3, "seed": 0})
    t0 = time.perf_counter()
    state = rt.iterate(values)
    denoise_ms = (time.perf_counter() - t0) * 1e3
    stages["after_denoise"] = reading()
    t0 = time.perf_counter()
    rt.finish(state, values)
    decode_ms = (time.perf_counter() - t0) * 1e3
    stages["after_decode"] = reading()
    assert "torch" not in sys.modules, "the ONNX Runtime path must not import torch"
    return {"stages": stages, "denoise_ms": denoise_ms, "decode_ms": decode_ms, "steps": int(values["steps"])}


def run_worker(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError((proc.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(proc.stdout.splitlines()[-1])


# --- the driver ---------------------------------------------------------------------------------------

def peak_kib(stages: dict) -> int:
    return max(s["peak_rss_kib"] for s in stages.values())


def verdicts(peak_mib: float | None) -> dict:
    if peak_mib is None:
        return {"verdict_3gb": None, "verdict_4gb": None}
    budget = {k: v / MIB for k, v in PHONE_BUDGETS.items()}
    return {"verdict_3gb": "fits" if peak_mib <= budget["3 GB phone"] else "over",
            "verdict_4gb": "fits" if peak_mib <= budget["4 GB phone"] else "over"}


def measure_system(name: str, system: System, fresh: bool, emit: Callable[[dict], None]) -> None:
    """Each row to ``emit`` as soon as it is measured (a published-size run takes hours on 2 cores)."""
    from lrf_model.pipeline import LRFPipeline

    root = checkpoint(system)
    pipe = LRFPipeline.from_checkpoint(root)
    ae = pipe.autoencoder
    decoder = [ae.decoder, *([ae.post_quant_conv] if hasattr(ae, "post_quant_conv") else [])]  # a KL VAE's last conv
    params = {"denoiser": sum(p.numel() for p in pipe.denoiser.parameters()),
              "decoder": sum(p.numel() for m in decoder for p in m.parameters())}
    base = {"family": system.family, "resolution": system.resolution, "claim_source": system.claim_source}
    text_paths: dict[tuple[str, str], Path] = {}

    def bundle_row(target: str, quantize: str) -> None:
        bundle = system_bundle(system, root, target, quantize, fresh)
        manifest = json.loads((bundle / "manifest.json").read_text())
        precision = manifest["precision"]  # Core ML's float bundle is fp16
        files = [manifest["artifacts"][k]["file"] for k in ("step", "decoder")]
        weights = sum(f.stat().st_size for k in files for f in [bundle / k] + list((bundle / k).rglob("*")) if f.is_file())
        lowering = {k: manifest["artifacts"][k]["lowering"].get("xnnpack_partitions") for k in ("step", "decoder")}
        row = {**base, "config": "denoiser + VAE decoder", "runtime": target, "precision": precision,
               "params": params["denoiser"] + params["decoder"], "weights_mib": weights / MIB,
               "xnnpack_partitions": lowering if target == "executorch" else None,
               "claim": system.claims.get("denoiser + VAE")}
        if target == "coreml":
            emit({**row, "peak_rss_mib": None, "step_ms": None, "image_ms": None,
                  "note": "converted and sized; running it needs macOS", **verdicts(None)})
            return
        if target == "executorch":
            with tempfile.TemporaryDirectory() as tmp:
                proc = subprocess.run([str(common.LRF_NATIVE), str(bundle), "--class", "3", "--json", "--threads",
                                       str(THREADS), "--out", f"{tmp}/x.png"], capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"lrf-native {bundle}: {proc.stderr.strip()[-300:]}")
            out = json.loads(proc.stdout)
            stages, step_ms, image_ms = out["memory"], out["summary"]["step_ms_median"], out["summary"]["image_ms_median"]
            runtime = "lrf-native (ExecuTorch)"
        else:
            out = run_worker("bundle", str(bundle))
            stages, image_ms = out["stages"], out["denoise_ms"] + out["decode_ms"]
            step_ms, runtime = out["denoise_ms"] / out["steps"], "ONNX Runtime"
        peak = peak_kib(stages) / 1024
        emit({**row, "runtime": runtime, "peak_rss_mib": peak, "step_ms": step_ms, "image_ms": image_ms,
              "stages_peak_rss_mib": {k: v["peak_rss_kib"] / 1024 for k, v in stages.items()}, **verdicts(peak)})
        print(f"{name} {runtime} {precision}: {peak:.0f} MiB peak, {step_ms:.0f} ms/step", flush=True)

    def text_row(target: str, quantize: str) -> None:
        precision = common.precision_label(quantize)
        path, details = text_encoder(system, target, quantize, fresh)
        out = run_worker("text-" + target, str(path))
        net = (peak_kib(out["stages"]) - out["stages"]["after_import"]["rss_kib"]) / 1024
        runtime = "ExecuTorch (Python runtime)" if target == "executorch" else "ONNX Runtime"
        text_paths[target, precision] = path
        emit({**base, "config": "text encoder", "runtime": runtime, "precision": precision,
              "params": details["params"], "weights_mib": path.stat().st_size / MIB, "peak_rss_mib": net,
              "step_ms": None, "image_ms": out["run_ms"], "xnnpack_partitions": details.get("xnnpack_partitions"),
              "claim": None, "stages_peak_rss_mib": {k: v["peak_rss_kib"] / 1024 for k, v in out["stages"].items()},
              "note": "peak RSS minus the worker's interpreter", **verdicts(net)})
        print(f"{name} text encoder {runtime} {precision}: +{net:.0f} MiB, {out['run_ms']:.0f} ms", flush=True)

    def system_row(quantize: str, keep: bool) -> None:
        precision = common.precision_label(quantize)
        bundle = system_bundle(system, root, "onnx", quantize, False)
        out = run_worker("system", str(bundle), str(text_paths["onnx", precision]), "keep" if keep else "release")
        peak = peak_kib(out["stages"]) / 1024
        emit({**base, "config": f"whole system ({'resident' if keep else 'sequential'})", "runtime": "ONNX Runtime",
              "precision": precision, "params": None, "weights_mib": None, "peak_rss_mib": peak,
              "step_ms": out["denoise_ms"] / out["steps"], "image_ms": out["denoise_ms"] + out["decode_ms"],
              "claim": system.claims.get("whole system"),
              "stages_peak_rss_mib": {k: v["peak_rss_kib"] / 1024 for k, v in out["stages"].items()},
              "note": "text encoder " + ("kept loaded" if keep else "released before the denoiser loads") +
                      "; includes the Python interpreter", **verdicts(peak)})
        print(f"{name} whole system ONNX {precision} {'resident' if keep else 'sequential'}: {peak:.0f} MiB", flush=True)

    # Target by target, the whole system right after ONNX's parts: the fast target's full picture first.
    for target, quantizes in PRECISIONS.items():
        for quantize in quantizes:
            bundle_row(target, quantize)
        if target != "coreml":
            for quantize in quantizes:
                text_row(target, quantize)
        if target == "onnx":
            for quantize in quantizes:
                for keep in (False, True):
                    system_row(quantize, keep)


def export_system(system: System, fresh: bool) -> None:
    """Every artifact :func:`measure_system` reads, exported (or found in the cache), nothing measured:
    the published-size exports take an hour of CPU and can run beside other work, while the
    measuring needs the machine to itself."""
    root = checkpoint(system)
    for target, quantizes in PRECISIONS.items():
        for quantize in quantizes:
            system_bundle(system, root, target, quantize, fresh)
            if target != "coreml":
                text_encoder(system, target, quantize, fresh)


def markdown(rows: list[dict], machine: dict) -> str:
    def num(v, fmt="{:.0f}"):
        return "-" if v is None else fmt.format(v)

    lines = ["# Seed systems at their published sizes", "",
             f"`python benchmarks/seed_systems.py`, {THREADS} threads; last run on {common.machine_line(machine)}. Random "
             "weights at the seeds' published configurations. Peak RSS is VmHWM of a fresh process (text encoder: what it "
             "adds to the worker's interpreter). Budgets: an app's share of a 3 GB / 4 GB phone (1.5 / 2 GiB, `memory.py`). "
             "Compare latencies only between rows of one CPU.", "",
             "| system | resolution | part | runtime | precision | params (M) | weights (MiB) | peak RSS (MiB) | "
             "ms/step | ms/image (or run) | XNNPACK partitions | seed's claim | 3 GB phone | 4 GB phone | CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        parts = r.get("xnnpack_partitions")
        parts = "-" if parts is None else (", ".join(f"{k} {v}" for k, v in parts.items()) if isinstance(parts, dict) else parts)
        lines.append(f"| {r['family']} | {r['resolution']} | {r['config']} | {r['runtime']} | {r['precision']} | "
                     f"{num(r['params'] and r['params'] / 1e6, '{:.1f}')} | {num(r['weights_mib'])} | {num(r['peak_rss_mib'])} | "
                     f"{num(r['step_ms'])} | {num(r['image_ms'])} | {parts} | {r['claim'] or '-'} | "
                     f"{r['verdict_3gb'] or '-'} | {r['verdict_4gb'] or '-'} | "
                     f"{common.cpu_line(r['machine']) if r.get('machine') else '-'} |")
    notes = sorted({r["note"] for r in rows if r.get("note")})
    lines += ["", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["peak_rss_mib"] is not None]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(shown)), 4.5), dpi=120)
    labels = [f"{r['family']} {r['resolution']} {r['config']}\n{r['runtime'].split(' ')[0]} {r['precision']}" for r in shown]
    ax.bar(range(len(shown)), [r["peak_rss_mib"] for r in shown], color="#1f77b4")
    for (name, budget), style in zip(PHONE_BUDGETS.items(), ("--", ":")):
        ax.axhline(budget / MIB, color="red", ls=style, lw=1, label=f"{name} app budget")
    ax.set_xticks(range(len(shown)), labels, rotation=75, fontsize=6)
    ax.set_ylabel("peak RSS (MiB)")
    ax.legend(fontsize=7)
    ax.set_title("Seed systems at published size: peak RSS per part")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}; the other "
                   "systems' rows are kept from the last run")
    p.add_argument("--fresh", action="store_true", help="re-export the bundles and text encoders")
    p.add_argument("--export-only", action="store_true", help="export the bundles and text encoders into the cache "
                   "and measure nothing (then measure, without --fresh, on an otherwise idle machine)")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, *rest = args.worker
        if kind.startswith("text-"):
            out = worker_text(kind.removeprefix("text-"), rest[0])
        elif kind == "bundle":
            out = worker_onnx_bundle(rest[0], None, False)
        else:
            out = worker_onnx_bundle(rest[0], rest[1], rest[2] == "keep")
        print(json.dumps(out))
        return 0
    names = [s for s in args.systems.split(",") if s]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown:
        p.error(f"unknown system {unknown}; use {', '.join(SYSTEMS)}")
    if args.export_only:
        for name in names:
            export_system(SYSTEMS[name], args.fresh)
        return 0
    common.build_native()
    previous = common.RESULTS / "seed_systems.json"
    measured = {(SYSTEMS[n].family, SYSTEMS[n].resolution) for n in names}
    kept = json.loads(previous.read_text()) if previous.is_file() else {"rows": []}
    # Each row names the machine it was measured on (rows kept from an older run may come from another
    # host: latency moves ~2x between an AVX-512 BF16 and an AVX2-only CPU of this VM family).
    rows = [{**r, "machine": r.get("machine", kept.get("machine"))} for r in kept["rows"]
            if (r["family"], r["resolution"]) not in measured]
    machine = common.machine()
    common.RESULTS.mkdir(parents=True, exist_ok=True)

    def emit(row: dict) -> None:
        """Keep the row and rewrite the results, so that a run stopped midway leaves what it measured."""
        rows.append({**row, "machine": machine})
        plot(rows, common.RESULTS / "seed_systems.png")
        common.write_results("seed_systems", {"machine": machine, "budgets_bytes": PHONE_BUDGETS, "rows": rows},
                             markdown(rows, machine))

    for name in names:
        measure_system(name, SYSTEMS[name], args.fresh, emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every benchmark shares: the bundles it measures, the machine it ran on, where results go.

Bundles are exported once under ``benchmarks/.bundles/`` (git-ignored) and reused while their
manifest verifies; ``--fresh`` in each script re-exports. Two kinds of checkpoint:

- the shipped 32px CIFAR-10 model;
- the same architecture at 256x256 and 512x512 (a TAESD-sized f=8 autoencoder, 64 channels, and
  the denoiser at 32x32 / 64x64 latents with the linear-attention mixer), random weights: enough
  for memory and latency, which do not depend on what the weights learned.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "benchmarks" / ".bundles"
RESULTS = ROOT / "benchmarks" / "results"
NATIVE = ROOT / "runtimes" / "native"
LRF_NATIVE = NATIVE / "build" / "lrf-native"
STEPS = 4
# Image side -> latent side for the scaled-up architecture (f=8, as TAESD).
SCALES = {256: 32, 512: 64}


# The CPU features that decide which kernels XNNPACK/MLAS/oneDNN pick (int8 speed hinges on VNNI).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
             "asimddp", "i8mm", "sve")


def machine() -> dict:
    """The machine a result was measured on (CPU model and features, cores, memory, library versions)."""
    cpu, flags = platform.processor(), set()
    if Path("/proc/cpuinfo").exists():
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu)
        flags = set(next((ln.split(":", 1)[1].split() for ln in info if ln.startswith(("flags", "Features"))), []))
    mem_kib = next((int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                    if ln.startswith("MemTotal")), 0) if Path("/proc/meminfo").exists() else 0
    from lrf_export.bundle import tool_versions

    return {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "isa": [f for f in ISA_FLAGS if f in flags],
            "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(), **tool_versions()}


def cpu_line(m: dict) -> str:
    """'Intel(R) Xeon(R) Processor (avx2, avx512f, avx512_vnni, ...)'."""
    return f"{m['cpu']} ({', '.join(m['isa'])})" if m.get("isa") else m["cpu"]


def machine_line(m: dict) -> str:
    return (f"{cpu_line(m)}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; torch {m.get('torch')}, "
            f"executorch {m.get('executorch')}, onnxruntime {m.get('onnxruntime')} ({m['date']})")


def write_results(name: str, data: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)
    print(f"wrote benchmarks/results/{name}.json, {name}.md" + (f", {name}.png" if (RESULTS / f"{name}.png").exists() else ""))


def scaled_checkpoint(side: int) -> Path:
    """The shipped architecture at ``side`` x ``side`` pixels with random weights (saved once)."""
    import torch

    from lrf_model.autoencoder import build_autoencoder
    from lrf_model.families import family_named_in
    from lrf_model.pipeline import LRFPipeline, default_checkpoint

    root = BUNDLES / f"checkpoint-{side}px"
    shipped = json.loads((default_checkpoint() / "denoiser" / "config.json").read_text())
    config = {k: v for k, v in shipped.items() if not k.startswith("_")}
    config["latent_size"] = SCALES[side]
    if "mixer" in config:  # a family with a choice of token mixer: the one that scales linearly
        config["mixer"] = "linear"
    saved = root / "denoiser" / "config.json"
    if (root / "model_index.json").is_file() and saved.is_file():
        old = json.loads(saved.read_text())
        if old.get("_class_name") == shipped.get("_class_name") and \
                {k: v for k, v in old.items() if not k.startswith("_")} == json.loads(json.dumps(config)):
            return root  # made for the shipped architecture as it is now
    torch.manual_seed(side)
    denoiser = random_weights(family_named_in(shipped).build(**config))
    LRFPipeline(denoiser.eval(), build_autoencoder(downsample=8, latent_channels=config["latent_channels"], channels=64).eval()).save_pretrained(root)
    return root


def random_weights(module):
    """``module`` with every weight drawn at random, scaled by its fan-in: adaLN-Zero models start as the
    identity, and memory or latency measured on one would skip nothing but say nothing about its outputs."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape) / math.sqrt(p[0].numel() if p.dim() > 1 else 64))
    return module


def checkpoint_digest(root: Path) -> str:
    """sha256 over a checkpoint's configs and weights (``model_index.json`` and its components' files, not
    the eval results or model card beside them): a cached bundle is reused only while it matches."""
    h = hashlib.sha256()
    files = [Path(root) / "model_index.json", *Path(root).glob("*/config.json"), *Path(root).glob("*/*.safetensors")]
    for f in sorted(p for p in files if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def precision_label(quantize: str) -> str:
    """The precision of a bundle exported with ``--quantize quantize`` on ExecuTorch/ONNX."""
    return "fp32" if quantize == "none" else quantize


def bundle(target: str, quantize: str, side: int = 32, fresh: bool = False, shipped: str = "cifar10",
           steps: int = STEPS, checkpoint: Path | None = None, calibration_per_class: int | None = None) -> Path:
    """The ``target`` bundle at ``quantize`` and ``steps`` of a shipped model (``shipped``, side 32),
    of a scaled checkpoint, or of ``checkpoint`` (named after its folder)."""
    from lrf_export.bundle import load_manifest
    from lrf_export.exporter import ExportOptions, export_bundles
    from lrf_model.errors import LRFError
    from lrf_model.pipeline import resolve_checkpoint

    precision = "float" if quantize == "none" else quantize
    name = f"{checkpoint.name}-" if checkpoint else "" if shipped == "cifar10" else f"{shipped}-"
    out = BUNDLES / f"{name}{target}-{precision}-{side}px-s{steps}"
    if checkpoint is None:
        checkpoint = resolve_checkpoint(shipped) if side == 32 else scaled_checkpoint(side)
    source = BUNDLES / f"{out.name}.source"  # the digest of the weights it was exported from
    digest = checkpoint_digest(checkpoint)
    if out.exists() and not fresh:
        try:
            m = load_manifest(out)
            if m["sampler"]["steps"] == steps and m["target"] == target and source.is_file() \
                    and source.read_text() == digest:
                return out
            print(f"re-exporting {out.relative_to(ROOT)}: made from other weights or settings", flush=True)
        except LRFError as e:
            print(f"re-exporting {out.relative_to(ROOT)}: {e}", flush=True)
    print(f"exporting {out.relative_to(ROOT)} ...", flush=True)
    source.unlink(missing_ok=True)
    (result,) = export_bundles(ExportOptions(target=target, steps=steps, quantize=quantize, checkpoint=str(checkpoint),
                                             out=str(out),
                                             calibration_per_class=calibration_per_class or ExportOptions.calibration_per_class))
    if not result.ok:
        if side == 32 and checkpoint == resolve_checkpoint(shipped):
            sys.exit(f"{out}: the parity gate failed; see {out / 'parity.json'}")
        # Random weights have no trained scale for int8 calibration to match; only the
        # shipped model's parity means anything (benchmarks/parity.py).
        print(f"note: {out.name} (random weights) misses the parity gate; measuring it anyway", flush=True)
    source.write_text(digest)
    return out


def build_native() -> Path:
    """Build runtimes/native (Release) if needed; the benchmarks time this binary."""
    import executorch

    subprocess.run(["cmake", "-S", str(NATIVE), "-B", str(NATIVE / "build"), "-DCMAKE_BUILD_TYPE=Release",
                    f"-DEXECUTORCH_ROOT={executorch.__path__[0]}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(NATIVE / "build"), "-j2"], check=True, stdout=subprocess.DEVNULL)
    return LRF_NATIVE

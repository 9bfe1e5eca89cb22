"""Run a bundle on the host: the one sampler loop every Python-side runtime uses.

``BundleRuntime`` reads the manifest (verified), opens each artifact with its target's host
runner, and loops over the manifest's schedule (step graph) or calls the fused graph. The
parity gate, ``lrf-run`` and the benchmarks all go through it, so the loop exists once.
It imports no torch: an ONNX bundle runs in a process holding only NumPy and ONNX Runtime,
which is what the memory benchmark measures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from lrf_model.classes import class_index
from lrf_model.errors import LRFError, cli_errors, first_line
from lrf_model.noise import noise_array

from .bundle import load_manifest
from .targets import get_target


def _gist(e: BaseException) -> str:
    first = first_line(e)
    return type(e).__name__ if first == type(e).__name__ else f"{type(e).__name__}: {first[:160]}"


class BundleRuntime:
    """A verified bundle opened on this host; ``threads`` sizes the runtime's CPU thread pool.

    A bundle is input from outside: whatever its artifacts or manifest hold, opening and
    running it ends in a result or a one-line :class:`LRFError` naming the artifact, never in a
    runtime library's own exception (``tests/test_hostile_bundles.py`` mutates real bundles)."""

    def __init__(self, root: str | Path, verify: bool = True, threads: int | None = None):
        self.root = Path(root)
        self.manifest = load_manifest(self.root, verify=verify)
        target = get_target(self.manifest["target"])
        self.runners = {}
        for kind, art in self.manifest["artifacts"].items():
            try:
                self.runners[kind] = target.runner(self.root / art["file"], art["inputs"], art["outputs"], threads)
            except Exception as e:  # each runtime raises its own types for a damaged model file
                raise LRFError(f"cannot open the {kind} artifact {art['file']} with {target.name} ({_gist(e)}); "
                               "the bundle is damaged, re-export or re-copy it") from None
        self.executable = all(r is not None for r in self.runners.values())

    def run(self, kind: str, feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
        """Output ``output`` of artifact ``kind`` on ``feeds``."""
        runner = self._require(kind)
        try:
            return runner(feeds)[output]
        except Exception as e:  # a manifest whose names, shapes or dtypes do not fit the artifact
            raise LRFError(f"the {kind} artifact failed on {self.manifest['target']} ({_gist(e)}); "
                           "the bundle is damaged or inconsistent, re-export it") from None

    @property
    def sampler(self) -> dict:
        return self.manifest["sampler"]

    def class_index(self, name_or_index: str | int) -> int:
        return class_index(self.manifest["class_names"], name_or_index)

    def _require(self, kind: str):
        runner = self.runners.get(kind)
        if runner is None:
            raise LRFError(f"this host cannot execute the {self.manifest['target']} {kind} artifact "
                           "(Core ML runs on macOS/iOS only)")
        return runner

    def schedule(self, steps: int | None = None) -> list[float]:
        """The manifest's schedule for ``steps`` (default: the bundle's own step count)."""
        s = self.sampler
        if steps is None or steps == s["steps"]:
            return s["schedule"]
        if str(steps) not in s["schedules"]:
            raise LRFError(f"this bundle offers steps {', '.join(s['schedules'])}, not {steps}; "
                           "pick one of those or re-export with --steps")
        return s["schedules"][str(steps)]

    def noise(self, seed: int) -> np.ndarray:
        return noise_array(seed, self.manifest["latent"]["shape"][1:])[None]

    def denoise(self, noise: np.ndarray, class_id: int, steps: int | None = None,
                callback: Callable[[int, np.ndarray, float], None] | None = None, cfg: float | None = None) -> np.ndarray:
        """Final latent from ``noise``; ``callback(i, latent, seconds)`` after each step. ``cfg``
        overrides the manifest's guidance scale (an input of the step graph; baked into a fused one)."""
        s = self.sampler
        ts = self.schedule(steps)
        if cfg is not None and cfg != s["cfg"] and s["graph"] == "fused":
            raise LRFError(f"this fused bundle has cfg {s['cfg']} built in, not {cfg}; re-export it or use a step bundle")
        cfg = s["cfg"] if cfg is None else cfg
        cls = np.array([class_id], dtype=np.int64)
        if s["graph"] == "fused":
            t0 = time.perf_counter()
            z = self.run("fused", {"noise": noise, "class_id": cls}, "latent")
            if callback:
                callback(len(ts) - 2, z, time.perf_counter() - t0)
            return z
        z = noise
        for i in range(len(ts) - 1):
            t0 = time.perf_counter()
            z = self.run("step", {"latent": z, "t": np.array([ts[i]], np.float32),
                                  "dt": np.array([ts[i] - ts[i + 1]], np.float32), "class_id": cls,
                                  "cfg": np.array([cfg], np.float32)}, "next_latent")
            if callback:
                callback(i, z, time.perf_counter() - t0)
        return z

    def decode(self, latent: np.ndarray) -> np.ndarray:
        return self.run("decoder", {"latent": latent}, "image")

    def encode(self, image: np.ndarray) -> np.ndarray:
        return self.run("encoder", {"image": image}, "latent")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, the same rounding as the reference."""
    return np.round((np.clip(image[0], -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lrf-run", description="Generate an image with an exported bundle on this host.")
    p.add_argument("bundle")
    p.add_argument("--class", dest="cls", default="0", help="class name or index")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="one of the step counts the manifest offers (default: its own)")
    p.add_argument("--out", default="out.png")
    p.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscale of the PNG")
    args = p.parse_args(argv)
    rt = BundleRuntime(args.bundle)
    cls = rt.class_index(args.cls)
    times: list[float] = []
    z = rt.denoise(rt.noise(args.seed), cls, args.steps, callback=lambda i, _z, s: times.append(s))
    t0 = time.perf_counter()
    image = rt.decode(z)
    decode_s = time.perf_counter() - t0
    if not np.isfinite(image).all():
        raise LRFError("the bundle produced NaN/Inf; re-export it (its parity report should have failed)")
    img = Image.fromarray(to_uint8(image))
    if args.scale > 1:
        img = img.resize((img.width * args.scale, img.height * args.scale), Image.NEAREST)
    img.save(args.out)
    m = rt.manifest
    steps = " ".join(f"{1000 * s:.2f}" for s in times)
    print(f"{m['target']} {m['precision']} {m['sampler']['graph']}: per-step ms [{steps}], decode {1000 * decode_s:.2f} ms "
          f"-> {args.out} ({m['class_names'][cls]}, seed {args.seed})")

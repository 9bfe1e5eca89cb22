"""Run a bundle on the host: the one plan executor every Python-side runtime uses.

``BundleRuntime`` reads the manifest (verified), opens each artifact with its target's host
runner, and executes the manifest's plan (:mod:`lrf_export.plan`): start state, loop, end. It
names no graph input or output of its own: every feed comes from the plan. The parity gate,
``lrf-run``, ``lrf-eval`` and the benchmarks all go through it, so the loop exists once in
Python. It imports no torch: an ONNX bundle runs in a process holding only NumPy and ONNX
Runtime, which is what the memory benchmark measures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from lrf_model.classes import class_index
from lrf_model.editing import image_pixels, load_image, mask_pixels, start_index
from lrf_model.errors import LRFError, cli_errors, first_line
from lrf_model.noise import noise_array

from .bundle import load_manifest
from .targets import get_target

StepCallback = Callable[[int, dict[str, np.ndarray], float], None]


def _gist(e: BaseException) -> str:
    first = first_line(e)
    return type(e).__name__ if first == type(e).__name__ else f"{type(e).__name__}: {first[:160]}"


def as_input(value, spec: dict) -> np.ndarray:
    """``value`` as a graph input of ``spec``'s dtype and shape: an array reshaped, a scalar filling it."""
    if np.isscalar(value):
        return np.full(spec["shape"], value, dtype=spec["dtype"])
    return np.array(value, dtype=spec["dtype"]).reshape(spec["shape"])  # a copy: runtimes want writable arrays


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

    def run(self, graph: str, feeds: dict[str, np.ndarray | float | int]) -> dict[str, np.ndarray]:
        """Every output of artifact ``graph`` on ``feeds`` (by input name; each cast to the
        declared dtype and shape; a scalar fills the whole input)."""
        runner = self._require(graph)
        art = self.manifest["artifacts"][graph]
        try:
            arrays = {i["name"]: as_input(feeds[i["name"]], i) for i in art["inputs"]}
        except KeyError as e:
            raise LRFError(f"the {graph} artifact takes an input {e} that the plan does not feed; re-export the bundle") from None
        except ValueError as e:
            raise LRFError(f"a feed of the {graph} artifact does not fit its declared shape ({first_line(e)}); "
                           "pass a tensor of the manifest's shape") from None
        try:
            return runner(arrays)
        except Exception as e:  # a manifest whose names, shapes or dtypes do not fit the artifact
            raise LRFError(f"the {graph} artifact failed on {self.manifest['target']} ({_gist(e)}); "
                           "the bundle is damaged or inconsistent, re-export it") from None

    @property
    def plan(self) -> dict:
        return self.manifest["plan"]

    def _require(self, graph: str):
        if graph not in self.runners:
            raise LRFError(f"the plan runs a {graph} graph the bundle does not hold; re-export the bundle")
        runner = self.runners[graph]
        if runner is None:
            raise LRFError(f"this host cannot execute the {self.manifest['target']} {graph} artifact "
                           "(Core ML runs on macOS/iOS only)")
        return runner

    def inputs(self, given: dict[str, object] | None = None) -> dict[str, object]:
        """The plan's inputs: ``given`` (by name; a class by name or index; ``image`` 8-bit RGB and
        ``mask`` 0/1 arrays of the plan's shapes) checked, the rest defaulted."""
        given = {k: v for k, v in (given or {}).items() if v is not None}
        if "image" not in given and ("mask" in given or given.get("strength", 1.0) != 1.0):
            raise LRFError("a mask or a strength needs an input image; pass --init-image as well")
        if "image" in given and "edit" not in self.plan:
            raise LRFError(f"this bundle's plan cannot edit images (its loop is the {self.plan['loop']['graph']} graph); "
                           "export it with --graph step")
        values: dict[str, object] = {}
        for spec in self.plan["inputs"]:
            name, kind = spec["name"], spec["kind"]
            value = given.pop(name, None)
            value = spec["default"] if value is None else value
            if kind == "class":
                value = class_index(self.manifest["class_names"], value)
            elif kind == "seed":
                if not isinstance(value, (int, np.integer)) or not 0 <= value < 2**32:
                    raise LRFError(f"seed {value!r} is invalid; use an integer in 0..4294967295")
            elif kind == "steps":
                offered = self.manifest["sampler"]["schedules"]
                if str(value) not in offered:
                    raise LRFError(f"this bundle offers steps {', '.join(offered)}, not {value}; "
                                   "pick one of those or re-export with --steps")
            elif kind == "strength":
                start_index(1, value)  # one-line error outside [0, 1]
            elif kind in ("image", "mask") and not np.isscalar(value):
                value = np.asarray(value)
                if value.size != int(np.prod(spec["shape"])):
                    raise LRFError(f"the {name} has {value.size} values but this bundle takes {spec['shape']}; "
                                   "pass one of the model's size")
            values[name] = value
        if given:
            raise LRFError(f"this bundle's plan takes no input {', '.join(given)}; it takes "
                           f"{', '.join(s['name'] for s in self.plan['inputs'])}")
        return values

    def edits(self, values: dict[str, object]) -> bool:
        """Whether ``values`` hold an input image (the plan's ``edit`` then runs)."""
        return any(s["kind"] == "image" and not np.isscalar(values[s["name"]]) for s in self.plan["inputs"])

    def schedule(self, steps: int) -> list[float]:
        return self.manifest["sampler"]["schedules"][str(steps)]

    def start(self, values: dict[str, object]) -> dict[str, np.ndarray]:
        """The plan's start state (before any edit)."""
        state = {}
        for name, src in self.plan["start"].items():
            if "noise" in src:
                state[name] = noise_array(int(values[src["noise"]]), src["shape"][1:])[None]
            else:
                state[name] = np.full(src["shape"], src["fill"], np.float32)
        return state

    def feeds(self, graph_feeds: dict[str, dict], state: dict, values: dict, ts: list[float] | None, i: int) -> dict:
        """One graph's feeds: from the state, the inputs, or the schedule's interval ``i``."""
        feeds = {}
        for name, src in graph_feeds.items():
            if "state" in src:
                feeds[name] = state[src["state"]]
            elif "input" in src:
                feeds[name] = values[src["input"]]
            elif src["schedule"] == "dt":  # dt in float64, then cast, as everywhere
                feeds[name] = ts[i] - ts[i + 1]
            else:  # t of interval i; t_start is t of the first interval run
                feeds[name] = ts[i]
        return feeds

    def generate(self, given: dict[str, object] | None = None, callback: StepCallback | None = None) -> np.ndarray:
        """Execute the plan: the end graph's output (8-bit RGB pixels, (1, H, W, 3)).
        ``callback(i, state, seconds)`` after each loop iteration."""
        values = self.inputs(given)
        return self.finish(self.iterate(values, callback), values)

    def finish(self, state: dict[str, np.ndarray], values: dict[str, object]) -> np.ndarray:
        """The plan's end on a final state (a NaN/Inf state is refused: its pixels would be garbage)."""
        for name, value in state.items():
            if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
                raise LRFError(f"the bundle produced NaN/Inf in its {name}; re-export it (its parity gate should have failed)")
        end = self.plan["end"]
        return self.run(end["graph"], self.feeds(end["feeds"], state, values, None, 0))[end["output"]]

    def iterate(self, values: dict[str, object], callback: StepCallback | None = None) -> dict[str, np.ndarray]:
        """The start state (and the edit, given an image) carried through every loop iteration;
        returns the final state."""
        loop = self.plan["loop"]
        repeat = loop["repeat"]
        ts = self.schedule(values[repeat["schedule"]]) if "schedule" in repeat else None
        edits = self.edits(values)
        first = start_index(len(ts) - 1, values[repeat["strength"]]) if "strength" in repeat and edits else 0
        count = len(ts) - 1 if ts is not None else repeat["count"]
        state = self.start(values)
        if edits:
            edit = self.plan["edit"]
            out = self.run(edit["graph"], self.feeds(edit["feeds"], state, values, ts, first))
            state.update({name: out[output] for name, output in edit["next"].items()})
        for i in range(first, count):
            feeds = self.feeds(loop["feeds"], state, values, ts, i)
            t0 = time.perf_counter()
            out = self.run(loop["graph"], feeds)
            seconds = time.perf_counter() - t0
            state.update({name: out[output] for name, output in loop["next"].items()})
            if callback:
                callback(i - first, state, seconds)
        return state


def edit_inputs(rt: BundleRuntime, image: str | None, mask: str | None) -> dict[str, np.ndarray]:
    """``--init-image`` / ``--mask`` files as the plan's ``image`` and ``mask`` inputs, read and
    checked as ``lrf-generate`` reads them (:mod:`lrf_model.editing`)."""
    if image is None:
        if mask is not None:
            raise LRFError("--mask needs an input image; pass --init-image as well")
        return {}
    shape = next(s["shape"] for s in rt.plan["inputs"] if s["kind"] == "image")
    side = shape[1]
    im = load_image(image)
    out = {"image": image_pixels(im, side)[None]}
    if mask is not None:
        out["mask"] = mask_pixels(load_image(mask, "mask"), im.size, side)[None, None]
    return out


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lrf-run", description="Generate an image with an exported bundle on this host.")
    p.add_argument("bundle")
    p.add_argument("--class", dest="cls", default="0", help="class name or index")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="one of the step counts the manifest offers (default: its own)")
    p.add_argument("--init-image", default=None, help="PNG/JPEG to edit (image-to-image; resized to the model's size)")
    p.add_argument("--strength", type=float, default=None, help="how much of the image to regenerate, 0..1 (default 1)")
    p.add_argument("--mask", default=None, help="PNG, the image's size: white = regenerate (inpainting)")
    p.add_argument("--out", default="out.png")
    p.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscale of the PNG")
    args = p.parse_args(argv)
    rt = BundleRuntime(args.bundle)
    values = rt.inputs({"class": args.cls, "seed": args.seed, "steps": args.steps, "strength": args.strength,
                        **edit_inputs(rt, args.init_image, args.mask)})
    times: list[float] = []
    state = rt.iterate(values, callback=lambda i, _state, s: times.append(s))
    t0 = time.perf_counter()
    pixels = rt.finish(state, values)
    decode_s = time.perf_counter() - t0
    img = Image.fromarray(pixels[0].astype(np.uint8))  # int32 on Core ML: the same 0..255 values
    if args.scale > 1:
        img = img.resize((img.width * args.scale, img.height * args.scale), Image.NEAREST)
    try:
        img.save(args.out)
    except (OSError, ValueError) as e:
        raise LRFError(f"cannot write {args.out} ({first_line(e)}); pass a writable --out ending in .png") from None
    m = rt.manifest
    steps = " ".join(f"{1000 * s:.2f}" for s in times)
    print(f"{m['target']} {m['precision']} {m['plan']['loop']['graph']}: per-step ms [{steps}], decode {1000 * decode_s:.2f} ms "
          f"-> {args.out} ({m['class_names'][values['class']]}, seed {args.seed})")

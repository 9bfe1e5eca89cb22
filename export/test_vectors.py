"""Reference test vectors from the PyTorch model, and the bundle's checks over them.

The tensors: ``noise`` (the portable noise of the trajectory seed); for each plan run (plain
generation ``trajectory``, image-to-image ``img2img`` and inpainting ``inpaint`` of the plain
run's image) ``<run>.states`` (the latent after each loop iteration, with any carried state) and ``<run>.pixels`` (its
image); ``edit.image`` / ``edit.mask`` (the edits' input, the mask a centred square);
``step{k}.*`` (single guided steps, with inpainting's blend, at points of the inpainting run);
``encoder.*`` (the edit start on the edit input). The checks are data: a list of
``{name, kind, ..., expected, metric, limit}`` that every runtime runs with one implementation of
each metric (``rel`` | ``max_abs`` | ``psnr``; see :mod:`lrf_export.checks`) and prints as the
same table; a plan check's ``inputs`` name tensors for the ``image`` and ``mask`` inputs. Also the
calibration set for INT8: the step inputs of real trajectories for every class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrf_model.data import to_pixels
from lrf_model.pipeline import LRFPipeline
from lrf_model.sampling import edit_start, guided_step, portable_noise, sample, velocity_fn

from .bundle import save_tensor
from .graphs import carried_state_shapes, is_guided

TRAJECTORY_SEED = 0
STEP_SEED = 1
IMG2IMG_SEED = 2
IMG2IMG_STRENGTH = 0.5
ENCODER_T = 0.5
# The noise is no model output: every runtime's generator must give Python's values up to float32
# rounding, whatever the precision.
NOISE_MAX_ABS = 1e-6


def test_classes(num_classes: int) -> tuple[int, int]:
    """(trajectory class, edit class): 3 and 7 where the model has them, always valid."""
    return 3 % num_classes, 7 % num_classes


@dataclass
class Run:
    """One plan run of the reference: its plan inputs, the loop's states after each step (the latent,
    then any carried state, flattened, in name order: what every runtime stacks), its image."""

    inputs: dict
    states: np.ndarray  # (iterations, 1, C, S, S), or (iterations, n) with carried state
    pixels: np.ndarray  # (1, H, W, 3) uint8
    latents: np.ndarray  # (iterations, 1, C, S, S)
    carried: list[dict[str, np.ndarray]]  # the carried state after each step ({} for most families)


def loop_state(z: torch.Tensor, carried: dict | None) -> np.ndarray:
    """One iteration's row of a run's ``states``: the latent alone, or latent and carried state
    flattened and concatenated in name order."""
    if not carried:
        return z.numpy().copy()
    return np.concatenate([z.numpy().ravel(), *(carried[n].numpy().ravel() for n in sorted(carried))])


@dataclass
class Reference:
    ts: list[float]
    cfg: float
    recursions: int
    noise: np.ndarray  # the trajectory seed's noise (1, C, S, S)
    runs: dict[str, Run]  # trajectory | img2img | inpaint
    image: np.ndarray  # the edits' input: the plain run's image (1, H, W, 3) uint8
    mask: np.ndarray  # (1, 1, H, W) float, a centred square
    steps: list[dict[str, np.ndarray]]  # inputs + next_latent
    encoder: dict[str, np.ndarray]  # inputs + known


def trajectory(pipe: LRFPipeline, seed: int, class_id: int, ts: list[float], cfg: float,
               R: int) -> tuple[list[torch.Tensor], list[dict]]:
    """The latent before each step and after the last, and the carried state each step starts from."""
    noise = portable_noise(seed, pipe.latent_shape)[None]
    latents, carried = [noise], [initial_state(pipe, cfg)]
    sample(velocity_fn(pipe.denoiser), noise, torch.tensor([class_id]), ts, pipe.denoiser.config.num_classes, cfg, R,
           callback=lambda i, z, state: (latents.append(z), carried.append(state or {})))
    return latents, carried


def initial_state(pipe: LRFPipeline, cfg: float) -> dict[str, torch.Tensor]:
    """The carried state before the first step, as the plan starts it (zeros), one row per denoiser call."""
    return {n: torch.zeros(shape) for n, shape in carried_state_shapes(pipe.denoiser, is_guided(cfg)).items()}


def pipeline_run(pipe: LRFPipeline, inputs: dict, cfg: float, R: int, image=None, mask=None) -> Run:
    """The pipeline's own run on plan ``inputs`` (the edits through ``generate_tensor``, as
    ``lrf-generate`` makes them): the latent after each step and the final pixels."""
    states, latents, carried = [], [], []

    def record(_i: int, z: torch.Tensor, state: dict | None) -> None:
        states.append(loop_state(z, state))
        latents.append(z.numpy().copy())
        carried.append({n: v.numpy().copy() for n, v in (state or {}).items()})

    images = pipe.generate_tensor([inputs["class"]], [inputs["seed"]], image=image, mask=mask, steps=inputs["steps"],
                                  cfg_scale=cfg, recursions=R, strength=inputs.get("strength", 1.0), callback=record)
    return Run(inputs, np.stack(states), to_pixels(images).numpy(), np.stack(latents), carried)


def centre_mask(side: int) -> np.ndarray:
    mask = np.zeros((1, 1, side, side), np.float32)
    mask[..., side // 4: side - side // 4, side // 4: side - side // 4] = 1
    return mask


@torch.no_grad()
def reference(pipe: LRFPipeline, ts: list[float], cfg: float, R: int) -> Reference:
    traj_class, edit_class = test_classes(pipe.denoiser.config.num_classes)
    n = len(ts) - 1
    plain = pipeline_run(pipe, {"class": traj_class, "seed": TRAJECTORY_SEED, "steps": n}, cfg, R)
    image, mask = plain.pixels, centre_mask(pipe.image_side)
    image_t, mask_t = torch.from_numpy(image), torch.from_numpy(mask)
    runs = {
        "trajectory": plain,
        "img2img": pipeline_run(pipe, {"class": edit_class, "seed": IMG2IMG_SEED, "steps": n, "strength": IMG2IMG_STRENGTH,
                                       "image": "edit.image"}, cfg, R, image=image_t),
        "inpaint": pipeline_run(pipe, {"class": edit_class, "seed": STEP_SEED, "steps": n, "image": "edit.image",
                                       "mask": "edit.mask"}, cfg, R, image=image_t, mask=mask_t),
    }
    eps = portable_noise(STEP_SEED, pipe.latent_shape)[None]
    known, _, lmask = edit_start(pipe.autoencoder, image_t, mask_t, eps, torch.ones(1))
    inpaint_latents = [eps.numpy(), *runs["inpaint"].latents]  # strength 1: the run starts from eps
    start = {k: v.numpy() for k, v in initial_state(pipe, cfg).items()}
    inpaint_carried = [start, *runs["inpaint"].carried]
    steps = []
    for i in sorted({0, n // 2, n - 1}):
        feeds = {"latent": inpaint_latents[i], "t": np.array([ts[i]], np.float32), "dt": np.array([ts[i] - ts[i + 1]], np.float32),
                 "class_id": np.array([edit_class], np.int32), "cfg": np.array([cfg], np.float32),
                 "known": known.numpy(), "noise": eps.numpy(), "latent_mask": lmask.numpy(), **inpaint_carried[i]}
        if not is_guided(cfg):  # the unguided step graph takes no cfg; guided_step skips the null half
            del feeds["cfg"]
        t = {k: torch.from_numpy(v) for k, v in feeds.items()}
        velocity = velocity_fn(pipe.denoiser)
        if start:
            velocity.state = {n: t[n] for n in start}
        out = guided_step(velocity, t["latent"], t["t"], t["dt"], t["class_id"], pipe.denoiser.config.num_classes,
                          t["cfg"] if "cfg" in t else cfg, R, (t["known"], t["noise"], t["latent_mask"]))
        steps.append({**feeds, "next_latent": out.numpy(), **{f"next_{n}": velocity.state[n].numpy() for n in start}})
    t_start = torch.full((1,), ENCODER_T)
    enc_known, enc_latent, _ = edit_start(pipe.autoencoder, image_t, mask_t, eps, t_start)
    encoder = {"image": image, "mask": mask, "noise": eps.numpy(), "t_start": t_start.numpy(), "known": enc_known.numpy(),
               "latent": enc_latent.numpy()}
    noise = portable_noise(TRAJECTORY_SEED, pipe.latent_shape)[None].numpy()
    return Reference(ts, cfg, R, noise, runs, image, mask, steps, encoder)


def write(root: Path, ref: Reference, plan: dict, tolerance: dict) -> tuple[dict, list[dict]]:
    """Write the reference tensors under ``test_vectors/``; returns the manifest's ``tensors``
    (name -> spec) and ``checks`` (for ``plan``, with the precision's ``tolerance``)."""
    fused = plan["loop"]["repeat"] == {"count": 1}
    step_rel, psnr_db = tolerance["step_rel"], tolerance["image_psnr_db"]
    runs = {"trajectory": ref.runs["trajectory"]} if fused else ref.runs  # a fused graph has its schedule baked in: no edits
    arrays = {"noise": ref.noise, "edit.image": ref.image, "edit.mask": ref.mask}
    checks = [{"name": "noise", "kind": "noise", "seed": TRAJECTORY_SEED, "expected": "noise", "metric": "max_abs",
               "limit": NOISE_MAX_ABS}]
    if not fused:
        for k, case in enumerate(ref.steps):
            arrays.update({f"step{k}.{name}": arr for name, arr in case.items()})
            outputs = [name for name in case if name.startswith("next_")]  # next_latent, then any carried state
            for output in outputs:
                suffix = "" if output == "next_latent" else f".{output.removeprefix('next_')}"
                checks.append({"name": f"step{k}{suffix}", "kind": "graph", "graph": "step",
                               "feeds": {name: f"step{k}.{name}" for name in case if name not in outputs},
                               "output": output, "expected": f"step{k}.{output}", "metric": "rel", "limit": step_rel})
    for name, run in runs.items():
        states = run.states[-1:] if fused else run.states  # the state after each loop iteration
        arrays.update({f"{name}.states": states, f"{name}.final_latent": run.latents[-1], f"{name}.pixels": run.pixels})
        label = "image" if name == "trajectory" else f"{name}_img"
        checks += [{"name": name, "kind": "plan", "inputs": run.inputs, "compare": "states", "expected": f"{name}.states",
                    "metric": "rel", "limit": step_rel},
                   {"name": label, "kind": "plan", "inputs": run.inputs, "compare": "output", "expected": f"{name}.pixels",
                    "metric": "psnr", "limit": psnr_db}]
    # The decoder on the inpainting run's latent pastes the input outside the mask: every input counts.
    decoded = "inpaint" if not fused else "trajectory"
    decoder_feeds = {"latent": f"{decoded}.final_latent", "image": "edit.image",
                     "mask": "edit.mask" if not fused else "decoder.mask"}
    if fused:
        arrays["decoder.mask"] = np.ones_like(ref.mask)
    arrays.update({f"encoder.{name}": arr for name, arr in ref.encoder.items() if name not in ("image", "mask")})
    checks += [
        {"name": "decoder", "kind": "graph", "graph": "decoder", "feeds": decoder_feeds, "output": "pixels",
         "expected": f"{decoded}.pixels", "metric": "psnr", "limit": psnr_db},
        {"name": "encoder", "kind": "graph", "graph": "encoder",
         "feeds": {"image": "edit.image", "mask": "edit.mask", "noise": "encoder.noise", "t_start": "encoder.t_start"},
         "output": "known", "expected": "encoder.known", "metric": "rel", "limit": tolerance["encoder_rel"]},
        {"name": "edit_start", "kind": "graph", "graph": "encoder",
         "feeds": {"image": "edit.image", "mask": "edit.mask", "noise": "encoder.noise", "t_start": "encoder.t_start"},
         "output": "latent", "expected": "encoder.latent", "metric": "rel", "limit": tolerance["encoder_rel"]},
    ]
    return {name: save_tensor(root, name, arr) for name, arr in arrays.items()}, checks


def step_inputs(latent: torch.Tensor, ts: list[float], i: int, class_id: int, cfg: float,
                noise: torch.Tensor, carried: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The step graph's inputs (:func:`lrf_export.graphs.step_spec`'s order) for plain generation
    at schedule index ``i``: no known region (an all-ones latent mask), ``cfg`` only when guided,
    the carried state (in name order) last."""
    guidance = (torch.tensor([cfg]),) if is_guided(cfg) else ()
    return (latent, torch.tensor([ts[i]]), torch.tensor([ts[i] - ts[i + 1]]), torch.tensor([class_id], dtype=torch.int32),
            *guidance, torch.zeros_like(latent), noise, torch.ones_like(latent[:, :1]), *(carried[n] for n in sorted(carried)))


@torch.no_grad()
def calibration(pipe: LRFPipeline, ts: list[float], cfg: float, R: int, per_class: int = 8) -> dict[str, list[tuple]]:
    """Real inputs for INT8 calibration: every step of trajectories for every class.

    8 trajectories per class, not 2: with 2 the activation ranges of the shipped UNet depended on
    the calibration's float rounding (1 or 2 threads), and its 4-step INT8 trajectory landed at
    3.8e-2 or 6.2e-2 of the reference (gate 5e-2); with 8 at 3.7e-2 and 3.5e-2. The inpainting
    inputs are those of plain generation (the blend is float: nothing of it is calibrated)."""
    steps, finals, noises = [], [], []
    for k in range(pipe.denoiser.config.num_classes):
        for j in range(per_class):
            lat, carried = trajectory(pipe, 1000 + 10 * k + j, k, ts, cfg, R)
            steps += [step_inputs(lat[i], ts, i, k, cfg, lat[0], carried[i]) for i in range(len(ts) - 1)]
            finals.append(lat[-1])
            noises.append((lat[0], torch.tensor([k], dtype=torch.int32)))
    images = [to_pixels(pipe.decode(z)) for z in finals]
    blank, full = torch.zeros_like(images[0]), torch.ones(1, 1, *images[0].shape[1:3])
    return {"step": steps, "fused": noises, "decoder": [(z, blank, full) for z in finals],
            "encoder": [(im, full, z, torch.tensor([ENCODER_T])) for im, (z, _) in zip(images, noises)]}

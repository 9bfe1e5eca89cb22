"""Reference test vectors from the PyTorch model, and the bundle's checks over them.

The tensors: ``noise`` (the portable noise of the trajectory seed); ``trajectory.states`` (the
state after each loop iteration of one whole plan run) and ``trajectory.pixels`` (its decoded
image); ``step{k}.*`` (a few single guided steps at points of a real trajectory);
``encoder.latent`` (the encoder on the reference pixels). The checks are data: a list of
``{name, kind, ..., expected, metric, limit}`` that every runtime runs with one implementation of
each metric (``rel`` | ``max_abs`` | ``psnr``; see :mod:`lrf_export.checks`) and prints as the
same table. Also the calibration set for INT8: the step inputs of real trajectories for every class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrf_model.pipeline import LRFPipeline
from lrf_model.sampling import guided_step, portable_noise, sample

from lrf_model.data import to_pixels

from .bundle import save_tensor
from .graphs import EncoderGraph

TRAJECTORY_SEED = 0
STEP_SEED = 1
# The noise is no model output: every runtime's generator must give Python's values up to float32
# rounding, whatever the precision.
NOISE_MAX_ABS = 1e-6


def test_classes(num_classes: int) -> tuple[int, int]:
    """(trajectory class, single-step class): 3 and 7 where the model has them, always valid."""
    return 3 % num_classes, 7 % num_classes


@dataclass
class Reference:
    ts: list[float]
    cfg: float
    recursions: int
    trajectory_class: int
    trajectory: np.ndarray  # (N+1, 1, C, S, S): the noise, then the latent after each step
    pixels: np.ndarray  # (1, H, W, 3) uint8
    steps: list[dict[str, np.ndarray]]  # inputs + next_latent
    encoder_latent: np.ndarray


def trajectory(pipe: LRFPipeline, seed: int, class_id: int, ts: list[float], cfg: float, R: int) -> list[torch.Tensor]:
    noise = portable_noise(seed, pipe.latent_shape)[None]
    latents = [noise]
    sample(pipe.denoiser, noise, torch.tensor([class_id]), ts, pipe.denoiser.config.num_classes, cfg, R,
           callback=lambda i, z: latents.append(z))
    return latents


@torch.no_grad()
def reference(pipe: LRFPipeline, ts: list[float], cfg: float, R: int) -> Reference:
    traj_class, step_class = test_classes(pipe.denoiser.config.num_classes)
    lat = trajectory(pipe, TRAJECTORY_SEED, traj_class, ts, cfg, R)
    image = pipe.decode(lat[-1])
    pixels = to_pixels(image)
    other = trajectory(pipe, STEP_SEED, step_class, ts, cfg, R)
    n = len(ts) - 1
    steps = []
    for i in sorted({0, n // 2, n - 1}):
        feeds = {"latent": other[i].numpy(), "t": np.array([ts[i]], np.float32), "dt": np.array([ts[i] - ts[i + 1]], np.float32),
                 "class_id": np.array([step_class], np.int32), "cfg": np.array([cfg], np.float32)}
        out = guided_step(pipe.denoiser, *(torch.from_numpy(feeds[k]) for k in ("latent", "t", "dt", "class_id")),
                          pipe.denoiser.config.num_classes, torch.from_numpy(feeds["cfg"]), R)
        steps.append({**feeds, "next_latent": out.numpy()})
    enc_latent = EncoderGraph(pipe.autoencoder)(pixels)
    return Reference(ts, cfg, R, traj_class, torch.stack(lat).numpy(), pixels.numpy(), steps, enc_latent.numpy())


def write(root: Path, ref: Reference, plan: dict, tolerance: dict) -> tuple[dict, list[dict]]:
    """Write the reference tensors under ``test_vectors/``; returns the manifest's ``tensors``
    (name -> spec) and ``checks`` (for ``plan``, with the precision's ``tolerance``)."""
    fused = plan["loop"]["repeat"] != {"schedule": "steps"}
    states = ref.trajectory[-1:] if fused else ref.trajectory[1:]  # the state after each loop iteration
    arrays = {"noise": ref.trajectory[0], "trajectory.states": states, "trajectory.final_latent": ref.trajectory[-1],
              "trajectory.pixels": ref.pixels, "encoder.latent": ref.encoder_latent}
    step_rel, psnr_db = tolerance["step_rel"], tolerance["image_psnr_db"]
    run = {"class": ref.trajectory_class, "seed": TRAJECTORY_SEED, "steps": len(ref.ts) - 1}
    checks = [{"name": "noise", "kind": "noise", "seed": TRAJECTORY_SEED, "expected": "noise", "metric": "max_abs",
               "limit": NOISE_MAX_ABS}]
    if not fused:
        for k, case in enumerate(ref.steps):
            arrays.update({f"step{k}.{name}": arr for name, arr in case.items()})
            checks.append({"name": f"step{k}", "kind": "graph", "graph": "step",
                           "feeds": {name: f"step{k}.{name}" for name in case if name != "next_latent"},
                           "output": "next_latent", "expected": f"step{k}.next_latent", "metric": "rel", "limit": step_rel})
    checks += [
        {"name": "trajectory", "kind": "plan", "inputs": run, "compare": "states", "expected": "trajectory.states",
         "metric": "rel", "limit": step_rel},
        {"name": "image", "kind": "plan", "inputs": run, "compare": "output", "expected": "trajectory.pixels",
         "metric": "psnr", "limit": psnr_db},
        {"name": "decoder", "kind": "graph", "graph": "decoder", "feeds": {"latent": "trajectory.final_latent"},
         "output": "pixels", "expected": "trajectory.pixels", "metric": "psnr", "limit": psnr_db},
        {"name": "encoder", "kind": "graph", "graph": "encoder", "feeds": {"pixels": "trajectory.pixels"},
         "output": "latent", "expected": "encoder.latent", "metric": "rel", "limit": tolerance["encoder_rel"]},
    ]
    return {name: save_tensor(root, name, arr) for name, arr in arrays.items()}, checks


@torch.no_grad()
def calibration(pipe: LRFPipeline, ts: list[float], cfg: float, R: int, per_class: int = 8) -> dict[str, list[tuple]]:
    """Real inputs for INT8 calibration: every step of trajectories for every class.

    8 trajectories per class, not 2: with 2 the activation ranges of the shipped UNet depended on
    the calibration's float rounding (1 or 2 threads), and its 4-step INT8 trajectory landed at
    3.8e-2 or 6.2e-2 of the reference (gate 5e-2); with 8 at 3.7e-2 and 3.5e-2."""
    steps, finals = [], []
    for k in range(pipe.denoiser.config.num_classes):
        for j in range(per_class):
            lat = trajectory(pipe, 1000 + 10 * k + j, k, ts, cfg, R)
            for i in range(len(ts) - 1):
                steps.append((lat[i], torch.tensor([ts[i]]), torch.tensor([ts[i] - ts[i + 1]]), torch.tensor([k], dtype=torch.int32),
                              torch.tensor([cfg])))
            finals.append(lat[-1])
    noises = [(s[0], s[3]) for s in steps[:: max(1, len(ts) - 1)]]
    images = [(to_pixels(pipe.decode(z)),) for z in finals]
    return {"step": steps, "fused": noises, "decoder": [(z,) for z in finals], "encoder": images}

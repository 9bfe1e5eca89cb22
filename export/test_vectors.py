"""Reference test vectors from the PyTorch model: what every runtime must reproduce.

- ``step{k}_*``: a few single guided steps at points of a real trajectory;
- ``trajectory_*``: one whole trajectory from a fixed seed with every intermediate latent
  (index 0 is the noise) and the decoded image;
- ``encoder_*``: an image and its latent.
Also the calibration set for INT8: the step inputs of real trajectories for every class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lrf_model.pipeline import LRFPipeline
from lrf_model.sampling import guided_step, portable_noise, sample

from .bundle import save_array
from .graphs import EncoderGraph

TRAJECTORY_SEED = 0
STEP_SEED = 1


def test_classes(num_classes: int) -> tuple[int, int]:
    """(trajectory class, single-step class): 3 and 7 where the model has them, always valid."""
    return 3 % num_classes, 7 % num_classes


@dataclass
class Reference:
    ts: list[float]
    cfg: float
    recursions: int
    trajectory_class: int
    trajectory: np.ndarray  # (N+1, 1, C, S, S)
    image: np.ndarray  # (1, 3, H, W)
    steps: list[dict[str, np.ndarray]]  # inputs + next_latent
    encoder_image: np.ndarray
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
    other = trajectory(pipe, STEP_SEED, step_class, ts, cfg, R)
    n = len(ts) - 1
    steps = []
    for i in sorted({0, n // 2, n - 1}):
        feeds = {"latent": other[i].numpy(), "t": np.array([ts[i]], np.float32), "dt": np.array([ts[i] - ts[i + 1]], np.float32),
                 "class_id": np.array([step_class], np.int64), "cfg": np.array([cfg], np.float32)}
        out = guided_step(pipe.denoiser, *(torch.from_numpy(feeds[k]) for k in ("latent", "t", "dt", "class_id")),
                          pipe.denoiser.config.num_classes, torch.from_numpy(feeds["cfg"]), R)
        steps.append({**feeds, "next_latent": out.numpy()})
    enc_latent = EncoderGraph(pipe.autoencoder)(image)
    return Reference(ts, cfg, R, traj_class, torch.stack(lat).numpy(), image.numpy(), steps, image.numpy(),
                     enc_latent.numpy())


def write(root: Path, ref: Reference) -> dict:
    """Write the vectors as .npy under ``test_vectors/``; returns the manifest's index of them."""
    index: dict = {"trajectory": {"seed": TRAJECTORY_SEED, "class_id": ref.trajectory_class,
                                  "latents": save_array(root, "test_vectors/trajectory_latents.npy", ref.trajectory),
                                  "image": save_array(root, "test_vectors/trajectory_image.npy", ref.image)},
                   "steps": [], "encoder": {"image": save_array(root, "test_vectors/encoder_image.npy", ref.encoder_image),
                                            "latent": save_array(root, "test_vectors/encoder_latent.npy", ref.encoder_latent)}}
    for k, case in enumerate(ref.steps):
        index["steps"].append({name: save_array(root, f"test_vectors/step{k}_{name}.npy", arr) for name, arr in case.items()})
    return index


@torch.no_grad()
def calibration(pipe: LRFPipeline, ts: list[float], cfg: float, R: int, per_class: int = 2) -> dict[str, list[tuple]]:
    """Real inputs for INT8 calibration: every step of trajectories for every class."""
    steps, finals = [], []
    for k in range(pipe.denoiser.config.num_classes):
        for j in range(per_class):
            lat = trajectory(pipe, 1000 + 10 * k + j, k, ts, cfg, R)
            for i in range(len(ts) - 1):
                steps.append((lat[i], torch.tensor([ts[i]]), torch.tensor([ts[i] - ts[i + 1]]), torch.tensor([k]),
                              torch.tensor([cfg])))
            finals.append(lat[-1])
    noises = [(s[0], s[3]) for s in steps[:: max(1, len(ts) - 1)]]
    images = [(pipe.decode(z),) for z in finals]
    return {"step": steps, "fused": noises, "decoder": [(z,) for z in finals], "encoder": images}

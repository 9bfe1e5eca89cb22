"""Training loops: ``lrf-train-ae`` (the autoencoder) and ``lrf-train`` (the denoiser).

Both share the same machinery: in-memory data sharded across ranks (``torchrun`` launches
DDP automatically), AdamW with warm-up + cosine decay, grad clipping, bf16 autocast on GPU,
a tqdm bar, a JSONL log, a loss-curve PNG, and safetensors checkpoints (never pickle).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .autoencoder import build_autoencoder, load_autoencoder, to_model_space
from .data import CIFAR10_CLASSES, cached_latents, images_to_tensor, load_cifar10
from .errors import LRFError, cli_errors
from .plots import save_image_grid, save_loss_curve


# --- shared machinery ---------------------------------------------------------------------


@dataclass
class Runtime:
    """Where training runs: device, rank and world size (DDP when launched by torchrun)."""

    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on CUDA; full precision on CPU (bf16 matmuls are slow there)."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()


def setup_runtime(threads: int | None = None) -> Runtime:
    if threads:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank = dist.get_rank()
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return Runtime(torch.device("cuda", local), rank, world)
        return Runtime(torch.device("cpu"), rank, world)
    return Runtime(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def wrap_ddp(model: torch.nn.Module, rt: Runtime) -> torch.nn.Module:
    if rt.world == 1:
        return model
    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rt: Runtime) -> list[torch.Tensor]:
    """This rank's shuffled index batches for one epoch (the same permutation on every rank)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_step = batch_size * rt.world
    steps = n // per_step
    return [perm[s * per_step + rt.rank * batch_size : s * per_step + (rt.rank + 1) * batch_size] for s in range(steps)]


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def append_log(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimizer state into safetensors-friendly tensors plus a JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, k = key.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    for key, v in meta["scalars"].items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="CIFAR-10: batches folder, image tree or .tar.gz (default: ../shared)")
    p.add_argument("--out", required=True, help="output folder (checkpoint, logs, plots)")
    p.add_argument("--epochs", type=float, default=10, help="epochs (fractions allowed)")
    p.add_argument("--batch-size", type=int, default=128, help="per-process batch size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke runs)")


def take(images: np.ndarray, labels: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return images, labels
    g = np.random.default_rng(0)
    idx = np.sort(g.permutation(len(images))[:limit])
    return images[idx], labels[idx]


# --- autoencoder --------------------------------------------------------------------------


@torch.no_grad()
def evaluate_autoencoder(ae, images: np.ndarray, device: torch.device, batch_size: int = 500) -> dict[str, float]:
    """Reconstruction MSE on the [-1,1] scale and PSNR (peak-to-peak 2) over ``images``."""
    ae.eval()
    sq = 0.0
    for i in range(0, len(images), batch_size):
        x = images_to_tensor(images[i : i + batch_size]).to(device)
        y = ae.decode(ae.encode(x).latents).sample.clamp(-1, 1)
        sq += F.mse_loss(y.float(), x, reduction="sum").item()
    mse = sq / (len(images) * 3 * 32 * 32)
    return {"mse": mse, "psnr_db": 10 * math.log10(4.0 / mse)}


def train_autoencoder(args: argparse.Namespace) -> dict:
    rt = setup_runtime(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    train_x, train_y = take(*load_cifar10(args.data, "train"), args.limit)
    test_x, _ = load_cifar10(args.data, "test")
    ae = build_autoencoder(args.downsample, args.latent_channels, args.channels).to(rt.device)
    model = wrap_ddp(ae, rt)
    opt = torch.optim.AdamW(ae.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(train_x) // (args.batch_size * rt.world)
    total = max(1, int(args.epochs * steps_per_epoch))
    log_path = out / "train_log.jsonl"
    log_path.unlink(missing_ok=True)
    step, t0 = 0, time.time()
    bar = tqdm(total=total, desc="autoencoder", disable=not rt.main)
    epoch = 0
    while step < total:
        ae.train()
        for idx in epoch_batches(len(train_x), args.batch_size, epoch, args.seed, rt):
            if step >= total:
                break
            x = images_to_tensor(train_x[idx.numpy()]).to(rt.device)
            x = torch.where(torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5, x.flip(3), x)
            set_lr(opt, cosine_lr(step, total, args.lr, warmup=min(500, total // 10 + 1)))
            with rt.autocast():
                y = model(x).sample if rt.world > 1 else ae.decode(ae.encode(x).latents).sample
            y = y.float()
            loss = F.l1_loss(y, x) + F.mse_loss(y, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
            opt.step()
            step += 1
            bar.update(1)
            if rt.main and (step % 50 == 0 or step == total):
                bar.set_postfix(loss=f"{loss.item():.4f}")
                append_log(log_path, {"step": step, "epoch": step / steps_per_epoch, "loss": loss.item(),
                                      "lr": opt.param_groups[0]["lr"], "time_s": time.time() - t0})
        epoch += 1
    bar.close()
    train_time = time.time() - t0
    if not rt.main:
        return {}
    ae.eval().requires_grad_(False)
    # Latent statistics -> diffusers' shift/scaling so the denoiser sees ~unit-variance latents.
    lat = torch.cat([ae.encode(images_to_tensor(train_x[i : i + 500]).to(rt.device)).latents.float().cpu()
                     for i in range(0, min(len(train_x), 5000), 500)])
    ae.register_to_config(shift_factor=float(lat.mean()), scaling_factor=float(1.0 / lat.std()))
    metrics = evaluate_autoencoder(ae, test_x, rt.device)
    metrics.update(train_time_s=train_time, steps=step, train_images=len(train_x), device=str(rt.device),
                   parameters=sum(p.numel() for p in ae.parameters()),
                   shift_factor=ae.config.shift_factor, scaling_factor=ae.config.scaling_factor)
    ae.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save_loss_curve(read_log(log_path), out / "loss.png", title="autoencoder L1+MSE")
    with torch.no_grad():
        x = images_to_tensor(test_x[:16]).to(rt.device)
        y = ae.decode(ae.encode(x).latents).sample.clamp(-1, 1)
    save_image_grid(torch.cat([x, y]).cpu(), out / "reconstruction.png", nrow=16)
    print(f"autoencoder: test MSE {metrics['mse']:.5f}, PSNR {metrics['psnr_db']:.2f} dB -> {out}")
    return metrics


@cli_errors
def main_train_ae(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lrf-train-ae", description="Train the TAESD-architecture autoencoder on CIFAR-10.")
    add_common_args(p)
    p.add_argument("--downsample", type=int, default=4, help="spatial factor f (32px -> 32/f latent)")
    p.add_argument("--latent-channels", type=int, default=4)
    p.add_argument("--channels", type=int, default=64, help="width of every stage (TAESD: 64)")
    args = p.parse_args(argv)
    train_autoencoder(args)

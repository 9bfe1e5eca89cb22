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
from .errors import cli_errors
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


class Reconstruction(torch.nn.Module):
    """encode -> decode, differentiable. ``AutoencoderTiny.forward`` rounds latents to uint8
    (a diffusers quirk), which would cut the encoder's gradient."""

    def __init__(self, ae):
        super().__init__()
        self.ae = ae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ae.decode(self.ae.encode(x).latents).sample


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
    model = wrap_ddp(Reconstruction(ae), rt)
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
                y = model(x).float()
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


# --- denoiser -----------------------------------------------------------------------------


def logit_normal(n: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """t ~ sigmoid(N(0, 1)): concentrates training on the middle of the trajectory (SD3)."""
    return torch.sigmoid(torch.randn(n, device=device, generator=generator))


def flow_loss(model, z0: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
              recursions: int, weighting: str) -> torch.Tensor:
    """Rectified-flow velocity loss. ``weighting='snr'``: min-SNR-5 weights; ``'mse'``: plain."""
    tt = t.reshape(-1, 1, 1, 1)
    zt = (1 - tt) * z0 + tt * noise
    v = model(zt, t, labels, recursions)
    per_sample = (v.float() - (noise - z0)).pow(2).mean(dim=(1, 2, 3))
    if weighting == "mse":
        return per_sample.mean()
    snr = ((1 - t) / t.clamp_min(1e-4)).pow(2)
    return (per_sample * snr.clamp(max=5.0) / (snr + 1)).mean() * 2.0  # x2: average weight ~1


@torch.no_grad()
def validation_loss(model, z0: torch.Tensor, labels: torch.Tensor, recursions: int) -> float:
    """Plain (unweighted) velocity MSE at 8 fixed t values with fixed noise: comparable across runs."""
    g = torch.Generator(device="cpu").manual_seed(1234)
    total = 0.0
    ts = torch.linspace(0.05, 0.95, 8)
    for t_val in ts:
        noise = torch.randn(z0.shape, generator=g).to(z0.device)
        t = torch.full((z0.shape[0],), float(t_val), device=z0.device)
        total += flow_loss(model, z0, labels, t, noise, recursions, "mse").item()
    return total / len(ts)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)


@torch.no_grad()
def class_grid(denoiser, autoencoder, steps: int, cfg: float, per_class: int = 8, seed: int = 0) -> torch.Tensor:
    """One row per class, ``per_class`` samples each: (10*per_class, 3, H, W) in [-1, 1]."""
    from .pipeline import LRFPipeline

    pipe = LRFPipeline(denoiser=denoiser, autoencoder=autoencoder)
    K = denoiser.config.num_classes
    labels = [k for k in range(K) for _ in range(per_class)]
    return pipe.generate_tensor(labels, [seed + i for i in range(len(labels))], steps=steps, cfg_scale=cfg)


def train_denoiser(args: argparse.Namespace) -> dict:
    from .model import LRFDenoiser
    from .pipeline import default_checkpoint

    rt = setup_runtime(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed + rt.rank)
    ae_dir = Path(args.autoencoder) if args.autoencoder else default_checkpoint() / "autoencoder"
    ae = load_autoencoder(ae_dir).to(rt.device)
    images, labels_np = take(*load_cifar10(args.data, "train"), args.limit)
    test_images, test_labels_np = load_cifar10(args.data, "test")
    cache = out / "cache"
    lat = cached_latents(ae, ae_dir, images, cache, "train", rt.device)
    lat_flip = cached_latents(ae, ae_dir, np.ascontiguousarray(images[:, :, ::-1]), cache, "train-flip", rt.device)
    val_lat = cached_latents(ae, ae_dir, test_images[:1000], cache, "test", rt.device)
    z_all = torch.stack([to_model_space(ae, lat), to_model_space(ae, lat_flip)]).to(rt.device)  # (2, N, C, S, S)
    y_all = torch.from_numpy(labels_np).to(rt.device)
    z_val, y_val = to_model_space(ae, val_lat).to(rt.device), torch.from_numpy(test_labels_np[:1000]).to(rt.device)
    S, C = z_all.shape[-1], z_all.shape[2]

    model_cfg = dict(latent_channels=C, latent_size=S, hidden_dim=args.hidden_dim, num_blocks=args.num_blocks,
                     num_heads=args.num_heads, recursions=args.recursions, max_recursions=max(args.recursion_choices),
                     mixer=args.mixer, num_classes=len(CIFAR10_CLASSES))
    model = LRFDenoiser(**model_cfg).to(rt.device)
    ema = LRFDenoiser(**model_cfg).to(rt.device).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    steps_per_epoch = len(y_all) // (args.batch_size * rt.world)
    total = max(1, int(args.epochs * steps_per_epoch))
    state_path, meta_path, log_path = out / "training_state.safetensors", out / "training_state.json", out / "train_log.jsonl"
    step = 0
    if args.resume and state_path.is_file():
        tensors = load_file(state_path, device=str(rt.device))
        meta = json.loads(meta_path.read_text())
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        optimizer_from_tensors(opt, tensors, meta["optimizer"])
        step = meta["step"]
        if rt.main:
            print(f"resumed from step {step}")
    elif rt.main:
        log_path.unlink(missing_ok=True)
    ddp = wrap_ddp(model, rt)
    null_class = model.config.num_classes
    choices = torch.tensor(args.recursion_choices)
    g_r = torch.Generator().manual_seed(args.seed)
    for _ in range(step):  # keep the R sequence identical whether or not we resumed
        torch.randint(len(choices), (1,), generator=g_r)
    if rt.main:
        print(f"denoiser: {sum(p.numel() for p in model.parameters()):,} parameters, {total} steps, "
              f"{len(y_all)} images, latents {tuple(z_all.shape[2:])}, device {rt.device}")
    t0 = time.time()
    deadline = t0 + args.max_minutes * 60 if args.max_minutes else None
    bar = tqdm(total=total, initial=step, desc="denoiser", disable=not rt.main)
    eval_every = max(1, int(args.eval_every * steps_per_epoch))

    def checkpoint(final: bool = False) -> None:
        if not rt.main:
            return
        ema.save_pretrained(out / "denoiser")
        tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
        tensors.update({f"ema.{k}": v.contiguous() for k, v in ema.state_dict().items()})
        opt_tensors, opt_meta = optimizer_to_tensors(opt)
        tensors.update(opt_tensors)
        save_file(tensors, str(state_path) + ".tmp")
        Path(str(state_path) + ".tmp").replace(state_path)
        meta_path.write_text(json.dumps({"step": step, "total": total, "optimizer": opt_meta, "args": vars(args)}))
        save_loss_curve(read_log(log_path), out / "loss.png", title="denoiser flow loss")
        ema.eval()
        grid = class_grid(ema, ae, steps=args.sample_steps, cfg=args.sample_cfg)
        save_image_grid(grid.cpu(), out / ("samples.png" if final else f"samples_step{step:06d}.png"), nrow=8)

    epoch = step // steps_per_epoch
    while step < total:
        model.train()
        batches = epoch_batches(len(y_all), args.batch_size, epoch, args.seed, rt)
        for idx in batches[step - epoch * steps_per_epoch :]:  # after a resume: skip consumed batches
            if step >= total:
                break
            idx = idx.to(rt.device)
            flip = torch.randint(0, 2, (len(idx),), device=rt.device)
            z0 = z_all[flip, idx]
            y = torch.where(torch.rand(len(idx), device=rt.device) < args.cfg_dropout, null_class, y_all[idx])
            R = int(choices[torch.randint(len(choices), (1,), generator=g_r)])
            set_lr(opt, cosine_lr(step, total, args.lr, warmup=min(1000, total // 20 + 1)))
            with rt.autocast():
                loss = flow_loss(ddp, z0, y, logit_normal(len(idx), rt.device), torch.randn_like(z0), R, args.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema_update(ema, model, args.ema if step > 200 else 0.0)
            step += 1
            bar.update(1)
            if rt.main and step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", R=R)
                append_log(log_path, {"step": step, "epoch": step / steps_per_epoch, "loss": loss.item(), "R": R,
                                      "grad_norm": float(gnorm), "lr": opt.param_groups[0]["lr"], "time_s": time.time() - t0})
            if step % eval_every == 0 or step == total:
                if rt.main:
                    val = validation_loss(ema, z_val, y_val, model.config.recursions)
                    append_log(out / "val_log.jsonl", {"step": step, "epoch": step / steps_per_epoch, "val_mse": val,
                                                       "time_s": time.time() - t0})
                    bar.write(f"step {step}: EMA validation velocity MSE {val:.4f}")
                checkpoint()
            if deadline and time.time() > deadline:
                total = step  # out of time: finish here with a final checkpoint
                break
        epoch += 1
    bar.close()
    checkpoint(final=True)
    result = {"steps": step, "train_time_s": time.time() - t0, "device": str(rt.device)}
    if rt.main:
        result["val_mse"] = validation_loss(ema, z_val, y_val, model.config.recursions)
        (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"denoiser: EMA validation velocity MSE {result['val_mse']:.4f} -> {out / 'denoiser'}")
    if rt.world > 1:
        dist.destroy_process_group()
    return result


@cli_errors
def main_train(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lrf-train", description="Train the LRF denoiser on CIFAR-10 latents.")
    add_common_args(p)
    p.add_argument("--autoencoder", default=None, help="autoencoder folder (default: the shipped one)")
    p.add_argument("--hidden-dim", type=int, default=144)
    p.add_argument("--num-blocks", type=int, default=4)
    p.add_argument("--num-heads", type=int, default=4)
    p.add_argument("--mixer", default="softmax", choices=["softmax", "linear"])
    p.add_argument("--recursions", type=int, default=2, help="default recursion count stored in the config")
    p.add_argument("--recursion-choices", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3, 4],
                   help="R is sampled per batch from these, so every R works at inference")
    p.add_argument("--loss", choices=["snr", "mse"], default="snr")
    p.add_argument("--cfg-dropout", type=float, default=0.1)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--eval-every", type=float, default=2.0, help="epochs between checkpoints and sample grids")
    p.add_argument("--sample-steps", type=int, default=8)
    p.add_argument("--sample-cfg", type=float, default=3.0)
    p.add_argument("--max-minutes", type=float, default=None, help="stop cleanly (with a checkpoint) after this long")
    p.add_argument("--resume", action="store_true", help="continue from OUT/training_state.safetensors")
    args = p.parse_args(argv)
    train_denoiser(args)

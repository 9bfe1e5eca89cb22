"""Training loops: ``lrf-train-ae`` (the autoencoder) and ``lrf-train`` (the denoiser).

Both run on :mod:`lrf_model.trainer`'s machinery: in-memory data sharded across ranks
(``torchrun`` launches DDP automatically), AdamW with diffusers' cosine-with-warm-up schedule,
diffusers' ``EMAModel``, grad clipping, bf16 autocast where the hardware has native bf16, a
tqdm bar, a JSONL log, a loss-curve PNG, safetensors checkpoints (never pickle) and a training
state written every ``--checkpoint-minutes`` that ``--resume`` continues exactly.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from .autoencoder import (build_autoencoder, build_dc_autoencoder, decoder_flops, encoded, load_autoencoder,
                          to_model_space)
from .data import CIFAR10_CLASSES, cached_latents, images_to_tensor, load_cifar10
from .errors import LRFError, cli_errors
from .families import FAMILIES, Family, family_named_in, get_family, load_denoiser
from .plots import save_image_grid, save_loss_curve
from .sampling import noised
from .trainer import (append_log, epoch_batches, optimizer_step, read_log, refuse_changed_resume, run_steps,
                      save_training_state, setup_runtime, start_or_resume, take, wrap_ddp)


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="CIFAR-10: batches folder, image tree or .tar.gz (default: ../shared)")
    p.add_argument("--out", required=True, help="output folder (checkpoint, logs, plots)")
    p.add_argument("--epochs", type=float, default=10, help="epochs (fractions allowed)")
    p.add_argument("--batch-size", type=int, default=128, help="per-process batch size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast on GPUs and CPUs with native bf16 (AVX512_BF16/AMX), else fp32")
    p.add_argument("--limit", type=int, default=None, help="use only N training images (smoke runs)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay (diffusers EMAModel, warm-up (1+n)/(10+n))")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0, help="wall-clock minutes between training states")
    p.add_argument("--max-minutes", type=float, default=None, help="stop cleanly (with a checkpoint) after this long")
    p.add_argument("--stop-at-step", type=int, default=None,
                   help="stop cleanly at this step as if interrupted (resume continues the same run)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/training_state.safetensors")


# --- autoencoder --------------------------------------------------------------------------


class Reconstruction(torch.nn.Module):
    """encode -> decode, differentiable. ``AutoencoderTiny.forward`` rounds latents to uint8
    (a diffusers quirk), which would cut the encoder's gradient."""

    def __init__(self, ae):
        super().__init__()
        self.ae = ae

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ae.decode(encoded(self.ae, x)).sample


def reconstruction_loss(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 + MSE: L1 keeps edges sharper than MSE alone, MSE is what PSNR measures."""
    return F.l1_loss(y, x) + F.mse_loss(y, x)


@torch.no_grad()
def evaluate_autoencoder(ae, images: np.ndarray, device: torch.device, batch_size: int = 500) -> dict[str, float]:
    """Reconstruction MSE on the [-1,1] scale and PSNR (peak-to-peak 2) over ``images``."""
    ae.eval()
    sq = 0.0
    for i in range(0, len(images), batch_size):
        x = images_to_tensor(images[i : i + batch_size]).to(device)
        y = ae.decode(encoded(ae, x)).sample.clamp(-1, 1)
        sq += F.mse_loss(y.float(), x, reduction="sum").item()
    mse = sq / (len(images) * 3 * 32 * 32)
    return {"mse": mse, "psnr_db": 10 * math.log10(4.0 / mse)}


@torch.no_grad()
def set_latent_statistics(ae, images: np.ndarray, device: torch.device) -> None:
    """Latent mean/std of ``images`` -> diffusers' shift/scaling, so the denoiser sees ~unit-variance
    latents; an autoencoder class without a shift (DC-AE) is scaled to a unit second moment."""
    ae.eval()
    lat = torch.cat([encoded(ae, images_to_tensor(images[i : i + 500]).to(device)).float().cpu()
                     for i in range(0, len(images), 500)])
    if "shift_factor" in inspect.signature(type(ae).__init__).parameters:
        ae.register_to_config(shift_factor=float(lat.mean()), scaling_factor=float(1.0 / lat.std()))
    else:
        ae.register_to_config(scaling_factor=float(1.0 / lat.pow(2).mean().sqrt()))


# Settings a resumed run must share with the run it continues.
AE_RESUME_KEYS = ("epochs", "batch_size", "lr", "seed", "limit", "downsample", "latent_channels", "channels",
                  "decoder_channels", "ema", "wavelet", "dc", "layers_per_block")


def train_autoencoder(args: argparse.Namespace) -> dict:
    rt = setup_runtime(args.threads, args.precision)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    train_x, _ = take(*load_cifar10(args.data, "train"), args.limit)
    test_x, _ = load_cifar10(args.data, "test")
    if args.dc:
        ae = build_dc_autoencoder(args.downsample, args.latent_channels, args.channels, args.layers_per_block)
    else:
        ae = build_autoencoder(args.downsample, args.latent_channels, args.channels, args.decoder_channels, args.wavelet)
    ae = ae.to(rt.device)
    ae = ae.to(memory_format=torch.channels_last)  # oneDNN's fast conv layout on CPU
    ema = EMAModel(ae.parameters(), decay=args.ema)
    model = wrap_ddp(Reconstruction(ae), rt)
    opt = torch.optim.AdamW(ae.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(train_x) // (args.batch_size * rt.world)
    if steps_per_epoch < 1:
        raise LRFError(f"{len(train_x)} training images are fewer than one batch of {args.batch_size}; lower --batch-size")
    total = max(1, int(args.epochs * steps_per_epoch))
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=min(500, total // 10 + 1), num_training_steps=total)
    g = torch.Generator().manual_seed(args.seed * 7919 + rt.rank)
    log_path, val_path = out / "train_log.jsonl", out / "val_log.jsonl"
    step, spent = start_or_resume(out, args, AE_RESUME_KEYS, {"model": ae}, opt, sched, ema, {"augment": g},
                                  rt.main, rt.device)
    t_start = time.time()
    eval_x = test_x[:2000]  # periodic PSNR on a fixed test subset; the final metrics use all 10,000

    def elapsed() -> float:
        return spent + time.time() - t_start

    def export_ema() -> None:
        """The EMA weights, with their latent statistics, as the loadable autoencoder in OUT."""
        ema.store(ae.parameters())
        ema.copy_to(ae.parameters())
        set_latent_statistics(ae, train_x[:5000], rt.device)
        ae.to(memory_format=torch.contiguous_format).save_pretrained(out)
        ae.to(memory_format=torch.channels_last)
        ema.restore(ae.parameters())

    def checkpoint(step: int) -> None:
        if rt.main:
            ema.store(ae.parameters())
            ema.copy_to(ae.parameters())
            metrics = evaluate_autoencoder(ae, eval_x, rt.device)
            ema.restore(ae.parameters())
            append_log(val_path, {"step": step, "epoch": step / steps_per_epoch, "time_s": elapsed(),
                                  "test2000_mse": metrics["mse"], "test2000_psnr_db": metrics["psnr_db"]})
            save_training_state(out, step, {"model": ae}, opt, sched, ema, generators={"augment": g},
                                extra={"args": vars(args), "train_time_s": elapsed()})
            export_ema()
            save_loss_curve(read_log(log_path), out / "loss.png", title="autoencoder L1+MSE")

    def train_step(idx: torch.Tensor) -> dict[str, float]:
        ae.train()
        x = images_to_tensor(train_x[idx.numpy()])
        x = torch.where(torch.rand(x.shape[0], 1, 1, 1, generator=g) < 0.5, x.flip(3), x)
        x = x.to(rt.device).contiguous(memory_format=torch.channels_last)
        with rt.autocast():
            y = model(x).float()
        loss = reconstruction_loss(y, x)
        optimizer_step(loss, ae.parameters(), opt)
        sched.step()
        ema.step(ae.parameters())
        return {"loss": loss.item(), "lr": opt.param_groups[0]["lr"]}

    step = run_steps(step=step, total=total, steps_per_epoch=steps_per_epoch,
                     batches=lambda epoch: epoch_batches(len(train_x), args.batch_size, epoch, args.seed, rt),
                     train_step=train_step, checkpoint=checkpoint, args=args, main=rt.main, desc="autoencoder",
                     log_path=log_path, elapsed=elapsed, started=t_start)
    checkpoint(step)
    if not rt.main or step < total:
        if rt.main:
            print(f"autoencoder: stopped at step {step}/{total}; continue with --resume")
        return {}
    ema.copy_to(ae.parameters())
    ae.eval().requires_grad_(False)
    metrics = evaluate_autoencoder(ae, test_x, rt.device)
    metrics.update(train_time_s=elapsed(), steps=step, train_images=len(train_x), device=str(rt.device),
                   precision="bf16" if rt.bf16 else "fp32", threads=torch.get_num_threads(),
                   parameters=sum(p.numel() for p in ae.parameters()),
                   decoder_parameters=sum(p.numel() for p in ae.decoder.parameters()),
                   decoder_mflop_per_image=decoder_flops(ae) / 1e6,
                   shift_factor=ae.config.get("shift_factor"), scaling_factor=ae.config.scaling_factor)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with torch.no_grad():
        x = images_to_tensor(test_x[:16]).to(rt.device)
        y = ae.decode(encoded(ae, x)).sample.clamp(-1, 1)
    save_image_grid(torch.cat([x, y]).cpu(), out / "reconstruction.png", nrow=16)
    print(f"autoencoder: test MSE {metrics['mse']:.5f}, PSNR {metrics['psnr_db']:.2f} dB -> {out}")
    return metrics


@cli_errors
def main_train_ae(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lrf-train-ae", description="Train the TAESD-architecture autoencoder on CIFAR-10 "
                                "(or IRIS's wavelet one, or MicroForge's DC-AE).")
    add_common_args(p)
    p.add_argument("--downsample", type=int, default=4, help="spatial factor f (32px -> 32/f latent)")
    p.add_argument("--latent-channels", type=int, default=4)
    p.add_argument("--channels", type=int, default=64, help="width of every encoder stage (TAESD: 64)")
    p.add_argument("--decoder-channels", type=int, default=None,
                   help="width of every decoder stage (default: --channels); the decoder is what a phone runs per image")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--wavelet", action="store_true",
                      help="IRIS's wavelet latent: encode Haar subbands (the transform is the first factor of --downsample)")
    kind.add_argument("--dc", action="store_true",
                      help="MicroForge's DC-AE (diffusers AutoencoderDC): --channels is the first stage's width, doubled "
                      "per stage; --decoder-channels does not apply")
    p.add_argument("--layers-per-block", type=int, default=2, help="DC-AE: ResBlocks per stage")
    args = p.parse_args(argv)
    if args.dc and args.decoder_channels is not None:
        p.error("--decoder-channels does not apply to --dc (its decoder mirrors the encoder's widths)")
    train_autoencoder(args)


# --- denoiser -----------------------------------------------------------------------------


def logit_normal(n: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """t ~ sigmoid(N(0, 1)): concentrates training on the middle of the trajectory (SD3)."""
    return torch.sigmoid(torch.randn(n, device=device, generator=generator))


def min_snr_weight(t: torch.Tensor) -> torch.Tensor:
    """Min-SNR-5 weights for the velocity loss, x2 so that the average weight is about 1."""
    snr = ((1 - t) / t.clamp_min(1e-4)).pow(2)
    return snr.clamp(max=5.0) / (snr + 1) * 2.0


def flow_loss(model, z0: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
              recursions: int | None, weight: Callable[[torch.Tensor], torch.Tensor] | None,
              carry: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Rectified-flow velocity loss, each sample's MSE weighted by ``weight(t)`` (None: plain MSE).

    A denoiser that carries state between steps returns ``(v, state)``; without ``carry`` it starts
    from none (a first step). ``carry = (t_prev, keep)`` is self-conditioning, as sampling carries
    the state: each sample starts from the state the model itself leaves at the earlier time
    ``t_prev`` on the same straight path (no gradient), or from none where ``keep`` is false."""
    state = None
    if carry is not None:
        t_prev, keep = carry
        with torch.no_grad():  # the state alone (the denoiser's carried_state), not the velocity beside it
            prev = getattr(model, "module", model).carried_state(noised(z0, noise, t_prev), t_prev, labels, recursions)
        state = {n: s * keep.reshape(-1, *[1] * (s.dim() - 1)).to(s.dtype) for n, s in prev.items()}
    out = model(noised(z0, noise, t), t, labels, recursions, **({"state": state} if state is not None else {}))
    v = out[0] if isinstance(out, tuple) else out
    per_sample = (v.float() - (noise - z0)).pow(2).mean(dim=(1, 2, 3))
    return per_sample.mean() if weight is None else (per_sample * weight(t)).mean()


def loss_weight(name: str, family: Family) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``lrf-train --loss``'s weight: ``snr`` (min-SNR-5), ``mse`` (none) or ``family`` (the family's own, the seed's)."""
    if name == "family":
        if family.loss_weight is None:
            raise LRFError(f"--loss family: the {family.name} family declares no loss weight; use --loss snr or mse")
        return family.loss_weight
    return {"snr": min_snr_weight, "mse": None}[name]


@torch.no_grad()
def validation_loss(model, z0: torch.Tensor, labels: torch.Tensor, recursions: int) -> float:
    """Plain (unweighted) velocity MSE at 8 fixed t values with fixed noise: comparable across runs."""
    g = torch.Generator(device="cpu").manual_seed(1234)
    total = 0.0
    ts = torch.linspace(0.05, 0.95, 8)
    for t_val in ts:
        noise = torch.randn(z0.shape, generator=g).to(z0.device)
        t = torch.full((z0.shape[0],), float(t_val), device=z0.device)
        total += flow_loss(model, z0, labels, t, noise, recursions, None).item()
    return total / len(ts)


@torch.no_grad()
def class_grid(denoiser, autoencoder, steps: int, cfg: float, per_class: int = 8, seed: int = 0) -> torch.Tensor:
    """One row per class, ``per_class`` samples each: (10*per_class, 3, H, W) in [-1, 1]."""
    from .pipeline import LRFPipeline

    pipe = LRFPipeline(denoiser=denoiser, autoencoder=autoencoder)
    K = denoiser.config.num_classes
    labels = [k for k in range(K) for _ in range(per_class)]
    return pipe.generate_tensor(labels, [seed + i for i in range(len(labels))], steps=steps, cfg_scale=cfg)


class QuickEval:
    """Class consistency and FID (classifier features) of a few samples per class at every
    checkpoint: the curve of quality against CPU time. A measurement only, never a loss."""

    def __init__(self, classifier_dir: str | None, per_class: int, steps: int, cfg: float):
        from .classifier import default_classifier, load_classifier
        from .metrics import load_reference

        folder = Path(classifier_dir) if classifier_dir else default_classifier()
        self.classifier = load_classifier(folder)
        self.reference = load_reference(folder)
        if self.reference is None:
            raise LRFError(f"{folder} has no reference statistics; train it with lrf-train-classifier or pass --eval-per-class 0")
        self.per_class, self.steps, self.cfg = per_class, steps, cfg

    def __call__(self, denoiser, autoencoder, steps: int | None = None) -> dict[str, float]:
        """The numbers at ``steps`` (default: the evaluator's)."""
        from .classes import CIFAR10_CLASSES
        from .metrics import classify, distribution_report

        K = denoiser.config.num_classes
        labels = [k for k in range(K) for _ in range(self.per_class)]
        seeds = [10_000 + j for _ in range(K) for j in range(self.per_class)]  # not the grid's seeds
        from .pipeline import LRFPipeline

        images = LRFPipeline(denoiser=denoiser, autoencoder=autoencoder).generate_tensor(
            labels, seeds, steps=self.steps if steps is None else steps, cfg_scale=self.cfg)
        preds, feats = classify(self.classifier, images)
        r = distribution_report(labels, preds, feats, self.reference, list(CIFAR10_CLASSES))
        return {"class_consistency": r["class_consistency"], "fid": r["fid"], "diversity_ratio": r["diversity_ratio"]}


# Settings a resumed run must share with the run it continues (and its family's own).
DENOISER_RESUME_KEYS = ("epochs", "batch_size", "lr", "seed", "limit", "family", "loss", "cfg_dropout", "ema", "init_from",
                        "train_only")


def initial_denoiser(path: Path, channels: int, size: int) -> torch.nn.Module:
    """The denoiser a staged run starts from (``--init-from``, whose family :func:`staged_start`
    made ``--family``): a run, pipeline or denoiser folder, on latents of the training data's shape."""
    folder = path / "denoiser" if (path / "denoiser" / "config.json").is_file() else path
    model = load_denoiser(folder)
    if (model.config.latent_channels, model.config.latent_size) != (channels, size):
        raise LRFError(f"--init-from {path} works on {model.config.latent_channels}x{model.config.latent_size}^2 latents, "
                       f"the autoencoder gives {channels}x{size}^2; use the autoencoder it was trained with")
    return model.train().requires_grad_(True)


def train_denoiser(args: argparse.Namespace) -> dict:
    from .pipeline import default_checkpoint

    rt = setup_runtime(args.threads, args.precision)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    family = get_family(args.family)
    weight = loss_weight(args.loss, family)
    refuse_changed_resume(out, args, DENOISER_RESUME_KEYS + family.resume_keys)
    torch.manual_seed(args.seed)
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

    if args.init_from:  # a new stage of a trained model: its architecture and weights, a fresh optimizer
        model = initial_denoiser(Path(args.init_from), C, S).to(rt.device)
    else:
        model = family.build(latent_channels=C, latent_size=S, num_classes=len(CIFAR10_CLASSES),
                             class_names=list(CIFAR10_CLASSES), **family.config_from_args(args)).to(rt.device)
    trained = family.trainable(model, args.train_only)
    frozen = {id(p) for p in model.parameters()} - {id(p) for p in trained}
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    ema = EMAModel(model.parameters(), decay=args.ema)
    opt = torch.optim.AdamW(trained, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    steps_per_epoch = len(y_all) // (args.batch_size * rt.world)
    if steps_per_epoch < 1:
        raise LRFError(f"{len(y_all)} training images are fewer than one batch of {args.batch_size}; lower --batch-size")
    total = max(1, int(args.epochs * steps_per_epoch))
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=min(1000, total // 20 + 1), num_training_steps=total)
    # Every random draw of training comes from this generator (saved with the state: exact resume).
    g = torch.Generator(device=rt.device).manual_seed(args.seed * 7919 + rt.rank)
    log_path, val_path = out / "train_log.jsonl", out / "val_log.jsonl"
    quick = QuickEval(args.eval_classifier, args.eval_per_class, args.eval_steps, args.sample_cfg) \
        if args.eval_per_class and rt.main else None
    step, spent = start_or_resume(out, args, DENOISER_RESUME_KEYS + family.resume_keys, {"model": model}, opt, sched, ema, {"train": g},
                                  rt.main, rt.device)
    ddp = wrap_ddp(model, rt)
    null_class = model.config.num_classes
    # A recursive family learns every R it offers: R is drawn per batch.
    choices = torch.tensor(args.recursion_choices) if family.recursive else None
    if rt.main:
        print(f"denoiser: {sum(p.numel() for p in model.parameters()):,} parameters "
              f"({sum(p.numel() for p in trained):,} trained), {total} steps, "
              f"{len(y_all)} images, latents {tuple(z_all.shape[2:])}, device {rt.device}, "
              f"{'bf16' if rt.bf16 else 'fp32'}")
    t_start = time.time()

    def elapsed() -> float:
        return spent + time.time() - t_start

    def checkpoint(step: int, final: bool = False) -> None:
        if rt.main:
            save_training_state(out, step, {"model": model}, opt, sched, ema, generators={"train": g},
                                extra={"args": vars(args), "train_time_s": elapsed()})
            ema.store(model.parameters())
            ema.copy_to(model.parameters())
            model.eval()
            record = {"step": step, "epoch": step / steps_per_epoch, "time_s": elapsed(),
                      "val_mse": validation_loss(model, z_val, y_val, family.default_recursions(model))}
            if quick is not None:
                record.update({f"eval_{k}": v for k, v in quick(model, ae).items()})
            append_log(val_path, record)
            tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith(("val", "eval"))))
            model.save_pretrained(out / "denoiser")
            grid = class_grid(model, ae, steps=args.sample_steps, cfg=args.sample_cfg)
            save_image_grid(grid.cpu(), out / ("samples.png" if final else f"samples_step{step:06d}.png"), nrow=8)
            ema.restore(model.parameters())
            model.train()
            save_loss_curve(read_log(log_path), out / "loss.png", title="denoiser flow loss")

    def train_step(idx: torch.Tensor) -> dict[str, float]:
        model.train()
        idx = idx.to(rt.device)
        n = len(idx)
        flip = torch.randint(0, 2, (n,), device=rt.device, generator=g)
        z0 = z_all[flip, idx]
        drop = torch.rand(n, device=rt.device, generator=g) < args.cfg_dropout
        y = torch.where(drop, null_class, y_all[idx])
        R = int(choices[torch.randint(len(choices), (1,), generator=g, device=rt.device).item()]) \
            if choices is not None else None
        t = logit_normal(n, rt.device, g)
        noise = torch.randn(z0.shape, device=rt.device, generator=g)
        carry = None
        if family.state is not None:  # self-conditioning: the state of a step up to 0.25 earlier, for half the batch
            carry = ((t + 0.25 * torch.rand(n, device=rt.device, generator=g)).clamp(max=1.0),
                     torch.rand(n, device=rt.device, generator=g) < 0.5)
        with rt.autocast():
            loss = flow_loss(ddp, z0, y, t, noise, R, weight, carry)
        gnorm = optimizer_step(loss, model.parameters(), opt)
        sched.step()
        ema.step(model.parameters())
        return {"loss": loss.item(), "R": R, "grad_norm": float(gnorm), "lr": opt.param_groups[0]["lr"]}

    step = run_steps(step=step, total=total, steps_per_epoch=steps_per_epoch,
                     batches=lambda epoch: epoch_batches(len(y_all), args.batch_size, epoch, args.seed, rt),
                     train_step=train_step, checkpoint=checkpoint, args=args, main=rt.main, desc="denoiser",
                     log_path=log_path, elapsed=elapsed, started=t_start)
    checkpoint(step, final=step >= total)
    result = {"steps": step, "total_steps": total, "train_time_s": elapsed(), "device": str(rt.device),
              "precision": "bf16" if rt.bf16 else "fp32", "threads": torch.get_num_threads()}
    if rt.main:
        result.update(read_log(val_path)[-1])
        (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        state = "finished" if step >= total else f"stopped at step {step}/{total}; continue with --resume"
        print(f"denoiser: {state}; EMA validation velocity MSE {result['val_mse']:.4f} -> {out / 'denoiser'}")
    if rt.world > 1:
        dist.destroy_process_group()
    return result


@cli_errors
def main_train(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lrf-train", description="Train a denoiser (any model family) on CIFAR-10 latents.")
    add_common_args(p)
    p.add_argument("--autoencoder", default=None, help="autoencoder folder (default: the shipped one)")
    p.add_argument("--family", default=None, choices=list(FAMILIES),
                   help="model family of the denoiser (default: lrf, or the --init-from model's)")
    for family in FAMILIES.values():
        family.add_arguments(p.add_argument_group(f"family {family.name}", family.description))
    g = p.add_argument_group("recursive families", ", ".join(f.name for f in FAMILIES.values() if f.recursive))
    g.add_argument("--recursions", type=int, default=2, help="default recursion count stored in the config")
    g = p.add_argument_group("token-width families", "iris, microforge")
    g.add_argument("--dim", type=int, default=128, help="token width")
    g = p.add_argument_group("cross-attention families", "luminars, iris, microforge")
    g.add_argument("--cond-tokens", type=int, default=4, help="learned conditioning tokens per class (a text encoder's place)")
    g.add_argument("--recursion-choices", type=lambda s: [int(x) for x in s.split(",")], default=None,
                   help="R drawn per batch from these (comma-separated; default: the family's)")
    p.add_argument("--loss", choices=["snr", "mse", "family"], default=None,
                   help="loss weight over t: min-SNR-5, none, or the family's own (default: the family's if it has one, else snr)")
    p.add_argument("--init-from", default=None,
                   help="start from this trained run/pipeline/denoiser folder (a new stage: fresh optimizer and schedule; "
                        "its architecture, not the family flags)")
    p.add_argument("--train-only", default=None,
                   help="train only this part of the denoiser, the rest frozen (the family's train groups, e.g. "
                        "cross_attention for luminars)")
    p.add_argument("--cfg-dropout", type=float, default=0.1)
    p.add_argument("--sample-steps", type=int, default=8, help="steps of the sample grid written at each checkpoint")
    p.add_argument("--sample-cfg", type=float, default=3.0)
    p.add_argument("--eval-per-class", type=int, default=50,
                   help="samples per class measured by the classifier at each checkpoint (0: none)")
    p.add_argument("--eval-steps", type=int, default=4)
    p.add_argument("--eval-classifier", default=None, help="classifier folder (default: the shipped one)")
    args = p.parse_args(argv)
    start = staged_start(args)  # before anything is written
    family = FAMILIES[args.family]
    args.loss = args.loss or ("family" if family.loss_weight is not None else "snr")
    loss_weight(args.loss, family)  # refused here, before anything is written
    if args.recursion_choices is None:
        limit = start.get("max_recursions", 1) if start else max(family.train_recursions, default=1)
        args.recursion_choices = [r for r in family.train_recursions if r <= limit]
    elif start and family.recursive and max(args.recursion_choices) > start.get("max_recursions", 1):
        raise LRFError(f"--recursion-choices {args.recursion_choices}: the --init-from model runs at most "
                       f"{start.get('max_recursions', 1)} recursions; choose from 1..{start.get('max_recursions', 1)}")
    family.check_train_group(args.train_only)
    train_denoiser(args)


def staged_start(args: argparse.Namespace) -> dict | None:
    """The saved config of the ``--init-from`` denoiser (None without one); its family becomes
    ``--family`` when none was given, and must be ``--family`` when one was."""
    if args.init_from is None:
        args.family = args.family or "lrf"
        return None
    path = Path(args.init_from)
    config_file = next((f for f in (path / "denoiser" / "config.json", path / "config.json") if f.is_file()), None)
    if config_file is None:
        raise LRFError(f"--init-from {path}: no denoiser config.json there; pass a trained run, pipeline or denoiser folder")
    config = json.loads(config_file.read_text())
    family = family_named_in(config)
    if args.family not in (None, family.name):
        raise LRFError(f"--init-from {path} holds a {family.name} model, not {args.family}; "
                       f"pass --family {family.name} or leave --family out")
    args.family = family.name
    return config

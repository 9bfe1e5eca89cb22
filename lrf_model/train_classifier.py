"""``lrf-train-classifier``: train the measuring instrument of ``lrf-eval``.

airbench94's recipe (Keller Jordan), which reaches 94% on CIFAR-10 in ~10 epochs: batch 1024,
Nesterov SGD (momentum 0.85) with a triangular learning-rate schedule, 64x learning rate on
the BatchNorm biases, label smoothing 0.2, random flips and 2-pixel reflected translations,
a patch-whitening stem fixed from the training data. Differences: no Lookahead and no
multi-crop test-time augmentation (mirror only), to keep the code short.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .classes import CIFAR10_CLASSES
from .classifier import CIFARClassifier
from .data import images_to_tensor, load_cifar10
from .errors import LRFError, cli_errors
from .metrics import reference_statistics, save_reference
from .trainer import Runtime, epoch_batches, run_steps, save_training_state, setup_runtime, start_or_resume, take


# Settings a resumed run must share with the run it continues.
RESUME_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "momentum", "label_smoothing", "widths", "seed", "limit")


def augment(x: torch.Tensor, g: torch.Generator, translate: int = 2) -> torch.Tensor:
    """Random horizontal flip and a random translation of up to ``translate`` px (reflect padding)."""
    B = x.shape[0]
    flip = torch.rand(B, generator=g) < 0.5
    x = torch.where(flip.reshape(B, 1, 1, 1), x.flip(3), x)
    if translate:
        padded = F.pad(x, (translate,) * 4, mode="reflect")
        dx, dy = torch.randint(0, 2 * translate + 1, (2,), generator=g).tolist()  # one shift per batch
        S = x.shape[-1]
        x = padded[:, :, dy : dy + S, dx : dx + S]
    return x


@torch.no_grad()
def accuracy(model: CIFARClassifier, images: np.ndarray, labels: np.ndarray, rt: Runtime, batch_size: int = 1000) -> float:
    """Top-1 accuracy with mirror test-time augmentation."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        x = images_to_tensor(images[i : i + batch_size]).to(rt.device).contiguous(memory_format=torch.channels_last)
        with rt.autocast():
            logits, _ = model.predict(x)
        correct += int((logits.argmax(1).cpu() == torch.from_numpy(labels[i : i + batch_size])).sum())
    return correct / len(images)


def param_groups(model: CIFARClassifier, batch_size: int, lr: float, weight_decay: float, momentum: float,
                 bias_scaler: float = 64.0) -> list[dict]:
    """airbench's decoupled hyper-parameters -> PyTorch SGD groups (sum-reduced loss)."""
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    base_lr, wd = lr / kilostep, weight_decay * batch_size / kilostep
    biases = [p for n, p in model.named_parameters() if p.requires_grad and ("norm" in n or "whiten.bias" in n)]
    others = [p for n, p in model.named_parameters() if p.requires_grad and not ("norm" in n or "whiten.bias" in n)]
    return [dict(params=biases, lr=base_lr * bias_scaler, weight_decay=wd / (base_lr * bias_scaler)),
            dict(params=others, lr=base_lr, weight_decay=wd / base_lr)]


def train_classifier(args: argparse.Namespace) -> dict:
    rt = setup_runtime(args.threads, args.precision)
    if rt.world > 1:
        raise LRFError("lrf-train-classifier runs in one process; launch it without torchrun")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_x, train_y = take(*load_cifar10(args.data, "train"), args.limit)
    test_x, test_y = load_cifar10(args.data, "test")
    torch.manual_seed(args.seed)
    model = CIFARClassifier(widths=tuple(args.widths)).to(rt.device)
    model.init_whitening(images_to_tensor(train_x[:5000]))
    model.whiten.weight.requires_grad_(False)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(param_groups(model, args.batch_size, args.lr, args.weight_decay, args.momentum),
                          momentum=args.momentum, nesterov=True)
    steps_per_epoch = len(train_x) // args.batch_size
    if steps_per_epoch < 1:
        raise LRFError(f"{len(train_x)} training images are fewer than one batch of {args.batch_size}; lower --batch-size")
    total = max(1, int(args.epochs * steps_per_epoch))
    # Triangular schedule: 0.2 -> 1 over the first 23% of steps, then down to 0.07.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total,
                                                pct_start=0.23, anneal_strategy="linear", cycle_momentum=False,
                                                div_factor=5.0, final_div_factor=0.2 / 0.07)
    g = torch.Generator().manual_seed(args.seed)
    log_path = out / "train_log.jsonl"
    step, spent = start_or_resume(out, args, RESUME_KEYS, {"model": model}, opt, sched, generators={"augment": g})
    t0 = time.time() - spent  # wall time of this run, over every resumed part

    def checkpoint(step: int) -> None:
        save_training_state(out, step, {"model": model}, opt, sched, generators={"augment": g},
                            extra={"args": vars(args), "train_time_s": time.time() - t0})

    def train_step(idx: torch.Tensor) -> dict[str, float]:
        model.train()
        x = augment(images_to_tensor(train_x[idx.numpy()]), g).to(rt.device).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(train_y[idx.numpy()]).to(rt.device)
        with rt.autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=args.label_smoothing, reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": loss.item() / len(idx)}

    def epoch_end(epoch: int) -> None:
        tqdm.write(f"epoch {epoch}: test accuracy {accuracy(model, test_x, test_y, rt):.4f}")

    step = run_steps(step=step, total=total, steps_per_epoch=steps_per_epoch,
                     batches=lambda epoch: epoch_batches(len(train_x), args.batch_size, epoch, args.seed, rt),
                     train_step=train_step, checkpoint=checkpoint, args=args, main=True, desc="classifier",
                     log_path=log_path, elapsed=lambda: time.time() - t0, started=t0, log_every=10, epoch_end=epoch_end)
    checkpoint(step)
    if step < total:
        print(f"classifier: stopped at step {step}/{total}; continue with --resume")
        return {}
    train_time = time.time() - t0
    model.eval()
    acc = accuracy(model, test_x, test_y, rt)
    metrics = {"test_accuracy": acc, "test_images": len(test_x), "train_images": len(train_x), "epochs": args.epochs,
               "steps": step, "train_time_s": train_time, "precision": "bf16" if rt.bf16 else "fp32",
               "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in model.parameters()),
               "classes": list(CIFAR10_CLASSES)}
    model.to(memory_format=torch.contiguous_format).save_pretrained(out)
    # What lrf-eval compares with: test-set feature statistics, and 10,000 training images' FID (the floor).
    stats = reference_statistics(model, test_x, test_y, train_images=take(train_x, train_y, 10_000)[0])
    save_reference(stats, out)
    # The accuracy lrf-eval's measurements rest on is the fp32 one (reference_statistics runs in fp32).
    metrics.update(test_accuracy_during_training=acc, test_accuracy=float(stats["accuracy"]),
                   train_fid=float(stats["train_fid"]))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"classifier: test accuracy {metrics['test_accuracy']:.4f} ({train_time / 60:.1f} min) -> {out}")
    return metrics


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lrf-train-classifier",
                                description="Train the CIFAR-10 classifier lrf-eval measures with (airbench94 recipe).")
    p.add_argument("--data", default=None, help="CIFAR-10: batches folder, image tree or .tar.gz (default: ../shared)")
    p.add_argument("--out", required=True, help="output folder (weights, config, metrics, training state)")
    p.add_argument("--epochs", type=float, default=12)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=11.5, help="airbench's learning rate per 1024 examples")
    p.add_argument("--weight-decay", type=float, default=0.0153)
    p.add_argument("--momentum", type=float, default=0.85)
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--widths", type=lambda s: [int(v) for v in s.split(",")], default=[64, 256, 256])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke runs)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    p.add_argument("--stop-at-step", type=int, default=None,
                   help="stop cleanly at this step as if interrupted (resume continues the same run)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/training_state.safetensors")
    args = p.parse_args(argv)
    if len(args.widths) != 3 or min(args.widths) < 1:
        raise LRFError(f"--widths {args.widths} is invalid; give three positive widths, e.g. 64,256,256")
    train_classifier(args)

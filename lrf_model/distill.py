"""``lrf-distill``: few-step generation from a trained model, by reflow on its own samples.

Why reflow (the second rectification of Liu et al., "Flow Straight and Fast", 2023): a phone pays
steps x step time per image, and a model trained on independent (noise, image) pairs learns curved
paths that 1-2 Euler steps cut short. Its own sampler pairs each noise with the image it leads to;
a student trained on the straight lines between those pairs learns nearly straight paths, which few
steps follow. On a CPU the pairs are the cheap part (teacher inference only, no data), cached once
as latents, and the student starts from the teacher's weights.

Two stages, each resumable:

1. **Pairs** (``OUT/pairs/chunk_*.safetensors``): noise ``z1`` (the portable noise of seed
   ``1_000_000 + i``), class ``i % K``, and the teacher's sample ``x0`` after ``--teacher-steps``
   guided Euler steps at ``--teacher-cfg``. Chunks are written atomically; a restarted run makes
   only the missing ones.
2. **The student** (the teacher's family and config, initialised from its weights): the
   rectified-flow velocity loss on the pairs, ``z_t = (1 - t) x0 + t z1``, target ``z1 - x0``,
   unweighted (min-SNR weights vanish at t = 1, the one point a 1-step sampler uses). Guidance is
   baked into the pairs, so the student samples at cfg 1 (its checkpoint says so:
   ``sampling.json``). ``--t-sampling`` picks where training spends its steps: ``uniform`` over
   (0, 1], ``logit-normal`` (the teacher's), or ``few-step``: the start points of the 1-, 2- and
   4-step schedules (1, 3/4, 1/2, 1/4), where a few-step sampler evaluates the model.

The student folder is a loadable checkpoint (``lrf-eval OUT``, ``lrf-generate --checkpoint OUT``,
``lrf-export --checkpoint OUT``), with the trainers' logs, a training state saved every
``--checkpoint-minutes`` and ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .errors import LRFError, cli_errors
from .pipeline import LRFPipeline, resolve_checkpoint, save_sampling_defaults
from .plots import save_image_grid, save_loss_curve
from .sampling import batch_noise, noised
from .trainer import (append_log, epoch_batches, optimizer_step, read_log, refuse_changed_resume, run_steps,
                      save_training_state, setup_runtime, start_or_resume)
from .training import QuickEval, class_grid

PAIR_SEED_BASE = 1_000_000  # pair i uses the portable noise of this + i: apart from every evaluation seed
FEW_STEP_TIMES = (1.0, 0.75, 0.5, 0.25)  # the start points of the 1-, 2- and 4-step schedules
T_SAMPLINGS = ("uniform", "logit-normal", "few-step")
EVAL_STEPS = (1, 2, 4)


def chunk_path(out: Path, k: int) -> Path:
    return out / "pairs" / f"chunk_{k:05d}.safetensors"


@torch.no_grad()
def make_pairs(teacher: LRFPipeline, out: Path, num: int, chunk: int, steps: int, cfg: float) -> None:
    """Write the missing chunks of ``num`` teacher pairs (``chunk`` per file) under ``out/pairs``."""
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    K = teacher.denoiser.config.num_classes
    chunks = math.ceil(num / chunk)
    missing = [k for k in range(chunks) if not chunk_path(out, k).is_file()]
    for k in tqdm(missing, desc=f"teacher pairs ({steps} steps, cfg {cfg})", unit="chunk"):
        ids = list(range(k * chunk, min(num, (k + 1) * chunk)))
        labels = [i % K for i in ids]
        seeds = [PAIR_SEED_BASE + i for i in ids]
        x0 = teacher.generate_latents(labels, seeds, steps=steps, cfg_scale=cfg)
        z1 = batch_noise(seeds, teacher.latent_shape)  # the noise generate_latents started from
        path = chunk_path(out, k)
        tmp = path.with_suffix(".tmp")
        save_file({"noise": z1.contiguous(), "latent": x0.float().contiguous(), "label": torch.tensor(labels)}, str(tmp))
        tmp.replace(path)


def load_pairs(out: Path, num: int, chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ``num`` pairs: ``(noise, latent, label)``."""
    parts = [load_file(str(chunk_path(out, k))) for k in range(math.ceil(num / chunk))]
    return tuple(torch.cat([p[key] for p in parts])[:num] for key in ("noise", "latent", "label"))  # type: ignore[return-value]


def sample_t(kind: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """Training times for a batch of ``n`` (see the module docstring)."""
    if kind == "uniform":
        return 1.0 - torch.rand(n, generator=generator)  # (0, 1]: t = 1 included, t = 0 (no noise) not
    if kind == "logit-normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    times = torch.tensor(FEW_STEP_TIMES)
    return times[torch.randint(len(times), (n,), generator=generator)]


def reflow_loss(model, z1: torch.Tensor, x0: torch.Tensor, labels: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Plain velocity MSE on the straight path from ``x0`` (t = 0) to ``z1`` (t = 1)."""
    v = model(noised(x0, z1, t), t, labels)
    return F.mse_loss(v.float(), z1 - x0)


# Settings a resumed run must share with the run it continues.
RESUME_KEYS = ("teacher", "pairs", "pair_chunk", "teacher_steps", "teacher_cfg", "t_sampling", "epochs", "batch_size",
               "lr", "seed", "ema")


def distill(args: argparse.Namespace) -> dict:
    if args.t_sampling not in T_SAMPLINGS:
        raise LRFError(f"--t-sampling {args.t_sampling} is unknown; use one of {', '.join(T_SAMPLINGS)}")
    if args.pairs < args.batch_size:
        raise LRFError(f"--pairs {args.pairs} is fewer than one batch of {args.batch_size}; raise --pairs or lower --batch-size")
    rt = setup_runtime(args.threads, args.precision)
    if rt.world > 1:
        raise LRFError("lrf-distill runs in one process; launch it without torchrun")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    refuse_changed_resume(out, args, RESUME_KEYS)
    teacher = LRFPipeline.from_checkpoint(args.teacher)
    if teacher.family.state is not None:  # reflow's student is one velocity call per pair: nothing to carry
        raise LRFError(f"lrf-distill: the {teacher.family.name} family carries state between steps, which reflow "
                       "does not train yet; distill a family without it")
    make_pairs(teacher, out, args.pairs, args.pair_chunk, args.teacher_steps, args.teacher_cfg)
    z1_all, x0_all, y_all = load_pairs(out, args.pairs, args.pair_chunk)

    torch.manual_seed(args.seed)
    student = teacher.denoiser  # starts as the teacher; the teacher is needed no more
    ae = teacher.autoencoder
    student.train().requires_grad_(True)
    ema = EMAModel(student.parameters(), decay=args.ema)
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))
    steps_per_epoch = args.pairs // args.batch_size
    total = max(1, int(args.epochs * steps_per_epoch))
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=min(200, total // 20 + 1), num_training_steps=total)
    g = torch.Generator().manual_seed(args.seed * 7919)
    log_path, val_path = out / "train_log.jsonl", out / "val_log.jsonl"
    quick = QuickEval(args.eval_classifier, args.eval_per_class, EVAL_STEPS[0], 1.0) if args.eval_per_class else None
    step, spent = start_or_resume(out, args, RESUME_KEYS, {"model": student}, opt, sched, ema, {"train": g})
    print(f"student: {sum(p.numel() for p in student.parameters()):,} parameters, {args.pairs} pairs, {total} steps, "
          f"t {args.t_sampling}, {'bf16' if rt.bf16 else 'fp32'}")
    t_start = time.time()

    def elapsed() -> float:
        return spent + time.time() - t_start

    def checkpoint(step: int, final: bool = False) -> None:
        save_training_state(out, step, {"model": student}, opt, sched, ema, generators={"train": g},
                            extra={"args": vars(args), "train_time_s": elapsed()})
        ema.store(student.parameters())
        ema.copy_to(student.parameters())
        student.eval()
        record: dict[str, float] = {"step": step, "epoch": step / steps_per_epoch, "time_s": elapsed()}
        if quick is not None:
            for n in EVAL_STEPS:
                record.update({f"eval{n}_{k}": v for k, v in quick(student, ae, steps=n).items()})
        append_log(val_path, record)
        tqdm.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith("eval")))
        LRFPipeline(student, ae).save_pretrained(out)
        save_sampling_defaults(out, steps=2, cfg=1.0)
        save_image_grid(class_grid(student, ae, steps=2, cfg=1.0).cpu(), out / ("samples.png" if final else "samples_latest.png"),
                        nrow=8)
        ema.restore(student.parameters())
        student.train()
        save_loss_curve(read_log(log_path), out / "loss.png", title=f"reflow velocity MSE (t {args.t_sampling})")

    def train_step(idx: torch.Tensor) -> dict[str, float]:
        t = sample_t(args.t_sampling, len(idx), g)
        with rt.autocast():
            loss = reflow_loss(student, z1_all[idx], x0_all[idx], y_all[idx], t)
        gnorm = optimizer_step(loss, student.parameters(), opt)
        sched.step()
        ema.step(student.parameters())
        return {"loss": loss.item(), "grad_norm": float(gnorm), "lr": opt.param_groups[0]["lr"]}

    step = run_steps(step=step, total=total, steps_per_epoch=steps_per_epoch,
                     batches=lambda epoch: epoch_batches(args.pairs, args.batch_size, epoch, args.seed, rt),
                     train_step=train_step, checkpoint=checkpoint, args=args, main=True, desc="student",
                     log_path=log_path, elapsed=elapsed, started=t_start)
    checkpoint(step, final=step >= total)
    result = {"steps": step, "total_steps": total, "train_time_s": elapsed(), "precision": "bf16" if rt.bf16 else "fp32",
              "threads": torch.get_num_threads(), **read_log(val_path)[-1]}
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    state = "finished" if step >= total else f"stopped at step {step}/{total}; continue with --resume"
    print(f"student: {state} -> {out}")
    return result


@cli_errors
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="lrf-distill", description="Few-step generation: reflow a trained checkpoint on its own samples.")
    p.add_argument("--teacher", default=None, help="checkpoint to distil (default: the shipped one)")
    p.add_argument("--out", required=True, help="output folder: the pairs, the student checkpoint, logs, training state")
    p.add_argument("--pairs", type=int, default=50_000, help="teacher pairs (noise -> sample) to make and train on")
    p.add_argument("--pair-chunk", type=int, default=500, help="pairs per cached file")
    p.add_argument("--teacher-steps", type=int, default=16, help="Euler steps of the teacher's samples")
    p.add_argument("--teacher-cfg", type=float, default=3.0, help="guidance of the teacher's samples (baked into the student)")
    p.add_argument("--t-sampling", default="uniform", help=f"training times: {', '.join(T_SAMPLINGS)}")
    p.add_argument("--epochs", type=float, default=10, help="epochs over the pairs (fractions allowed)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast on CPUs with native bf16 (AVX512_BF16/AMX), else fp32")
    p.add_argument("--eval-per-class", type=int, default=50, help="samples per class measured at 1, 2, 4 steps per checkpoint (0: none)")
    p.add_argument("--eval-classifier", default=None, help="classifier folder (default: the shipped one)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    p.add_argument("--max-minutes", type=float, default=None, help="stop cleanly (with a checkpoint) after this long")
    p.add_argument("--stop-at-step", type=int, default=None, help="stop cleanly at this step (resume continues the run)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/training_state.safetensors")
    args = p.parse_args(argv)
    args.teacher = str(resolve_checkpoint(args.teacher))
    for name in ("pairs", "pair_chunk", "teacher_steps", "batch_size"):
        if getattr(args, name) < 1:
            raise LRFError(f"--{name.replace('_', '-')} {getattr(args, name)} is invalid; use a positive integer")
    distill(args)

"""Training throughput on this CPU: which settings make ``lrf-train`` and ``lrf-train-ae`` fastest.

    python benchmarks/training_speed.py [--steps 8] [--warmup 3] [--quick]

One training step as the trainers run it (forward + backward + grad clip + AdamW), on the
shipped denoiser architecture (``flow_loss``, R drawn from 1..4 in turn) and on the autoencoder
being trained (``Reconstruction`` + ``reconstruction_loss``), for: eager vs ``torch.compile``,
fp32 vs bf16 autocast (fast only where the CPU has native bf16: the result says whether it
does), contiguous vs channels_last (the autoencoder's convs), 1 vs 2 threads and batch 128 vs
256. Median step time after ``--warmup`` steps; images/s. A short loss comparison (the same
initialisation and batches for ``--loss-steps`` steps in fp32 and in bf16) says whether bf16
changes what is learned. Run it on a quiet machine (pause background training with SIGSTOP).
Writes benchmarks/results/training_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from lrf_model.autoencoder import build_autoencoder  # noqa: E402
from lrf_model.model import LRFDenoiser  # noqa: E402
from lrf_model.trainer import cpu_has_native_bf16, optimizer_step  # noqa: E402
from lrf_model.training import Reconstruction, flow_loss, logit_normal, min_snr_weight, reconstruction_loss  # noqa: E402

AE_SHAPE = dict(downsample=4, latent_channels=8, channels=48, decoder_channels=40)  # the candidate being trained


def make(kind: str, compile_: bool, channels_last: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(parameters owner, callable) for one benchmark configuration."""
    torch.manual_seed(0)
    if kind == "denoiser":
        model = LRFDenoiser(latent_channels=4, latent_size=8)
        with torch.no_grad():  # adaLN-Zero: give the zero-initialised layers values, as after training
            for p in model.parameters():
                if p.abs().sum() == 0:
                    p.normal_(0, 0.02)
        owner = model
    else:
        owner = build_autoencoder(**AE_SHAPE)
        model = Reconstruction(owner)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
    return owner, (torch.compile(model) if compile_ else model)


def step_fn(kind: str, owner, model, opt, batch: int, bf16: bool, channels_last: bool, g: torch.Generator):
    """One training step of ``kind``; returns the loss."""
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    if kind == "denoiser":
        z0 = torch.randn(batch, 4, 8, 8, generator=g)
        y = torch.randint(0, 11, (batch,), generator=g)
        R = int(torch.randint(1, 5, (1,), generator=g))
        with ctx:
            loss = flow_loss(model, z0, y, logit_normal(batch, torch.device("cpu"), g), torch.randn(z0.shape, generator=g),
                             R, min_snr_weight)
    else:
        x = torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with ctx:
            y = model(x).float()
        loss = reconstruction_loss(y, x)
    optimizer_step(loss, owner.parameters(), opt)
    return float(loss)


def measure(kind: str, threads: int, bf16: bool, compile_: bool, channels_last: bool, batch: int,
            steps: int, warmup: int) -> dict:
    torch.set_num_threads(threads)
    owner, model = make(kind, compile_, channels_last)
    opt = torch.optim.AdamW(owner.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step_fn(kind, owner, model, opt, batch, bf16, channels_last, g)
    warm_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step_fn(kind, owner, model, opt, batch, bf16, channels_last, g)
        times.append(time.perf_counter() - t)
    ms = 1000 * statistics.median(times)
    row = {"model": kind, "threads": threads, "precision": "bf16" if bf16 else "fp32", "compile": compile_,
           "layout": "channels_last" if channels_last else "contiguous", "batch": batch, "step_ms": ms,
           "images_per_s": batch / (ms / 1000), "warmup_s": warm_s}
    print(f"{kind:8s} threads {threads} {row['precision']} compile={compile_!s:5s} {row['layout']:13s} batch {batch}: "
          f"{ms:7.0f} ms/step, {row['images_per_s']:6.0f} img/s", flush=True)
    return row


def loss_match(kind: str, steps: int) -> dict:
    """Mean loss over the last half of ``steps`` steps, fp32 vs bf16, from one initialisation and batch stream."""
    out = {}
    for bf16 in (False, True):
        torch.set_num_threads(2)
        owner, model = make(kind, False, kind == "autoencoder")
        opt = torch.optim.AdamW(owner.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        losses = [step_fn(kind, owner, model, opt, 128, bf16, kind == "autoencoder", g) for _ in range(steps)]
        out["bf16" if bf16 else "fp32"] = statistics.fmean(losses[steps // 2 :])
    print(f"{kind}: mean loss of steps {steps // 2}-{steps}: fp32 {out['fp32']:.4f}, bf16 {out['bf16']:.4f}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--loss-steps", type=int, default=60)
    p.add_argument("--quick", action="store_true", help="eager configurations only (no torch.compile)")
    args = p.parse_args()
    native = cpu_has_native_bf16()
    configs = []
    for kind in ("denoiser", "autoencoder"):
        layouts = (False, True) if kind == "autoencoder" else (False,)
        for threads in (1, 2):
            for bf16 in (False, True):
                for cl in layouts:
                    configs.append((kind, threads, bf16, False, cl, 128))
        best_cl = kind == "autoencoder"
        if not args.quick:
            configs += [(kind, 2, bf16, True, best_cl, 128) for bf16 in (False, True)]
        configs.append((kind, 2, native, False, best_cl, 256))
    rows = [measure(*c, steps=args.steps, warmup=args.warmup) for c in configs]
    losses = {kind: loss_match(kind, args.loss_steps) for kind in ("denoiser", "autoencoder")}
    m = common.machine()
    md = [f"# Training throughput ({common.machine_line(m)})", "",
          f"Native bf16 on this CPU: **{'yes' if native else 'no'}** (the trainers' `--precision auto` uses bf16 "
          f"{'here' if native else 'only where it is native; here fp32'}). One step = forward + backward + grad clip "
          f"+ AdamW; median of {args.steps} steps after {args.warmup} warm-up steps. Autoencoder: "
          f"{AE_SHAPE}.", "",
          "| model | threads | precision | torch.compile | layout | batch | ms / step | images / s |",
          "|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['model']} | {r['threads']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | {r['layout']} | "
           f"{r['batch']} | {r['step_ms']:.0f} | {r['images_per_s']:.0f} |" for r in rows]
    md += ["", f"Loss after {args.loss_steps} steps from the same initialisation and batches (mean of the last half):", "",
           "| model | fp32 | bf16 |", "|---|---|---|"]
    md += [f"| {k} | {v['fp32']:.4f} | {v['bf16']:.4f} |" for k, v in losses.items()]
    common.write_results("training_speed", {"machine": m, "native_bf16": native, "rows": rows, "loss_match": losses},
                         "\n".join(md) + "\n")


if __name__ == "__main__":
    main()

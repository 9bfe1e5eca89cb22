"""Machinery every trainer shares: where it runs, at which precision, its batches, its logs,
and a training state that is saved every few minutes and resumed exactly.

Why it exists: training here runs for hours on 2 CPU cores in the background and is stopped
whenever the session ends, so a run must survive being killed at any moment and continue
tensor for tensor (model, EMA, optimizer, learning-rate schedule, every random generator).
The state is one safetensors file written atomically, its scalars in the file's metadata:
a half-written checkpoint cannot exist.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from .errors import LRFError, first_line

PRECISIONS = ("auto", "fp32", "bf16")
STATE_FILE = "training_state.safetensors"


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 natively (x86 AVX512_BF16/AMX, Arm BF16): there bf16
    autocast is ~1.8x faster; elsewhere bf16 is emulated and slower than fp32."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() == "arm64" and platform.system() == "Darwin"  # Apple M2+ has BF16
    flags = set()
    for line in info.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@dataclass
class Runtime:
    """Where training runs: device, rank and world size (DDP when launched by torchrun), precision."""

    device: torch.device
    rank: int = 0
    world: int = 1
    bf16: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """bf16 autocast where it is native (CUDA, or a CPU with bf16 instructions)."""
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def setup_runtime(threads: int | None = None, precision: str = "auto") -> Runtime:
    """Threads, DDP (from torchrun's environment) and precision: ``auto`` picks bf16 on CUDA and
    on CPUs with native bf16, fp32 elsewhere; ``bf16`` where it is not native is refused."""
    if precision not in PRECISIONS:
        raise LRFError(f"precision '{precision}' is unknown; use one of {', '.join(PRECISIONS)}")
    if threads:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    native = cuda or cpu_has_native_bf16()
    if precision == "bf16" and not native:
        raise LRFError("--precision bf16 needs a CPU with native bf16 (AVX512_BF16/AMX) or a GPU; use auto or fp32")
    bf16 = precision == "bf16" or (precision == "auto" and native)
    if world > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
        rank = dist.get_rank()
        if cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return Runtime(torch.device("cuda", local), rank, world, bf16)
        return Runtime(torch.device("cpu"), rank, world, bf16)
    return Runtime(torch.device("cuda" if cuda else "cpu"), bf16=bf16)


def wrap_ddp(model: torch.nn.Module, rt: Runtime) -> torch.nn.Module:
    if rt.world == 1:
        return model
    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rt: Runtime) -> list[torch.Tensor]:
    """This rank's shuffled index batches for one epoch (the same permutation on every rank,
    a pure function of seed and epoch, so a resumed run sees the same batches)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_step = batch_size * rt.world
    steps = n // per_step
    return [perm[s * per_step + rt.rank * batch_size : s * per_step + (rt.rank + 1) * batch_size] for s in range(steps)]


def take(images: np.ndarray, labels: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random subset of ``limit`` examples (the loaders return images sorted by class,
    so a plain prefix would hold one class only)."""
    if limit is None:
        return images, labels
    idx = np.sort(np.random.default_rng(0).permutation(len(images))[:limit])
    return images[idx], labels[idx]


def check_resume(meta: dict, args: dict, keys: tuple[str, ...]) -> None:
    """Refuse to resume with settings that change what the saved state means."""
    saved = meta.get("extra", {}).get("args", {})
    for key in keys:
        # The saved args went through JSON (tuples came back as lists): compare in that form.
        if key in saved and saved[key] != json.loads(json.dumps(args[key])):
            raise LRFError(f"--resume with {key}={args[key]!r}, but the run was started with {saved[key]!r}; "
                           f"use the original value or start a new --out")


def append_log(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_log(path: Path, step: int) -> None:
    """Drop records past ``step`` (written after the checkpoint a run resumes from)."""
    if path.is_file():
        kept = [r for r in read_log(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def start_or_resume(out: Path, args, resume_keys: tuple[str, ...], modules: dict[str, torch.nn.Module],
                    optimizer: torch.optim.Optimizer, scheduler=None, ema=None,
                    generators: dict[str, torch.Generator] | None = None, main: bool = True,
                    device: torch.device | str = "cpu") -> tuple[int, float]:
    """With ``--resume`` and a saved state in ``out``: restore it (refusing changed settings) and
    drop log records written after it; otherwise start fresh with empty logs. Returns
    ``(step, wall seconds spent by the earlier parts of the run)``."""
    logs = (out / "train_log.jsonl", out / "val_log.jsonl")
    if args.resume and (state := read_training_state(out, device)) is not None:
        check_resume(state[1], vars(args), resume_keys)
        step = restore_training_state(*state, modules=modules, optimizer=optimizer, scheduler=scheduler, ema=ema,
                                      generators=generators)
        for path in logs:
            truncate_log(path, step)
        if main:
            print(f"resumed from step {step}")
        return step, float(state[1]["extra"].get("train_time_s", 0.0))
    if main:
        for path in logs:
            path.unlink(missing_ok=True)
    return 0, 0.0


def optimizer_step(loss: torch.Tensor, parameters, optimizer: torch.optim.Optimizer,
                   max_grad_norm: float = 1.0) -> torch.Tensor:
    """One update as the trainers make it: backward, clip the gradient norm, step. Returns the norm."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    return norm


class StopSignal:
    """SIGTERM/SIGINT (a session ending, ``kill``, Ctrl-C) ask the trainer to stop at the next
    step with a checkpoint instead of dying mid-interval and losing up to ``--checkpoint-minutes``."""

    def __init__(self) -> None:
        self.received: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        if self.received is not None:  # a second signal: stop now, without the checkpoint
            raise KeyboardInterrupt
        self.received = signum
        print(f"\nreceived {signal.Signals(signum).name}: saving a checkpoint and stopping", flush=True)


def should_stop(step: int, stop_at_step: int | None, max_minutes: float | None, started: float,
                stop_signal: StopSignal | None = None) -> bool:
    """At ``--stop-at-step``, out of time (``--max-minutes`` since ``started``) or signalled:
    end this process with a checkpoint."""
    if stop_signal is not None and stop_signal.received is not None:
        return True
    if stop_at_step is not None and step >= stop_at_step:
        return True
    return max_minutes is not None and time.time() - started > max_minutes * 60


def run_steps(*, step: int, total: int, steps_per_epoch: int, batches: Callable[[int], list[torch.Tensor]],
              train_step: Callable[[torch.Tensor], dict[str, float]], checkpoint: Callable[[int], None],
              args, main: bool, desc: str, log_path: Path, elapsed: Callable[[], float], started: float,
              log_every: int = 50, epoch_end: Callable[[int], None] | None = None) -> int:
    """The loop every trainer runs, from ``step`` to ``total``: ``train_step`` on each batch of
    ``batches(epoch)`` (the rest of a resumed epoch first), its record in the JSONL log every
    ``log_every`` steps, ``checkpoint(step)`` every ``--checkpoint-minutes``, ``epoch_end(epoch)``
    after each whole epoch short of the last, and a clean stop at ``--stop-at-step``,
    ``--max-minutes`` (since ``started``) or a signal. Returns the step reached; the final
    checkpoint is the caller's."""
    stop_signal = StopSignal()
    timer = CheckpointTimer(args.checkpoint_minutes)
    max_minutes = getattr(args, "max_minutes", None)
    bar = tqdm(total=total, initial=step, desc=desc, disable=not main)
    epoch = step // steps_per_epoch
    # e.g. --stop-at-step at or before the resumed step
    stopped = should_stop(step, args.stop_at_step, max_minutes, started, stop_signal)
    while step < total and not stopped:
        for idx in batches(epoch)[step - epoch * steps_per_epoch :]:
            record = train_step(idx)
            step += 1
            bar.update(1)
            if main and (step % log_every == 0 or step == total):
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                append_log(log_path, {"step": step, "epoch": step / steps_per_epoch, **record, "time_s": elapsed()})
            if step >= total or should_stop(step, args.stop_at_step, max_minutes, started, stop_signal):
                stopped = True
                break
            if timer.due():
                checkpoint(step)
                timer.reset()
        epoch += 1
        if epoch_end is not None and not stopped and step < total and step % steps_per_epoch == 0:
            epoch_end(epoch)
    bar.close()
    return step


class CheckpointTimer:
    """Says when the next periodic checkpoint is due (every ``minutes``, wall clock)."""

    def __init__(self, minutes: float):
        self.every = minutes * 60
        self.last = time.time()

    def due(self) -> bool:
        return time.time() - self.last >= self.every

    def reset(self) -> None:
        self.last = time.time()


# --- the training state -------------------------------------------------------------------


def save_training_state(
    folder: Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema=None,
    generators: dict[str, torch.Generator] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``folder/training_state.safetensors`` atomically: module weights, the EMA's shadow
    weights (diffusers ``EMAModel``), optimizer and scheduler state, generator states, and the
    JSON-able rest (step, ``extra``) in the file's metadata."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        tensors.update({f"{name}.{k}": v.detach().contiguous() for k, v in module.state_dict().items()})
    opt = optimizer.state_dict()
    scalars: dict[str, object] = {}
    for idx, state in opt["state"].items():
        for k, v in state.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.detach().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    # The parameters' names in the optimizer's and the EMA's index order: a state saved before a
    # refactor that reorders a model's parameters (not its names) still resumes (restore maps by name).
    names = parameter_names(modules)
    meta: dict[str, object] = {"step": step, "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars,
                                                           "names": [names[id(q)] for g in optimizer.param_groups
                                                                     for q in g["params"]]},
                               "extra": extra or {}}
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()  # LambdaLR: its lambdas are stored as None
    if ema is not None:
        ema_state = ema.state_dict()
        tensors.update({f"ema_shadow.{i}": p.detach().contiguous() for i, p in enumerate(ema_state.pop("shadow_params"))})
        meta["ema"] = ema_state
        meta["ema_names"] = list(names.values())  # both trainers' EMA follows their modules' parameters
    for name, g in (generators or {}).items():
        tensors[f"rng.{name}"] = g.get_state()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATE_FILE
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"lrf_training_state": json.dumps(meta)})
    tmp.replace(path)
    return path


def parameter_names(modules: dict[str, torch.nn.Module]) -> dict[int, str]:
    """``id(parameter) -> "module.name"`` over ``modules``' parameters, in their order."""
    return {id(q): f"{m}.{n}" for m, module in modules.items() for n, q in module.named_parameters()}


def _by_name(saved: list[str] | None, now: list[str]) -> list[int] | None:
    """For each saved index, the index of the parameter of that name now (None: no names saved)."""
    if saved is None:
        return None
    where = {n: i for i, n in enumerate(now)}
    if sorted(saved) != sorted(now):
        raise ValueError(f"parameters differ: {sorted(set(saved) ^ set(now))[:3]}")
    return [where[n] for n in saved]


def read_training_meta(folder: Path) -> dict | None:
    """The metadata of ``folder/training_state.safetensors`` without its tensors, or None when there is none."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})["lrf_training_state"])
    except Exception as e:  # safetensors raises several types on a damaged file
        raise LRFError(f"cannot read the training state {path} ({type(e).__name__}); delete it to start over") from None


def refuse_changed_resume(out: Path, args, keys: tuple[str, ...]) -> None:
    """The resume check of :func:`start_or_resume`, run before a trainer's slow preparation (the denoiser's
    latent cache takes minutes) so that a refused ``--resume`` says so at once."""
    if args.resume and (meta := read_training_meta(out)) is not None:
        check_resume(meta, vars(args), keys)


def read_training_state(folder: Path, device: torch.device | str = "cpu") -> tuple[dict[str, torch.Tensor], dict] | None:
    """``(tensors, meta)`` of ``folder/training_state.safetensors``, or None when there is none."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = json.loads((f.metadata() or {})["lrf_training_state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types on a damaged file
        raise LRFError(f"cannot read the training state {path} ({type(e).__name__}); delete it to start over") from None
    return tensors, meta


def restore_training_state(
    tensors: dict[str, torch.Tensor],
    meta: dict,
    modules: dict[str, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema=None,
    generators: dict[str, torch.Generator] | None = None,
) -> int:
    """Load what :func:`save_training_state` wrote into live objects; returns the step."""
    try:
        for name, module in modules.items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        names = parameter_names(modules)
        now = _by_name(meta["optimizer"].get("names"), [names[id(q)] for g in optimizer.param_groups for q in g["params"]])
        state: dict[int, dict] = {}
        for key, v in tensors.items():
            if key.startswith("optim."):
                _, idx, k = key.split(".", 2)
                state.setdefault(now[int(idx)] if now else int(idx), {})[k] = v
        for key, v in meta["optimizer"]["scalars"].items():
            idx, k = key.split(".", 1)
            state.setdefault(now[int(idx)] if now else int(idx), {})[k] = v
        optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
        for q, moments in optimizer.state.items():  # a state in another parameter order fails here, not mid-step
            for v in moments.values():
                if torch.is_tensor(v) and v.dim() and v.shape != q.shape:
                    raise ValueError(f"optimizer state of shape {tuple(v.shape)} for a parameter of shape {tuple(q.shape)}")
        if scheduler is not None:
            scheduler.load_state_dict(meta["scheduler"])
        if ema is not None:
            order = _by_name(meta.get("ema_names"), list(names.values()))
            shadow = [tensors[f"ema_shadow.{i}"] for i in range(len(ema.shadow_params))]
            if order:
                shadow = [s for _, s in sorted(zip(order, shadow), key=lambda pair: pair[0])]
            ema.load_state_dict({**meta["ema"], "shadow_params": shadow})
        for name, g in (generators or {}).items():
            g.set_state(tensors[f"rng.{name}"].cpu())
    except (KeyError, RuntimeError, ValueError) as e:
        first = first_line(e)
        raise LRFError(f"the training state does not match this run's settings ({first[:120]}); "
                       "resume with the arguments it was started with, or start a new --out") from None
    return int(meta["step"])

"""``lrf-eval``: what a checkpoint or an exported bundle generates, measured as a distribution.

    lrf-eval TARGET --num-per-class N --steps S [--cfg C] [--recursions R] [--seed K] --out DIR
    lrf-eval --reconstruct CHECKPOINT --out DIR      the autoencoder's ceiling
    lrf-eval --compare A B --out DIR                 A and B side by side; exit 1 if B breaks the INT8 rule

TARGET is a checkpoint folder (run in PyTorch) or a bundle folder (run through the bundle's own
host runtime: ONNX Runtime or ExecuTorch). Image ``j`` of every class uses seed ``K + j``, as
``lrf-generate`` does, so a checkpoint and its bundles are measured on the same noise.
Measures: :mod:`lrf_model.metrics` (class consistency, Fréchet distance on the classifier's
features, which is not Inception FID, and the diversity ratio).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .autoencoder import encoded
from .classifier import CIFARClassifier, default_classifier, load_classifier
from .data import images_to_tensor, load_cifar10
from .errors import LRFError, cli_errors
from .metrics import classify, distribution_report, load_reference, reference_statistics
from .plots import image_grid

# The INT8 rule: B may lose at most this much class consistency and add at most this share of FID.
MAX_CONSISTENCY_DROP = 0.02
MAX_FID_INCREASE = 0.10


def is_bundle(path: Path) -> bool:
    return (path / "manifest.json").is_file()


def generate_checkpoint(path: Path, labels: list[int], seeds: list[int], steps: int, cfg: float,
                        recursions: int | None, batch_size: int = 100) -> tuple[torch.Tensor, dict]:
    """Images (N,3,32,32) in [-1,1] from a checkpoint, and the settings that made them."""
    from .pipeline import LRFPipeline

    pipe = LRFPipeline.from_checkpoint(path)
    if pipe.denoiser.config.num_classes <= max(labels):
        raise LRFError(f"{path} has {pipe.denoiser.config.num_classes} classes; the classifier needs all of CIFAR-10's")
    R = pipe.check_recursions(recursions)
    chunks = []
    for i in tqdm(range(0, len(labels), batch_size), desc=f"generate ({steps} steps)", leave=False):
        chunks.append(pipe.generate_tensor(labels[i : i + batch_size], seeds[i : i + batch_size], steps=steps,
                                           cfg_scale=cfg, recursions=R))
    return torch.cat(chunks), {"runtime": "pytorch", "precision": "fp32", "recursions": R,
                               "class_names": list(pipe.class_names)}


def generate_bundle(path: Path, labels: list[int], seeds: list[int], steps: int, cfg: float | None,
                    recursions: int | None) -> tuple[torch.Tensor, dict]:
    """Images from a bundle, one at a time through its host runtime (the bundle's own loop)."""
    from lrf_export.run import BundleRuntime

    rt = BundleRuntime(path)
    m = rt.manifest
    if not rt.executable:
        raise LRFError(f"{path} is a {m['target']} bundle: it runs on macOS/iOS only; evaluate its ONNX or "
                       "ExecuTorch sibling here, or run lrf-eval on a Mac")
    if recursions is not None and recursions != m["sampler"]["recursions"]:
        raise LRFError(f"this bundle has R={m['sampler']['recursions']} built in, not {recursions}; "
                       "re-export it with --recursions or omit --recursions")
    images = []
    for label, seed in tqdm(list(zip(labels, seeds)), desc=f"generate ({m['target']} {m['precision']})", leave=False):
        pixels = rt.generate({"class": label, "seed": seed, "steps": steps, "cfg": cfg})
        images.append(images_to_tensor(pixels.astype(np.uint8)))
    return torch.cat(images), {"runtime": m["target"], "precision": m["precision"],
                                            "recursions": m["sampler"]["recursions"], "class_names": m["class_names"]}


def reference_for(classifier: CIFARClassifier, classifier_dir: Path, data: str | None) -> dict[str, torch.Tensor]:
    """The classifier's stored test-set statistics, or (when it has none) computed from ``--data``."""
    ref = load_reference(classifier_dir)
    if ref is None:
        print(f"note: {classifier_dir} has no reference statistics; computing them from the test images", file=sys.stderr)
        x, y = load_cifar10(data, "test")
        ref = reference_statistics(classifier, x, y)
    return ref


def check_finite(images: torch.Tensor, what: str) -> None:
    if not torch.isfinite(images).all():
        raise LRFError(f"{what} produced NaN/Inf images; the checkpoint or bundle is damaged, re-train or re-export it")


def write_outputs(out: Path, report: dict, images: torch.Tensor, per_class: int) -> None:
    """eval.json, eval.md and grid.png (one row per class, at most 10 images each)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "eval.md").write_text(markdown(report))
    K = len(report["per_class"])
    cols = min(per_class, 10)
    rows = torch.cat([images[k * per_class : k * per_class + cols] for k in range(K)])
    image_grid(rows, nrow=cols, scale=2).save(out / "grid.png")


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [f"# lrf-eval: {s['target']}", "",
             f"{s.get('mode', 'generate')}; runtime {s['runtime']} {s['precision']}; "
             + (f"{s['steps']} steps, cfg {s['cfg']}, R={s['recursions']}, seeds {s['seed']}+j; " if "steps" in s else "")
             + f"{s['num_per_class']} images per class; classifier {s['classifier']} (test accuracy "
             f"{report['reference']['classifier_test_accuracy']:.4f})", "",
             "FID here is the Fréchet distance on the CIFAR-10 classifier's 256-d penultimate features against "
             "the 10,000 test images, **not Inception FID**; it is biased upwards at small sample counts, so "
             "compare numbers at equal --num-per-class.", "",
             "| measure | value |", "|---|---|",
             f"| class consistency | {report['class_consistency']:.4f} |",
             f"| FID (classifier features) | {report['fid']:.3f} |",
             f"| diversity ratio | {report['diversity_ratio']:.3f} |"]
    if "mse" in report:
        lines += [f"| reconstruction MSE ([-1,1]) | {report['mse']:.5f} |", f"| PSNR | {report['psnr_db']:.2f} dB |",
                  f"| decoder cost per image | {report['decoder_mflop_per_image']:.1f} MFLOP |"]
    if "train_fid" in report["reference"]:
        lines.append(f"| FID of 10,000 real training images (the floor at 10,000 samples) | {report['reference']['train_fid']:.3f} |")
    lines += ["", "| class | consistency | FID | diversity ratio |", "|---|---|---|---|"]
    lines += [f"| {c['class']} | {c['class_consistency']:.3f} | {c['fid']:.2f} | {c['diversity_ratio']:.3f} |"
              for c in report["per_class"]]
    return "\n".join(lines) + "\n"


def reference_summary(ref: dict[str, torch.Tensor]) -> dict:
    out = {"classifier_test_accuracy": float(ref["accuracy"]), "num_test_images": int(ref["num_images"])}
    if "train_fid" in ref:
        out["train_fid"] = float(ref["train_fid"])
    return out


def evaluate_target(target: Path, args: argparse.Namespace, out: Path) -> dict:
    """Generate ``num_per_class`` images of every class from ``target``, measure, write ``out``."""
    if not target.exists():
        raise LRFError(f"{target} does not exist; pass a checkpoint folder or a bundle folder")
    classifier, cdir = load_classifier(args.classifier), Path(args.classifier or default_classifier())
    ref = reference_for(classifier, cdir, args.data)
    K = classifier.config.num_classes
    labels = [k for k in range(K) for _ in range(args.num_per_class)]
    seeds = [args.seed + j for _ in range(K) for j in range(args.num_per_class)]
    if is_bundle(target):
        images, info = generate_bundle(target, labels, seeds, args.steps, args.cfg, args.recursions)
        cfg = args.cfg if args.cfg is not None else json.loads((target / "manifest.json").read_text())["sampler"]["cfg"]
    elif (target / "denoiser").is_dir() or (target / "model_index.json").is_file():
        from .pipeline import load_sampling_defaults

        cfg = args.cfg if args.cfg is not None else load_sampling_defaults(target).cfg
        images, info = generate_checkpoint(target, labels, seeds, args.steps, cfg, args.recursions)
    else:
        raise LRFError(f"{target} is neither a checkpoint (denoiser/, autoencoder/) nor a bundle (manifest.json)")
    check_finite(images, str(target))
    preds, feats = classify(classifier, images, desc="classify")
    report = distribution_report(labels, preds, feats, ref, info["class_names"])
    report["settings"] = {"target": str(target), "mode": "generate", "runtime": info["runtime"],
                          "precision": info["precision"], "steps": args.steps, "cfg": cfg,
                          "recursions": info["recursions"], "seed": args.seed, "num_per_class": args.num_per_class,
                          "classifier": str(cdir)}
    report["reference"] = reference_summary(ref)
    write_outputs(out, report, images, args.num_per_class)
    return report


def evaluate_reconstruction(checkpoint: Path, args: argparse.Namespace, out: Path) -> dict:
    """The autoencoder's reconstructions of the test images (``num_per_class`` of each class), measured."""
    from .autoencoder import decoder_flops, load_autoencoder

    ae_dir = checkpoint / "autoencoder" if (checkpoint / "autoencoder").is_dir() else checkpoint
    ae = load_autoencoder(ae_dir)
    classifier, cdir = load_classifier(args.classifier), Path(args.classifier or default_classifier())
    ref = reference_for(classifier, cdir, args.data)
    x, y = load_cifar10(args.data, "test")
    idx = np.concatenate([np.flatnonzero(y == k)[: args.num_per_class] for k in range(classifier.config.num_classes)])
    x, y = x[idx], y[idx]
    recon, sq = [], 0.0
    with torch.no_grad():
        for i in tqdm(range(0, len(x), 500), desc="reconstruct", leave=False):
            xi = images_to_tensor(x[i : i + 500])
            r = ae.decode(encoded(ae, xi)).sample.clamp(-1, 1).float()
            sq += float((r - xi).pow(2).sum())
            recon.append(r)
    images = torch.cat(recon)
    check_finite(images, str(ae_dir))
    mse = sq / images.numel()
    preds, feats = classify(classifier, images, desc="classify")
    from .classes import CIFAR10_CLASSES

    report = distribution_report(y.tolist(), preds, feats, ref, list(CIFAR10_CLASSES))
    report.update(mse=mse, psnr_db=10 * math.log10(4.0 / mse), decoder_mflop_per_image=decoder_flops(ae) / 1e6)
    report["settings"] = {"target": str(ae_dir), "mode": "reconstruct test images", "runtime": "pytorch",
                          "precision": "fp32", "num_per_class": int(len(idx) // classifier.config.num_classes),
                          "classifier": str(cdir)}
    report["reference"] = reference_summary(ref)
    write_outputs(out, report, images, report["settings"]["num_per_class"])
    return report


def load_or_evaluate(path: Path, args: argparse.Namespace, out: Path) -> dict:
    """A finished evaluation (a folder with eval.json) as it is, or a target evaluated now."""
    if (path / "eval.json").is_file():
        return json.loads((path / "eval.json").read_text())
    return evaluate_target(path, args, out)


def compare(a: dict, b: dict) -> dict:
    """B minus A, overall and per class, and the INT8 rule's verdict on B."""
    d_cc = b["class_consistency"] - a["class_consistency"]
    d_fid = b["fid"] - a["fid"]
    rel_fid = d_fid / a["fid"] if a["fid"] > 0 else (0.0 if d_fid == 0 else math.inf)
    passed = d_cc >= -MAX_CONSISTENCY_DROP and rel_fid <= MAX_FID_INCREASE
    per_class = [{"class": ca["class"], "class_consistency": cb["class_consistency"] - ca["class_consistency"],
                  "fid": cb["fid"] - ca["fid"], "diversity_ratio": cb["diversity_ratio"] - ca["diversity_ratio"]}
                 for ca, cb in zip(a["per_class"], b["per_class"])]
    return {"a": {k: a[k] for k in ("class_consistency", "fid", "diversity_ratio", "settings")},
            "b": {k: b[k] for k in ("class_consistency", "fid", "diversity_ratio", "settings")},
            "difference": {"class_consistency": d_cc, "fid": d_fid, "fid_relative": rel_fid,
                           "diversity_ratio": b["diversity_ratio"] - a["diversity_ratio"], "per_class": per_class},
            "rule": {"max_class_consistency_drop": MAX_CONSISTENCY_DROP, "max_fid_increase": MAX_FID_INCREASE},
            "passed": passed}


def compare_markdown(c: dict) -> str:
    a, b, d = c["a"], c["b"], c["difference"]
    lines = ["# lrf-eval --compare", "", f"A: {a['settings']['target']} ({a['settings']['runtime']} {a['settings']['precision']})",
             f"B: {b['settings']['target']} ({b['settings']['runtime']} {b['settings']['precision']})", "",
             "| measure | A | B | B - A |", "|---|---|---|---|",
             f"| class consistency | {a['class_consistency']:.4f} | {b['class_consistency']:.4f} | {d['class_consistency']:+.4f} |",
             f"| FID (classifier features, not Inception) | {a['fid']:.3f} | {b['fid']:.3f} | {d['fid']:+.3f} ({100 * d['fid_relative']:+.1f}%) |",
             f"| diversity ratio | {a['diversity_ratio']:.3f} | {b['diversity_ratio']:.3f} | {d['diversity_ratio']:+.3f} |",
             "", f"Rule: B loses at most {100 * MAX_CONSISTENCY_DROP:.0f} points of class consistency and adds at most "
             f"{100 * MAX_FID_INCREASE:.0f}% FID: **{'pass' if c['passed'] else 'FAIL'}**."]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    from .pipeline import shipped_checkpoints

    p = argparse.ArgumentParser(prog="lrf-eval", description="Measure generated images as a distribution "
                                "(class consistency, FID on classifier features, diversity).")
    p.add_argument("target", nargs="?", help=f"checkpoint folder (or a shipped one by name: {', '.join(shipped_checkpoints())}) or bundle folder")
    p.add_argument("--reconstruct", metavar="CHECKPOINT", help="measure the autoencoder's reconstructions of test images")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two targets or eval folders, side by side")
    p.add_argument("--num-per-class", type=int, default=100)
    p.add_argument("--steps", type=int, default=None, help="Euler steps (default: the pipeline's / the bundle's)")
    p.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the pipeline's / the bundle's)")
    p.add_argument("--recursions", type=int, default=None, help="recursion passes R (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="image j of each class uses seed + j")
    p.add_argument("--classifier", default=None, help="classifier folder (default: the shipped one)")
    p.add_argument("--data", default=None, help="CIFAR-10 (for --reconstruct, or a classifier without statistics)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True, help="output folder (eval.json, eval.md, grid.png)")
    return p


def validate(args: argparse.Namespace) -> None:
    modes = sum(x is not None for x in (args.target, args.reconstruct, args.compare))
    if modes != 1:
        raise LRFError("give exactly one of TARGET, --reconstruct CHECKPOINT or --compare A B")
    if args.num_per_class < 2:
        raise LRFError(f"--num-per-class {args.num_per_class} is invalid; use at least 2 (diversity needs pairs)")
    if args.steps is not None and args.steps < 1:
        raise LRFError(f"--steps {args.steps} is invalid; use at least 1")
    if args.cfg is not None and not math.isfinite(args.cfg):
        raise LRFError(f"--cfg {args.cfg} is not a finite number")


def prepare_out(out: Path) -> bool:
    """Fail early, with one line, when the output folder cannot be written; True if we made it."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as e:
        raise LRFError(f"cannot write to --out {out} ({e.strerror}); pick a writable folder") from None
    return created


def steps_for(path: Path, steps: int | None) -> int:
    """``--steps``, else the bundle's own step count, else the checkpoint's default."""
    if steps is not None:
        return steps
    if is_bundle(path):
        return int(json.loads((path / "manifest.json").read_text())["sampler"]["steps"])
    from .pipeline import load_sampling_defaults

    return load_sampling_defaults(path).steps


@cli_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    validate(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    created = prepare_out(out)
    try:
        run(args, out)
    except BaseException:
        if created and not any(out.iterdir()):  # leave nothing behind but what finished
            out.rmdir()
        raise


def run(args: argparse.Namespace, out: Path) -> None:
    from .pipeline import resolve_checkpoint

    if args.reconstruct:
        r = evaluate_reconstruction(resolve_checkpoint(args.reconstruct), args, out)
        print(f"reconstruction: PSNR {r['psnr_db']:.2f} dB, class consistency {r['class_consistency']:.4f}, "
              f"FID {r['fid']:.3f} (classifier features) -> {out}/eval.json")
        return
    if args.target:
        target = resolve_checkpoint(args.target)
        r = evaluate_target(target, argparse.Namespace(**{**vars(args), "steps": steps_for(target, args.steps)}), out)
        print(f"class consistency {r['class_consistency']:.4f}, FID {r['fid']:.3f} (classifier features), "
              f"diversity ratio {r['diversity_ratio']:.3f} -> {out}/eval.json")
        return
    reports = []
    for name, path in zip("AB", map(resolve_checkpoint, args.compare)):
        if not path.exists():
            raise LRFError(f"--compare: {path} does not exist; pass checkpoints, bundles or eval folders")
        sub = argparse.Namespace(**{**vars(args), "steps": steps_for(path, args.steps)})
        reports.append(load_or_evaluate(path, sub, out / name))
    c = compare(*reports)
    (out / "compare.json").write_text(json.dumps(c, indent=2) + "\n")
    (out / "compare.md").write_text(compare_markdown(c))
    d = c["difference"]
    print(f"B - A: class consistency {d['class_consistency']:+.4f}, FID {d['fid']:+.3f} ({100 * d['fid_relative']:+.1f}%): "
          f"{'pass' if c['passed'] else 'FAIL'} -> {out}/compare.json")
    if not c["passed"]:
        sys.exit(1)

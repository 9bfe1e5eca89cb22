"""Distribution measures of generated images, on the shipped CIFAR-10 classifier's features.

- class consistency: the share of samples the classifier labels as the class they were asked for;
- Fréchet distance between Gaussian fits of the classifier's penultimate features (256-d) of the
  samples and of the 10,000 test images. This is **not Inception FID**: the numbers are only
  comparable with other numbers from the same classifier;
- diversity ratio: the mean pairwise feature distance within a class, divided by that of real
  test images of the class (1 = as varied as the data; a class collapsed onto one picture -> 0).

The reference statistics of real images are computed once per classifier and stored beside
its weights (``reference_test.safetensors``), so an evaluation needs no dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .classifier import CIFARClassifier
from .data import images_to_tensor
from .errors import LRFError

REFERENCE_FILE = "reference_test.safetensors"


@torch.no_grad()
def classify(classifier: CIFARClassifier, images: torch.Tensor | np.ndarray, batch_size: int = 500,
             desc: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(predicted labels (N,), penultimate features (N, D) float64)`` of images: a float tensor
    (N,3,32,32) in [-1,1] or uint8 arrays (N,32,32,3)."""
    preds, feats = [], []
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=desc is None, leave=False):
        chunk = images[i : i + batch_size]
        x = images_to_tensor(chunk) if isinstance(chunk, np.ndarray) else chunk.float()
        logits, f = classifier.predict(x.contiguous(memory_format=torch.channels_last))
        preds.append(logits.argmax(1))
        feats.append(f.double())
    return torch.cat(preds), torch.cat(feats)


def gaussian(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of (N, D) features, float64."""
    f = features.double()
    mu = f.mean(0)
    d = f - mu
    return mu, d.T @ d / max(1, len(f) - 1)


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), with tr((C1 C2)^(1/2)) computed as the sum
    of sqrt-eigenvalues of the symmetric C1^(1/2) C2 C1^(1/2) (stable, no complex sqrtm)."""
    w, v = torch.linalg.eigh(cov1.double())
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T
    middle = root1 @ cov2.double() @ root1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_sqrt)


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean L2 distance over all pairs of distinct rows (independent of the number of rows in
    expectation, so 100 samples compare fairly with 1,000 real images)."""
    n = len(features)
    if n < 2:
        raise LRFError("the diversity ratio needs at least 2 samples per class; raise --num-per-class")
    d = torch.cdist(features.double(), features.double())
    return float(d.sum() / (n * (n - 1)))


@torch.no_grad()
def reference_statistics(classifier: CIFARClassifier, images: np.ndarray, labels: np.ndarray,
                         train_images: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """What every evaluation compares with: the test images' feature Gaussian (overall and per
    class), per-class mean pairwise distance, the classifier's own accuracy, and (when
    ``train_images`` are given) the Fréchet distance of real training images: the floor."""
    preds, feats = classify(classifier, images, desc="reference features")
    y = torch.from_numpy(labels)
    K = int(y.max()) + 1
    mu, cov = gaussian(feats)
    stats = {"mu": mu, "cov": cov, "accuracy": (preds == y).double().mean().reshape(1),
             "num_images": torch.tensor([len(images)], dtype=torch.float64)}
    for k in range(K):
        fk = feats[y == k]
        stats[f"class{k}.mu"], stats[f"class{k}.cov"] = gaussian(fk)
        stats[f"class{k}.pairwise"] = torch.tensor([mean_pairwise_distance(fk)], dtype=torch.float64)
    if train_images is not None:
        _, ftrain = classify(classifier, train_images, desc="train features")
        stats["train_fid"] = torch.tensor([frechet_distance(*gaussian(ftrain), mu, cov)], dtype=torch.float64)
    return stats


def save_reference(stats: dict[str, torch.Tensor], folder: Path) -> None:
    save_file({k: v.contiguous() for k, v in stats.items()}, str(Path(folder) / REFERENCE_FILE))


def load_reference(folder: Path) -> dict[str, torch.Tensor] | None:
    path = Path(folder) / REFERENCE_FILE
    return load_file(str(path)) if path.is_file() else None


def distribution_report(labels: Iterable[int], preds: torch.Tensor, feats: torch.Tensor,
                        reference: dict[str, torch.Tensor], class_names: list[str]) -> dict:
    """The numbers ``eval.json`` holds for generated (or reconstructed) images of requested
    ``labels``: class consistency, Fréchet distance, diversity ratio, overall and per class."""
    y = torch.as_tensor(list(labels))
    if len(y) != len(preds):
        raise LRFError(f"{len(y)} labels for {len(preds)} images")
    mu, cov = gaussian(feats)
    per_class, ratios = [], []
    for k in sorted(set(y.tolist())):
        sel = y == k
        fk = feats[sel]
        ratio = mean_pairwise_distance(fk) / float(reference[f"class{k}.pairwise"])
        ratios.append(ratio)
        per_class.append({
            "class": class_names[k], "index": k, "num": int(sel.sum()),
            "class_consistency": float((preds[sel] == k).double().mean()),
            "fid": frechet_distance(*gaussian(fk), reference[f"class{k}.mu"], reference[f"class{k}.cov"]),
            "diversity_ratio": ratio,
        })
    return {
        "class_consistency": float((preds == y).double().mean()),
        "fid": frechet_distance(mu, cov, reference["mu"], reference["cov"]),
        "diversity_ratio": float(np.mean(ratios)),
        "per_class": per_class,
    }

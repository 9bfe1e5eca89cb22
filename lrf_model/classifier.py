"""The measuring instrument: a small CIFAR-10 classifier (airbench-style ResNet-free ConvNet).

``lrf-eval`` labels generated images with it (class consistency) and compares the statistics
of its penultimate features (a Fréchet distance: *not* Inception FID). It is trained once by
``lrf-train-classifier`` and never appears in a loss of the generator or the autoencoder.

The network follows Keller Jordan's airbench94 (94% in ~10 epochs): a fixed 2x2 patch-whitening
stem, three conv groups (conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU), a global max
pool and a linear head. Inputs are images in [-1, 1] (the autoencoder's convention); the
per-channel CIFAR-10 normalisation lives inside the model so callers never repeat it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .errors import LRFError, first_line

# Per-channel mean/std of the CIFAR-10 training set on the [0, 1] scale.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class ConvGroup(nn.Module):
    """conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU (halves the resolution)."""

    def __init__(self, cin: int, cout: int, bn_momentum: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(cout, momentum=bn_momentum, eps=1e-12)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(cout, momentum=bn_momentum, eps=1e-12)
        for norm in (self.norm1, self.norm2):  # airbench: BN scale frozen at 1, only the bias learns
            norm.weight.requires_grad_(False)
        for conv in (self.conv1, self.conv2):  # partial identity init speeds up early training
            w = conv.weight.data
            torch.nn.init.dirac_(w[: min(w.shape[0], w.shape[1])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class CIFARClassifier(ModelMixin, ConfigMixin):
    """``forward(x (B,3,32,32) in [-1,1]) -> logits (B, num_classes)``; ``features`` is the
    penultimate (B, width3) vector the Fréchet distance is computed on."""

    @register_to_config
    def __init__(self, widths: tuple[int, int, int] = (64, 256, 256), num_classes: int = 10,
                 whiten_width: int = 24, bn_momentum: float = 0.6, logit_scale: float = 1 / 9):
        super().__init__()
        if whiten_width % 2 or whiten_width > 24:
            raise LRFError(f"whiten_width={whiten_width} is invalid; use an even number up to 24 (2 x 12 patch dims)")
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).reshape(1, 3, 1, 1))
        self.whiten = nn.Conv2d(3, whiten_width, 2, padding=0, bias=True)  # 32 -> 31
        self.groups = nn.ModuleList([ConvGroup(whiten_width, widths[0], bn_momentum),
                                     ConvGroup(widths[0], widths[1], bn_momentum),
                                     ConvGroup(widths[1], widths[2], bn_momentum)])
        self.head = nn.Linear(widths[2], num_classes, bias=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> CIFAR-10-normalised input."""
        return ((x + 1) * 0.5 - self.mean) / self.std

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the stem to whiten 2x2 patches of ``images`` ((N,3,32,32) in [-1,1]): the
        eigenvectors of the patch covariance scaled by 1/sqrt(eigenvalue), and their negatives."""
        x = self.normalize(images.float())
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3, 2, 2).double()  # (M, 3, 2, 2)
        flat = patches.reshape(len(patches), -1)
        cov = flat.T @ flat / len(flat)  # (12, 12)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)  # largest first
        filters = (eigenvectors / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, 3, 2, 2)
        half = self.whiten.out_channels // 2
        self.whiten.weight.copy_(torch.cat([filters[:half], -filters[:half]]).float())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, (B, widths[2])."""
        h = F.gelu(self.whiten(self.normalize(x)))  # (B, 24, 31, 31)
        for group in self.groups:
            h = group(h)  # (B, 64, 15, 15) -> (B, 256, 7, 7) -> (B, 256, 3, 3)
        return F.adaptive_max_pool2d(h, 1).flatten(1)  # (B, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * self.config.logit_scale

    @torch.no_grad()
    def predict(self, x: torch.Tensor, tta: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, features)`` for images in [-1, 1]; ``tta`` averages over the mirror image
        (features are always of the image as given, so the Fréchet distance sees no flip)."""
        feats = self.features(x)
        logits = self.head(feats)
        if tta:
            logits = 0.5 * (logits + self.head(self.features(x.flip(3))))
        return logits * self.config.logit_scale, feats


def default_classifier() -> Path:
    """The classifier shipped inside the package."""
    return Path(__file__).resolve().parent / "weights" / "classifier"


def load_classifier(path: str | Path | None = None) -> CIFARClassifier:
    """Load a classifier folder (default: the shipped one) with one-line errors."""
    path = Path(path) if path is not None else default_classifier()
    if not (path / "config.json").is_file():
        raise LRFError(f"no classifier at {path}: config.json is missing; train one with lrf-train-classifier "
                       "or pass --classifier DIR")
    try:
        json.loads((path / "config.json").read_text())
        model = CIFARClassifier.from_pretrained(str(path), low_cpu_mem_usage=False)
    except LRFError:
        raise
    except Exception as e:  # diffusers/safetensors/json raise many types; keep the gist
        msg = first_line(e)
        raise LRFError(f"cannot load the classifier from {path}: {msg[:160]}; re-train it with lrf-train-classifier") from None
    return model.eval().requires_grad_(False)

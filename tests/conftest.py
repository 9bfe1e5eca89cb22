from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from lrf_export.exporter import BundleResult, ExportOptions, export_bundles
from lrf_model.autoencoder import build_autoencoder
from lrf_model.classes import CIFAR10_CLASSES
from lrf_model.families import LRF
from lrf_model.pipeline import LRFPipeline

SHARED = Path(__file__).resolve().parents[2] / "shared"
TEST_STD = 0.05  # the random weights of exported test models (see export_checkpoint)


def randomize(module: torch.nn.Module, std: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Give zero-initialised (adaLN-Zero) weights random values so outputs depend on everything."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_denoiser() -> torch.nn.Module:
    torch.manual_seed(0)
    return randomize(LRF.build(**LRF.tiny_config, class_names=list(CIFAR10_CLASSES))).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_denoiser) -> Path:
    """A complete, tiny pipeline folder on disk (random weights)."""
    torch.manual_seed(0)
    pipe = LRFPipeline(tiny_denoiser, build_autoencoder(4, 4, 8).eval())
    root = tmp_path / "ckpt"
    pipe.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def export_checkpoint(tmp_path_factory) -> Path:
    """A tiny checkpoint whose linears and convs are above coremltools' 2048-weight quantization threshold.

    Weights of std 0.05 (:data:`TEST_STD`): at 0.1 the random LRF model amplifies any rounding about
    tenfold (its 2-step INT8 trajectory was 4.8e-2 of the reference against 2.9e-3 at 0.05; the
    trained models sit at 3.5e-2 after 4 steps), so the gate would judge the random model's chaos."""
    torch.manual_seed(0)
    den = randomize(LRF.build(**{**LRF.tiny_config, "hidden_dim": 48}, class_names=list(CIFAR10_CLASSES)), std=TEST_STD)
    root = tmp_path_factory.mktemp("export") / "tiny"
    LRFPipeline(den, build_autoencoder(4, 4, 16)).save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def tiny_bundle(export_checkpoint, tmp_path_factory) -> Callable[..., BundleResult]:
    """``tiny_bundle(target, quantize)``: a 2-step bundle of :func:`export_checkpoint`, exported once
    per session (ExecuTorch lowering takes tens of seconds). Tests that modify one copy it first."""
    cache: dict[tuple[str, str], BundleResult] = {}

    def get(target: str, quantize: str = "none") -> BundleResult:
        if (target, quantize) not in cache:
            out = tmp_path_factory.mktemp("bundles") / f"{target}-{quantize}"
            (result,) = export_bundles(ExportOptions(target=target, steps=2, quantize=quantize,
                                                     checkpoint=str(export_checkpoint), out=str(out)))
            cache[target, quantize] = result
        return cache[target, quantize]

    return get

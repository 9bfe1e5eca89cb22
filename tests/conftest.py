from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lrf_model.autoencoder import build_autoencoder
from lrf_model.model import LRFDenoiser
from lrf_model.pipeline import LRFPipeline

SHARED = Path(__file__).resolve().parents[2] / "shared"


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
def tiny_denoiser() -> LRFDenoiser:
    torch.manual_seed(0)
    return randomize(LRFDenoiser(hidden_dim=32, num_heads=2, num_blocks=2, time_freq_dim=16)).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_denoiser) -> Path:
    """A complete, tiny pipeline folder on disk (random weights)."""
    torch.manual_seed(0)
    pipe = LRFPipeline(tiny_denoiser, build_autoencoder(4, 4, 8).eval())
    root = tmp_path / "ckpt"
    pipe.save_pretrained(root)
    return root

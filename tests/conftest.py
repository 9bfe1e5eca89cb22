"""Shared fixtures. The suite runs in two pytest-xdist workers (README's test command, ``--dist
loadfile``): a file's tests stay in one worker, where its session fixtures (bundles exported once)
serve them all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest
import torch

from lrf_export.exporter import BundleResult, ExportOptions, export_bundles
from lrf_model.autoencoder import build_autoencoder
from lrf_model.classes import CIFAR10_CLASSES
from lrf_model.families import FAMILIES, LRF
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
    """The machine's cores shared among the test workers (2 cores, 2 workers: one thread each;
    two each oversubscribed the cores and made the run slower)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // workers))


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


def tiny_family_denoiser(name: str) -> torch.nn.Module:
    """A tiny random denoiser of family ``name`` whose layers clear Core ML's 2048-weight threshold.

    LRF v2, LuminaRS, IRIS and MicroForge start as the identity (zero-initialised output layers: adaLN-Zero, and
    each ConvNeXt MLP's, attention's and refinement pass's last layer), so their weights are randomised, at std 0.05
    (:data:`TEST_STD`): at 0.1 the random model amplifies any rounding about tenfold (its 2-step
    INT8 trajectory was 4.8e-2 of the reference against 2.9e-3 at 0.05; the trained models sit at
    3.5e-2 after 4 steps), so the gate would judge the random model's chaos."""
    family = FAMILIES[name]
    config = {**family.tiny_config, "class_names": list(CIFAR10_CLASSES)}
    if name == "lrf":
        config["hidden_dim"] = 48
    torch.manual_seed(0)
    model = family.build(**config)
    return (randomize(model, std=TEST_STD) if name in ("lrf", "luminars", "iris", "microforge") else model).eval()


@pytest.fixture(scope="session")
def family_checkpoint_of(tmp_path_factory) -> Callable[[str], Path]:
    """``family_checkpoint_of(name)``: a tiny pipeline folder of family ``name``, saved once per session."""
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            root = tmp_path_factory.mktemp(f"family-{name}") / "ckpt"
            den = tiny_family_denoiser(name)
            torch.manual_seed(0)
            LRFPipeline(den, build_autoencoder(4, 4, 16)).save_pretrained(root)
            cache[name] = root
        return cache[name]

    return get


@pytest.fixture(scope="session")
def family_bundle(family_checkpoint_of, tmp_path_factory) -> Callable[..., BundleResult]:
    """``family_bundle(name, target, quantize)``: a 2-step bundle of family ``name``'s tiny
    checkpoint, exported once per session (ExecuTorch lowering takes tens of seconds) and shared by
    every test that needs it. Tests that modify one copy it first."""
    cache: dict[tuple[str, str, str], BundleResult] = {}

    def get(name: str, target: str, quantize: str = "none") -> BundleResult:
        if (name, target, quantize) not in cache:
            out = tmp_path_factory.mktemp("bundles") / f"{name}-{target}-{quantize}"
            (result,) = export_bundles(ExportOptions(target=target, steps=2, quantize=quantize,
                                                     checkpoint=str(family_checkpoint_of(name)), out=str(out)))
            cache[name, target, quantize] = result
        return cache[name, target, quantize]

    return get


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_checkpoint(request, family_checkpoint_of) -> tuple[str, Path]:
    """``(name, checkpoint)`` of each registered family in turn (the tests that run every family)."""
    return request.param, family_checkpoint_of(request.param)


def assert_family_gate(family_bundle: Callable[..., BundleResult], name: str, target: str, quantize: str) -> None:
    """Family ``name``'s tiny bundle for ``target`` passes its gate, its manifest names the family,
    and an int8 one holds the share of int8 weights the family declares in every graph."""
    import json

    r = family_bundle(name, target, quantize)
    assert r.ok, r.parity
    manifest = json.loads((r.path / "manifest.json").read_text())
    assert manifest["model"]["family"]["name"] == name and manifest["class_names"] == list(CIFAR10_CLASSES)
    if quantize == "int8":
        need = manifest["model"]["family"]["int8_min_share"]
        shares = r.parity["int8_share"]
        assert set(shares) == {"step", "decoder", "encoder"} and min(shares.values()) >= need, shares


@pytest.fixture(scope="session")
def export_checkpoint(family_checkpoint_of) -> Path:
    """The LRF v2 family's tiny checkpoint: what most export and runtime tests use."""
    return family_checkpoint_of("lrf")


@pytest.fixture(scope="session")
def tiny_bundle(family_bundle) -> Callable[..., BundleResult]:
    """``tiny_bundle(target, quantize)``: :func:`family_bundle` of the LRF v2 family."""
    return lambda target, quantize="none": family_bundle("lrf", target, quantize)

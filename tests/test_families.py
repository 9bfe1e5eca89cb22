"""The model-family seam: every registered family trains, saves, loads, exports to every target
with a passing gate and runs in lrf-native, through code that names no denoiser class.

The second family (``unet2d``, diffusers' UNet2DModel) is the proof: it was added as one file
and one registry line, and the exporter, graphs, passes, test vectors and runtimes are the
ones LRF v2 uses.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from lrf_export import run as run_cli
from lrf_export.exporter import ExportOptions, export_bundles
from lrf_model import families
from lrf_model.autoencoder import build_autoencoder
from lrf_model.classes import CIFAR10_CLASSES
from lrf_model.errors import LRFError
from lrf_model.families import FAMILIES, family_of, load_denoiser
from lrf_model.pipeline import LRFPipeline
from lrf_model.training import main_train

from .conftest import TEST_STD, assert_family_gate, randomize, tiny_family_denoiser
from .test_eval import write_cifar_tree
from .test_native import lrf_native, native  # noqa: F401  (lrf_native is a fixture)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_round_trip_and_calling_convention(tmp_path, name):
    model = tiny_family_denoiser(name)
    assert family_of(model) is FAMILIES[name]
    model.save_pretrained(tmp_path / "d")
    back = load_denoiser(tmp_path / "d")  # dispatched on the saved _class_name
    assert type(back) is type(model) and families.class_names(back) == CIFAR10_CLASSES
    z, t, y = torch.randn(2, *families.latent_shape(model)), torch.tensor([0.3, 0.9]), torch.tensor([3, 10])  # 10: null
    family = FAMILIES[name]

    def velocity(m, labels, **state):
        """The velocity alone; a family that carries state returns it beside, of its declared shapes."""
        out = m(z, t, labels, **state)
        if family.state is None:
            return out
        v, carried = out
        assert {k: tuple(x.shape[1:]) for k, x in carried.items()} == family.state_shapes(m)
        return v

    with torch.no_grad():
        v = velocity(model, y)
        assert v.shape == z.shape and torch.isfinite(v).all()
        # Equal to rounding: a loaded model's weights do not require grad, and matmul folds a 3-D input
        # into one mm only then (MicroForge's small linears round differently, at 1e-7).
        torch.testing.assert_close(velocity(back, y), v, rtol=1e-6, atol=1e-6)
        assert not torch.allclose(velocity(model, torch.tensor([4, 10])), v)  # the class is an input
        if family.state is not None:  # the carried state is an input too
            _, carried = model(z, t, y)
            assert not torch.allclose(velocity(model, y, state=carried), v)


def test_unknown_class_name_in_a_config_is_one_line(tmp_path):
    tiny_family_denoiser("lrf").save_pretrained(tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    (tmp_path / "d" / "config.json").write_text(json.dumps({**config, "_class_name": "NoSuchNet"}))
    with pytest.raises(LRFError, match="not a registered model family"):
        load_denoiser(tmp_path / "d")


def test_unet2d_trains_and_generates(tmp_path):
    tree = write_cifar_tree(tmp_path / "data", n_per_class=4)
    from lrf_model.training import main_train_ae

    main_train_ae(["--data", str(tree), "--out", str(tmp_path / "ae"), "--epochs", "1", "--batch-size", "8",
                   "--channels", "8", "--latent-channels", "4"])
    out = tmp_path / "unet"
    main_train(["--data", str(tree), "--autoencoder", str(tmp_path / "ae"), "--out", str(out), "--family", "unet2d",
                "--block-out-channels", "32,32", "--batch-size", "8", "--epochs", "1", "--sample-steps", "1",
                "--eval-per-class", "0"])
    config = json.loads((out / "denoiser" / "config.json").read_text())
    assert config["_class_name"] == "UNet2DDenoiser" and config["class_names"] == list(CIFAR10_CLASSES)
    (out / "autoencoder").symlink_to(tmp_path / "ae")
    pipe = LRFPipeline.from_checkpoint(out)
    assert pipe.family.name == "unet2d" and pipe.generate_tensor([3], [0], steps=2).shape == (1, 3, 32, 32)
    with pytest.raises(LRFError, match="supports 1-1"):
        pipe.check_recursions(2)


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_every_family_exports_to_executorch_with_a_passing_gate(family_checkpoint, family_bundle, quantize):
    """ONNX and Core ML: tests/test_family_targets.py (a file per test worker, the bundles split between them)."""
    assert_family_gate(family_bundle, family_checkpoint[0], "executorch", quantize)


def test_an_int8_label_on_float_weights_fails_the_gate(tmp_path, monkeypatch):
    """A family whose INT8 selection matches nothing (a renamed layer, a wrong type) must not pass."""
    ckpt = tmp_path / "ckpt"
    LRFPipeline(tiny_family_denoiser("lrf"), build_autoencoder(4, 4, 16)).save_pretrained(ckpt)
    nothing = dataclasses.replace(FAMILIES["lrf"], int8_module_types=(torch.nn.Embedding,))
    monkeypatch.setitem(families._BY_CLASS, "LRFDenoiser", nothing)
    (r,) = export_bundles(ExportOptions(target="executorch", steps=2, quantize="int8", checkpoint=str(ckpt),
                                        out=str(tmp_path / "b")))
    assert not r.ok and r.parity["worst_step_rel"] < 1e-3  # numerically perfect, because nothing was quantized
    assert any(p.startswith("step: 0.0% of its weights are int8") for p in r.parity["problems"]), r.parity["problems"]


def test_lrf_native_runs_every_family(lrf_native, family_checkpoint, family_bundle, tmp_path):  # noqa: F811
    name, _ = family_checkpoint
    r = family_bundle(name, "executorch")
    result = native(lrf_native, r.path, "--selftest", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["passed"]
    result = native(lrf_native, r.path, "--class", "cat", "--seed", "4", "--out", tmp_path / "native.png")
    assert result.returncode == 0, result.stderr
    run_cli.main([str(r.path), "--class", "cat", "--seed", "4", "--out", str(tmp_path / "run.png")])
    a, b = (np.asarray(Image.open(tmp_path / f), dtype=np.int64) for f in ("native.png", "run.png"))
    assert np.abs(a - b).max() <= 1 and len(np.unique(a)) > 10, name  # same image, not a constant one


def test_every_family_exports_fp16_to_executorch(lrf_native, family_checkpoint, family_bundle):  # noqa: F811
    """fp16 (weights and arithmetic, fp32 at the bundle's boundary) passes its gate, runs in
    lrf-native, and stays nearly as whole in XNNPACK as fp32: at most the casts after the float32
    timestep sinusoids cut it (the edge decomposition's float32 SiLU once made 39 partitions)."""
    name, _ = family_checkpoint
    fp16, fp32 = family_bundle(name, "executorch", "fp16"), family_bundle(name, "executorch")
    assert fp16.ok and fp16.precision == "fp16", fp16.parity
    parts = {r.precision: [a["xnnpack_partitions"] for a in r.artifacts] for r in (fp16, fp32)}
    assert all(h <= f + 2 for h, f in zip(parts["fp16"], parts["fp32"])), parts
    result = native(lrf_native, fp16.path, "--selftest", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["precision"] == "fp16", result.stdout + result.stderr


def test_a_model_with_few_classes_passes_every_self_test(lrf_native, tmp_path):  # noqa: F811
    """Test vectors use classes the model has (they were fixed at 3 and 7: a 5-class model passed
    the Python gate and then aborted lrf-native --selftest)."""
    torch.manual_seed(0)
    names = ["circle", "square", "star", "moon", "wave"]
    den = randomize(FAMILIES["lrf"].build(**FAMILIES["lrf"].tiny_config, num_classes=5, class_names=names), std=TEST_STD)
    LRFPipeline(den.eval(), build_autoencoder(4, 4, 16)).save_pretrained(tmp_path / "ckpt")
    (r,) = export_bundles(ExportOptions(target="executorch", steps=2, checkpoint=str(tmp_path / "ckpt"),
                                        out=str(tmp_path / "b")))
    assert r.ok and json.loads((r.path / "manifest.json").read_text())["class_names"] == names
    result = native(lrf_native, r.path, "--selftest", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["passed"], result.stdout + result.stderr


def test_unet2d_keeps_attention_and_the_latent_convs_float():
    """INT8 takes the ResNet convs and linears; attention projections (whose error guidance amplifies)
    and the latent-wide first/last convs stay float, whatever the configuration names them."""
    den = families.UNET2D.build(**families.UNET2D.tiny_config, latent_channels=4, latent_size=8, num_classes=10,
                                class_names=list(CIFAR10_CLASSES))
    chosen = families.UNET2D.int8_modules(den)
    assert chosen and not any(".attentions." in name for name in chosen)
    assert "unet.conv_in" not in chosen and "unet.conv_out" not in chosen
    assert any(name.endswith("resnets.0.conv1") for name in chosen)
    assert any(name.endswith("to_q") for name, m in den.named_modules() if isinstance(m, torch.nn.Linear))

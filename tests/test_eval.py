"""lrf-eval end to end on tiny models: the measures, a checkpoint and its bundle, --compare,
--reconstruct, and one-line errors for bad input."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lrf_model.classes import CIFAR10_CLASSES
from lrf_model.classifier import CIFARClassifier
from lrf_model.data import images_to_tensor, load_cifar10
from lrf_model.evaluate import compare, main
from lrf_model.metrics import (frechet_distance, gaussian, mean_pairwise_distance, reference_statistics,
                               save_reference)


def write_cifar_tree(root, n_per_class=4, seed=0):
    """Every CIFAR-10 class, ``n_per_class`` random images each, in both splits."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for c in CIFAR10_CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n_per_class):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def data_tree(tmp_path_factory):
    return write_cifar_tree(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, data_tree):
    """A small random classifier with reference statistics of the tiny test split."""
    torch.manual_seed(0)
    x, y = load_cifar10(data_tree, "test")
    clf = CIFARClassifier(widths=(8, 16, 16))
    clf.init_whitening(images_to_tensor(x))
    clf.eval()
    root = tmp_path_factory.mktemp("clf") / "classifier"
    clf.save_pretrained(root)
    save_reference(reference_statistics(clf, x, y), root)
    return root


def run_error(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_frechet_distance_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=g, dtype=torch.float64)
    assert frechet_distance(*gaussian(a), *gaussian(a)) == pytest.approx(0.0, abs=1e-9)
    # N(0, I) vs N(m, s^2 I) in d dims: |m|^2 + d (1 - s)^2.
    mu2, cov2 = torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64), 4.0 * torch.eye(3, dtype=torch.float64)
    assert frechet_distance(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64), mu2, cov2) == \
        pytest.approx(5.0 + 3 * (1 - 2) ** 2)
    # The mean pairwise distance does not depend on the sample count, and collapses to 0.
    assert mean_pairwise_distance(a[:200]) == pytest.approx(mean_pairwise_distance(a), rel=0.05)
    assert mean_pairwise_distance(a[:1].repeat(5, 1)) == 0.0


def test_eval_checkpoint_and_compare_with_itself(tmp_path, tiny_checkpoint, classifier_dir):
    common = ["--classifier", str(classifier_dir), "--num-per-class", "3", "--steps", "2", "--cfg", "2"]
    main([str(tiny_checkpoint), *common, "--out", str(tmp_path / "e")])
    r = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert 0.0 <= r["class_consistency"] <= 1.0 and r["fid"] >= 0 and r["diversity_ratio"] > 0
    assert [c["class"] for c in r["per_class"]] == list(CIFAR10_CLASSES)
    assert r["settings"]["steps"] == 2 and r["settings"]["cfg"] == 2.0 and r["settings"]["num_per_class"] == 3
    assert Image.open(tmp_path / "e" / "grid.png").size == (2 * (3 * 33 + 1), 2 * (10 * 33 + 1))
    assert "not Inception FID" in (tmp_path / "e" / "eval.md").read_text()
    # --compare of a model with itself: zero difference, exit 0; an eval folder counts as a target.
    main(["--compare", str(tiny_checkpoint), str(tmp_path / "e"), *common, "--out", str(tmp_path / "c")])
    c = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert c["passed"] and c["difference"]["class_consistency"] == 0 and c["difference"]["fid"] == 0
    assert all(d["fid"] == 0 for d in c["difference"]["per_class"])


def test_compare_rule():
    def report(cc, fid):
        return {"class_consistency": cc, "fid": fid, "diversity_ratio": 1.0, "settings": {}, "per_class": []}

    assert compare(report(0.80, 10.0), report(0.79, 10.9))["passed"]
    assert not compare(report(0.80, 10.0), report(0.77, 10.0))["passed"]  # -3 points
    assert not compare(report(0.80, 10.0), report(0.80, 11.5))["passed"]  # +15% FID


def test_bundle_matches_its_checkpoint(tmp_path, tiny_bundle, export_checkpoint, classifier_dir):
    bundle = tiny_bundle("onnx").path
    common = ["--classifier", str(classifier_dir), "--num-per-class", "2"]
    main(["--compare", str(export_checkpoint), str(bundle), *common, "--steps", "2", "--out", str(tmp_path / "c")])
    c = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert c["b"]["settings"]["runtime"] == "onnx" and c["a"]["settings"]["runtime"] == "pytorch"
    assert c["passed"] and abs(c["difference"]["class_consistency"]) <= 0.05
    assert abs(c["difference"]["fid_relative"]) < 0.01  # fp32 bundle: the same images to ~1e-6


def test_reconstruct(tmp_path, tiny_checkpoint, classifier_dir, data_tree):
    main(["--reconstruct", str(tiny_checkpoint), "--classifier", str(classifier_dir), "--data", str(data_tree),
          "--num-per-class", "4", "--out", str(tmp_path / "r")])
    r = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert r["mse"] > 0 and r["psnr_db"] == pytest.approx(10 * np.log10(4 / r["mse"]))
    assert len(r["per_class"]) == 10 and r["settings"]["num_per_class"] == 4


def test_bad_inputs(tmp_path, tiny_checkpoint, tiny_bundle, classifier_dir, capsys):
    clf = ["--classifier", str(classifier_dir)]
    out = tmp_path / "never"
    assert "does not exist" in run_error([str(tmp_path / "missing"), *clf, "--out", str(out)], capsys)
    assert "--num-per-class 0" in run_error([str(tiny_checkpoint), *clf, "--num-per-class", "0", "--out", str(out)], capsys)
    assert "exactly one" in run_error(["--out", str(out)], capsys)
    assert "no classifier" in run_error([str(tiny_checkpoint), "--classifier", str(tmp_path), "--out", str(out)], capsys)
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle("onnx").path, bundle)
    data = bytearray((bundle / "decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "decoder.onnx").write_bytes(bytes(data))
    assert "sha256" in run_error([str(bundle), *clf, "--num-per-class", "2", "--out", str(out)], capsys)
    assert not out.exists()  # nothing half-written
    (tmp_path / "file").write_text("x")
    assert "cannot write" in run_error([str(tiny_checkpoint), *clf, "--out", str(tmp_path / "file" / "sub")], capsys)


def test_coreml_bundle_says_it_needs_macos(tmp_path, tiny_bundle, classifier_dir, capsys):
    err = run_error([str(tiny_bundle("coreml").path), "--classifier", str(classifier_dir), "--num-per-class", "2",
                     "--out", str(tmp_path / "e")], capsys)
    assert "runs on macOS/iOS only" in err and not (tmp_path / "e").exists()

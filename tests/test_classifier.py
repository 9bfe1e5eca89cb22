"""The measuring instrument: the shipped classifier on exact CIFAR-10 pixels, and its loading."""

import json

import numpy as np
import pytest
import torch

from lrf_model.classifier import default_classifier, load_classifier
from lrf_model.data import load_cifar10
from lrf_model.errors import LRFError
from lrf_model.metrics import classify, load_reference

from .conftest import SHARED

LOSSLESS = SHARED / "data" / "cifar10" / "lossless_subset"


def test_shipped_classifier_recognises_lossless_test_images():
    x, y = load_cifar10(LOSSLESS, "test")
    assert x.shape == (1000, 32, 32, 3) and y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    preds, feats = classify(load_classifier(), x)
    accuracy = float((preds.numpy() == y).mean())
    assert accuracy >= 0.85, accuracy
    assert feats.shape == (1000, 256) and torch.isfinite(feats).all()
    # The reference statistics it ships with are of the full 10,000-image test split.
    ref = load_reference(default_classifier())
    assert int(ref["num_images"]) == 10_000 and ref["cov"].shape == (256, 256)
    metrics = json.loads((default_classifier() / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.90 and float(ref["accuracy"]) == pytest.approx(metrics["test_accuracy"])


def test_lossless_training_subset_order():
    x, y = load_cifar10(LOSSLESS, "train")
    assert x.shape == (4000, 32, 32, 3) and y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert x.dtype == np.uint8


def test_bad_classifier_folders(tmp_path):
    with pytest.raises(LRFError, match="no classifier"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LRFError, match="cannot load the classifier"):
        load_classifier(tmp_path)

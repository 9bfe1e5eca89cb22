import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from lrf_model.data import CIFAR10_CLASSES, load_cifar10
from lrf_model.errors import LRFError


def write_tree(root, n_per_class=2):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("cat", "airplane"):
            (root / split / c).mkdir(parents=True)
            for i in range(n_per_class):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i:04d}.png")


def test_image_tree_and_tar(tmp_path):
    write_tree(tmp_path / "tree")
    x, y = load_cifar10(tmp_path / "tree", "train")
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.uint8
    assert y.tolist() == [0, 0, 3, 3]  # airplane=0 before cat=3
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "tree", arcname="cifar")
    xt, yt = load_cifar10(tmp_path / "d.tar.gz", "train")
    assert np.array_equal(xt, x) and np.array_equal(yt, y)  # PNG is lossless


def test_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": [1, 2, 9]}, f)
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (15, 32, 32, 3) and y[:3].tolist() == [1, 2, 9]
    x_test, _ = load_cifar10(tmp_path, "test")
    raw = pickle.load(open(tmp_path / "test_batch", "rb"))[b"data"]
    assert np.array_equal(x_test[0, :, :, 0].ravel(), raw[0, :1024])  # channel-major -> HWC


def test_bad_sources(tmp_path):
    with pytest.raises(LRFError, match="not found"):
        load_cifar10(tmp_path / "nope")
    (tmp_path / "bad.tar.gz").write_bytes(b"garbage")
    with pytest.raises(LRFError, match="cannot read archive"):
        load_cifar10(tmp_path / "bad.tar.gz")
    with pytest.raises(LRFError, match="split"):
        load_cifar10(tmp_path, "val")
    assert CIFAR10_CLASSES[3] == "cat"

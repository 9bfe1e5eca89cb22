"""The training entry points end to end on tiny image trees: outputs, checkpoints, and resume
that continues exactly (an interrupted and resumed run equals an uninterrupted one, tensor for tensor)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from lrf_model.classifier import load_classifier
from lrf_model.errors import LRFError
from lrf_model.metrics import load_reference
from lrf_model.pipeline import LRFPipeline
from lrf_model.train_classifier import main as main_train_classifier
from lrf_model.trainer import check_resume, cpu_has_native_bf16, read_training_state, setup_runtime
from lrf_model.training import main_train, main_train_ae

from .test_eval import write_cifar_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_cifar_tree(tmp_path_factory.mktemp("data"), n_per_class=4)  # 40 train, 40 test images


def assert_same_state(a, b):
    ta, ma = read_training_state(a)
    tb, mb = read_training_state(b)
    assert ma["step"] == mb["step"] and ta.keys() == tb.keys()
    different = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not different, different[:5]


def test_autoencoder_then_denoiser(tmp_path, tree):
    ae_dir = tmp_path / "ae"
    main_train_ae(["--data", str(tree), "--out", str(ae_dir), "--epochs", "1", "--batch-size", "8",
                   "--channels", "8", "--decoder-channels", "4", "--latent-channels", "8"])
    metrics = json.loads((ae_dir / "metrics.json").read_text())
    assert 0 < metrics["mse"] < 2 and (ae_dir / "reconstruction.png").is_file() and (ae_dir / "loss.png").is_file()
    assert json.loads((ae_dir / "config.json").read_text())["decoder_block_out_channels"] == [4, 4, 4]
    out = tmp_path / "lrf"
    main_train(["--data", str(tree), "--autoencoder", str(ae_dir), "--out", str(out), "--batch-size", "8",
                "--hidden-dim", "32", "--num-heads", "2", "--sample-steps", "1", "--epochs", "1", "--eval-per-class", "0"])
    assert read_training_state(out)[1]["step"] == 5  # 40 images / batch 8
    assert (out / "samples.png").is_file() and (out / "denoiser" / "config.json").is_file()
    assert len(list((out / "cache").glob("*.latents.npy"))) == 3  # cached once per autoencoder
    tensors = load_file(out / "training_state.safetensors")
    assert any(k.startswith("optim.") for k in tensors) and any(k.startswith("ema_shadow.") for k in tensors)
    (out / "autoencoder").symlink_to(ae_dir)
    pipe = LRFPipeline.from_checkpoint(out)
    assert pipe.generate_tensor([0], [0], steps=1).shape == (1, 3, 32, 32)


def test_autoencoder_resume_is_exact(tmp_path, tree):
    common = ["--data", str(tree), "--epochs", "2", "--batch-size", "8", "--channels", "8", "--latent-channels", "4"]
    main_train_ae(common + ["--out", str(tmp_path / "whole")])
    main_train_ae(common + ["--out", str(tmp_path / "cut"), "--stop-at-step", "3"])
    assert read_training_state(tmp_path / "cut")[1]["step"] == 3
    main_train_ae(common + ["--out", str(tmp_path / "cut"), "--resume"])
    assert_same_state(tmp_path / "whole", tmp_path / "cut")
    assert (tmp_path / "cut" / "metrics.json").read_text().count("mse") == 1


def test_denoiser_resume_is_exact_and_measures_quality(tmp_path, tree, capsys):
    ae_dir = tmp_path / "ae"
    main_train_ae(["--data", str(tree), "--out", str(ae_dir), "--epochs", "1", "--batch-size", "8", "--channels", "8"])
    clf = tmp_path / "clf"
    main_train_classifier(["--data", str(tree), "--out", str(clf), "--epochs", "1", "--batch-size", "8",
                           "--widths", "8,16,16"])
    common = ["--data", str(tree), "--autoencoder", str(ae_dir), "--batch-size", "8", "--hidden-dim", "32",
              "--num-heads", "2", "--sample-steps", "1", "--epochs", "2", "--eval-classifier", str(clf),
              "--eval-per-class", "2", "--eval-steps", "1"]
    main_train(common + ["--out", str(tmp_path / "whole")])
    main_train(common + ["--out", str(tmp_path / "cut"), "--stop-at-step", "4"])
    main_train(common + ["--out", str(tmp_path / "cut"), "--resume"])
    assert_same_state(tmp_path / "whole", tmp_path / "cut")
    val = [json.loads(line) for line in (tmp_path / "cut" / "val_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in val] == [4, 10]
    assert all(0 <= r["eval_class_consistency"] <= 1 and r["eval_fid"] >= 0 for r in val)
    capsys.readouterr()
    shutil.rmtree(tmp_path / "cut" / "cache")
    with pytest.raises(SystemExit):  # a resume with other settings is refused, in one line
        main_train([*common, "--out", str(tmp_path / "cut"), "--resume", "--hidden-dim", "48"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --resume with hidden_dim=48, but the run was started with 32")
    assert not (tmp_path / "cut" / "cache").exists()  # refused before the (slow) latent cache is built


def test_resume_compares_tuple_flags_as_saved():
    """Saved args come back from JSON with lists for tuples: (64, 128) is the same setting as [64, 128]."""
    meta = {"extra": {"args": {"block_out_channels": [64, 128], "attention_levels": [False, True]}}}
    keys = ("block_out_channels", "attention_levels")
    check_resume(meta, {"block_out_channels": (64, 128), "attention_levels": (False, True)}, keys)
    with pytest.raises(LRFError, match=r"block_out_channels=\(96, 192\), but the run was started with \[64, 128\]"):
        check_resume(meta, {"block_out_channels": (96, 192), "attention_levels": (False, True)}, keys)


def test_classifier_resume_is_exact(tmp_path, tree):
    common = ["--data", str(tree), "--epochs", "2", "--batch-size", "8", "--widths", "8,16,16"]
    main_train_classifier(common + ["--out", str(tmp_path / "whole")])
    metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["test_images"] == 40
    assert load_reference(tmp_path / "whole")["mu"].shape == (16,)
    assert load_classifier(tmp_path / "whole").config.widths == [8, 16, 16]
    main_train_classifier(common + ["--out", str(tmp_path / "cut"), "--stop-at-step", "7"])
    assert read_training_state(tmp_path / "cut")[1]["step"] == 7
    main_train_classifier(common + ["--out", str(tmp_path / "cut"), "--resume"])
    assert_same_state(tmp_path / "whole", tmp_path / "cut")


def test_precision_detection():
    rt = setup_runtime(precision="auto")
    assert rt.bf16 == (torch.cuda.is_available() or cpu_has_native_bf16())
    assert not setup_runtime(precision="fp32").bf16
    if not cpu_has_native_bf16() and not torch.cuda.is_available():
        with pytest.raises(LRFError, match="native bf16"):
            setup_runtime(precision="bf16")
    with pytest.raises(LRFError, match="unknown"):
        setup_runtime(precision="fp8")


def test_sigterm_stops_with_a_checkpoint(tmp_path, tree):
    """A session ending sends SIGTERM: the trainer saves its state at the next step and exits 0."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "ae"
    proc = subprocess.Popen([sys.executable, "-c", "from lrf_model.training import main_train_ae; main_train_ae()",
                             "--data", str(tree), "--out", str(out), "--epochs", "10000", "--batch-size", "8",
                             "--channels", "8", "--latent-channels", "4", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (out / "train_log.jsonl").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "received SIGTERM" in output and "continue with --resume" in output
    assert read_training_state(out)[1]["step"] >= 50  # the log's first line is written at step 50

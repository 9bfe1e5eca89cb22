"""The training entry points end to end on a tiny image tree: outputs, checkpoints, resume."""

import json

from safetensors.torch import load_file

from lrf_model.pipeline import LRFPipeline
from lrf_model.training import main_train, main_train_ae

from .test_data import write_tree


def test_train_autoencoder_then_denoiser_then_resume(tmp_path):
    write_tree(tmp_path / "data", n_per_class=16)
    ae_dir = tmp_path / "ae"
    main_train_ae(["--data", str(tmp_path / "data"), "--out", str(ae_dir), "--epochs", "1", "--batch-size", "8",
                   "--channels", "8"])
    metrics = json.loads((ae_dir / "metrics.json").read_text())
    assert 0 < metrics["mse"] < 2 and (ae_dir / "reconstruction.png").is_file() and (ae_dir / "loss.png").is_file()
    common = ["--data", str(tmp_path / "data"), "--autoencoder", str(ae_dir), "--out", str(tmp_path / "lrf"),
              "--batch-size", "8", "--hidden-dim", "32", "--num-heads", "2", "--eval-every", "1", "--sample-steps", "1"]
    main_train(common + ["--epochs", "1"])
    state = json.loads((tmp_path / "lrf" / "training_state.json").read_text())
    assert state["step"] == 4  # 32 images / batch 8
    assert (tmp_path / "lrf" / "samples.png").is_file() and (tmp_path / "lrf" / "denoiser" / "config.json").is_file()
    assert len(list((tmp_path / "lrf" / "cache").glob("*.latents.npy"))) == 3  # cached once per autoencoder
    main_train(common + ["--epochs", "2", "--resume"])
    assert json.loads((tmp_path / "lrf" / "training_state.json").read_text())["step"] == 8
    tensors = load_file(tmp_path / "lrf" / "training_state.safetensors")
    assert any(k.startswith("optim.") for k in tensors) and any(k.startswith("ema.") for k in tensors)
    # The result is a loadable pipeline once the autoencoder sits beside it.
    (tmp_path / "lrf" / "autoencoder").symlink_to(ae_dir)
    pipe = LRFPipeline.from_checkpoint(tmp_path / "lrf")
    assert pipe.generate_tensor([0], [0], steps=1).shape == (1, 3, 32, 32)

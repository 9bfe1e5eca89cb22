"""lrf-distill end to end on a tiny teacher: the cached pairs are the teacher's own samples, the
student is a loadable checkpoint that samples at its own defaults, resume is exact, and bad
settings get one line."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lrf_model.distill import PAIR_SEED_BASE, chunk_path, main as distill_main
from lrf_model.errors import LRFError
from lrf_model.generate import main as generate_main
from lrf_model.pipeline import LRFPipeline, SamplingDefaults

TINY = ["--pairs", "32", "--pair-chunk", "16", "--teacher-steps", "2", "--teacher-cfg", "2.5", "--batch-size", "8",
        "--epochs", "2", "--eval-per-class", "0", "--threads", "1", "--precision", "fp32"]


def test_pairs_student_defaults_and_exact_resume(tmp_path, export_checkpoint, capsys):
    teacher = LRFPipeline.from_checkpoint(export_checkpoint)
    distill_main(["--teacher", str(export_checkpoint), "--out", str(tmp_path / "full"), *TINY])
    # The pairs are the teacher's own guided samples of their seeds.
    pairs = load_file(str(chunk_path(tmp_path / "full", 1)))
    ids = list(range(16, 32))
    expected = teacher.generate_latents([i % 10 for i in ids], [PAIR_SEED_BASE + i for i in ids], steps=2, cfg_scale=2.5)
    torch.testing.assert_close(pairs["latent"], expected)
    assert pairs["label"].tolist() == [i % 10 for i in ids]

    student = LRFPipeline.from_checkpoint(tmp_path / "full")
    assert student.sampling == SamplingDefaults(steps=2, cfg=1.0)
    assert not all(torch.equal(a, b) for a, b in zip(student.denoiser.state_dict().values(),
                                                      teacher.denoiser.state_dict().values()))  # it trained
    capsys.readouterr()
    generate_main(["--checkpoint", str(tmp_path / "full"), "--class", "cat", "--num", "1", "--out", str(tmp_path / "gen")])
    assert "(2 steps, cfg 1, " in capsys.readouterr().out  # the checkpoint's own defaults

    # Interrupted at step 3 and resumed: the same student, tensor for tensor.
    distill_main(["--teacher", str(export_checkpoint), "--out", str(tmp_path / "cut"), *TINY, "--stop-at-step", "3"])
    distill_main(["--teacher", str(export_checkpoint), "--out", str(tmp_path / "cut"), *TINY, "--resume"])
    full, cut = (load_file(str(tmp_path / run / "training_state.safetensors")) for run in ("full", "cut"))
    assert full.keys() == cut.keys()
    for key in full:
        assert torch.equal(full[key], cut[key]), key
    log = [json.loads(line) for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 8


@pytest.mark.parametrize("args,message", [
    (["--t-sampling", "cosine"], "--t-sampling cosine is unknown"),
    (["--pairs", "0"], "--pairs 0 is invalid"),
    (["--pairs", "4"], "--pairs 4 is fewer than one batch of 8"),
])
def test_bad_settings_are_one_line(tmp_path, export_checkpoint, args, message):
    with pytest.raises(LRFError, match=message):
        distill_main.__wrapped__(["--teacher", str(export_checkpoint), "--out", str(tmp_path / "x"), *TINY, *args])


def test_a_changed_resume_is_refused(tmp_path, export_checkpoint):
    distill_main(["--teacher", str(export_checkpoint), "--out", str(tmp_path / "r"), *TINY, "--stop-at-step", "1"])
    with pytest.raises(LRFError, match="--resume with t_sampling='few-step'"):
        distill_main.__wrapped__(["--teacher", str(export_checkpoint), "--out", str(tmp_path / "r"), *TINY,
                                  "--t-sampling", "few-step", "--resume"])

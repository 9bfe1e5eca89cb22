"""What a user sees on stderr: our lines and real problems, not our dependencies' known noise."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest

from lrf_model.logs import silence_known_warnings

NOISE = ("Failed to load", "torchao", "block_out_channels", "accelerate", "is an Enum subclass", "cpuinfo_utils")


def test_known_messages_are_dropped_and_others_kept(caplog):
    silence_known_warnings()
    silence_known_warnings()  # idempotent: one filter per logger
    assert sum(type(f).__name__ == "_DropKnown" for f in logging.getLogger("torchao").filters) == 1
    with caplog.at_level(logging.WARNING):
        logging.getLogger("torchao").warning("Failed to load /x/_C_mxfp8.so: no CUDA")
        logging.getLogger("torchao").warning("a real torchao problem")
        logging.getLogger("diffusers.configuration_utils").warning(
            "The config attributes {'block_out_channels': [32]} were passed to AutoencoderTiny, but are not expected")
        logging.getLogger("diffusers.configuration_utils").warning("The config attributes {'foo': 1} were passed")
    assert [r.getMessage() for r in caplog.records] == ["a real torchao problem", "The config attributes {'foo': 1} were passed"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        silence_known_warnings()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]


def test_lrf_generate_prints_no_dependency_noise(tmp_path):
    # What the lrf-generate console script runs.
    r = subprocess.run([sys.executable, "-c", "from lrf_model.generate import main; main()", "--class", "cat", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "wrote 1 image(s)" in r.stdout
    noisy = [line for line in r.stderr.splitlines() if any(n in line for n in NOISE)]
    assert not noisy, noisy


def test_executorch_runner_drops_startup_log_and_keeps_errors(tiny_bundle, tmp_path):
    pytest.importorskip("executorch")
    step = tiny_bundle("executorch").path / "step.pte"
    truncated = tmp_path / "truncated.pte"
    truncated.write_bytes(step.read_bytes()[: step.stat().st_size // 2])
    script = (
        "import sys\n"
        "from lrf_export.targets.executorch import ExecuTorchTarget\n"
        "ExecuTorchTarget().runner(sys.argv[1], [], [], threads=1)\n"
        "print('loaded', flush=True)\n"
        "try:\n"
        "    ExecuTorchTarget().runner(sys.argv[2], [], [], threads=1)\n"
        "except RuntimeError as e:\n"
        "    print('refused', flush=True)\n")
    r = subprocess.run([sys.executable, "-c", script, str(step), str(truncated)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["loaded", "refused"]
    assert "cpuinfo_utils" not in r.stderr and "threadpool.cpp" not in r.stderr, r.stderr
    assert "[program.cpp" in r.stderr and "file size" in r.stderr.lower(), r.stderr  # the real reason still shows

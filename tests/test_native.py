"""lrf-native, the C++ runtime: built with CMake here, checked against the Python runtimes.

The same seed must give the same image as ``lrf-run`` and ``lrf-generate``; ``--selftest``
must pass on fresh fp32 and int8 bundles and fail on a corrupted test vector; bad input must
give one line and a non-zero exit.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lrf_export import run as run_cli
from lrf_export.bundle import MANIFEST, load_manifest, load_tensor, save_tensor, sha256_file
from lrf_export.checks import metric
from lrf_model.generate import main as generate_main

NATIVE = Path(__file__).resolve().parents[1] / "runtimes" / "native"


@pytest.fixture(scope="session")
def lrf_native() -> Path:
    """Configure and build runtimes/native into its (git-ignored) build folder, once."""
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"no {' and '.join(missing)} on this machine: cannot build the native runtime")
    import executorch

    build = NATIVE / "build"
    build.mkdir(exist_ok=True)
    with open(build / ".build-lock", "w") as lock:  # test workers build it one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["cmake", "-S", str(NATIVE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        f"-DEXECUTORCH_ROOT={executorch.__path__[0]}", f"-DPython3_EXECUTABLE={sys.executable}"],
                       check=True, capture_output=True, text=True)
        subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True, text=True)
    return build / "lrf-native"


def native(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=300)


def rehash(bundle: Path) -> None:
    """Update the manifest's digests after editing a file on purpose, so the numbers, not the hash check, are tested."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"] = {rel: sha256_file(bundle / rel) for rel in manifest["files"]}
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_selftest_passes_on_fresh_bundles(lrf_native, tiny_bundle, quantize):
    bundle = tiny_bundle("executorch", quantize).path
    result = native(lrf_native, bundle, "--selftest", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    names = [c["name"] for c in report["selftest"]]
    assert report["passed"] and all(c["passed"] for c in report["selftest"])
    assert names == [c["name"] for c in load_manifest(bundle)["checks"]]  # the bundle's own list, all of it
    assert {"noise", "step0", "trajectory", "image", "decoder", "encoder"} <= set(names)
    noise = next(c for c in report["selftest"] if c["name"] == "noise")
    assert noise["value"] <= 1e-6  # the C++ PRNG reproduces the Python noise
    assert report["precision"] == ("int8" if quantize == "int8" else "fp32")


def test_selftest_fails_on_a_corrupted_test_vector(lrf_native, tiny_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle("executorch").path, bundle)
    spec = load_manifest(bundle)["tensors"]["trajectory.states"]
    states = load_tensor(bundle, spec)
    states[-1] += 0.5
    save_tensor(bundle, "trajectory.states", states)
    tampered = native(lrf_native, bundle, "--selftest")  # first the hash check catches it
    assert tampered.returncode == 2 and "trajectory.states.bin does not match its sha256" in tampered.stderr
    rehash(bundle)
    result = native(lrf_native, bundle, "--selftest")
    assert result.returncode == 1, result.stdout
    failed = [line.split()[0] for line in result.stdout.splitlines()[1:-1] if line.endswith("FAIL")]
    assert failed == ["trajectory"], result.stdout
    assert result.stdout.rstrip().endswith("self-test: FAIL")
    (bundle / spec["file"]).write_bytes(b"\0" * 7)  # a tensor of the wrong size: one line, not a misread
    rehash(bundle)
    short = native(lrf_native, bundle, "--selftest")
    assert short.returncode == 2 and "trajectory.states.bin holds 7 bytes" in short.stderr, short.stderr


def test_same_seed_same_image_as_lrf_run_and_lrf_generate(lrf_native, tiny_bundle, export_checkpoint, tmp_path, capsys):
    bundle = tiny_bundle("executorch").path
    result = native(lrf_native, bundle, "--class", "cat", "--seed", "4", "--steps", "4", "--out", tmp_path / "native.png")
    assert result.returncode == 0, result.stderr
    assert "per-step ms [" in result.stdout and result.stdout.count(" ", result.stdout.index("[")) >= 3
    run_cli.main([str(bundle), "--class", "cat", "--seed", "4", "--steps", "4", "--out", str(tmp_path / "run.png")])
    generate_main(["--checkpoint", str(export_checkpoint), "--class", "cat", "--seed", "4", "--steps", "4",
                   "--cfg", str(load_manifest(bundle)["sampler"]["cfg"]), "--out", str(tmp_path / "gen")])
    images = {name: np.asarray(Image.open(path), dtype=np.int64) for name, path in
              (("native", tmp_path / "native.png"), ("run", tmp_path / "run.png"), ("generate", tmp_path / "gen" / "cat_seed4.png"))}
    gate = load_manifest(bundle)["tolerance"]["image_psnr_db"]
    assert images["native"].shape == (32, 32, 3)
    assert np.abs(images["native"] - images["run"]).max() <= 1  # the same runtime's kernels, from C++ and Python
    assert metric("psnr", images["native"], images["generate"]) >= gate
    assert len(np.unique(images["native"])) > 10  # a real image, not a constant


def test_edits_match_lrf_run_and_lrf_generate(lrf_native, tiny_bundle, export_checkpoint, tmp_path, capsys):
    """Image-to-image and inpainting from PNG files (stb_image in C++, PIL in Python), as a user
    runs them: lrf-native and lrf-run reproduce lrf-generate's edit within the bundle's gate."""
    bundle = tiny_bundle("executorch").path
    manifest = load_manifest(bundle)
    Image.fromarray(load_tensor(bundle, manifest["tensors"]["edit.image"])[0]).save(tmp_path / "in.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[4:20, 8:28] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    gate = manifest["tolerance"]["image_psnr_db"]
    for name, extra in (("img2img", ["--strength", "0.5"]), ("inpaint", ["--mask", str(tmp_path / "mask.png")])):
        args = ["--class", "ship", "--seed", "3", "--steps", "4", "--init-image", str(tmp_path / "in.png"), *extra]
        result = native(lrf_native, bundle, *args, "--out", tmp_path / f"{name}-native.png")
        assert result.returncode == 0, result.stderr
        run_cli.main([str(bundle), *args, "--out", str(tmp_path / f"{name}-run.png")])
        generate_main(["--checkpoint", str(export_checkpoint), *args, "--cfg", str(manifest["sampler"]["cfg"]),
                       "--out", str(tmp_path / f"{name}-gen")])
        reference = np.asarray(Image.open(tmp_path / f"{name}-gen" / "ship_seed3.png"), dtype=np.int64)
        for runtime in ("native", "run"):
            got = np.asarray(Image.open(tmp_path / f"{name}-{runtime}.png"), dtype=np.int64)
            assert metric("psnr", got, reference) >= gate, (name, runtime)
        if name == "inpaint":  # outside the mask and its one-pixel (3x3) blending band: the input's own pixels
            padded = np.pad(mask > 0, 1)
            inner = ~np.any([padded[dy:dy + 32, dx:dx + 32] for dy in range(3) for dx in range(3)], axis=0)
            got = np.asarray(Image.open(tmp_path / "inpaint-native.png"), dtype=np.int64)
            assert np.array_equal(got[inner], np.asarray(Image.open(tmp_path / "in.png"), dtype=np.int64)[inner])
    Image.fromarray(mask[:16]).save(tmp_path / "short-mask.png")
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        (("--init-image", tmp_path / "in.png", "--mask", tmp_path / "short-mask.png"), "the mask is 32x16 but the image is 32x32"),
        (("--init-image", tmp_path / "notes.txt"), "is not a readable image"),
        (("--init-image", tmp_path / "in.png", "--strength", "1.5"), "strength 1.5"),
        (("--mask", tmp_path / "mask.png"), "--mask needs an input image"),
        (("--strength", "0.5"), "a mask or a strength needs an input image"),
    ]
    for args, message in cases:
        result = native(lrf_native, bundle, *args, "--out", tmp_path / "bad.png")
        err = result.stderr.strip()
        assert result.returncode == 2 and message in err and len(err.splitlines()) == 1, (args, err)
    assert not (tmp_path / "bad.png").exists()


def test_json_report_has_latency_and_memory_per_stage(lrf_native, tiny_bundle, tmp_path):
    result = native(lrf_native, tiny_bundle("executorch", "int8").path, "--json", "--repeat", "3", "--warmup", "1",
                    "--threads", "1", "--out", tmp_path / "x.png")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["threads"] == 1 and report["repeat"] == 3
    assert len(report["steps_ms"]) == 3 and all(len(run) == 2 for run in report["steps_ms"])
    stages = report["memory"]
    assert set(stages) == {"after_load", "after_denoise", "after_decode"}
    peaks = [stages[s]["peak_rss_kib"] for s in ("after_load", "after_denoise", "after_decode")]
    assert 0 < peaks[0] <= peaks[1] <= peaks[2]  # VmHWM only grows
    assert report["weights_bytes"] == sum((tiny_bundle("executorch", "int8").path / f).stat().st_size
                                          for f in ("step.pte", "decoder.pte", "encoder.pte"))
    assert (tmp_path / "x.png").is_file()


def test_bad_input_is_one_line_and_nonzero(lrf_native, tiny_bundle, tmp_path):
    good = tiny_bundle("executorch").path
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    manifest = json.loads((broken / MANIFEST).read_text())
    manifest["artifacts"]["step"]["inputs"][0]["shape"] = [1, 4, 16, 16]
    (broken / MANIFEST).write_text(json.dumps(manifest))  # the manifest is not hashed: only the signature check sees it
    truncated = tmp_path / "truncated"
    shutil.copytree(good, truncated)
    (truncated / "step.pte").write_bytes((truncated / "step.pte").read_bytes()[:1000])
    cases = [
        ((tmp_path / "nothing",), "manifest.json is missing"),
        ((good, "--class", "unicorn"), "unknown class 'unicorn'"),
        ((good, "--steps", "3"), "offers steps 1, 2, 4, 8, 16, not 3"),
        ((good, "--seed", "-1"), "--seed -1 is invalid"),
        ((good, "--out", tmp_path / "no" / "dir" / "x.png"), "cannot write"),
        ((broken,), "has shape [1, 4, 8, 8] but the manifest declares [1, 4, 16, 16]"),
        ((truncated,), "step.pte does not match its sha256"),
        ((truncated, "--no-verify"), "loading step.pte failed"),
        ((tiny_bundle("onnx").path,), "lrf-native runs ExecuTorch bundles, this one is for onnx"),
    ]
    for args, message in cases:
        result = native(lrf_native, *args)
        err = result.stderr.strip()
        assert result.returncode == 2, (args, result.stdout, err)
        assert message in err and len(err.splitlines()) == 1 and err.startswith("error: "), (args, err)
    assert not (tmp_path / "no").exists()


def test_out_of_memory_is_one_line_not_a_crash(lrf_native, tiny_bundle, tmp_path):
    """Lower an address-space cap until the run fails: the first failure must be the runtime's own
    out-of-memory line (exit 3), not a crash; the libraries still load below that point."""
    import resource

    bundle = tiny_bundle("executorch").path
    normal = json.loads(native(lrf_native, bundle, "--json", "--out", tmp_path / "a.png").stdout)
    peak_vm = normal["memory"]["after_decode"]["peak_vm_kib"] * 1024
    for fraction in np.arange(0.95, 0.2, -0.05):
        cap = int(fraction * peak_vm)
        result = subprocess.run([str(lrf_native), str(bundle), "--out", str(tmp_path / "b.png")], capture_output=True,
                                text=True, timeout=120, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)))
        if result.returncode != 0:
            break
        (tmp_path / "b.png").unlink()
    err = result.stderr.strip()
    assert result.returncode == 3, (fraction, result.returncode, err)
    assert err.startswith("error: out of memory") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "b.png").exists()

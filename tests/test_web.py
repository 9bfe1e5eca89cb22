"""The web runtime (runtimes/web) end to end, in Debian's Chromium driven by playwright-core.

Exports the shipped model to an ONNX bundle, serves it with runtimes/web/serve.py (COOP/COEP),
and runs runtimes/web/tests/e2e.mjs: the page's image for the trajectory class/seed against the
bundle's reference, another class/seed against lrf-run's PNG, the bundle's image-to-image and
inpainting edits made from the page's edit panel (the edit image and mask uploaded as PNG files)
against their references, a painted and cleared mask, the in-browser Self-test (must pass), a tampered test vector with its sha256 updated (the Self-test must fail on the numbers)
and a tampered file with the manifest left alone (the page must refuse the bundle). The float
images the page produced are checked again here with export/parity.py's own PSNR.

Skips (with the reason) only when node, /usr/bin/chromium or runtimes/web's node_modules are
missing; node_modules is installed with ``npm ci`` from the committed package-lock.json first.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "runtimes" / "web"
CHROMIUM = Path("/usr/bin/chromium")
NODE_PACKAGES = ("onnxruntime-web", "playwright-core")
OTHER_CLASS, OTHER_SEED = "ship", 7


def _node() -> str:
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed (the web runtime's tests run in Node and Chromium)")
    return node


def _node_modules() -> None:
    """runtimes/web/node_modules from package-lock.json (``npm ci`` when absent), or skip saying why."""
    missing = [p for p in NODE_PACKAGES if not (WEB / "node_modules" / p / "package.json").is_file()]
    if not missing:
        return
    npm = shutil.which("npm")
    if not npm:
        pytest.skip(f"runtimes/web/node_modules lacks {', '.join(missing)} and npm is not installed to run `npm ci`")
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"runtimes/web/node_modules is missing and `npm ci` failed: {(r.stderr or r.stdout).strip()[-500:]}")


def _chromium() -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


def test_js_noise_matches_python_bit_for_bit():
    """noise.js against lrf_model/noise.py: seeds around the edges, an odd element count (half a pair)."""
    from lrf_model.noise import noise_array

    node = _node()
    cases = [(0, [4, 8, 8]), (1, [4, 8, 8]), (123456789, [3, 5, 7]), (-1, [17]), (2**32 + 5, [9]), (2**31, [4, 8, 8])]
    script = ("import { noiseArray } from './src/noise.js';"
              f"const cases = {json.dumps(cases)};"
              "console.log(JSON.stringify(cases.map(([s, shape]) => Array.from(noiseArray(s, shape)))));")
    r = subprocess.run([node, "--input-type=module", "-e", script], cwd=WEB, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for (seed, shape), got in zip(cases, json.loads(r.stdout)):
        ref = noise_array(seed, shape).ravel()
        np.testing.assert_array_equal(np.array(got, dtype=np.float32), ref, err_msg=f"seed {seed}, shape {shape}")


def test_js_tensor_reader_matches_the_exporter(tmp_path):
    """tensor.js on what lrf_export.bundle.save_tensor writes: float32/int32/uint8 values exactly;
    a file of the wrong size and an unknown dtype refused with one line."""
    from lrf_export.bundle import save_tensor

    node = _node()
    rng = np.random.default_rng(0)
    arrays = {"f32": rng.standard_normal((2, 3, 5)).astype(np.float32), "i32": np.array([[3], [-7]], np.int32),
              "u8": np.arange(250, 256, dtype=np.uint8).reshape(1, 2, 3)}
    specs = {name: save_tensor(tmp_path, name, a) for name, a in arrays.items()}
    specs["short"] = {**specs["f32"], "shape": [2, 3, 6]}
    specs["f64"] = {**specs["f32"], "dtype": "float64"}
    script = ("import { parseTensor } from './src/tensor.js'; import { readFileSync } from 'node:fs';"
              f"const dir = {json.dumps(str(tmp_path))}; const specs = {json.dumps(specs)}; const out = {{}};"
              "for (const [n, spec] of Object.entries(specs)) {"
              "  try { const a = parseTensor(readFileSync(`${dir}/${spec.file}`), spec);"
              "        out[n] = { dtype: a.dtype, shape: a.shape, data: Array.from(a.data) }; }"
              "  catch (e) { out[n] = { error: e.message }; } }"
              "console.log(JSON.stringify(out));")
    r = subprocess.run([node, "--input-type=module", "-e", script], cwd=WEB, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for name, a in arrays.items():
        assert got[name]["dtype"] == str(a.dtype) and got[name]["shape"] == list(a.shape), (name, got[name])
        np.testing.assert_array_equal(np.array(got[name]["data"]).astype(a.dtype), a.ravel(), err_msg=name)
    assert "holds 120 bytes" in got["short"]["error"] and "needs 144" in got["short"]["error"]
    assert "float64" in got["f64"]["error"] and "\n" not in got["f64"]["error"]


def _rehash(manifest_path: Path, root: Path, rel: str) -> None:
    m = json.loads(manifest_path.read_text())
    m["files"][rel] = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(m, indent=2) + "\n")


@pytest.mark.slow
def test_web_page_end_to_end(tmp_path):
    node = _node()
    _chromium()
    _node_modules()
    from lrf_export.bundle import load_tensor, save_tensor
    from lrf_export.checks import metric
    from lrf_export.exporter import ExportOptions, export_bundles
    from lrf_export.run import main as lrf_run

    (result,) = export_bundles(ExportOptions(target="onnx", steps=4, out=str(tmp_path / "bundle")))
    assert result.ok, result.parity
    bundle = result.path
    manifest = json.loads((bundle / "manifest.json").read_text())
    other_png = tmp_path / f"{OTHER_CLASS}{OTHER_SEED}.png"
    lrf_run([str(bundle), "--class", OTHER_CLASS, "--seed", str(OTHER_SEED), "--out", str(other_png)])

    # A tampered tensor whose sha256 is updated: only the numbers can catch it.
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    states = load_tensor(tampered, manifest["tensors"]["trajectory.states"])
    states[-1] += 0.5
    rel = save_tensor(tampered, "trajectory.states", states)["file"]
    _rehash(tampered / "manifest.json", tampered, rel)
    # A changed file, manifest untouched: the page must refuse the bundle.
    unhashed = tmp_path / "unhashed"
    shutil.copytree(bundle, unhashed)
    with open(unhashed / "step.onnx", "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))

    # The edits' input and mask as the files a user would upload.
    edit_png, mask_png = tmp_path / "edit.png", tmp_path / "mask.png"
    Image.fromarray(load_tensor(bundle, manifest["tensors"]["edit.image"])[0]).save(edit_png)
    Image.fromarray((load_tensor(bundle, manifest["tensors"]["edit.mask"])[0, 0] * 255).astype(np.uint8)).save(mask_png)

    server = subprocess.Popen([sys.executable, str(WEB / "serve.py"), "--bundle", str(bundle), "--port", "0",
                               "--mount", f"/tampered/={tampered}", "--mount", f"/unhashed/={unhashed}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("serving http://127.0.0.1:"), (line, server.stderr.read() if server.poll() is not None else "")
        url = line.split(" ", 1)[1]
        report_path, shot = tmp_path / "e2e.json", tmp_path / "screenshot.png"
        r = subprocess.run([node, "tests/e2e.mjs", "--url", url, "--out", str(report_path), "--screenshot", str(shot),
                            "--threads", "2", "--other-png", str(other_png), "--other-class", OTHER_CLASS,
                            "--other-seed", str(OTHER_SEED), "--corrupt-bundle", "./tampered/",
                            "--unhashed-bundle", "./unhashed/", "--edit-image", str(edit_png), "--edit-mask", str(mask_png)],
                           cwd=WEB, capture_output=True, text=True, timeout=300)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert r.returncode == 0, f"e2e.mjs failed:\n{r.stdout}\n{r.stderr}"
    report = json.loads(report_path.read_text())
    assert report["passed"] and not report["failures"], report["failures"]
    assert report["browser"]["crossOriginIsolated"] is True

    image_check = next(c for c in manifest["checks"] if c["kind"] == "plan" and c["compare"] == "output")
    cls, seed = image_check["inputs"]["class"], image_check["inputs"]["seed"]
    assert (report["reference"]["class"], report["reference"]["seed"]) == (manifest["class_names"][cls], seed)
    shape = manifest["image"]["shape"]
    page_ref = np.array(report["reference"]["pixels"], dtype=np.uint8).reshape(shape)
    assert metric("psnr", page_ref, load_tensor(bundle, manifest["tensors"][image_check["expected"]])) >= image_check["limit"]
    # The decoder gives the pixels: float differences of ~1e-7 may at most flip a value at a .5 boundary.
    page_other = np.array(report["lrf_run"]["pixels"], dtype=int).reshape(shape[1:])
    diff = np.abs(page_other - np.asarray(Image.open(other_png).convert("RGB"), dtype=int))
    assert diff.max() <= 1, diff.max()

    edits = {e["check"]: e for e in report["edits"]}
    assert set(edits) == {"img2img_img", "inpaint_img"} and edits["inpaint_img"]["inpaint"], edits
    for name, e in edits.items():
        ref = load_tensor(bundle, manifest["tensors"][next(c for c in manifest["checks"] if c["name"] == name)["expected"]])
        assert metric("psnr", np.array(e["pixels"], dtype=np.uint8).reshape(shape), ref) >= e["gate_db"], name
    assert report["painting"]["painted"] > 0 and report["painting"]["cleared"] == 0

    st = report["selftest"]
    assert st["passed"] and [c["name"] for c in st["checks"]] == [c["name"] for c in manifest["checks"]]
    assert next(c for c in st["checks"] if c["name"] == "noise")["value"] == 0
    failed = report["corrupt_selftest"]["failed"]
    assert not report["corrupt_selftest"]["passed"] and failed == ["trajectory"], failed
    assert "sha256" in report["unhashed_bundle"]["error"] and "step.onnx" in report["unhashed_bundle"]["error"]
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.width >= 800

"""The model-family seam, ONNX and Core ML: every registered family exports to both with a passing
gate, and the browser page runs each family's ONNX bundle. Apart from tests/test_families.py
(ExecuTorch, lrf-native) so that the two test workers (``--dist loadfile``) share the exports."""

from __future__ import annotations

import json

import pytest

from .conftest import assert_family_gate


@pytest.mark.parametrize("target", ["onnx", "coreml"])
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_every_family_exports_with_a_passing_gate(family_checkpoint, family_bundle, target, quantize):
    assert_family_gate(family_bundle, family_checkpoint[0], target, quantize)


@pytest.mark.slow
def test_web_runtime_runs_every_family(family_checkpoint, family_bundle, tmp_path):
    """The browser page (Chromium) loads each family's ONNX bundle, generates and passes its self-test."""
    import subprocess
    import sys

    from .test_web import WEB, _chromium, _node, _node_modules

    node = _node()
    _chromium()
    _node_modules()
    name, _ = family_checkpoint
    r = family_bundle(name, "onnx")
    server = subprocess.Popen([sys.executable, str(WEB / "serve.py"), "--bundle", str(r.path), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip().split(" ", 1)[1]
        result = subprocess.run([node, "tests/e2e.mjs", "--mode", "bench", "--url", url, "--threads", "2", "--images", "2",
                                 "--warmup", "0", "--out", str(tmp_path / "bench.json")],
                                cwd=WEB, capture_output=True, text=True, timeout=300)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert result.returncode == 0, f"{name}: {result.stdout}\n{result.stderr}"
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["passed"] and report["runs"][0]["selftest_passed"], report

"""One self-test, three runtimes: the Python gate, ``lrf-native --selftest`` and the browser's
Self-test run the same bundle's ``checks`` and must reach the same verdict on every check, on a
fp32 bundle, an INT8 bundle and a deliberately corrupted one (two reference tensors changed,
their hashes updated, so only the numbers can catch it).

lrf-native runs ExecuTorch bundles and the page runs ONNX bundles, so each is compared with the
Python gate on the bundle of its own target (the same files). The printed tables must agree in
everything but the measured values. The table is written to the test's log (``-s``) as the
closing note's agreement table.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lrf_export.bundle import MANIFEST, load_manifest, load_tensor, save_tensor, sha256_file
from lrf_export.checks import table
from lrf_export.parity import check_bundle

from .test_native import lrf_native  # noqa: F401  (the built binary, a fixture)
from .test_web import WEB, _chromium, _node, _node_modules

CASES = ("fp32", "int8", "corrupted")


def corrupted_copy(bundle: Path, out: Path) -> Path:
    """The bundle with one single-step reference and the encoder's reference changed, re-hashed."""
    shutil.copytree(bundle, out)
    manifest = load_manifest(out)
    for name, change in (("step1.next_latent", 0.5), ("encoder.known", 1.0)):
        if name in manifest["tensors"]:
            save_tensor(out, name, load_tensor(out, manifest["tensors"][name]) + change)
    manifest["files"] = {rel: sha256_file(out / rel) for rel in manifest["files"]}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def bundles(tiny_bundle, target: str, tmp_path: Path) -> dict[str, Path]:
    fp32 = tiny_bundle(target).path
    return {"fp32": fp32, "int8": tiny_bundle(target, "int8").path,
            "corrupted": corrupted_copy(fp32, tmp_path / f"{target}-corrupted")}


def columns(checks: list[dict]) -> list[tuple]:
    """What every runtime must agree on: the checks, in order, their metric, limit and verdict."""
    return [(c["name"], c["metric"], float(c["limit"]), bool(c["passed"])) for c in checks]


def native_checks(binary: Path, bundle: Path) -> tuple[list[dict], str]:
    as_json = subprocess.run([str(binary), str(bundle), "--selftest", "--json"], capture_output=True, text=True, timeout=300)
    assert as_json.returncode in (0, 1), as_json.stderr
    printed = subprocess.run([str(binary), str(bundle), "--selftest"], capture_output=True, text=True, timeout=300)
    return json.loads(as_json.stdout)["selftest"], printed.stdout.strip()


def browser_checks(node: str, bundle: Path, tmp_path: Path) -> list[dict]:
    server = subprocess.Popen([sys.executable, str(WEB / "serve.py"), "--bundle", str(bundle), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("serving http://127.0.0.1:"), line
        out = tmp_path / f"{bundle.name}.selftest.json"
        r = subprocess.run([node, "tests/e2e.mjs", "--mode", "selftest", "--url", line.split(" ", 1)[1], "--threads", "1",
                            "--out", str(out)], cwd=WEB, capture_output=True, text=True, timeout=300)
    finally:
        server.terminate()
        server.wait(timeout=10)
    report = json.loads(out.read_text())
    assert "selftest" in report, (r.stdout, r.stderr, report)
    return report["selftest"]["checks"]


def strip_values(printed: str) -> list[tuple]:
    """The table's lines without the value column: check, metric, limit, verdict."""
    rows = []
    for line in printed.splitlines():
        parts = line.split()
        rows.append(tuple(parts[:2] + parts[3:]) if len(parts) == 5 else tuple(parts))
    return rows


def report_rows(case: str, by: str, checks: list[dict]) -> str:
    return "\n".join(f"| {case} | {by} | {c['name']} | {c['metric']} | {c['value']} | {'pass' if c['passed'] else 'FAIL'} |"
                     for c in checks)


@pytest.mark.slow
def test_python_gate_and_lrf_native_agree(lrf_native, tiny_bundle, tmp_path):  # noqa: F811
    rows = []
    for case, bundle in bundles(tiny_bundle, "executorch", tmp_path).items():
        python = check_bundle(bundle)["checks"]
        native, printed = native_checks(lrf_native, bundle)
        assert columns(native) == columns(python), case
        assert strip_values(printed) == strip_values(table(python)), (case, printed)
        assert all(c["passed"] for c in python) == (case != "corrupted")
        rows += [report_rows(case, "Python", python), report_rows(case, "lrf-native", native)]
    corrupted = {c["name"] for c in check_bundle(tmp_path / "executorch-corrupted")["checks"] if not c["passed"]}
    assert corrupted == {"step1", "encoder"}, corrupted
    print("\n".join(rows))


@pytest.mark.slow
def test_python_gate_and_browser_agree(tiny_bundle, tmp_path):
    node = _node()
    _chromium()
    _node_modules()
    rows = []
    for case, bundle in bundles(tiny_bundle, "onnx", tmp_path).items():
        python = check_bundle(bundle)["checks"]
        browser = browser_checks(node, bundle, tmp_path)
        assert columns(browser) == columns(python), case
        assert all(c["passed"] for c in python) == (case != "corrupted")
        rows += [report_rows(case, "Python", python), report_rows(case, "browser", browser)]
    print("\n".join(rows))

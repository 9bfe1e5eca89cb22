"""A bundle is input from outside: random byte and field mutations of a real one must end in a
one-line LRFError (or, for a harmless mutation, a normal result), never in another exception.

The Python side of the issue's hostile-bundle work (the C++ readers get a libFuzzer target).
What is exercised is everything ``lrf-run`` does: load and verify the manifest, open every
artifact on its host runtime, generate an image and run the parity check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrf_export.bundle import MANIFEST, sha256_file
from lrf_export.parity import check_bundle
from lrf_export.run import BundleRuntime
from lrf_model.errors import LRFError

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def exercise(bundle: Path) -> None:
    """Everything a runtime does with a bundle; only LRFError may escape."""
    try:
        rt = BundleRuntime(bundle)
        rt.generate({"class": 0, "seed": 0})
        check_bundle(bundle)
    except LRFError as e:
        assert "\n" not in str(e), str(e)


def paths(node, prefix=()):
    """Every (path, value) in a JSON document."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


@pytest.fixture(scope="module")
def onnx_bundle(tiny_bundle) -> Path:
    return tiny_bundle("onnx").path


def _copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_field_mutations_of_the_manifest(onnx_bundle, tmp_path, data):
    bundle = _copy(onnx_bundle, tmp_path / "b")
    manifest = json.loads((bundle / MANIFEST).read_text())
    where, _ = data.draw(st.sampled_from(list(paths(manifest))[1:]))
    value = data.draw(JSON_VALUES)
    node = manifest
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    exercise(bundle)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_byte_mutations_of_any_file(onnx_bundle, tmp_path, data):
    """Bytes flipped or cut in any file; for non-manifest files the digests are updated too,
    so the readers behind the hash check (.npy, ONNX) see the damage."""
    bundle = _copy(onnx_bundle, tmp_path / "b")
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    rel = data.draw(st.sampled_from(files))
    raw = bytearray((bundle / rel).read_bytes())
    if data.draw(st.booleans()) and raw:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    for _ in range(data.draw(st.integers(1, 8))):
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    (bundle / rel).write_bytes(bytes(raw))
    if rel != MANIFEST and data.draw(st.booleans()):
        manifest = json.loads((bundle / MANIFEST).read_text())
        manifest["files"][rel] = sha256_file(bundle / rel)
        (bundle / MANIFEST).write_text(json.dumps(manifest))
    exercise(bundle)

"""The manifest schema (export/schema/manifest.schema.json) is the manifest's one definition:
every bundle lrf-export writes validates, a manifest that breaks it is refused with one line
before any file is read, and each runtime's copy of the schema version equals the schema's."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from lrf_export.bundle import MANIFEST, SCHEMA_FILE, SCHEMA_VERSION, load_manifest, schema_problem
from lrf_model.errors import LRFError

ROOT = Path(__file__).resolve().parents[1]

# Where each runtime defines the version it reads, and how to find it there.
COPIES = {
    "runtimes/native/include/lrf/manifest.h": r"constexpr int kSchemaVersion = (\d+);",
    "runtimes/web/src/manifest.js": r"export const SCHEMA_VERSION = (\d+);",
    "runtimes/ios/Sources/LRFRuntime/Manifest.swift": r"public static let schemaVersion = (\d+)",
}


def test_python_reads_the_version_from_the_schema():
    assert SCHEMA_VERSION == json.loads(SCHEMA_FILE.read_text())["properties"]["schema_version"]["const"]


@pytest.mark.parametrize("rel", sorted(COPIES))
def test_each_runtime_copy_of_the_version_matches_the_schema(rel):
    found = re.findall(COPIES[rel], (ROOT / rel).read_text())
    assert found == [str(SCHEMA_VERSION)], (rel, found)


@pytest.mark.parametrize("target", ["executorch", "onnx", "coreml"])
def test_exported_bundles_validate(tiny_bundle, target):
    manifest = json.loads((tiny_bundle(target).path / MANIFEST).read_text())
    assert schema_problem(manifest) is None


def _mutations(m: dict):
    yield "class_names", lambda d: d.pop("class_names")
    yield "sampler/steps", lambda d: d["sampler"].__setitem__("steps", "four")
    yield "artifacts/decoder/file", lambda d: d["artifacts"]["decoder"].__setitem__("file", "../../etc/passwd")
    yield "target", lambda d: d.__setitem__("target", "tflite")
    yield "(top level)", lambda d: d.__setitem__("surprise", 1)
    yield "latent/shape/1", lambda d: d["latent"]["shape"].__setitem__(1, -4)
    yield "files", lambda d: d["files"].__setitem__("step.onnx", "not-a-digest")


@pytest.mark.parametrize("where", [w for w, _ in _mutations({})])
def test_a_manifest_that_breaks_the_schema_is_one_line(tiny_bundle, tmp_path, where):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle("onnx").path, bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    mutate = dict(_mutations(manifest))[where]
    bad = copy.deepcopy(manifest)
    mutate(bad)
    (bundle / MANIFEST).write_text(json.dumps(bad))
    with pytest.raises(LRFError) as e:
        load_manifest(bundle)
    message = str(e.value)
    assert "\n" not in message and "breaks the manifest schema" in message and "re-export" in message, message
    assert where.split("/")[0] in message or where == "(top level)" and "surprise" in message, message

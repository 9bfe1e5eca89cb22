"""Self-describing bundles: one directory holding everything a runtime needs and nothing else.

    manifest.json      schema, model config, classes, sampler (default steps and schedule, the
                       schedule of every step count offered, cfg, R), parity tolerance,
                       latent/image shapes and scaling, noise generator, artifacts with their
                       named inputs/outputs, test-vector index, sha256 of every file, tool versions
    step.<ext>         (or fused.<ext>) the denoising graph
    decoder.<ext>, encoder.<ext>
    test_vectors/*.npy reference inputs/outputs from the PyTorch model
    parity.json        the parity gate's report

Bundles are written to a temporary sibling directory and renamed into place at the end, so an
error never leaves a half-written bundle. :func:`load_manifest` verifies schema and hashes
before anything else reads a byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator

import numpy as np

from lrf_model.errors import LRFError

SCHEMA_VERSION = 2  # 2: sampler.schedules and tolerance, read by the native, web and mobile runtimes
MANIFEST = "manifest.json"
HASH_EXEMPT = {MANIFEST}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_files(root: Path) -> list[Path]:
    """Every regular file of the bundle (inside .mlpackage directories too), manifest excluded."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in HASH_EXEMPT)


def file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in bundle_files(root)}


def tool_versions() -> dict[str, str]:
    out = {}
    for pkg in ("torch", "diffusers", "executorch", "coremltools", "onnx", "onnxruntime", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def save_array(root: Path, rel: str, array: np.ndarray) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array))
    return rel


def load_array(root: Path, rel: str) -> np.ndarray:
    return np.load(root / rel, allow_pickle=False)


def write_manifest(root: Path, manifest: dict) -> None:
    """Finish a bundle: hash every file and write manifest.json last."""
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": file_hashes(root), "tools": tool_versions()}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def load_manifest(root: str | Path, verify: bool = True) -> dict:
    """Read and verify a bundle's manifest; any problem is one line naming the file."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise LRFError(f"{root} is not a bundle: {MANIFEST} is missing; export one with lrf-export")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LRFError(f"{path} is corrupt ({e}); re-export the bundle") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise LRFError(f"{path}: schema version {manifest.get('schema_version')!r} is not {SCHEMA_VERSION}; "
                       "re-export the bundle with this lrf-export")
    if verify:
        for rel, digest in manifest.get("files", {}).items():
            f = root / rel
            if not f.is_file():
                raise LRFError(f"bundle file {rel} is missing from {root}; re-export or re-copy the bundle")
            if sha256_file(f) != digest:
                raise LRFError(f"bundle file {rel} does not match its sha256 in the manifest (tampered or truncated); "
                               "re-export or re-copy the bundle")
    return manifest


@contextmanager
def staged_directory(final: Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``final``, on error it vanishes."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LRFError(f"{final} already exists; pass another --out or remove it")
        shutil.rmtree(final)
    tmp.rename(final)

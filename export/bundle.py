"""Self-describing bundles: one directory holding everything a runtime needs and nothing else.

    manifest.json      schema, model config, classes, sampler (default steps and schedule, the
                       schedule of every step count offered, cfg, R), parity tolerance,
                       latent/image shapes and scaling, noise generator, artifacts with their
                       named inputs/outputs, test-vector index, sha256 of every file, tool versions
    step.<ext>         (or fused.<ext>) the denoising graph
    decoder.<ext>, encoder.<ext>
    test_vectors/*.bin reference tensors from the PyTorch model: raw little-endian, C order, each
                       described by the manifest's ``tensors`` (dtype, shape) and hashed in ``files``
    parity.json        the parity gate's report

Tensors are raw bytes rather than ``.npy``: the manifest already says each one's dtype and shape
and hashes its bytes, so every language reads one with a few lines (size check, then a view)
instead of parsing a second header format.

The manifest's one definition is ``schema/manifest.schema.json`` (JSON Schema): every manifest
is validated against it when written and when loaded, and its ``schema_version`` is the one
:data:`SCHEMA_VERSION`. Bundles are written to a temporary sibling directory and renamed into
place at the end, so an error never leaves a half-written bundle. :func:`load_manifest`
verifies schema and hashes before anything else reads a byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Iterator

import jsonschema
import numpy as np

from lrf_model.errors import LRFError

SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "manifest.schema.json"


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    return jsonschema.Draft202012Validator(schema)


SCHEMA_VERSION: int = _validator().schema["properties"]["schema_version"]["const"]
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


TENSOR_DTYPES = {"float32": "<f4", "int32": "<i4", "uint8": "u1"}


def save_tensor(root: Path, name: str, array: np.ndarray) -> dict:
    """Write ``array`` as ``test_vectors/<name>.bin``; returns its manifest tensor spec."""
    dtype = str(array.dtype)
    if dtype not in TENSOR_DTYPES:
        raise ValueError(f"tensor {name} has dtype {dtype}; bundles hold {', '.join(TENSOR_DTYPES)}")
    rel = f"test_vectors/{name}.bin"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(array, dtype=TENSOR_DTYPES[dtype]).tofile(root / rel)
    return {"file": rel, "dtype": dtype, "shape": list(array.shape)}


def load_tensor(root: Path, spec: dict) -> np.ndarray:
    """A bundle tensor from its spec; a missing or wrong-size file is a one-line error."""
    path = root / spec["file"]
    dtype = np.dtype(TENSOR_DTYPES[spec["dtype"]])
    want = int(np.prod(spec["shape"])) * dtype.itemsize
    got = path.stat().st_size if path.is_file() else None
    if got != want:
        have = "is missing" if got is None else f"holds {got} bytes"
        raise LRFError(f"bundle tensor {spec['file']} {have}, its spec {spec['dtype']}{spec['shape']} needs {want}; "
                       "re-export the bundle")
    return np.fromfile(path, dtype=dtype).astype(spec["dtype"]).reshape(spec["shape"])


def schema_problem(manifest: object) -> str | None:
    """The most relevant way ``manifest`` breaks the schema, as ``"where: what"``, or None."""
    error = jsonschema.exceptions.best_match(_validator().iter_errors(manifest))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {error.message[:200]}"


def write_manifest(root: Path, manifest: dict) -> None:
    """Finish a bundle: hash every file, validate against the schema, write manifest.json last."""
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": file_hashes(root), "tools": tool_versions()}
    if (problem := schema_problem(manifest)) is not None:
        raise LRFError(f"lrf-export built a manifest that breaks {SCHEMA_FILE.name} ({problem}); this is a bug in lrf-export")
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
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise LRFError(f"{path}: schema version {version!r} is not {SCHEMA_VERSION}; "
                       "re-export the bundle with this lrf-export")
    if (problem := schema_problem(manifest)) is not None:
        raise LRFError(f"{path} breaks the manifest schema at {problem}; re-export the bundle with this lrf-export")
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

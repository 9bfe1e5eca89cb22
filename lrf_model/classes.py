"""Class names and the one resolver from a user's "cat" or "3" to a class index.

Torch-free, so light runtime processes (ONNX Runtime, the benchmarks' workers) use it too.
"""

from __future__ import annotations

from typing import Sequence

from .errors import LRFError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


def class_index(names: Sequence[str], name_or_index: str | int) -> int:
    """Resolve a class name ('cat') or index ('3'); anything else is a one-line error."""
    key = str(name_or_index).strip().lower()
    if key in names:
        return list(names).index(key)
    if key.isdigit() and int(key) < len(names):
        return int(key)
    raise LRFError(f"unknown class '{name_or_index}'; use one of {', '.join(names)} or an index 0-{len(names) - 1}")

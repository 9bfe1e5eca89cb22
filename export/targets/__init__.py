"""Lowering targets: CoreML, ExecuTorch, ONNX; each declares its named inputs/outputs once."""

from __future__ import annotations

from lrf_model.errors import LRFError

from .base import Target
from .coreml import CoreMLTarget
from .executorch import ExecuTorchTarget
from .onnx import OnnxTarget

TARGETS: dict[str, Target] = {t.name: t for t in (CoreMLTarget(), ExecuTorchTarget(), OnnxTarget())}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise LRFError(f"unknown target '{name}'; use one of {', '.join(TARGETS)} or all")
    return TARGETS[name]


def precision_for(target: Target, quantize: str) -> str:
    """int8 when asked; otherwise the target's float precision (CoreML computes in fp16)."""
    return "int8" if quantize == "int8" else target.precisions[0]

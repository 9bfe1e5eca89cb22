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
    """int8 or fp16 when asked (if the target has it); otherwise the target's float precision
    (CoreML computes in fp16)."""
    if quantize == "none":
        return target.precisions[0]
    if quantize not in target.precisions:
        have = [t.name for t in TARGETS.values() if quantize in t.precisions]
        raise LRFError(f"--quantize {quantize} is not offered by {target.name}; use it with --target {' or '.join(have)}")
    return quantize

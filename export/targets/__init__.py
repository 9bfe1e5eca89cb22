"""Lowering targets: CoreML, ExecuTorch, ONNX; each declares its named inputs/outputs once."""

"""Known-harmless warnings from our dependencies, silenced so that real ones stand out.

Every line a user sees from ``lrf-generate``/``lrf-export`` should be ours or worth reading.
Installing the ``export`` extra brings torchao (an ExecuTorch dependency); diffusers and torch
then print, on every run:

- torchao: "Failed to load .../_C_mxfp8...so" (its CUDA-only kernels, absent from a CPU build);
- torch._pytree: "<enum 'KernelPreference'> is an Enum subclass ..." (torchao registering enums);
- diffusers: "Unable to import `torchao` Tensor objects" (the same CUDA-only kernels);
- diffusers: "The config attributes {'block_out_channels': ...} were passed to AutoencoderTiny,
  but are not expected": ``AutoencoderTiny.__init__`` itself registers that key, so every
  AutoencoderTiny it saves (TAESD's own included) warns on load;
- torch: "`isinstance(treespec, LeafSpec)` is deprecated" (a FutureWarning that ExecuTorch's and
  coremltools' own calls into torch.export raise);
- coremltools, on Linux only: "Failed to load _MLModelProxy ..." (there is no Core ML framework
  to load; on macOS the same line means a broken install and still shows), and its notes that
  our pinned torch and the installed scikit-learn are versions it was not tested with (we test
  the conversion ourselves; scikit-learn conversion is not used).

Only those messages are dropped; every other warning of these loggers still shows.
"""

from __future__ import annotations

import logging
import platform
import warnings

_HARMLESS = {
    "torchao": ("Failed to load",),
    "torch.utils._pytree": ("is an Enum subclass and is now natively supported",),
    "diffusers.quantizers.torchao.torchao_quantizer": ("Unable to import `torchao` Tensor objects",),
    "diffusers.configuration_utils": ("The config attributes {'block_out_channels'",),
    "coremltools": ("has not been tested with coremltools", "scikit-learn version")
    + (("Failed to load _ML",) if platform.system() != "Darwin" else ()),
}


class _DropKnown(logging.Filter):
    """Drops the records of one logger whose message contains one of ``fragments``."""

    def __init__(self, fragments: tuple[str, ...]):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p in message for p in self.fragments)


def silence_known_warnings() -> None:
    """Attach the filters (idempotent); call before diffusers or torchao is imported."""
    for name, fragments in _HARMLESS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnown) for f in logger.filters):
            logger.addFilter(_DropKnown(fragments))
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)

"""lrf_export: export passes and targets (see issue: lrf-export)."""

import lrf_model  # noqa: F401  (first: it silences known dependency warnings before diffusers/torchao load)

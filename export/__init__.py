"""lrf_export: export passes and targets (see issue: lrf-export)."""

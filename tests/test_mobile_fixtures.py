"""The Swift tests' fixtures (noise values, raw tensors and their error messages, metric values,
the self-test table) must be what the Python reference makes now.

The iOS package cannot be built on Linux; this keeps its expected values from drifting when
lrf_model/noise.py, export/bundle.py or export/checks.py change, so a Mac's `swift test` checks
against the real reference.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

IOS = Path(__file__).resolve().parents[1] / "runtimes" / "ios"


def test_swift_fixtures_match_the_python_reference(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", IOS / "scripts" / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    committed = IOS / "Tests" / "LRFRuntimeTests" / "Fixtures"
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in committed.iterdir())
    for name in made:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), f"{name} is stale: run make_fixtures.py"

"""Regenerate Tests/LRFRuntimeTests/Fixtures from the Python reference (run from the repo root):

    python runtimes/ios/scripts/make_fixtures.py

noise_seed0.json: the first 16 values of lrf_model.noise.noise_array(seed, (4, 8, 8)) for seeds
0 and 12345, as float (the exact float32 value) and as uint32 bit patterns.
noise_extra.json: hash32, uniform_bits (negative and > 32-bit seeds) and an odd-length noise_array.
small_*.bin + tensors.json: raw little-endian tensors as bundles hold them (float32, int32, uint8),
their manifest-style specs and values, and export/bundle.py's messages for a truncated and a
missing file, which RawTensor must repeat word for word.
metrics.json: export/checks.py's metric() on small cases (NaN, equal pixels, uint8 against int32).
selftest_table.json: export/checks.py's table() for fixed results, the layout every runtime prints.
Numbers that JSON cannot hold (inf, nan) are written as Python's repr strings, which Swift's
Double(String) parses.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from lrf_export.bundle import load_tensor
from lrf_export.checks import metric, passes, table
from lrf_model.errors import LRFError
from lrf_model.noise import hash32, noise_array, uniform_bits

OUT = Path(__file__).resolve().parents[1] / "Tests" / "LRFRuntimeTests" / "Fixtures"


def write_json(out: Path, name: str, obj: dict) -> None:
    (out / name).write_text(json.dumps(obj, indent=1) + "\n")


def load_error(root: Path, spec: dict) -> str:
    try:
        load_tensor(root, spec)
    except LRFError as e:
        return str(e)
    raise AssertionError(f"load_tensor accepted {spec}")


def noise_fixtures(out: Path) -> None:
    seeds = {"generator": "lrf_model/noise.py noise_array(seed, shape), flattened row-major; first 16 values",
             "shape": [4, 8, 8], "count": 16, "cases": []}
    for seed in (0, 12345):
        a = noise_array(seed, (4, 8, 8)).reshape(-1)[:16]
        seeds["cases"].append({"seed": seed, "values": [float(x) for x in a],  # float64 repr of the exact float32
                               "bits": [int(x) for x in a.view(np.uint32)]})
    seeds["made_with"] = ("python -c: from lrf_model.noise import noise_array; noise_array(seed, (4, 8, 8)).reshape(-1)[:16] "
                          "-> values (float(x)) and bits (x.view(np.uint32))")
    write_json(out, "noise_seed0.json", seeds)

    xs = [0, 1, 2, 0x9E3779B9, 0xFFFFFFFF]
    write_json(out, "noise_extra.json", {
        "made_with": "python: lrf_model.noise.hash32 / uniform_bits / noise_array; values as uint32 bit patterns",
        "hash32": {"inputs": xs, "outputs": [int(v) for v in hash32(np.array(xs, dtype=np.uint64))]},
        "uniform_bits": [{"seed": s, "counters": [0, 1, 2],
                          "bits": [int(v) for v in uniform_bits(s, np.arange(3, dtype=np.uint64))]}
                         for s in (0, -1, 0xFFFFFFFF, 2**32 + 5)],
        "odd_count": {"seed": 7, "shape": [3], "bits": noise_array(7, (3,)).view(np.uint32).tolist(),
                      "even_shape": [4], "even_bits": noise_array(7, (4,)).view(np.uint32).tolist()},
    })


def tensor_fixtures(out: Path) -> None:
    f4 = np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0
    f4[1, 2] = np.float32(1e-7)
    arrays = {"small_f4": f4, "small_i4": np.array([[7], [-9]], dtype=np.int32),
              "small_u1": np.array([0, 1, 128, 255], dtype=np.uint8)}
    specs = {}
    for name, a in arrays.items():
        a.astype(a.dtype.newbyteorder("<")).tofile(out / f"{name}.bin")
        specs[name] = {"file": f"{name}.bin", "dtype": str(a.dtype), "shape": list(a.shape)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "small_f4.bin").write_bytes((out / "small_f4.bin").read_bytes()[:-4])
        errors = {"truncated": load_error(root, specs["small_f4"]),
                  "missing": load_error(root, {**specs["small_f4"], "file": "absent.bin"})}
    write_json(out, "tensors.json", {
        "made_with": "numpy tofile (little-endian, C order); errors from lrf_export.bundle.load_tensor",
        "tensors": specs, "values": {name: a.reshape(-1).tolist() for name, a in arrays.items()},
        "errors": errors})


def metric_fixtures(out: Path) -> None:
    cases = [
        ("rel", "float32", [1.0, 2.5, -3.0], "float32", [1.0, 2.0, -3.0]),
        ("max_abs", "float32", [1.0, 2.5, -3.0], "float32", [1.0, 2.0, -3.0]),
        ("rel", "float32", [1e-9, 0.0], "float32", [0.0, 0.0]),
        ("rel", "float32", [float("nan"), 1.0], "float32", [1.0, 1.0]),
        ("psnr", "int32", [0, 130, 250, 10], "uint8", [0, 128, 255, 10]),
        ("psnr", "int32", [0, 128, 255], "uint8", [0, 128, 255]),
        ("max_abs", "uint8", [0, 255], "uint8", [255, 0]),
    ]
    rows = []
    for name, got_dtype, got, ref_dtype, ref in cases:
        value = metric(name, np.array(got, dtype=got_dtype), np.array(ref, dtype=ref_dtype))
        rows.append({"metric": name, "got_dtype": got_dtype, "got": [repr(float(x)) for x in got],
                     "ref_dtype": ref_dtype, "ref": [repr(float(x)) for x in ref], "value": repr(value)})
    write_json(out, "metrics.json", {"made_with": "lrf_export.checks.metric(metric, got, ref)", "cases": rows})


def table_fixture(out: Path) -> None:
    results = [("noise", "max_abs", 0.0, 1e-6), ("step0", "rel", 0.0123456, 0.05), ("trajectory", "rel", float("nan"), 0.05),
               ("image", "psnr", float("inf"), 30.0), ("decoder", "psnr", 29.996, 30.0),
               ("a_long_check_name", "psnr", 41.234, 40.0), ("encoder", "rel", 0.25, 0.1)]
    rows = [{"name": n, "metric": m, "value": v, "limit": lim, "passed": passes(m, v, lim)} for n, m, v, lim in results]
    write_json(out, "selftest_table.json", {
        "made_with": "lrf_export.checks.table(results)",
        "results": [{"name": r["name"], "metric": r["metric"], "value": repr(r["value"]), "limit": repr(r["limit"])}
                    for r in rows],
        "table": table(rows)})


def main(out: Path = OUT) -> None:
    """Write every fixture into ``out`` (tests/test_mobile_fixtures.py regenerates and compares)."""
    out.mkdir(parents=True, exist_ok=True)
    noise_fixtures(out)
    tensor_fixtures(out)
    metric_fixtures(out)
    table_fixture(out)


if __name__ == "__main__":
    main()

"""Regenerate Tests/LRFRuntimeTests/Fixtures from the Python reference (run from the repo root):

    python runtimes/ios/scripts/make_fixtures.py

noise_seed0.json: the first 16 values of lrf_model.noise.noise_array(seed, (4, 8, 8)) for seeds
0 and 12345, as float (the exact float32 value) and as uint32 bit patterns.
noise_extra.json: hash32, uniform_bits (negative and > 32-bit seeds) and an odd-length noise_array.
small_*.npy: np.save / write_array output for the .npy reader tests (v1 and v2 headers, int32,
int64, and a big-endian file the reader must reject).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lrf_model.noise import hash32, noise_array, uniform_bits

OUT = Path(__file__).resolve().parents[1] / "Tests" / "LRFRuntimeTests" / "Fixtures"


def write_json(out: Path, name: str, obj: dict) -> None:
    (out / name).write_text(json.dumps(obj, indent=1) + "\n")


def main(out: Path = OUT) -> None:
    """Write every fixture into ``out`` (tests/test_mobile_fixtures.py regenerates and compares)."""
    out.mkdir(parents=True, exist_ok=True)
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

    f4 = np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0
    f4[1, 2] = np.float32(1e-7)
    np.save(out / "small_f4.npy", f4)
    np.save(out / "small_i8.npy", np.array([3, -2], dtype=np.int64))
    np.save(out / "small_i4.npy", np.array([[7], [-9]], dtype=np.int32))
    with open(out / "small_f4_v2.npy", "wb") as fh:
        np.lib.format.write_array(fh, f4, version=(2, 0))
    np.save(out / "small_f4_be.npy", f4.astype(">f4"))


if __name__ == "__main__":
    main()

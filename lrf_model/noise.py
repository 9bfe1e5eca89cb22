"""The portable noise generator: one seed gives the same latent noise on every runtime.

A counter-based PRNG (Chris Wellons' ``lowbias32`` 32-bit integer hash) plus Box-Muller in
float64, rounded to float32 at the end. It needs only 32-bit integer arithmetic and
``log``/``sqrt``/``cos``/``sin``, so the C++, JavaScript, Kotlin and Swift runtimes mirror it
line for line; NumPy only (no torch), so light processes such as the ONNX Runtime path use it too.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

_M32 = np.uint64(0xFFFFFFFF)


def hash32(x: np.ndarray) -> np.ndarray:
    """Chris Wellons' ``lowbias32`` integer hash on uint32 values (vectorised)."""
    x = x.astype(np.uint64) & _M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & _M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & _M32
    x ^= x >> np.uint64(16)
    return x


SEED_SALT = 0x9E3779B9  # keeps seed 0 away from hash32's fixed point hash32(0) == 0


def uniform_bits(seed: int, counters: np.ndarray) -> np.ndarray:
    """32 random bits per counter: ``hash32(key ^ hash32(counter))``, ``key = hash32(seed ^ SEED_SALT)``."""
    key = hash32(np.array([(seed & 0xFFFFFFFF) ^ SEED_SALT], dtype=np.uint64))[0]
    return hash32(key ^ hash32(counters))


def noise_array(seed: int, shape: Sequence[int]) -> np.ndarray:
    """Standard normal noise of ``shape`` (float32, row-major) from ``seed``.

    Value ``2k`` and ``2k+1`` come from one Box-Muller pair built from counters ``2k`` and
    ``2k+1``: ``u = ((bits >> 8) + 0.5) / 2**24`` (never 0 or 1),
    ``r = sqrt(-2 ln u1)``, values ``r cos(2 pi u2)`` and ``r sin(2 pi u2)``, computed in
    float64 and rounded to float32.
    """
    n = int(np.prod(shape))
    pairs = (n + 1) // 2
    bits = uniform_bits(seed, np.arange(2 * pairs, dtype=np.uint64))
    u = ((bits >> np.uint64(8)).astype(np.float64) + 0.5) / 16777216.0
    u1, u2 = u[0::2], u[1::2]
    r = np.sqrt(-2.0 * np.log(u1))
    out = np.empty(2 * pairs, dtype=np.float64)
    out[0::2] = r * np.cos(2.0 * math.pi * u2)
    out[1::2] = r * np.sin(2.0 * math.pi * u2)
    return out[:n].astype(np.float32).reshape(tuple(shape))

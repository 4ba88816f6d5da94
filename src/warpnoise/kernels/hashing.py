"""The counter-based normal draws of ``persistent``, compiled with numba (the CPU backend).

``normal(key, counter)`` is a pure function of two 64-bit integers, the same in every backend:
:func:`warpnoise.rng.counter_normal` (torch, vectorised) and the Triton kernels' ``_normal``
compute it with the same integer steps and the same tables (see there for the definition:
SplitMix64 words, then the ziggurat of Marsaglia & Tsang 2000 with Doornik's 128 layers; exact,
the slow paths are rejection steps that draw further words from the same chain). About 98.8% of
draws take one word and a table look-up.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..rng import GOLDEN, MIX1, MIX2, ZIG_LAYERS, ZIG_R, ZIG_RATIO, ZIG_X

_GOLDEN = np.uint64(GOLDEN)
_M1 = np.uint64(MIX1)
_M2 = np.uint64(MIX2)
_INV_2_53 = 1.0 / 9007199254740992.0
_MASK = np.uint64(ZIG_LAYERS - 1)
# numba freezes global arrays into the compiled code as constants.
_ZX = np.array(ZIG_X, dtype=np.float64)
_ZR = np.array(ZIG_RATIO, dtype=np.float64)


@nb.njit(inline="always", cache=True)
def splitmix64(x: np.uint64) -> np.uint64:
    """SplitMix64's output for state ``x``: ``x + golden`` through its finaliser."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always", cache=True)
def _uniform(h: np.uint64) -> float:
    """(0, 1] from the top 53 bits."""
    return np.float64((h >> np.uint64(11)) + np.uint64(1)) * _INV_2_53


@nb.njit(inline="always", cache=True)
def normal(key: np.uint64, counter: np.uint64) -> float:
    """One N(0, 1) draw, a pure function of ``(key, counter)``."""
    zx, zr = _ZX, _ZR
    h = splitmix64(key + counter * _GOLDEN)
    while True:
        i = int(h & _MASK)
        u = 2.0 * (np.float64(h >> np.uint64(11)) * _INV_2_53) - 1.0  # [-1, 1)
        if abs(u) < zr[i]:
            return u * zx[i]
        h = splitmix64(h)
        if i == 0:
            return _tail(h, u < 0.0)
        x = u * zx[i]
        f0 = math.exp(-0.5 * (zx[i] * zx[i] - x * x))
        f1 = math.exp(-0.5 * (zx[i + 1] * zx[i + 1] - x * x))
        if f1 + _uniform(h) * (f0 - f1) < 1.0:
            return x
        h = splitmix64(h)


@nb.njit(cache=True)
def _tail(h: np.uint64, negative: bool) -> float:
    """A draw beyond ``R`` from the words ``h`` onwards (Marsaglia 1964)."""
    while True:
        a = -math.log(_uniform(h)) / ZIG_R
        h = splitmix64(h)
        b = -math.log(_uniform(h))
        h = splitmix64(h)
        if b + b > a * a:
            return -(ZIG_R + a) if negative else ZIG_R + a


@nb.njit(inline="always", cache=True)
def normals(key: np.uint64, base: np.uint64, out, n: int) -> None:
    """``out[c] = normal(key, base + c)`` for ``c < n``."""
    for c in range(n):
        out[c] = normal(key, base + np.uint64(c))


@nb.njit(parallel=True, cache=True)
def fill_normal(key: np.uint64, out) -> None:
    """``out.flat[i] = normal(key, i)`` for a C-contiguous float32 array, in parallel."""
    flat = out.reshape(-1)
    n = flat.size
    chunk = 1 << 14
    for b in nb.prange((n + chunk - 1) // chunk):
        for i in range(b * chunk, min((b + 1) * chunk, n)):
            flat[i] = normal(key, np.uint64(i))

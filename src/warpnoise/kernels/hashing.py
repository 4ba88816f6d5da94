"""The counter-based normal draws of ``persistent``, compiled with numba (the CPU backend).

``normal(key, counter)`` is a pure function of two 64-bit integers, the same in every backend:
:func:`warpnoise.rng.counter_normal` (torch, vectorised) and the Triton kernels' ``_normal``
compute it with the same integer steps (see there for the definition: SplitMix64 words, then
Box-Muller; counters ``2m`` and ``2m + 1`` are the cosine and sine of one pair, so a fill of
consecutive counters pays one logarithm per two values).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ..rng import GOLDEN, MIX1, MIX2

_GOLDEN = np.uint64(GOLDEN)
_STRIDE = np.uint64((2 * GOLDEN) % 2**64)
_M1 = np.uint64(MIX1)
_M2 = np.uint64(MIX2)
_INV_2_53 = 1.0 / 9007199254740992.0


@nb.njit(inline="always", cache=True)
def splitmix64(x: np.uint64) -> np.uint64:
    """SplitMix64's output for state ``x``: ``x + golden`` through its finaliser."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always", cache=True)
def normal(key: np.uint64, counter: np.uint64) -> float:
    """One N(0, 1) draw, a pure function of ``(key, counter)``."""
    c, s = _pair(key, counter >> np.uint64(1))
    return s if counter & np.uint64(1) else c


@nb.njit(inline="always", cache=True)
def _pair(key: np.uint64, pair: np.uint64) -> tuple[float, float]:
    """Box-Muller's ``(r cos(theta), r sin(theta))`` of pair ``pair``. The cosine and sine come
    from one tangent of the half angle (shifted by pi, away from the pole): a fifth less time
    than a sine and a cosine, and the same values to float64 rounding."""
    base = key + pair * _STRIDE
    h1 = splitmix64(base)
    h2 = splitmix64(base + _GOLDEN)
    u1 = np.float64((h1 >> np.uint64(11)) + np.uint64(1)) * _INV_2_53
    u2 = np.float64(h2 >> np.uint64(11)) * _INV_2_53
    r = math.sqrt(-2.0 * math.log(u1))
    t = math.tan(math.pi * u2 - 0.5 * math.pi)  # theta / 2 - pi / 2, in [-pi / 2, pi / 2)
    q = r / (1.0 + t * t)
    return (t * t - 1.0) * q, -2.0 * t * q


@nb.njit(inline="always", cache=True)
def normals(key: np.uint64, base: np.uint64, out, n: int) -> None:
    """``out[c] = normal(key, base + c)`` for ``c < n``, both values of each whole pair from one
    radius and angle (half the transcendental functions of ``n`` single draws)."""
    c = 0
    if base & np.uint64(1) and n > 0:
        out[0] = normal(key, base)
        c = 1
    while c + 1 < n:
        out[c], out[c + 1] = _pair(key, (base + np.uint64(c)) >> np.uint64(1))
        c += 2
    if c < n:
        out[c] = normal(key, base + np.uint64(c))


@nb.njit(parallel=True, cache=True)
def fill_normal(key: np.uint64, out) -> None:
    """``out.flat[i] = normal(key, i)`` for a C-contiguous float32 array, in parallel (both
    values of a pair from one radius and angle)."""
    flat = out.reshape(-1)
    n = flat.size
    chunk = 1 << 14  # an even count: pairs never straddle chunks
    for b in nb.prange((n + chunk - 1) // chunk):
        for i in range(b * chunk, min((b + 1) * chunk, n), 2):
            c, s = _pair(key, np.uint64(i >> 1))
            flat[i] = c
            if i + 1 < n:
                flat[i + 1] = s

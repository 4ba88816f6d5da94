"""Counter-based normal draws, so parallel kernels stay deterministic whatever the thread count.

``normal(key, counter)`` is a pure function of its two integers: the SplitMix64 generator
(Steele, Lea & Flood 2014) seeded with ``key`` is read at position ``counter``, and its 64-bit
words feed the ziggurat method for N(0, 1) (Marsaglia & Tsang 2000, 128 layers as in Doornik
2005; exact, the slow paths are rejection steps that draw further words from the same chain). The
key of each frame is drawn from the caller's ``torch.Generator``, so all randomness still derives
from the seed.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV_2_53 = 1.0 / 9007199254740992.0

_LAYERS = 128
_R = 3.442619855899
_V = 9.91256303526217e-3


def _tables() -> tuple[np.ndarray, np.ndarray]:
    def f(x: float) -> float:
        return math.exp(-0.5 * x * x)

    x = np.zeros(_LAYERS + 1)
    x[0] = _V / f(_R)
    x[1] = _R
    for i in range(2, _LAYERS):
        x[i] = math.sqrt(-2.0 * math.log(_V / x[i - 1] + f(x[i - 1])))
    x[_LAYERS] = 0.0
    ratio = x[1:] / x[:-1]
    return x, ratio


_ZX, _ZR = _tables()


@nb.njit(inline="always", cache=True)
def splitmix64(x: np.uint64) -> np.uint64:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always", cache=True)
def _uniform(h: np.uint64) -> float:
    """(0, 1] from the top 53 bits."""
    return ((h >> np.uint64(11)) + np.uint64(1)) * _INV_2_53


@nb.njit(inline="always", cache=True)
def normal(key: np.uint64, counter: np.uint64) -> float:
    """One N(0, 1) draw, a pure function of ``(key, counter)``."""
    zx, zr = _ZX, _ZR
    # SplitMix64's own output at position ``counter`` of the stream seeded with ``key``.
    h = splitmix64(key + counter * _GOLDEN)
    while True:
        i = int(h & np.uint64(_LAYERS - 1))
        u = 2.0 * ((h >> np.uint64(11)) * _INV_2_53) - 1.0  # [-1, 1)
        if abs(u) < zr[i]:
            return u * zx[i]
        h = splitmix64(h)
        if i == 0:
            # Tail beyond R (Marsaglia 1964).
            while True:
                a = -math.log(_uniform(h)) / _R
                h = splitmix64(h)
                b = -math.log(_uniform(h))
                h = splitmix64(h)
                if b + b > a * a:
                    return -(_R + a) if u < 0.0 else _R + a
        x = u * zx[i]
        f0 = math.exp(-0.5 * (zx[i] * zx[i] - x * x))
        f1 = math.exp(-0.5 * (zx[i + 1] * zx[i + 1] - x * x))
        if f1 + _uniform(h) * (f0 - f1) < 1.0:
            return x
        h = splitmix64(h)

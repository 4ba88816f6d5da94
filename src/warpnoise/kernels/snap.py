"""Numba kernel of the ``snap`` method: which value each pixel takes, on the CPU.

:func:`warpnoise.methods.snap.snap_sources` is the torch form of the same rule, with the same
float64 arithmetic and the same candidate order, so the two give the same bits. The nearest home
of every pixel is found in parallel over rows; the claims are resolved in one raster-order pass,
so ties go to the first pixel whatever the thread count.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch
from torch import Tensor

from ..flow import FB_ALPHA, FB_BETA
from ..methods.snap import OFFSETS, ROUNDS
from .boxes import _NO_FLOW

_DY = np.array([dy for dy, _ in OFFSETS], np.int64)
_DX = np.array([dx for _, dx in OFFSETS], np.int64)


@nb.njit(parallel=True, cache=True)
def nearest_homes(ox, oy, bx, by, fx, fy, has_forward, dys, dxs, slack, done, taken, src, best,
                  hx_out, hy_out):
    """Per pixel of frame t: the pixel of frame t-1 around ``round(x + b(x))`` whose home
    (centre + offset ``ox, oy``) is nearest ``x + b(x)`` (``src``, flat, -1 if none qualifies),
    its squared distance ``best`` and its offset ``hx_out, hy_out`` (home minus ``x + b(x)``).
    Pixels with ``done[p] >= 0`` are skipped; homes ``taken`` are not candidates."""
    h, w = ox.shape
    for i in nb.prange(h):
        for j in range(w):
            bxv = np.float64(bx[i, j])
            byv = np.float64(by[i, j])
            sx = j + bxv
            sy = i + byv
            cx = math.floor(sx + 0.5)
            cy = math.floor(sy + 0.5)
            b2 = bxv * bxv + byv * byv
            p = i * w + j
            if done[p] >= 0:
                src[p] = -1
                continue
            bd = np.inf
            bq = -1
            bhx = 0.0
            bhy = 0.0
            for k in range(dys.shape[0]):
                qx = cx + dxs[k]
                qy = cy + dys[k]
                if qx < 0 or qx > w - 1 or qy < 0 or qy > h - 1:
                    continue
                r = int(qy)
                c = int(qx)
                if taken[r * w + c]:
                    continue
                if has_forward:
                    fxv = np.float64(fx[r, c])
                    fyv = np.float64(fy[r, c])
                    ex = bxv + fxv
                    ey = byv + fyv
                    if ex * ex + ey * ey > FB_ALPHA * (b2 + (fxv * fxv + fyv * fyv)) + FB_BETA:
                        continue
                hx = qx + ox[r, c]
                hy = qy + oy[r, c]
                ex = hx - sx
                ey = hy - sy
                d = ex * ex + ey * ey
                if d < bd:
                    bd, bq, bhx, bhy = d, r * w + c, hx, hy
                if k == 0 and d <= slack * slack:
                    break
            src[p] = bq
            best[p] = bd
            hx_out[p] = bhx - sx
            hy_out[p] = bhy - sy


@nb.njit(cache=True)
def claim(src, best, least, owner):
    """Give each wanted source to the pixel at the least distance (ties to the first in raster
    order); the others' ``src`` becomes -1."""
    n = src.shape[0]
    least[:] = np.inf
    for p in range(n):
        q = src[p]
        if q >= 0 and best[p] < least[q]:
            least[q] = best[p]
            owner[q] = p
    for p in range(n):
        q = src[p]
        if q >= 0 and owner[q] != p:
            src[p] = -1


@nb.njit(parallel=True, cache=True)
def _accept(src, hx, hy, done, taken, ox, oy):
    """Record this round's winners: their source, offset, and the source as taken."""
    for p in nb.prange(src.shape[0]):
        q = src[p]
        if q >= 0:
            done[p] = q
            taken[q] = True
            ox[p] = hx[p]
            oy[p] = hy[p]


def snap_sources_numba(offset: Tensor, backward_flow: Tensor, forward_flow: Tensor | None,
                       slack: float = 0.5) -> tuple[Tensor, Tensor]:
    """:func:`warpnoise.methods.snap.snap_sources` on CPU tensors: ``(sources, offset)``."""
    _, h, w = offset.shape
    n = h * w
    b = backward_flow.numpy()
    o = offset.numpy()
    has_forward = forward_flow is not None
    f = forward_flow.numpy() if has_forward else None
    src, owner, done = np.empty(n, np.int64), np.empty(n, np.int64), np.full(n, -1, np.int64)
    best, least, hx, hy = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    taken = np.zeros(n, np.bool_)
    new = np.zeros((2, h, w))
    for _ in range(ROUNDS):
        nearest_homes(o[0], o[1], b[0], b[1], f[0] if has_forward else _NO_FLOW,
                      f[1] if has_forward else _NO_FLOW, has_forward, _DY, _DX, slack, done, taken,
                      src, best, hx, hy)
        claim(src, best, least, owner)
        _accept(src, hx, hy, done, taken, new[0].reshape(-1), new[1].reshape(-1))
    return torch.from_numpy(done.reshape(h, w)), torch.from_numpy(new)

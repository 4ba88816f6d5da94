"""Numba kernels of the ``snap`` method: which value each pixel takes, and the gather, on the CPU.

:func:`warpnoise.methods.snap.snap_sources` is the torch form of the same rule, with the same
float64 arithmetic and the same candidate order, so the two give the same bits. The first round
of claims runs over every pixel: the nearest homes in parallel over rows, the bids in one
raster-order pass (ties go to the first pixel whatever the thread count), the winners in parallel.
A pixel that found no candidate in the first round finds none later (homes are only ever taken),
so the later rounds run over the first round's losers alone, a few percent of the frame, in
raster order.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch
from torch import Tensor

from ..flow import FB_ALPHA, FB_BETA
from . import SNAP_OFFSETS as OFFSETS
from . import SNAP_ROUNDS as ROUNDS

_DY = np.array([dy for dy, _ in OFFSETS], np.int64)
_DX = np.array([dx for _, dx in OFFSETS], np.int64)
_NO_FLOW = np.zeros((1, 1), np.float32)  # stands in for absent forward flows


@nb.njit(inline="always")
def _nearest(p, w, h, ox, oy, bx, by, fx, fy, has_forward, slack, taken, src, best, hx_out,
             hy_out):
    """Pixel ``p`` of frame t: the pixel of frame t-1 around ``round(x + b(x))`` not ``taken``
    whose home (centre + offset ``ox, oy``) is nearest ``x + b(x)`` (``src[p]``, flat, -1 if
    none qualifies), its squared distance ``best[p]`` and its home minus ``x + b(x)``
    (``hx_out[p], hy_out[p]``). Candidates in :data:`OFFSETS` order; the first is kept while
    its home lies within ``slack``."""
    i = p // w
    j = p - i * w
    bxv = np.float64(bx[i, j])
    byv = np.float64(by[i, j])
    sx = j + bxv
    sy = i + byv
    cx = math.floor(sx + 0.5)
    cy = math.floor(sy + 0.5)
    b2 = bxv * bxv + byv * byv
    bd = np.inf
    bq = -1
    bhx = 0.0
    bhy = 0.0
    for k in range(_DY.shape[0]):
        qx = cx + _DX[k]
        qy = cy + _DY[k]
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


@nb.njit(parallel=True, cache=True)
def _first_round(ox, oy, bx, by, fx, fy, has_forward, slack, taken, src, best, hx, hy):
    """Every pixel's nearest home (no home taken yet), in parallel over rows."""
    h, w = ox.shape
    for i in nb.prange(h):
        for p in range(i * w, (i + 1) * w):
            _nearest(p, w, h, ox, oy, bx, by, fx, fy, has_forward, slack, taken, src, best, hx,
                     hy)


@nb.njit(cache=True)
def _bid(src, best, least, owner):
    """Each wanted source's owner: the pixel at the least distance, ties to the first in raster
    order (``owner`` -1: nobody wants it)."""
    owner[:] = -1
    for p in range(src.shape[0]):
        q = src[p]
        if q >= 0 and (owner[q] < 0 or best[p] < least[q]):
            least[q] = best[p]
            owner[q] = p


@nb.njit(parallel=True, cache=True)
def _accept(src, hx, hy, owner, done, taken, nx, ny):
    """Record the first round's winners: their source, offset, and the source as taken."""
    h, w = nx.shape
    for i in nb.prange(h):
        for p in range(i * w, (i + 1) * w):
            q = src[p]
            if q >= 0 and owner[q] == p:
                done[p] = q
                taken[q] = True
                nx[i, p - i * w] = hx[p]
                ny[i, p - i * w] = hy[p]


@nb.njit(cache=True)
def _later_rounds(ox, oy, bx, by, fx, fy, has_forward, slack, rounds, taken, src, best, hx, hy,
                  least, owner, done, nx, ny):
    """Rounds 2 to ``rounds`` over the losers of the first: the pixels with a source that went
    to another pixel, in raster order, each taking its nearest free home, claimed as in the
    first round."""
    h, w = ox.shape
    n = h * w
    losers = np.empty(n, np.int64)
    m = 0
    for p in range(n):
        if src[p] >= 0 and done[p] < 0:
            losers[m] = p
            m += 1
    for _ in range(rounds - 1):
        for k in range(m):
            _nearest(losers[k], w, h, ox, oy, bx, by, fx, fy, has_forward, slack, taken, src,
                     best, hx, hy)
        for k in range(m):
            q = src[losers[k]]
            if q >= 0:
                owner[q] = -1
        for k in range(m):
            p = losers[k]
            q = src[p]
            if q >= 0 and (owner[q] < 0 or best[p] < least[q]):
                least[q] = best[p]
                owner[q] = p
        left = 0
        for k in range(m):
            p = losers[k]
            q = src[p]
            if q < 0:
                continue  # no free home left around it: fresh noise
            if owner[q] == p:
                done[p] = q
                taken[q] = True
                nx[p // w, p % w] = hx[p]
                ny[p // w, p % w] = hy[p]
            else:
                losers[left] = p
                left += 1
        m = left


def snap_sources_numba(offset: Tensor, backward_flow: Tensor, forward_flow: Tensor | None,
                       slack: float = 0.5) -> tuple[Tensor, Tensor]:
    """:func:`warpnoise.methods.snap.snap_sources` on CPU tensors: ``(sources, offset)``."""
    _, h, w = offset.shape
    n = h * w
    b = backward_flow.numpy()
    o = offset.numpy()
    has_forward = forward_flow is not None
    f = forward_flow.numpy() if has_forward else None
    fx, fy = (f[0], f[1]) if has_forward else (_NO_FLOW, _NO_FLOW)
    src, owner, done = np.empty(n, np.int64), np.empty(n, np.int64), np.full(n, -1, np.int64)
    best, least, hx, hy = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    taken = np.zeros(n, np.bool_)
    new = np.zeros((2, h, w))
    flows = (o[0], o[1], b[0], b[1], fx, fy, has_forward, slack)
    _first_round(*flows, taken, src, best, hx, hy)
    _bid(src, best, least, owner)
    _accept(src, hx, hy, owner, done, taken, new[0], new[1])
    _later_rounds(*flows, ROUNDS, taken, src, best, hx, hy, least, owner, done, new[0], new[1])
    return torch.from_numpy(done.reshape(h, w)), torch.from_numpy(new)


@nb.njit(parallel=True, cache=True)
def _gather(previous, idx, fresh, out):
    """``out[:, p] = previous[:, idx[p]]``, or the next column of ``fresh`` in raster order where
    ``idx[p] < 0`` (as ``out[:, idx < 0] = fresh`` assigns)."""
    c = previous.shape[0]
    h, w = idx.shape
    starts = np.zeros(h + 1, np.int64)
    for i in nb.prange(h):
        k = 0
        for j in range(w):
            if idx[i, j] < 0:
                k += 1
        starts[i + 1] = k
    for i in range(h):
        starts[i + 1] += starts[i]
    for i in nb.prange(h):
        k = starts[i]
        for j in range(w):
            q = idx[i, j]
            p = i * w + j
            if q >= 0:
                for ch in range(c):
                    out[ch, p] = previous[ch, q]
            else:
                for ch in range(c):
                    out[ch, p] = fresh[ch, k]
                k += 1


def gather_numba(previous: Tensor, idx: Tensor, fresh: Tensor) -> Tensor:
    """:func:`warpnoise.methods.snap.gather_sources` on CPU tensors."""
    c, h, w = previous.shape
    out = torch.empty(c, h, w, dtype=previous.dtype)
    _gather(previous.contiguous().numpy().reshape(c, h * w), idx.numpy(),
            fresh.contiguous().numpy(), out.numpy().reshape(c, h * w))
    return out

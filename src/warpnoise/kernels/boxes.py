"""Numba kernels of the ``persistent`` method: bridge pieces over a persistent sub-pixel field.

See :mod:`warpnoise.methods.persistent` for the mathematics. Layouts are channels-last so the
inner loops over channels are contiguous, and four channels get a specialised copy of the hot
loops. Scatters into anchor cells run in bands of anchor rows, in parallel; each band visits, in
raster order, only the blocks of pixels whose boxes reach it, so every cell receives its
contributions in the same order and results are bit-identical whatever the thread count.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from .hashing import normal

MAX_SIDE = 3  # a pre-image box may span at most 3 x 3 anchor cells
BANDS = 4  # anchor-row bands of the scatters, run in parallel (the bits do not depend on it)
BLOCK = 32  # pixels per row block whose reach in anchor rows is recorded


@nb.njit(inline="always", cache=True)
def _popcount(x: np.uint64) -> int:
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@nb.njit(parallel=True, cache=True)
def compose(mx, my, traced, bx, by):
    """One step of the accumulated map, ``A_t(x) = A_{t-1}(x + b(x))`` as a ``(2, H, W)`` array,
    and the usable pixels.

    The displacement ``A - grid`` is interpolated bilinearly at the source, clamped to the frame
    (as ``torch.grid_sample`` with border padding); a pixel is usable when its source lies in the
    frame and its nearest source pixel was traced. Mirrors :func:`warpnoise.flow.compose_map`.
    """
    h, w = mx.shape
    out = np.empty((2, h, w), np.float64)
    ox, oy = out[0], out[1]
    usable = np.zeros((h, w), np.bool_)
    for i in nb.prange(h):
        for j in range(w):
            sx = j + np.float64(bx[i, j])
            sy = i + np.float64(by[i, j])
            cx = min(max(sx, 0.0), w - 1.0)
            cy = min(max(sy, 0.0), h - 1.0)
            x0 = min(math.floor(cx), max(w - 2, 0))
            y0 = min(math.floor(cy), max(h - 2, 0))
            x1 = min(x0 + 1, w - 1)
            y1 = min(y0 + 1, h - 1)
            fx = cx - x0
            fy = cy - y0
            dx = ((1 - fy) * ((1 - fx) * (mx[y0, x0] - x0) + fx * (mx[y0, x1] - x1))
                  + fy * ((1 - fx) * (mx[y1, x0] - x0) + fx * (mx[y1, x1] - x1)))
            dy = ((1 - fy) * ((1 - fx) * (my[y0, x0] - y0) + fx * (my[y0, x1] - y0))
                  + fy * ((1 - fx) * (my[y1, x0] - y1) + fx * (my[y1, x1] - y1)))
            ox[i, j] = sx + dx
            oy[i, j] = sy + dy
            inside = -0.5 <= sx <= w - 0.5 and -0.5 <= sy <= h - 0.5
            if inside:
                nx = min(max(math.floor(sx + 0.5), 0), w - 1)
                ny = min(max(math.floor(sy + 0.5), 0), h - 1)
                usable[i, j] = traced[ny, nx]
    return out, usable


@nb.njit(inline="always", cache=True)
def _mid(a: float, b: float) -> float:
    return 0.5 * (a + b)


@nb.njit(parallel=True, cache=True)
def _edge_tables(ax, ay):
    """Box edges: ``ex[i, j]`` is the left edge of pixel ``(i, j)`` (its right edge is
    ``ex[i, j+1]``), the midpoint of the neighbours' mapped centres; ``ey`` likewise for rows.
    Neighbours read the same entry, so adjacent boxes share their edge bit for bit."""
    h, w = ax.shape
    ex = np.empty((h, w + 1), np.float64)
    ey = np.empty((h + 1, w), np.float64)
    for i in nb.prange(h):
        if w == 1:
            ex[i, 0], ex[i, 1] = ax[i, 0] - 0.5, ax[i, 0] + 0.5
        else:
            for j in range(1, w):
                ex[i, j] = _mid(ax[i, j - 1], ax[i, j])
            ex[i, 0] = ax[i, 0] - 0.5 * (ax[i, 1] - ax[i, 0])
            ex[i, w] = ax[i, w - 1] + 0.5 * (ax[i, w - 1] - ax[i, w - 2])
    for i in nb.prange(h + 1):
        for j in range(w):
            if h == 1:
                ey[i, j] = ay[0, j] - 0.5 if i == 0 else ay[0, j] + 0.5
            elif i == 0:
                ey[0, j] = ay[0, j] - 0.5 * (ay[1, j] - ay[0, j])
            elif i == h:
                ey[h, j] = ay[h - 1, j] + 0.5 * (ay[h - 1, j] - ay[h - 2, j])
            else:
                ey[i, j] = _mid(ay[i - 1, j], ay[i, j])
    return ex, ey


@nb.njit(inline="always", cache=True)
def _span(lo: float, hi: float, c: int, k: int) -> tuple[float, int, int]:
    """Overlap of ``[lo, hi)`` with cell ``c`` (``[c - 0.5, c + 0.5)``): its length and the
    sub-pixels ``[s0, s1)`` whose centres fall inside."""
    a = max(lo, c - 0.5)
    b = min(hi, c + 0.5)
    if b <= a:
        return 0.0, 0, 0
    s0 = min(max(math.ceil((a - (c - 0.5)) * k - 0.5), 0), k)
    s1 = min(max(math.ceil((b - (c - 0.5)) * k - 0.5), 0), k)
    return b - a, s0, s1


@nb.njit(cache=True)
def _row_select(k: int) -> np.ndarray:
    """``sel[r0, r1]``: a 1 at the lowest bit of each sub-row ``r0 <= r < r1``; times a column
    pattern (< 2^k, so no carries) it gives the bit mask of a sub-pixel rectangle."""
    sel = np.zeros((k + 1, k + 1), np.uint64)
    for r0 in range(k + 1):
        acc = np.uint64(0)
        for r1 in range(r0 + 1, k + 1):
            acc |= np.uint64(1) << np.uint64((r1 - 1) * k)
            sel[r0, r1] = acc
    return sel


@nb.njit(inline="always", cache=True)
def _rect_mask(sel, r0: int, r1: int, s0: int, s1: int) -> np.uint64:
    """Bit mask of the sub-pixels ``[r0, r1) x [s0, s1)`` of a cell (bit ``r * k + s``)."""
    if s1 <= s0:
        return np.uint64(0)
    return sel[r0, r1] * (((np.uint64(1) << np.uint64(s1 - s0)) - np.uint64(1)) << np.uint64(s0))


@nb.njit(parallel=True, cache=True)
def _layout(ex, ey, usable, ha, wa):
    """First cell and cell counts of every usable pixel's box; ``-1`` marks pixels that get
    fresh noise (not usable, folded, outside the anchor, or wider than 3 x 3 cells).

    Also returns, per block of ``BLOCK`` pixels of a row, the range ``[lo, hi)`` of anchor rows
    its boxes touch (so a band of anchor rows visits only the blocks that reach it), and the
    largest box side in cells.
    """
    h, w = usable.shape
    nb_ = (w + BLOCK - 1) // BLOCK
    cell0 = np.full((h, w, 4), -1, np.int32)
    reach = np.empty((h, nb_, 2), np.int32)
    row_side = np.zeros(h, np.int32)
    for i in nb.prange(h):
        for b in range(nb_):
            lo, hi = ha, 0
            for j in range(b * BLOCK, min((b + 1) * BLOCK, w)):
                x0, x1, y0, y1 = ex[i, j], ex[i, j + 1], ey[i, j], ey[i + 1, j]
                if not usable[i, j] or not (x1 > x0 and y1 > y0):
                    continue
                if x0 < -0.5 or y0 < -0.5 or x1 > wa - 0.5 or y1 > ha - 0.5:
                    continue
                cx0 = math.floor(x0 + 0.5)
                cy0 = math.floor(y0 + 0.5)
                ncx = min(math.ceil(x1 + 0.5) - 1, wa - 1) - cx0 + 1
                ncy = min(math.ceil(y1 + 0.5) - 1, ha - 1) - cy0 + 1
                if ncx < 1 or ncy < 1 or ncx > MAX_SIDE or ncy > MAX_SIDE:
                    continue
                cell0[i, j, 0], cell0[i, j, 1], cell0[i, j, 2], cell0[i, j, 3] = cx0, cy0, ncx, ncy
                lo = min(lo, cy0)
                hi = max(hi, cy0 + ncy)
                row_side[i] = max(row_side[i], ncx, ncy)
            reach[i, b, 0], reach[i, b, 1] = lo, hi
    return cell0, reach, max(1, row_side.max())


@nb.njit(inline="always", cache=True)
def _rect(sat, cy, cx, r0, r1, s0, s1, c):
    """Sum of the sub-pixels ``[r0, r1) x [s0, s1)`` of cell ``(cy, cx)`` from its inclusive
    summed-area table. Always four look-ups, the unneeded ones weighted by zero: whether a
    rectangle touches the cell's edge is a coin flip, which a branch would mispredict."""
    ra, sa = max(r0 - 1, 0), max(s0 - 1, 0)
    fr, fs = min(r0, 1) * 1.0, min(s0, 1) * 1.0
    return (sat[cy, cx, r1 - 1, s1 - 1, c] - fr * sat[cy, cx, ra, s1 - 1, c]
            - fs * (sat[cy, cx, r1 - 1, sa, c] - fr * sat[cy, cx, ra, sa, c]))


def _channel_kernels(channels: int) -> tuple[Any, Any]:
    """The scatter and gather kernels, with the channel count fixed at compile time (``0``: read
    from the arrays). Loops over channels unroll and vectorise when their length is a constant,
    so the usual latent width, 4, gets its own compiled copy; numba caches the copies apart, as
    their closures differ, and compiles only the one a caller uses."""

    @nb.njit(cache=True)
    def band(lo, hi, ex, ey, cell0, reach, sat, xa, sel, key, side, off_rem, cover, ybuf, d):
        """Everything that scatters into the anchor rows ``[lo, hi)``, pixels in raster order.

        First the claims and coverage of the band's cells (a sub-pixel claimed twice is given to
        nobody). Then each piece's white-noise integral ``Y``, independent of the anchor noise with
        variance exactly its (rescaled) area, summed per pixel and cell row into ``ybuf`` and per
        cell. Last, the part of each cell that no pre-image covers completes the partition with
        variance ``1 - cover``, and ``d = x - sum(Y)`` is stored so that a piece is ``a d + Y``.
        """
        c_n = channels if channels else xa.shape[2]
        h, w = cell0.shape[0], cell0.shape[1]
        wa = xa.shape[1]
        k = sat.shape[2]
        slots = side * side
        claimed = np.zeros((hi - lo, wa), np.uint64)
        conflict = np.zeros((hi - lo, wa), np.uint64)
        for i in range(h):
            for b in range(reach.shape[1]):
                if reach[i, b, 0] >= hi or reach[i, b, 1] <= lo:
                    continue
                for j in range(b * BLOCK, min((b + 1) * BLOCK, w)):
                    cx0 = cell0[i, j, 0]
                    if cx0 < 0:
                        continue
                    cy0, ncx, ncy = cell0[i, j, 1], cell0[i, j, 2], cell0[i, j, 3]
                    for cy in range(max(cy0, lo), min(cy0 + ncy, hi)):
                        oy, r0, r1 = _span(ey[i, j], ey[i + 1, j], cy, k)
                        for cx in range(cx0, cx0 + ncx):
                            ox, s0, s1 = _span(ex[i, j], ex[i, j + 1], cx, k)
                            if ox * oy <= 0.0:
                                continue
                            m = _rect_mask(sel, r0, r1, s0, s1)
                            conflict[cy - lo, cx] |= claimed[cy - lo, cx] & m
                            claimed[cy - lo, cx] |= m
                            cover[cy, cx] += ox * oy
        sy = np.zeros((hi - lo, wa, c_n), np.float64)
        used = np.zeros((hi - lo, wa, c_n), np.float64)  # unscaled sums of the pieces' sub-pixels
        acc = np.empty(c_n, np.float64)
        yv = np.empty(c_n, np.float64)
        # The same walk as the claims pass: one loop with a pass flag measured 6% slower.
        for i in range(h):
            for b in range(reach.shape[1]):
                if reach[i, b, 0] >= hi or reach[i, b, 1] <= lo:
                    continue
                for j in range(b * BLOCK, min((b + 1) * BLOCK, w)):
                    cx0 = cell0[i, j, 0]
                    if cx0 < 0:
                        continue
                    cy0, ncx, ncy = cell0[i, j, 1], cell0[i, j, 2], cell0[i, j, 3]
                    for cy in range(max(cy0, lo), min(cy0 + ncy, hi)):
                        dy = cy - cy0
                        oy, r0, r1 = _span(ey[i, j], ey[i + 1, j], cy, k)
                        acc[:] = 0.0
                        for cx in range(cx0, cx0 + ncx):
                            ox, s0, s1 = _span(ex[i, j], ex[i, j + 1], cx, k)
                            a = ox * oy
                            if a <= 0.0:
                                continue
                            a_eff = a / max(1.0, cover[cy, cx])
                            m = _rect_mask(sel, r0, r1, s0, s1)
                            mine = m & ~conflict[cy - lo, cx]
                            n = _popcount(mine)
                            if n == 0:
                                base = np.uint64(((i * w + j) * slots + dy * side + cx - cx0) * c_n)
                                sd = math.sqrt(a_eff)
                                for c in range(c_n):
                                    yv[c] = sd * normal(key, base + np.uint64(c))
                            else:
                                for c in range(c_n):
                                    yv[c] = _rect(sat, cy, cx, r0, r1, s0, s1, c)
                                # Take out the few sub-pixels another box also claimed.
                                lost = m & ~mine
                                while lost:
                                    bit = _popcount((lost & (~lost + np.uint64(1))) - np.uint64(1))
                                    lost &= lost - np.uint64(1)
                                    r, s = bit // k, bit % k
                                    for c in range(c_n):
                                        yv[c] -= _rect(sat, cy, cx, r, r + 1, s, s + 1, c)
                                scale = math.sqrt(a_eff / n)
                                for c in range(c_n):
                                    used[cy - lo, cx, c] += yv[c]
                                    yv[c] *= scale
                            for c in range(c_n):
                                sy[cy - lo, cx, c] += yv[c]
                                acc[c] += yv[c]
                        for c in range(c_n):
                            ybuf[i, j, dy, c] = acc[c]
        full = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - k * k)
        for cy in range(lo, hi):
            for cx in range(wa):
                rem = 1.0 - cover[cy, cx]
                # The uncovered rest takes the sub-pixels no piece holds, scaled to variance ``rem``
                # (a fresh draw only when it holds none), so it persists like the pieces.
                n_rem = k * k - _popcount(claimed[cy - lo, cx] & ~conflict[cy - lo, cx] & full)
                draw = cover[cy, cx] > 0.0 and rem > 0.0
                base = off_rem + np.uint64((cy * wa + cx) * c_n)
                for c in range(c_n):
                    v = sy[cy - lo, cx, c]
                    if draw:
                        if n_rem > 0:
                            total = sat[cy, cx, k - 1, k - 1, c]
                            v += math.sqrt(rem / n_rem) * (total - used[cy - lo, cx, c])
                        else:
                            v += math.sqrt(rem) * normal(key, base + np.uint64(c))
                    d[cy, cx, c] = xa[cy, cx, c] - v

    @nb.njit(parallel=True, cache=True)
    def scatter(ex, ey, cell0, reach, sat, xa, sel, key, side, off_rem):
        # Each band owns a fixed range of anchor rows, so no two threads write one cell, and every
        # cell takes its pieces in raster order: the bits do not depend on the bands or threads.
        h, w = cell0.shape[0], cell0.shape[1]
        ha, wa, c_n = xa.shape
        cover = np.zeros((ha, wa), np.float64)
        ybuf = np.empty((h, w, side, c_n), np.float32)
        d = np.empty((ha, wa, c_n), np.float32)
        bands = min(BANDS, ha)
        for p in nb.prange(bands):
            band(p * ha // bands, (p + 1) * ha // bands, ex, ey, cell0, reach, sat, xa, sel, key,
                  side, off_rem, cover, ybuf, d)
        return cover, ybuf, d

    @nb.njit(parallel=True, cache=True)
    def gather(ex, ey, cell0, cover, d, ybuf, key, offset):
        """Brownian-bridge pieces ``a (x - sum Y) + Y`` gathered per pixel and normalised by
        the square root of the pixel's area; fresh noise where there is none."""
        c_n = channels if channels else d.shape[2]
        h, w = cell0.shape[0], cell0.shape[1]
        out = np.empty((h, w, c_n), np.float32)
        traced = np.zeros((h, w), np.bool_)
        for i in nb.prange(h):
            acc = np.empty(c_n, np.float64)
            for j in range(w):
                cx0 = cell0[i, j, 0]
                area = 0.0
                if cx0 >= 0:
                    acc[:] = 0.0
                    cy0, ncx, ncy = cell0[i, j, 1], cell0[i, j, 2], cell0[i, j, 3]
                    for dy in range(ncy):
                        cy = cy0 + dy
                        oy = min(ey[i + 1, j], cy + 0.5) - max(ey[i, j], cy - 0.5)
                        for c in range(c_n):
                            acc[c] += ybuf[i, j, dy, c]
                        for dx in range(ncx):
                            cx = cx0 + dx
                            ox = min(ex[i, j + 1], cx + 0.5) - max(ex[i, j], cx - 0.5)
                            if ox <= 0.0 or oy <= 0.0:
                                continue
                            a_eff = ox * oy / max(1.0, cover[cy, cx])
                            area += a_eff
                            for c in range(c_n):
                                acc[c] += a_eff * d[cy, cx, c]
                if area > 0.0:
                    inv = 1.0 / math.sqrt(area)
                    for c in range(c_n):
                        out[i, j, c] = acc[c] * inv
                    traced[i, j] = True
                else:
                    base = offset + np.uint64((i * w + j) * c_n)
                    for c in range(c_n):
                        out[i, j, c] = normal(key, base + np.uint64(c))
        return out, traced

    return scatter, gather


_KERNELS = {4: _channel_kernels(4), 0: _channel_kernels(0)}


def box_integrate(ax: np.ndarray, ay: np.ndarray, usable: np.ndarray, xa: np.ndarray,
                  sat: np.ndarray, key: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """Noise of one frame from the anchor.

    Args:
        ax, ay: ``(H, W)`` float64 anchor positions of the frame's pixel centres.
        usable: ``(H, W)`` bool, pixels allowed to draw on the anchor.
        xa: ``(Ha, Wa, C)`` float32 anchor noise.
        sat: ``(Ha, Wa, k, k, C)`` float32 inclusive per-cell summed-area tables of the
            sub-pixel fluctuation ``Z`` (i.i.d. N(0, 1), independent of ``xa``); ``k <= 8``.
        key: uint64 frame key for counter-based draws.

    Returns:
        ``(noise (H, W, C) float32, traced (H, W) bool)``.
    """
    h, w = ax.shape
    ha, wa, c_n = xa.shape
    ex, ey = _edge_tables(ax, ay)
    cell0, reach, side = _layout(ex, ey, usable, ha, wa)
    # Counter ranges: pieces, then cell remainders, then fresh pixels.
    off_rem = np.uint64(h * w * MAX_SIDE * MAX_SIDE * c_n)
    scatter, gather = _KERNELS.get(c_n, _KERNELS[0])
    cover, ybuf, d = scatter(ex, ey, cell0, reach, sat, xa, _row_select(sat.shape[2]), key, side,
                             off_rem)
    return gather(ex, ey, cell0, cover, d, ybuf, key, off_rem + np.uint64(ha * wa * c_n))


@nb.njit(parallel=True, cache=True)
def summed_area_tables(z):
    """Inclusive per-cell summed-area tables of ``(H, W, k, k, C)`` values:
    ``T[..., r, s, :] = sum_{r' <= r, s' <= s} z[..., r', s', :]``."""
    h, w, k, _, c_n = z.shape
    sat = np.empty((h, w, k, k, c_n), np.float32)
    for i in nb.prange(h):
        for j in range(w):
            for r in range(k):
                for s in range(k):
                    for c in range(c_n):
                        v = z[i, j, r, s, c]
                        if r > 0:
                            v += sat[i, j, r - 1, s, c]
                        if s > 0:
                            v += sat[i, j, r, s - 1, c]
                        if r > 0 and s > 0:
                            v -= sat[i, j, r - 1, s - 1, c]
                        sat[i, j, r, s, c] = v
    return sat

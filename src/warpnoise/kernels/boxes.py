"""Numba kernels of the ``persistent`` method: the whole warping step on the CPU.

See :mod:`warpnoise.methods.persistent` for the mathematics. One step runs four phases, each a
parallel loop over pixel rows or a fixed set of anchor-row bands:

1. :func:`advance`: compose the accumulated map with the backward flow, find the usable pixels
   (inside the frame, nearest source traced, not disoccluded by the forward-backward test);
2. :func:`pixel_boxes`: each usable pixel's pre-image box, built only from neighbours on its own
   side of a motion discontinuity (:func:`_linked`), and its first anchor cell and cell counts;
3. ``scatter``: per anchor-row band, the claims of sub-pixels, the coverage of cells, each
   piece's white-noise integral ``Y`` and the per-cell remainders;
4. ``gather``: the Brownian-bridge pieces summed per pixel.

Every array a step writes lives in a :class:`Workspace` made once per frame size and reused, so a
step allocates nothing but the noise it returns (fresh pages cost more than the warp on virtual
machines). Layouts are channels-last where the inner loops run over channels, and four channels
get a specialised copy of the hot loops. The scatters run in bands of anchor rows, in parallel;
each band visits, in raster order, only the blocks of pixels whose boxes reach it, so every cell
receives its contributions in the same order and results are bit-identical for any thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from ..flow import FB_ALPHA, FB_BETA
from .hashing import normal

MAX_SIDE = 3  # a pre-image box may span at most 3 x 3 anchor cells
BANDS = 4  # anchor-row bands of the scatters, run in parallel (the bits do not depend on it)
BLOCK = 32  # pixels per row block whose reach in anchor rows is recorded
# A neighbour is on the other side of a motion discontinuity when its spacing differs from the
# spacings next to it by more than this fraction of them (at least this many anchor pixels).
JUMP = 0.25
# A cell remainder below this area is rounding, not an uncovered part (no draw for it).
REM_EPS = 1e-9
# Fresh-noise counter ranges per pixel: pieces (3 x 3 cells), then cell remainders, then pixels.
_SLOTS = MAX_SIDE * MAX_SIDE


@nb.njit(inline="always", cache=True)
def _popcount(x: np.uint64) -> int:
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@nb.njit(inline="always", cache=True)
def _joined(ref: int, c: int, links, y0: int, x0: int, y1: int, x1: int) -> bool:
    """Whether corner ``c`` of the 2 x 2 pixels ``(y0|y1, x0|x1)`` (0: top-left, 1: top-right,
    2: bottom-left, 3: bottom-right) lies on corner ``ref``'s side of every motion discontinuity:
    the same pixel, a linked edge, or two linked edges around the block (``links`` bit 0: linked
    to the right neighbour, bit 1: to the one below)."""
    if c == ref:
        return True
    top = links[y0, x0] & 1 != 0
    left = links[y0, x0] & 2 != 0
    right = links[y0, x1] & 2 != 0
    bottom = links[y1, x0] & 1 != 0
    lo, hi = min(ref, c), max(ref, c)
    if lo == 0 and hi == 1:
        return top
    if lo == 0 and hi == 2:
        return left
    if lo == 1 and hi == 3:
        return right
    if lo == 2 and hi == 3:
        return bottom
    if lo == 0:  # and 3
        return (top and right) or (left and bottom)
    return (top and left) or (right and bottom)  # 1 and 2


@nb.njit(parallel=True, cache=True)
def advance(prev_map, traced, links, bx, by, fx, fy, has_forward, new_map, usable):
    """One step of the accumulated map and the pixels it can serve, written into ``new_map``
    ``(2, H, W)`` and ``usable`` ``(H, W)``.

    Convention:
        ``prev_map`` ``(2, H, W)`` holds frame t-1's anchor positions (x, y), ``traced`` and
        ``links`` its traced pixels and links (:func:`pixel_boxes`); ``bx, by`` is frame t's
        backward flow and ``fx, fy`` frame t-1's forward flow (read only if ``has_forward``).

    The map is ``A_t(x) = A_{t-1}(x + b(x))``, the displacement ``A - grid`` interpolated
    bilinearly (clamped to the frame, as :func:`warpnoise.flow.compose_map`) over the pixels
    around the source that lie on one side of every motion discontinuity: the *reference* (the
    heaviest traced pixel that, with a forward flow, passes the forward-backward test of
    :func:`warpnoise.flow.forward_backward_occlusion`) and those joined to it by links, weights
    renormalised. Interpolating across a discontinuity would give a position that belongs to
    neither layer. A pixel is usable when its source lies in the frame and it has a reference.
    """
    h, w = traced.shape
    px, py = prev_map[0], prev_map[1]
    for i in nb.prange(h):
        wts = np.empty(4)
        for j in range(w):
            bxv = np.float64(bx[i, j])
            byv = np.float64(by[i, j])
            sx = j + bxv
            sy = i + byv
            cx = min(max(sx, 0.0), w - 1.0)
            cy = min(max(sy, 0.0), h - 1.0)
            x0 = min(math.floor(cx), max(w - 2, 0))
            y0 = min(math.floor(cy), max(h - 2, 0))
            x1 = min(x0 + 1, w - 1)
            y1 = min(y0 + 1, h - 1)
            ux = cx - x0
            uy = cy - y0
            wts[0], wts[1] = (1 - ux) * (1 - uy), ux * (1 - uy)
            wts[2], wts[3] = (1 - ux) * uy, ux * uy
            ref = -1
            best = 0.0
            if -0.5 <= sx <= w - 0.5 and -0.5 <= sy <= h - 0.5:
                b2 = bxv * bxv + byv * byv
                for c in range(4):
                    r = y1 if c >= 2 else y0
                    q = x1 if c & 1 else x0
                    if wts[c] <= best or not traced[r, q]:
                        continue
                    if has_forward:
                        fxv = np.float64(fx[r, q])
                        fyv = np.float64(fy[r, q])
                        ex = bxv + fxv
                        ey = byv + fyv
                        if ex * ex + ey * ey > FB_ALPHA * (b2 + fxv * fxv + fyv * fyv) + FB_BETA:
                            continue
                    ref = c
                    best = wts[c]
            usable[i, j] = ref >= 0
            dx = 0.0
            dy = 0.0
            if ref >= 0:
                total = 0.0
                for c in range(4):
                    r = y1 if c >= 2 else y0
                    q = x1 if c & 1 else x0
                    if wts[c] > 0.0 and traced[r, q] and _joined(ref, c, links, y0, x0, y1, x1):
                        total += wts[c]
                        dx += wts[c] * (px[r, q] - q)
                        dy += wts[c] * (py[r, q] - r)
                dx /= total
                dy /= total
            new_map[0, i, j] = sx + dx
            new_map[1, i, j] = sy + dy


@nb.njit(inline="always", cache=True)
def _close(sx: float, sy: float, nx: float, ny: float) -> bool:
    """Whether spacing ``(sx, sy)`` continues the neighbouring spacing ``(nx, ny)``."""
    ex = sx - nx
    ey = sy - ny
    tol = JUMP * max(1.0, math.sqrt(nx * nx + ny * ny))
    return ex * ex + ey * ey <= tol * tol


@nb.njit(inline="always", cache=True)
def _linked(ax, ay, usable, i0: int, j0: int, di: int, dj: int) -> bool:
    """Whether pixel ``p0 = (i0, j0)`` and its neighbour ``p1 = p0 + (di, dj)`` (right or below)
    lie on one side of a motion discontinuity, so that their box edge is the midpoint of their
    anchor positions.

    They do not when either is unusable, when their order along the axis is reversed in the
    anchor (a fold), or when their spacing jumps: it differs by more than ``JUMP`` from the
    spacing just outside the pair on *both* sides that exist (one side is enough at a border).
    Both pixels evaluate the same pair in the same order, so they always agree.
    """
    h, w = usable.shape
    i1, j1 = i0 + di, j0 + dj
    if not (usable[i0, j0] and usable[i1, j1]):
        return False
    sx = ax[i1, j1] - ax[i0, j0]
    sy = ay[i1, j1] - ay[i0, j0]
    if (sx if dj else sy) <= 0.0:
        return False
    ia, ja, ib, jb = i0 - di, j0 - dj, i1 + di, j1 + dj
    compared = False
    if ia >= 0 and ja >= 0 and usable[ia, ja]:
        if _close(sx, sy, ax[i0, j0] - ax[ia, ja], ay[i0, j0] - ay[ia, ja]):
            return True
        compared = True
    if ib < h and jb < w and usable[ib, jb]:
        if _close(sx, sy, ax[ib, jb] - ax[i1, j1], ay[ib, jb] - ay[i1, j1]):
            return True
        compared = True
    return not compared


@nb.njit(inline="always", cache=True)
def _extent(a: float, lo_mid: float, hi_mid: float, lo_ok: bool, hi_ok: bool
            ) -> tuple[float, float]:
    """A box's extent on one axis from its centre ``a`` and the midpoints to its neighbours: a
    broken side mirrors the other side, and with both broken the extent is ``a -+ 0.5``."""
    if lo_ok and hi_ok:
        return lo_mid, hi_mid
    if lo_ok:
        return lo_mid, a + (a - lo_mid)
    if hi_ok:
        return a - (hi_mid - a), hi_mid
    return a - 0.5, a + 0.5


@nb.njit(parallel=True, cache=True)
def pixel_boxes(ax, ay, usable, ha, wa, edges, cell0, reach, links):
    """Each usable pixel's pre-image box ``edges[i, j] = (x0, x1, y0, y1)`` in anchor pixels, its
    first cell and cell counts ``cell0[i, j] = (cx0, cy0, ncx, ncy)`` (``cx0 = -1``: fresh noise,
    for pixels not usable, folded, outside the anchor or wider than 3 x 3 cells) and, per block of
    ``BLOCK`` pixels of a row, the range ``[lo, hi)`` of anchor rows its boxes touch, and its
    ``links`` (bit 0: linked to the right neighbour, bit 1: to the one below), which the next
    step's :func:`advance` reads. Returns the largest box side in cells.

    A box edge shared with a linked neighbour (:func:`_linked`) is the midpoint of the two anchor
    positions, the same float for both boxes, so linked boxes tile; a broken side mirrors the
    opposite one (:func:`_extent`).
    """
    h, w = usable.shape
    nb_ = reach.shape[1]
    row_side = np.zeros(h, np.int32)
    for i in nb.prange(h):
        for b in range(nb_):
            lo, hi = ha, 0
            for j in range(b * BLOCK, min((b + 1) * BLOCK, w)):
                cell0[i, j, 0] = -1
                links[i, j] = 0
                if not usable[i, j]:
                    continue
                a = ax[i, j]
                lo_ok = j > 0 and _linked(ax, ay, usable, i, j - 1, 0, 1)
                right = j < w - 1 and _linked(ax, ay, usable, i, j, 0, 1)
                x0, x1 = _extent(a, 0.5 * (ax[i, max(j - 1, 0)] + a),
                                 0.5 * (a + ax[i, min(j + 1, w - 1)]), lo_ok, right)
                a = ay[i, j]
                lo_ok = i > 0 and _linked(ax, ay, usable, i - 1, j, 1, 0)
                hi_ok = i < h - 1 and _linked(ax, ay, usable, i, j, 1, 0)
                y0, y1 = _extent(a, 0.5 * (ay[max(i - 1, 0), j] + a),
                                 0.5 * (a + ay[min(i + 1, h - 1), j]), lo_ok, hi_ok)
                links[i, j] = (1 if right else 0) | (2 if hi_ok else 0)
                edges[i, j, 0], edges[i, j, 1], edges[i, j, 2], edges[i, j, 3] = x0, x1, y0, y1
                if not (x1 > x0 and y1 > y0):
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
    return max(1, row_side.max())


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
def row_select(k: int) -> np.ndarray:
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
    def band(p, lo, hi, edges, cell0, reach, sat, xa, sel, key, side, off_rem, cover, claimed,
             conflict, sy, used, ybuf, d, pool, pool_off, counts):
        """Everything that scatters into the anchor rows ``[lo, hi)``, pixels in raster order.

        First the claims and coverage of the band's cells (a sub-pixel claimed twice is given to
        nobody). Then each piece's white-noise integral ``Y``, independent of the anchor noise with
        variance exactly its (rescaled) area, summed per pixel and cell row into ``ybuf`` and per
        cell. A piece holding no sub-pixel of its own (a sliver) takes the band's next value of
        ``pool`` (fresh N(0, 1) drawn for this step), or a counter-based draw once the band's part
        of the pool is spent. Last, the part of each cell that no pre-image covers completes the
        partition with variance ``1 - cover``, and ``d = x - sum(Y)`` is stored so that a piece is
        ``a d + Y``.
        """
        c_n = channels if channels else xa.shape[2]
        h, w = cell0.shape[0], cell0.shape[1]
        wa = xa.shape[1]
        k = sat.shape[2]
        for cy in range(lo, hi):
            for cx in range(wa):
                cover[cy, cx] = 0.0
                claimed[cy, cx] = 0
                conflict[cy, cx] = 0
                for c in range(c_n):
                    sy[cy, cx, c] = 0.0
                    used[cy, cx, c] = 0.0
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
                        oy, r0, r1 = _span(edges[i, j, 2], edges[i, j, 3], cy, k)
                        for cx in range(cx0, cx0 + ncx):
                            ox, s0, s1 = _span(edges[i, j, 0], edges[i, j, 1], cx, k)
                            if ox * oy <= 0.0:
                                continue
                            m = _rect_mask(sel, r0, r1, s0, s1)
                            conflict[cy, cx] |= claimed[cy, cx] & m
                            claimed[cy, cx] |= m
                            cover[cy, cx] += ox * oy
        acc = np.empty(c_n, np.float64)
        yv = np.empty(c_n, np.float64)
        taken = 0
        room = pool_off[p + 1] - pool_off[p]
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
                        oy, r0, r1 = _span(edges[i, j, 2], edges[i, j, 3], cy, k)
                        acc[:] = 0.0
                        for cx in range(cx0, cx0 + ncx):
                            ox, s0, s1 = _span(edges[i, j, 0], edges[i, j, 1], cx, k)
                            a = ox * oy
                            if a <= 0.0:
                                continue
                            a_eff = a / max(1.0, cover[cy, cx])
                            m = _rect_mask(sel, r0, r1, s0, s1)
                            mine = m & ~conflict[cy, cx]
                            n = _popcount(mine)
                            if n == 0:
                                sd = math.sqrt(a_eff)
                                if taken < room:
                                    q = pool_off[p] + taken
                                    for c in range(c_n):
                                        yv[c] = sd * pool[q, c]
                                else:
                                    base = np.uint64(((i * w + j) * _SLOTS + dy * MAX_SIDE
                                                      + cx - cx0) * c_n)
                                    for c in range(c_n):
                                        yv[c] = sd * normal(key, base + np.uint64(c))
                                taken += 1
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
                                    used[cy, cx, c] += yv[c]
                                    yv[c] *= scale
                            for c in range(c_n):
                                sy[cy, cx, c] += yv[c]
                                acc[c] += yv[c]
                        for c in range(c_n):
                            ybuf[i, j, dy, c] = acc[c]
        counts[p] = taken
        full = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - k * k)
        for cy in range(lo, hi):
            for cx in range(wa):
                rem = 1.0 - cover[cy, cx]
                # The uncovered rest takes the sub-pixels no piece holds, scaled to variance ``rem``
                # (a fresh draw only when it holds none), so it persists like the pieces.
                draw = cover[cy, cx] > 0.0 and rem > REM_EPS
                n_rem = k * k - _popcount(claimed[cy, cx] & ~conflict[cy, cx] & full)
                base = off_rem + np.uint64((cy * wa + cx) * c_n)
                for c in range(c_n):
                    v = sy[cy, cx, c]
                    if draw:
                        if n_rem > 0:
                            total = sat[cy, cx, k - 1, k - 1, c]
                            v += math.sqrt(rem / n_rem) * (total - used[cy, cx, c])
                        else:
                            v += math.sqrt(rem) * normal(key, base + np.uint64(c))
                    d[cy, cx, c] = xa[cy, cx, c] - v

    @nb.njit(parallel=True, cache=True)
    def scatter(edges, cell0, reach, sat, xa, sel, key, side, off_rem, cover, claimed, conflict,
                sy, used, ybuf, d, pool, pool_off, counts):
        # Each band owns a fixed range of anchor rows, so no two threads write one cell, and every
        # cell takes its pieces in raster order: the bits do not depend on the bands or threads.
        ha = xa.shape[0]
        bands = len(counts)
        for p in nb.prange(bands):
            band(p, p * ha // bands, (p + 1) * ha // bands, edges, cell0, reach, sat, xa, sel,
                 key, side, off_rem, cover, claimed, conflict, sy, used, ybuf, d, pool, pool_off,
                 counts)

    @nb.njit(parallel=True, cache=True)
    def gather(edges, cell0, cover, d, ybuf, key, offset, out, traced):
        """Brownian-bridge pieces ``a (x - sum Y) + Y`` gathered per pixel and normalised by
        the square root of the pixel's area into ``out`` ``(C, H, W)``; fresh noise where there
        is none. ``traced`` marks the pixels that drew on the anchor."""
        c_n = channels if channels else d.shape[2]
        h, w = cell0.shape[0], cell0.shape[1]
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
                        oy = min(edges[i, j, 3], cy + 0.5) - max(edges[i, j, 2], cy - 0.5)
                        for c in range(c_n):
                            acc[c] += ybuf[i, j, dy, c]
                        for dx in range(ncx):
                            cx = cx0 + dx
                            ox = min(edges[i, j, 1], cx + 0.5) - max(edges[i, j, 0], cx - 0.5)
                            if ox <= 0.0 or oy <= 0.0:
                                continue
                            a_eff = ox * oy / max(1.0, cover[cy, cx])
                            area += a_eff
                            for c in range(c_n):
                                acc[c] += a_eff * d[cy, cx, c]
                if area > 0.0:
                    inv = 1.0 / math.sqrt(area)
                    for c in range(c_n):
                        out[c, i, j] = acc[c] * inv
                    traced[i, j] = True
                else:
                    base = offset + np.uint64((i * w + j) * c_n)
                    for c in range(c_n):
                        out[c, i, j] = normal(key, base + np.uint64(c))
                    traced[i, j] = False

    return scatter, gather


_KERNELS = {4: _channel_kernels(4), 0: _channel_kernels(0)}


@dataclass
class Workspace:
    """Every array one step of the CPU kernel writes, made once per frame size and reused.

    ``maps``/``traced`` are double buffers (a step reads one and writes the other); the rest are
    scratch. ``counts`` holds each band's number of slivers in the last step, which sizes the next
    step's pool of fresh normals.
    """

    maps: np.ndarray  # (2, 2, H, W) float64
    traced: np.ndarray  # (2, H, W) bool
    usable: np.ndarray  # (H, W) bool
    links: np.ndarray  # (H, W) uint8, bit 0: linked to the right neighbour, bit 1: below
    edges: np.ndarray  # (H, W, 4) float64
    cell0: np.ndarray  # (H, W, 4) int32
    reach: np.ndarray  # (H, blocks, 2) int32
    cover: np.ndarray  # (Ha, Wa) float64
    claimed: np.ndarray  # (Ha, Wa) uint64
    conflict: np.ndarray  # (Ha, Wa) uint64
    sy: np.ndarray  # (Ha, Wa, C) float64
    used: np.ndarray  # (Ha, Wa, C) float64
    ybuf: np.ndarray  # (H, W, 3, C) float32
    d: np.ndarray  # (Ha, Wa, C) float32
    counts: np.ndarray  # (BANDS,) int64
    current: int = 0  # which half of ``maps``/``traced`` holds the current frame
    pool: Any = None  # (N, C) float32 torch buffer of the slivers' fresh normals

    @classmethod
    def empty(cls, channels: int, height: int, width: int) -> Workspace:
        h, w, c = height, width, channels
        return cls(
            maps=np.empty((2, 2, h, w)), traced=np.empty((2, h, w), np.bool_),
            usable=np.empty((h, w), np.bool_), links=np.empty((h, w), np.uint8),
            edges=np.empty((h, w, 4)),
            cell0=np.empty((h, w, 4), np.int32),
            reach=np.empty((h, (w + BLOCK - 1) // BLOCK, 2), np.int32),
            cover=np.empty((h, w)), claimed=np.empty((h, w), np.uint64),
            conflict=np.empty((h, w), np.uint64), sy=np.empty((h, w, c)),
            used=np.empty((h, w, c)), ybuf=np.empty((h, w, MAX_SIDE, c), np.float32),
            d=np.empty((h, w, c), np.float32),
            counts=np.full(min(BANDS, h), (2 * h * w) // min(BANDS, h) + 1, np.int64),
        )

    def reset(self) -> None:
        """Start from the anchor: every pixel at its own centre, every pixel traced."""
        _, h, w = self.traced.shape
        self.current = 0
        self.maps[0, 0] = np.arange(w, dtype=np.float64)[None, :]
        self.maps[0, 1] = np.arange(h, dtype=np.float64)[:, None]
        self.traced[0] = True
        self.links[:] = 3
        self.links[:, -1] &= 2
        self.links[-1, :] &= 1

    def pool_offsets(self) -> np.ndarray:
        """Each band's share of the next pool: a fifth more than its last count, plus a margin."""
        room = self.counts + self.counts // 5 + 256
        return np.concatenate([[0], np.cumsum(room)]).astype(np.int64)


def integrate(ws: Workspace, usable: np.ndarray, ax: np.ndarray, ay: np.ndarray, xa: np.ndarray,
              sat: np.ndarray, key: np.uint64, pool: np.ndarray, pool_off: np.ndarray,
              out: np.ndarray, traced: np.ndarray) -> None:
    """Noise of one frame from the anchor into ``out`` ``(C, H, W)`` and ``traced`` ``(H, W)``.

    Args:
        ax, ay: ``(H, W)`` float64 anchor positions of the frame's pixel centres.
        usable: ``(H, W)`` bool, pixels allowed to draw on the anchor.
        xa: ``(Ha, Wa, C)`` float32 anchor noise.
        sat: ``(Ha, Wa, k, k, C)`` float32 inclusive per-cell summed-area tables of the
            sub-pixel fluctuation ``Z`` (i.i.d. N(0, 1), independent of ``xa``); ``k <= 8``.
        key: uint64 frame key for counter-based draws.
        pool: ``(N, C)`` float32 fresh N(0, 1) for slivers, band ``p`` taking rows
            ``pool_off[p]:pool_off[p + 1]``.
    """
    h, w = ax.shape
    ha, wa, c_n = xa.shape
    side = pixel_boxes(ax, ay, usable, ha, wa, ws.edges, ws.cell0, ws.reach, ws.links)
    off_rem = np.uint64(h * w * _SLOTS * c_n)
    scatter, gather = _KERNELS.get(c_n, _KERNELS[0])
    scatter(ws.edges, ws.cell0, ws.reach, sat, xa, row_select(sat.shape[2]), key, side, off_rem,
            ws.cover, ws.claimed, ws.conflict, ws.sy, ws.used, ws.ybuf, ws.d, pool, pool_off,
            ws.counts)
    gather(ws.edges, ws.cell0, ws.cover, ws.d, ws.ybuf, key, off_rem + np.uint64(ha * wa * c_n),
           out, traced)


def step(ws: Workspace, bx: np.ndarray, by: np.ndarray, fx: np.ndarray | None,
         fy: np.ndarray | None, xa: np.ndarray, sat: np.ndarray, key: np.uint64,
         pool: np.ndarray, pool_off: np.ndarray) -> np.ndarray:
    """One whole warping step: advance the map held in ``ws`` by the backward flow ``bx, by``
    (with frame t-1's forward flow ``fx, fy`` for occlusion, if given) and integrate the frame's
    noise. Returns the new ``(C, H, W)`` float32 noise; ``ws`` then holds frame t's map and
    traced pixels."""
    cur, nxt = ws.current, 1 - ws.current
    h, w = ws.usable.shape
    has_forward = fx is not None
    dummy = np.zeros((1, 1), np.float32)
    advance(ws.maps[cur], ws.traced[cur], ws.links, bx, by, fx if has_forward else dummy,
            fy if has_forward else dummy, has_forward, ws.maps[nxt], ws.usable)
    out = np.empty((xa.shape[2], h, w), np.float32)
    integrate(ws, ws.usable, ws.maps[nxt, 0], ws.maps[nxt, 1], xa, sat, key, pool, pool_off, out,
              ws.traced[nxt])
    ws.current = nxt
    return out


def box_integrate(ax: np.ndarray, ay: np.ndarray, usable: np.ndarray, xa: np.ndarray,
                  sat: np.ndarray, key: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """:func:`integrate` with a fresh workspace and only counter-based draws: ``(noise (C, H, W),
    traced (H, W))``. For tests and one-off calls; the warper keeps its workspace."""
    h, w = ax.shape
    c_n = xa.shape[2]
    ws = Workspace.empty(c_n, h, w)
    out = np.empty((c_n, h, w), np.float32)
    traced = np.empty((h, w), np.bool_)
    integrate(ws, usable, ax, ay, xa, sat, key, np.zeros((0, c_n), np.float32),
              np.zeros(len(ws.counts) + 1, np.int64), out, traced)
    return out, traced


@nb.njit(parallel=True, cache=True)
def summed_area_tables(z):
    """Turn ``(H, W, k, k, C)`` values into their inclusive per-cell summed-area tables, in
    place: ``T[..., r, s, :] = sum_{r' <= r, s' <= s} z[..., r', s', :]``."""
    h, w, k, _, c_n = z.shape
    for i in nb.prange(h):
        for j in range(w):
            for r in range(k):
                for s in range(1, k):
                    for c in range(c_n):
                        z[i, j, r, s, c] += z[i, j, r, s - 1, c]
            for r in range(1, k):
                for s in range(k):
                    for c in range(c_n):
                        z[i, j, r, s, c] += z[i, j, r - 1, s, c]
    return z

"""Numba kernels of the ``persistent`` method: the whole warping step on the CPU.

See :mod:`warpnoise.methods.persistent` for the mathematics. One step runs these phases, each a
parallel loop over pixel rows or a fixed set of anchor-row bands:

1. :func:`advance`: compose the accumulated map with the backward flow without interpolating
   across motion discontinuities, and give each pixel its role: drawn on the anchor, drawn on the
   previous frame's loose noise, or fresh (:data:`ANCHORED`, :data:`LOOSE`, :data:`FRESH`);
2. :func:`pixel_boxes`: each pixel's pre-image box, built only from neighbours on its own side of
   a motion discontinuity (:func:`_linked`), its first source cell and cell counts;
3. ``scatter``: per band of source rows, the claims of sub-pixels, the coverage of cells, each
   piece's white-noise integral ``Y`` and the per-cell remainders;
4. ``gather``: the Brownian-bridge pieces summed per pixel.

Phases 2-4 run once for the anchored pixels (source: the anchor and its persistent sub-pixel
field) and, when there are any, once for the loose pixels (source: the previous frame's loose
noise, with fresh bridge increments). Every array a step writes lives in a :class:`Workspace`
made once per frame size and reused, so a step allocates nothing but the noise it returns (fresh
pages cost more than the warp on virtual machines). The inner loops run over channels, their
count read from the arrays: one compiled copy serves every channel count. The scatters run in
bands of source rows, in parallel; each band visits, in raster order, only the blocks of pixels
whose boxes reach it, so every cell receives its contributions in the same order and results are
bit-identical for any thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic

from ..flow import FB_ALPHA, FB_BETA
from . import ANCHORED, FRESH, JUMP, LOOSE, MAX_SIDE, REM_EPS, SLOTS, counter_offsets, value_masks
from .hashing import fill_normal, normals

#: Source-row bands of the scatters, run in parallel: as many threads can share the scatters. A
#: constant, not the thread count, so the bits do not depend on the machine (a pixel whose box
#: straddles two bands sums its pieces in two parts, so another count rounds differently).
BANDS = 16
BLOCK = 32  # pixels per row block whose reach in source rows is recorded
_NO_FLOW = np.zeros((1, 1), np.float32)  # stands in for absent forward flows


@intrinsic
def _ctpop(typingctx, x):
    """The CPU's population count (LLVM ``ctpop``)."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return x(x), codegen


@intrinsic
def _cttz(typingctx, x):
    """Count of trailing zero bits (LLVM ``cttz``; ``x`` must not be zero)."""

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return x(x), codegen


@intrinsic
def _prefetch(typingctx, addr):
    """Ask the CPU to bring the cache line at address ``addr`` in (LLVM ``prefetch``, for reading,
    into every cache level); a hint, with no effect on results."""

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.inttoptr(args[0], i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return nb.types.void(addr), codegen


#: Pixels ahead whose source cells the pieces pass asks the CPU to fetch: under rotation or zoom
#: a row of pixels crosses the source diagonally, a pattern the hardware prefetchers miss.
AHEAD = 8


@nb.njit(inline="always", cache=True)
def _fetch_cells(cell0, i: int, j: int, wa: int, base: int, cell_bytes: int) -> None:
    """Prefetch the ``cell_bytes`` of an array laid out per source cell (``(Ha, Wa, ...)``
    starting at address ``base``) for every cell of pixel ``(i, j)``'s box."""
    cx0 = np.int64(cell0[i, j, 0])
    if cx0 < 0:
        return
    cy0 = np.int64(cell0[i, j, 1])
    for cy in range(cy0, cy0 + np.int64(cell0[i, j, 3])):
        for cx in range(cx0, cx0 + np.int64(cell0[i, j, 2])):
            start = base + (cy * wa + cx) * cell_bytes
            for line in range(0, cell_bytes, 64):
                _prefetch(np.uint64(start + line))


@nb.njit(inline="always", cache=True)
def _popcount(x: np.uint64) -> int:
    return int(_ctpop(x))


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
def advance(prev_map, traced, links, bx, by, fx, fy, has_forward, new_map, src, role):
    """One step of the accumulated map and each pixel's role, written into ``new_map`` and
    ``src`` ``(2, H, W)`` and ``role`` ``(H, W)``. Returns the number of loose pixels.

    Convention:
        ``prev_map`` ``(2, H, W)`` holds frame t-1's anchor positions (x, y), ``traced`` and
        ``links`` its anchored pixels and links (:func:`pixel_boxes`); ``bx, by`` is frame t's
        backward flow and ``fx, fy`` frame t-1's forward flow (read only if ``has_forward``).

    Of the (up to four) pixels that bilinear sampling at the source ``x + b(x)`` weighs, those
    that pass the forward-backward test of :func:`warpnoise.flow.forward_backward_occlusion` are
    candidates. With an anchored candidate the pixel is ``ANCHORED``: its map is
    ``A_t(x) = A_{t-1}(x + b(x))``, the displacement ``A - grid`` mixed bilinearly (weights
    renormalised) over the heaviest anchored candidate and the anchored pixels linked to it, never
    across a motion discontinuity (that would give a position of neither layer). Otherwise, with a
    loose candidate (a pixel of frame t-1 that did not draw on the anchor: disoccluded or entered
    since), it is ``LOOSE`` and its source position ``x + b(x)`` goes to ``src``; with none, or a
    source outside the frame, ``FRESH``.
    """
    h, w = traced.shape
    px, py = prev_map[0], prev_map[1]
    n_loose = 0
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
            ref_loose = -1
            best_loose = 0.0
            if -0.5 <= sx <= w - 0.5 and -0.5 <= sy <= h - 0.5:
                b2 = bxv * bxv + byv * byv
                for c in range(4):
                    if wts[c] <= 0.0:
                        continue
                    r = y1 if c >= 2 else y0
                    q = x1 if c & 1 else x0
                    if has_forward:
                        fxv = np.float64(fx[r, q])
                        fyv = np.float64(fy[r, q])
                        ex = bxv + fxv
                        ey = byv + fyv
                        if ex * ex + ey * ey > FB_ALPHA * (b2 + fxv * fxv + fyv * fyv) + FB_BETA:
                            continue
                    if traced[r, q]:
                        if wts[c] > best:
                            ref, best = c, wts[c]
                    elif wts[c] > best_loose:
                        ref_loose, best_loose = c, wts[c]
            dx = 0.0
            dy = 0.0
            if ref >= 0:
                role[i, j] = ANCHORED
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
            elif ref_loose >= 0:
                role[i, j] = LOOSE
                src[0, i, j] = sx
                src[1, i, j] = sy
                n_loose += 1
            else:
                role[i, j] = FRESH
            new_map[0, i, j] = sx + dx
            new_map[1, i, j] = sy + dy
    return n_loose


@nb.njit(inline="always", cache=True)
def _close(sx: float, sy: float, nx: float, ny: float) -> bool:
    """Whether spacing ``(sx, sy)`` continues the neighbouring spacing ``(nx, ny)``."""
    ex = sx - nx
    ey = sy - ny
    tol = JUMP * max(1.0, math.sqrt(nx * nx + ny * ny))
    return ex * ex + ey * ey <= tol * tol


@nb.njit(inline="always", cache=True)
def _linked(ax, ay, role, want: int, i0: int, j0: int, di: int, dj: int) -> bool:
    """Whether pixel ``p0 = (i0, j0)`` and its neighbour ``p1 = p0 + (di, dj)`` (right or below)
    lie on one side of a motion discontinuity, so that their box edge is the midpoint of their
    anchor positions.

    They do not when either has another role than ``want``, when their order along the axis is
    reversed in the
    anchor (a fold), or when their spacing jumps: it differs by more than ``JUMP`` from the
    spacing just outside the pair on *both* sides that exist (one side is enough at a border).
    Both pixels evaluate the same pair in the same order, so they always agree.
    """
    h, w = role.shape
    i1, j1 = i0 + di, j0 + dj
    if role[i0, j0] != want or role[i1, j1] != want:
        return False
    sx = ax[i1, j1] - ax[i0, j0]
    sy = ay[i1, j1] - ay[i0, j0]
    if (sx if dj else sy) <= 0.0:
        return False
    ia, ja, ib, jb = i0 - di, j0 - dj, i1 + di, j1 + dj
    compared = False
    if ia >= 0 and ja >= 0 and role[ia, ja] == want:
        if _close(sx, sy, ax[i0, j0] - ax[ia, ja], ay[i0, j0] - ay[ia, ja]):
            return True
        compared = True
    if ib < h and jb < w and role[ib, jb] == want:
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
def pixel_boxes(ax, ay, role, want, ha, wa, edges, cell0, reach, links):
    """For each pixel of role ``want``: its pre-image box ``edges[i, j] = (x0, x1, y0, y1)`` in
    source pixels, its first cell and cell counts ``cell0[i, j] = (cx0, cy0, ncx, ncy)`` in the
    ``ha x wa`` source (``cx0 = -1``: no box, for pixels of other roles, folded, outside the
    source or wider than 3 x 3 cells) and its ``links`` (bit 0: linked to the right neighbour,
    bit 1: to the one below), which the next step's :func:`advance` reads; per block of
    ``BLOCK`` pixels of a row, the range ``[lo, hi)`` of source rows its boxes touch.

    A box edge shared with a linked neighbour (:func:`_linked`) is the midpoint of the two
    positions, the same float for both boxes, so linked boxes tile; a broken side mirrors the
    opposite one (:func:`_extent`).
    """
    h, w = role.shape
    nb_ = reach.shape[1]
    # Each link once (a pixel's box needs four, each shared with a neighbour), then the boxes.
    for i in nb.prange(h):
        for j in range(w):
            bits = 0
            if role[i, j] == want:
                if j < w - 1 and _linked(ax, ay, role, want, i, j, 0, 1):
                    bits = 1
                if i < h - 1 and _linked(ax, ay, role, want, i, j, 1, 0):
                    bits |= 2
            links[i, j] = bits
    for i in nb.prange(h):
        for b in range(nb_):
            lo, hi = ha, 0
            for j in range(b * BLOCK, min((b + 1) * BLOCK, w)):
                cell0[i, j, 0] = -1
                if role[i, j] != want:
                    continue
                a = ax[i, j]
                x0, x1 = _extent(a, 0.5 * (ax[i, max(j - 1, 0)] + a),
                                 0.5 * (a + ax[i, min(j + 1, w - 1)]),
                                 j > 0 and links[i, j - 1] & 1 != 0, links[i, j] & 1 != 0)
                a = ay[i, j]
                y0, y1 = _extent(a, 0.5 * (ay[max(i - 1, 0), j] + a),
                                 0.5 * (a + ay[min(i + 1, h - 1), j]),
                                 i > 0 and links[i - 1, j] & 2 != 0, links[i, j] & 2 != 0)
                # Stored as float32 (a thousandth of a pixel at 8K); every pass reads these.
                x0, x1 = float(np.float32(x0)), float(np.float32(x1))
                y0, y1 = float(np.float32(y0)), float(np.float32(y1))
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
            reach[i, b, 0], reach[i, b, 1] = lo, hi


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


@nb.njit(inline="always", cache=True)
def _lowest(bits: np.uint64) -> int:
    """Index of the lowest set bit (``bits`` not zero)."""
    return int(_cttz(bits))


@nb.njit(inline="always", cache=True)
def _sum_values(field, cy: int, cx: int, bits: np.uint64, out) -> None:
    """``out[c] = sum of field[cy, cx, e, c]`` over the set bits ``e`` of ``bits``."""
    out[:] = 0.0
    while bits:
        e = _lowest(bits)
        bits &= bits - np.uint64(1)
        for c in range(out.shape[0]):
            out[c] += field[cy, cx, e, c]


@nb.njit(inline="always", cache=True)
def _claim(masks, r0: int, r1: int, s0: int, s1: int, k: int) -> np.uint64:
    """The field values a piece claims (:func:`warpnoise.kernels.value_masks`)."""
    return masks[((r0 * (k + 1) + r1) * (k + 1) + s0) * (k + 1) + s1]


@nb.njit(inline="always", cache=True)
def _open_cell(cy: int, cx: int, field, k: int, key: np.uint64, off_rem: np.uint64, cover, icov,
               claimed, conflict, sy, yv, c_n: int) -> None:
    """Start cell ``(cy, cx)``'s sums once its coverage is known: the rescaling ``1 / max(1,
    cover)`` of its pieces, and ``sy`` set to the part of the cell no pre-image covers, which
    completes the partition with variance ``1 - cover``. That part takes the sub-pixels no piece
    owns, scaled to its variance (a fresh draw only when it owns none), so it persists like the
    pieces."""
    icov[cy, cx] = 1.0 / max(1.0, cover[cy, cx])
    rem = 1.0 - cover[cy, cx]
    if rem <= REM_EPS:
        for c in range(c_n):
            sy[cy, cx, c] = 0.0
        return
    free = np.uint64(0)
    if field.shape[2] > 0:
        full = (np.uint64(1) << np.uint64(k * k)) - np.uint64(1)
        free = full & ~(claimed[cy, cx] & ~conflict[cy, cx])
    n_rem = _popcount(free)
    if n_rem:
        _sum_values(field, cy, cx, free, yv)
        scale = math.sqrt(rem / n_rem)
    else:
        normals(key, off_rem + np.uint64((cy * sy.shape[1] + cx) * c_n), yv, c_n)
        scale = math.sqrt(rem)
    for c in range(c_n):
        sy[cy, cx, c] = yv[c] * scale


def _channel_kernels(channels: int) -> tuple[Any, Any]:
    """The scatter and gather kernels, with the channel count fixed at compile time (``0``: read
    from the arrays). Loops over channels unroll and vectorise when their length is a constant;
    numba caches the copies apart, as their closures differ. Only the generic copy is used
    (:data:`_KERNELS`); the benchmark of the first run builds a fixed one to compare."""

    @nb.njit(parallel=True, cache=True)
    def scatter(edges, cell0, reach, field, k, masks, xa, restrict, barred, key, off_piece,
                off_rem, cover, icov, claimed, conflict, sy, ybuf, d, rows, stamp, tag):
        """Everything that scatters into the source rows, in bands ``[rows[p], rows[p + 1])``,
        pixels in raster order, in three walks over each band's pieces.

        1. Claims and coverage: a piece claims the values of its cell's field that
           :func:`warpnoise.kernels.value_masks` gives it (sub-pixels whose centres it holds, or a
           sliver's strip or corner); a value claimed twice is given to nobody.
        2. Each piece's white-noise integral ``Y``, independent of the source noise with variance
           exactly its (rescaled) area: the sum of the values it owns, scaled to that variance, or
           a counter-based draw when it owns none (``field`` empty: the loose pass, where every
           ``Y`` is fresh as in Deng et al.). ``Y`` is summed per pixel into ``ybuf[..., p % 2,
           :]`` (a box spans at most two bands, of different parity) and per cell into ``sy``.
           A cell's first piece also opens the cell (:func:`_open_cell`): its rescaling and the
           part no pre-image covers, while its field values are in cache.
        3. ``d = x - sum(Y)`` per opened cell, so that a piece is ``a d + Y``.

        ``stamp`` ``(Ha, Wa)`` tells which walk last saw a cell: ``tag`` (claimed) or ``tag + 1``
        (opened); a cell no walk of this pass has seen is reset at its first claim, so the walks
        touch only the cells a pass uses. Cells ``barred`` (with ``restrict``) are
        not sources.
        """
        # Each band owns a fixed range of source rows, so no two threads write one cell, and every
        # cell takes its pieces in raster order: the bits do not depend on the threads.
        # (One function, not a band function called here: numba cannot cache a kernel that
        # calls another closure, and would compile this one again in every process.)
        for p in nb.prange(len(rows) - 1):
            lo, hi = rows[p], rows[p + 1]
            c_n = channels if channels else xa.shape[0]
            h, w = cell0.shape[0], cell0.shape[1]
            wa = xa.shape[2]
            has_field = field.shape[2] > 0
            slot = p % 2
            nb_ = reach.shape[1]
            for i in range(h):
                for b in range(nb_):
                    if reach[i, b, 0] >= hi or reach[i, b, 1] <= lo:
                        continue
                    for j in range(b * BLOCK, min((b + 1) * BLOCK, w)):
                        cx0 = np.int64(cell0[i, j, 0])
                        if cx0 < 0:
                            continue
                        cy0, ncx, ncy = cell0[i, j, 1], cell0[i, j, 2], cell0[i, j, 3]
                        for cy in range(max(cy0, lo), min(cy0 + ncy, hi)):
                            oy, r0, r1 = _span(edges[i, j, 2], edges[i, j, 3], cy, k)
                            for cx in range(cx0, cx0 + ncx):
                                if restrict and barred[cy, cx]:
                                    continue
                                ox, s0, s1 = _span(edges[i, j, 0], edges[i, j, 1], cx, k)
                                if ox * oy <= 0.0:
                                    continue
                                if stamp[cy, cx] != tag:
                                    stamp[cy, cx] = tag
                                    cover[cy, cx] = 0.0
                                    claimed[cy, cx] = 0
                                    conflict[cy, cx] = 0
                                cover[cy, cx] += ox * oy
                                if has_field:
                                    m = _claim(masks, r0, r1, s0, s1, k)
                                    conflict[cy, cx] |= claimed[cy, cx] & m
                                    claimed[cy, cx] |= m
            acc = np.empty(c_n, np.float64)
            yv = np.empty(c_n, np.float64)
            field_at = field.ctypes.data
            field_bytes = field.shape[2] * field.shape[3] * field.itemsize
            opened = tag + np.uint32(1)
            # The same walk as the claims pass: one loop with a pass flag measured 6% slower.
            for i in range(h):
                for b in range(nb_):
                    if reach[i, b, 0] >= hi or reach[i, b, 1] <= lo:
                        continue
                    for j in range(b * BLOCK, min((b + 1) * BLOCK, w)):
                        cx0 = np.int64(cell0[i, j, 0])
                        if cx0 < 0:
                            continue
                        cy0, ncx, ncy = cell0[i, j, 1], cell0[i, j, 2], cell0[i, j, 3]
                        if j + AHEAD < w:
                            _fetch_cells(cell0, i, j + AHEAD, wa, field_at, field_bytes)
                        if max(cy0, lo) >= min(cy0 + ncy, hi):
                            continue
                        acc[:] = 0.0
                        for cy in range(max(cy0, lo), min(cy0 + ncy, hi)):
                            dy = cy - cy0
                            oy, r0, r1 = _span(edges[i, j, 2], edges[i, j, 3], cy, k)
                            for cx in range(cx0, cx0 + ncx):
                                if restrict and barred[cy, cx]:
                                    continue
                                ox, s0, s1 = _span(edges[i, j, 0], edges[i, j, 1], cx, k)
                                a = ox * oy
                                if a <= 0.0:
                                    continue
                                if stamp[cy, cx] != opened:
                                    stamp[cy, cx] = opened
                                    _open_cell(cy, cx, field, k, key, off_rem, cover, icov, claimed,
                                               conflict, sy, yv, c_n)
                                a_eff = a * icov[cy, cx]
                                mine = np.uint64(0)
                                if has_field:
                                    mine = _claim(masks, r0, r1, s0, s1, k) & ~conflict[cy, cx]
                                n = _popcount(mine)
                                if n:
                                    _sum_values(field, cy, cx, mine, yv)
                                    scale = math.sqrt(a_eff / n)
                                else:
                                    normals(key, off_piece + np.uint64(
                                        ((i * w + j) * SLOTS + dy * MAX_SIDE + cx - cx0) * c_n),
                                        yv, c_n)
                                    scale = math.sqrt(a_eff)
                                for c in range(c_n):
                                    v = yv[c] * scale
                                    sy[cy, cx, c] += v
                                    acc[c] += v
                        for c in range(c_n):
                            ybuf[i, j, slot, c] = acc[c]
            # A sweep of the band's stamps: cheap even when few cells are sources (loose pass).
            for cy in range(lo, hi):
                for cx in range(wa):
                    if stamp[cy, cx] == opened:
                        for c in range(c_n):
                            d[cy, cx, c] = xa[c, cy, cx] - sy[cy, cx, c]

    @nb.njit(parallel=True, cache=True)
    def gather(edges, cell0, icov, d, ybuf, band_of, restrict, barred, key, off_fresh, anchored,
               out, keep, traced):
        """Brownian-bridge pieces ``a (x - sum Y) + Y`` gathered per pixel and normalised by the
        square root of the pixel's area into ``out`` ``(C, H, W)``.

        ``anchored`` (the anchored pass): every pixel is written; those with no area get fresh
        noise, ``traced`` marks the others, and the fresh values also go to ``keep`` (the loose
        noise the next step may carry). Otherwise (the loose pass) only pixels with an area are
        written, to ``out`` and ``keep``.
        """
        c_n = channels if channels else d.shape[2]
        h, w = cell0.shape[0], cell0.shape[1]
        for i in nb.prange(h):
            acc = np.empty(c_n, np.float64)
            for j in range(w):
                cx0 = np.int64(cell0[i, j, 0])
                area = 0.0
                if cx0 >= 0:
                    cy0, ncx, ncy = cell0[i, j, 1], cell0[i, j, 2], cell0[i, j, 3]
                    first = band_of[cy0] % 2
                    last = band_of[cy0 + ncy - 1] % 2
                    for c in range(c_n):
                        acc[c] = ybuf[i, j, first, c]
                        if last != first:
                            acc[c] += ybuf[i, j, last, c]
                    for dy in range(ncy):
                        cy = cy0 + dy
                        oy = min(edges[i, j, 3], cy + 0.5) - max(edges[i, j, 2], cy - 0.5)
                        for dx in range(ncx):
                            cx = cx0 + dx
                            if restrict and barred[cy, cx]:
                                continue
                            ox = min(edges[i, j, 1], cx + 0.5) - max(edges[i, j, 0], cx - 0.5)
                            if ox <= 0.0 or oy <= 0.0:
                                continue
                            a_eff = ox * oy * icov[cy, cx]
                            area += a_eff
                            for c in range(c_n):
                                acc[c] += a_eff * d[cy, cx, c]
                if area > 0.0:
                    inv = 1.0 / math.sqrt(area)
                    for c in range(c_n):
                        out[c, i, j] = acc[c] * inv
                    if anchored:
                        traced[i, j] = True
                    else:
                        for c in range(c_n):
                            keep[c, i, j] = out[c, i, j]
                elif anchored:
                    normals(key, off_fresh + np.uint64((i * w + j) * c_n), acc, c_n)
                    for c in range(c_n):
                        out[c, i, j] = acc[c]
                        keep[c, i, j] = acc[c]
                    traced[i, j] = False

    return scatter, gather


#: The compiled scatter and gather by channel count (0: any). A copy with four channels fixed at
#: compile time ran 4% faster at 4 x 256^2 (``benchmarks/bench_first_run.py --specialisation``)
#: but costs a second compile (about 23 CPU seconds, a minute on a busy machine) the first time a
#: process meets another channel count: every count shares the generic copy.
_KERNELS = {0: _channel_kernels(0)}


@dataclass
class Workspace:
    """Every array one step of the CPU kernel writes, made once per frame size and reused.

    ``maps``, ``traced`` and ``keep`` are double buffers (a step reads one half and writes the
    other); the rest are scratch. The layouts are as small as the arithmetic allows: box edges in
    float32, first cells in int16, per-cell sums of ``Y`` in float32.
    """

    maps: np.ndarray  # (2, 2, H, W) float64 anchor positions
    traced: np.ndarray  # (2, H, W) bool, pixels drawn on the anchor
    keep: np.ndarray  # (2, C, H, W) float32, the loose pixels' noise
    src: np.ndarray  # (2, H, W) float64, loose pixels' source positions
    role: np.ndarray  # (H, W) uint8: FRESH, ANCHORED or LOOSE
    links: np.ndarray  # (H, W) uint8, bit 0: linked to the right neighbour, bit 1: below
    loose_links: np.ndarray  # (H, W) uint8, the loose pass's links
    edges: np.ndarray  # (H, W, 4) float32
    cell0: np.ndarray  # (H, W, 4) int16
    reach: np.ndarray  # (H, blocks, 2) int32
    cover: np.ndarray  # (Ha, Wa) float64
    icov: np.ndarray  # (Ha, Wa) float64, 1 / max(1, cover): the rescaling of a cell's pieces
    claims: np.ndarray  # (2, Ha, Wa) uint64: claimed, and claimed more than once
    sy: np.ndarray  # (Ha, Wa, C) float32
    ybuf: np.ndarray  # (H, W, 2, C) float32, per pixel and band parity
    d: np.ndarray  # (Ha, Wa, C) float32
    rows: np.ndarray  # (bands + 1,) int64, the first source row of each band
    band_of: np.ndarray  # (Ha,) int64, the band of each source row
    stamp: np.ndarray  # (Ha, Wa) uint32, which walk of which pass last saw a cell
    current: int = 0  # which half of the double buffers holds the current frame
    tag: int = 0  # the last pass's stamp base

    @classmethod
    def empty(cls, channels: int, height: int, width: int) -> Workspace:
        h, w, c = height, width, channels
        if max(h, w) > 2**15 - 1:
            raise ValueError(f"frames up to 32767 pixels a side, got {h}x{w}")
        # Bands at least MAX_SIDE rows high: a box then spans at most two, of different parity.
        bands = max(1, min(BANDS, h // MAX_SIDE))
        rows = np.array([p * h // bands for p in range(bands + 1)], np.int64)
        return cls(
            maps=np.empty((2, 2, h, w)), traced=np.empty((2, h, w), np.bool_),
            keep=np.empty((2, c, h, w), np.float32), src=np.empty((2, h, w)),
            role=np.empty((h, w), np.uint8), links=np.empty((h, w), np.uint8),
            loose_links=np.empty((h, w), np.uint8), edges=np.empty((h, w, 4), np.float32),
            cell0=np.empty((h, w, 4), np.int16),
            reach=np.empty((h, (w + BLOCK - 1) // BLOCK, 2), np.int32),
            cover=np.empty((h, w)), icov=np.empty((h, w)), claims=np.empty((2, h, w), np.uint64),
            sy=np.empty((h, w, c), np.float32), ybuf=np.empty((h, w, 2, c), np.float32),
            d=np.empty((h, w, c), np.float32), rows=rows,
            band_of=np.searchsorted(rows, np.arange(h), side="right") - 1,
            stamp=np.zeros((h, w), np.uint32),
        )

    def used(self) -> np.ndarray:
        """``(Ha, Wa)`` bool: the cells the last pass used as sources. Only there are ``cover``,
        ``icov``, ``claims``, ``sy`` and ``d`` the last pass's."""
        return self.stamp >= self.tag

    def reset(self) -> None:
        """Start from the anchor: every pixel at its own centre, anchored and linked."""
        _, h, w = self.traced.shape
        self.current = 0
        self.maps[0, 0] = np.arange(w, dtype=np.float64)[None, :]
        self.maps[0, 1] = np.arange(h, dtype=np.float64)[:, None]
        self.traced[0] = True
        self.links[:] = 3
        self.links[:, -1] &= 2
        self.links[-1, :] &= 1


_NO_FIELD = np.zeros((1, 1, 0, 1), np.float32)
_NO_CELLS = np.zeros((1, 1), np.bool_)


def integrate(ws: Workspace, ax: np.ndarray, ay: np.ndarray, role: int, xa: np.ndarray,
              field: np.ndarray, k: int, barred: np.ndarray | None, key: np.uint64, base: int,
              out: np.ndarray, keep: np.ndarray, traced: np.ndarray, links: np.ndarray) -> int:
    """Integrate the pixels of one role on their source, into ``out`` ``(C, H, W)``.

    Args:
        ax, ay: ``(H, W)`` float64 source positions of the frame's pixel centres.
        role: which pixels of ``ws.role`` to integrate (``ANCHORED`` fills every other pixel
            with fresh noise and marks ``traced``; ``LOOSE`` writes only its own pixels).
        xa: ``(C, Ha, Wa)`` float32 source noise (i.i.d. N(0, 1)).
        field: ``(Ha, Wa, E, C)`` float32 persistent values independent of ``xa``
            (:func:`field_size`; ``E = 0``: every ``Y`` fresh); ``k`` sub-pixels per axis.
        barred: ``(Ha, Wa)`` bool cells that are not sources, or None.
        key, base: every fresh draw is ``normal(key, counter)``, counters from ``base`` laid out
            by :func:`warpnoise.kernels.counter_offsets` (the same in every backend).
        keep: ``(C, H, W)`` float32 receiving the loose (not anchored) pixels' noise.

    Returns:
        The size of the counter range used, from ``base``.
    """
    h, w = ax.shape
    c_n, ha, wa = xa.shape
    pixel_boxes(ax, ay, ws.role, role, ha, wa, ws.edges, ws.cell0, ws.reach, links)
    _, rem, fresh, end = counter_offsets(h, w, c_n, base)
    off_rem, off_fresh = np.uint64(rem), np.uint64(fresh)
    scatter, gather = _KERNELS.get(c_n, _KERNELS[0])
    restrict = barred is not None
    cells = barred if restrict else _NO_CELLS
    cl = ws.claims
    # Two stamps per pass; wrapping to 0 would meet stamps of the first passes, so restart.
    ws.tag = ws.tag + 2 if ws.tag < 2**32 - 8 else 2
    if ws.tag == 2:
        ws.stamp[:] = 0
    scatter(ws.edges, ws.cell0, ws.reach, field, k, value_masks(k), xa, restrict, cells, key,
            np.uint64(base), off_rem, ws.cover, ws.icov, cl[0], cl[1], ws.sy, ws.ybuf, ws.d,
            ws.rows, ws.stamp, np.uint32(ws.tag))
    gather(ws.edges, ws.cell0, ws.icov, ws.d, ws.ybuf, ws.band_of, restrict, cells, key,
           off_fresh, role == ANCHORED, out, keep, traced)
    return end - base


def step(ws: Workspace, bx: np.ndarray, by: np.ndarray, fx: np.ndarray | None,
         fy: np.ndarray | None, xa: np.ndarray, field: np.ndarray, k: int,
         key: np.uint64) -> np.ndarray:
    """One whole warping step: advance the map held in ``ws`` by the backward flow ``bx, by``
    (with frame t-1's forward flow ``fx, fy`` for occlusion, if given), integrate the anchored
    pixels on the anchor (``xa`` ``(C, H, W)``, ``field``) and the loose ones on the previous
    frame's loose noise. Returns the new ``(C, H, W)`` float32 noise; ``ws`` then holds frame t.
    """
    cur, nxt = ws.current, 1 - ws.current
    c_n, h, w = xa.shape
    has_forward = fx is not None
    n_loose = advance(ws.maps[cur], ws.traced[cur], ws.links, bx, by,
                      fx if has_forward else _NO_FLOW, fy if has_forward else _NO_FLOW, has_forward,
                      ws.maps[nxt], ws.src, ws.role)
    out = np.empty((c_n, h, w), np.float32)
    used = integrate(ws, ws.maps[nxt, 0], ws.maps[nxt, 1], ANCHORED, xa, field, k, None, key, 0,
                     out, ws.keep[nxt], ws.traced[nxt], ws.links)
    if n_loose:
        integrate(ws, ws.src[0], ws.src[1], LOOSE, ws.keep[cur], _NO_FIELD, k, ws.traced[cur],
                  key, used, out, ws.keep[nxt], ws.traced[nxt], ws.loose_links)
        np.bitwise_or(ws.links, ws.loose_links, out=ws.links)
    ws.current = nxt
    return out


def box_integrate(ax: np.ndarray, ay: np.ndarray, usable: np.ndarray, xa: np.ndarray,
                  field: np.ndarray, k: int, key: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """The anchored integration alone, in a fresh workspace: ``(noise (C, H, W), traced (H, W))``
    for the ``usable`` pixels at anchor positions ``ax, ay``. For tests and one-off calls."""
    h, w = ax.shape
    c_n = xa.shape[0]
    ws = Workspace.empty(c_n, h, w)
    ws.role[:] = np.where(usable, ANCHORED, FRESH)
    out = np.empty((c_n, h, w), np.float32)
    traced = np.empty((h, w), np.bool_)
    integrate(ws, ax, ay, ANCHORED, xa, field, k, None, key, 0, out, ws.keep[0], traced, ws.links)
    return out, traced


def _dispatchers(channels: int) -> dict[str, Any]:
    """The compiled functions a step with ``channels`` channels runs."""
    scatter, gather = _KERNELS.get(channels, _KERNELS[0])
    return {"advance": advance, "pixel_boxes": pixel_boxes, "scatter": scatter, "gather": gather,
            "fill_normal": fill_normal}


def _cached(dispatcher: Any) -> bool | None:
    """Whether numba's on-disk cache holds ``dispatcher`` compiled from this source for this
    machine (None: the cache cannot be read). Reads numba's index as numba does when it loads
    (an index from another source file version reads as empty), without compiling."""
    try:
        cache = dispatcher._cache
        index = cache._cache_file._load_index()
        codegen = dispatcher.targetctx.codegen()
        return any(cache._index_key(key[0], codegen) == key for key in index)
    except Exception:  # numba internals: report "unknown" rather than fail
        return None


def cache_status(channels: int = 4) -> bool | None:
    """Whether every kernel a ``channels``-channel step runs is in numba's on-disk cache, so a new
    process loads it instead of compiling (None: unknown). Every count shares the same kernels
    (:data:`_KERNELS`)."""
    states = [_cached(d) for d in _dispatchers(channels).values()]
    if None in states:
        return None
    return all(states)


def cache_dir() -> str:
    """Where numba keeps this module's compiled kernels (``NUMBA_CACHE_DIR`` if set, else the
    package's ``__pycache__``)."""
    return str(advance._cache._cache_path)

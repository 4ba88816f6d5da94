"""Triton kernels of the ``persistent`` method: the whole warping step on a CUDA device.

The same mathematics as the numba kernel (:mod:`warpnoise.kernels.boxes`; the method is
described in :mod:`warpnoise.methods.persistent`), phase for phase, each phase one kernel over
pixels or source cells:

1. ``advance``: compose the accumulated map with the backward flow without interpolating across
   motion discontinuities, and give each pixel its role (:data:`ANCHORED`, :data:`LOOSE`,
   :data:`FRESH`) from the forward-backward test of each source corner (float64, as the CPU
   kernel);
2. ``links`` and ``boxes``: the pairs of neighbours on one side of every motion discontinuity
   (the ``JUMP`` rule), then each pixel's pre-image box (midpoints where linked, the mirrored
   side where not), its first source cell and cell counts;
3. ``claims``: each piece (box x cell) adds its area to the cell's cover and claims the field
   values of :func:`warpnoise.kernels.value_masks` (the table the CPU kernel reads: sub-pixels
   whose centres it holds, or a sliver's strip or corner), one 64-bit word per cell as there; a
   value claimed twice goes to nobody;
4. ``pieces``: each piece's white-noise integral ``Y``, from the persistent values it owns scaled
   to variance ``a_eff = a / max(1, cover)`` (a fresh draw when it owns none), summed per cell;
5. ``remainders``: per cell, the uncovered rest from the free sub-pixels (fresh if none), and
   ``d = x - sum Y``;
6. ``gather``: the Brownian-bridge pieces ``a_eff d + Y`` summed per pixel, normalised by the
   square root of the pixel's area; pixels without area get fresh noise.

Phases 2-6 run for the anchored pixels (source: the anchor and its persistent field) and again
for the loose pixels (source: the previous frame's loose noise ``keep``, cells anchored at t-1
barred, every ``Y`` fresh). The loose pass is launched every step and its kernels return at once
when ``advance`` counted no loose pixel (a device-side flag: no host sync).

Determinism (same key, same bits on the same GPU): every cross-thread reduction is an integer
atomic. Claims are ``atomic_or`` on int64 bit masks (``conflict |= old & mask``: a bit claimed
twice is set whatever the order). Cover and the per-cell sums of ``Y`` are accumulated in fixed
point, int64 at a scale of ``2^32``: integer addition is associative, so the order of the atomic
adds cannot change a bit. Error analysis of the fixed point: an area is the float64 product of
two spans (differences of float32 edges and half-integers) and rounds to the nearest ``2^-32``
(error ``<= 2^-33``), so a tiled cell's cover is 1 within ``n 2^-33`` for ``n`` pieces
(``< REM_EPS = 1e-9`` for up to 8 pieces; beyond, the "remainder" drawn has variance
``< 1e-9``); covers stay below ``2^31`` (at most one
unit of area per pixel), far from overflow. A ``Y`` is float32; ``Y 2^32`` is an integer for
``|Y| >= 2^-9`` and is truncated below that (error ``< 2^-32``); ``|sum Y|`` is a few units, far
below ``2^31``. The sums are exact where the CPU kernel's float64 sums round, and both end in the
float32 ``d``. Everything else is per pixel or per cell, in a fixed order.

Random draws: ``_normal(key, counter)``, the counter-based normal of every backend
(:func:`warpnoise.rng.counter_normal`: SplitMix64 in uint64, the ziggurat in float64 with the
tables of :func:`warpnoise.rng.ziggurat_table`, each lane's rejection loop a state machine
stepped until every lane has accepted), keyed by the step's key (a host integer derived from
the sequence's root: no host sync) with the CPU kernel's counter per piece, cell or pixel and
channel (:func:`warpnoise.kernels.counter_offsets`), so the fresh draws are the CPU kernel's
values (the same bits for the 98.8% a table look-up accepts, float64 rounding of ``exp`` and
``log`` apart for the rest); the persistent field is drawn by :func:`fill_normal`.

Precision: the geometry is the CPU kernel's, bit for bit. The accumulated map and source
positions are float64, as there, and ``advance``, ``links`` and ``boxes`` repeat its float64
operations in the same order (fused multiply-adds disabled on the GPU for these kernels); box
edges are rounded to float32 as there, and spans and areas are float64 from them. So roles, maps,
links, boxes, first cells and claims are identical to the CPU kernel's (the tests compare them
exactly), and the cover equal within the fixed-point rounding above. The noise arithmetic (``Y``,
``d``, the pieces) is float32 on float32 data, as the CPU kernel's storage.

The kernels compile for CUDA and run, unchanged, in Triton's interpreter on CPU tensors (launched
as ``TRITON_INTERPRET=1`` launches every kernel: :class:`.triton_interp.Interpreted`), which is
how the tests check them on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..flow import FB_ALPHA, FB_BETA
from ..rng import GOLDEN, MIX1, MIX2, ZIG_LAYERS, ZIG_R, ziggurat_table
from . import ANCHORED, FRESH, JUMP, LOOSE, MAX_SIDE, REM_EPS, counter_offsets, value_masks_on
from .triton_interp import Interpreted

__all__ = ["ANCHORED", "FRESH", "LOOSE", "Workspace", "advance", "box_integrate", "fill_normal",
           "integrate", "step"]

FIX = 2.0**32  # fixed-point scale of cover and the per-cell sums of Y
_COLS = 3  # int64 columns per cell before the sums of Y: cover, claimed, conflict (the CPU
# kernel's claims word: one bit per value of the cell's field, MAX_UPSAMPLE keeps it in 64 bits)
# The same constants as the kernels see them (a kernel reads only constexpr globals).
_SIDE_C = tl.constexpr(MAX_SIDE)
_COLS_C = tl.constexpr(_COLS)
_FIX_C = tl.constexpr(FIX)
_FIX_INT_C = tl.constexpr(int(FIX))
# The counter-based normal's constants, uint64 (warpnoise.rng).
_GOLDEN_C = tl.constexpr(GOLDEN)
_MIX1_C = tl.constexpr(MIX1)
_MIX2_C = tl.constexpr(MIX2)
_LAYERS_C = tl.constexpr(ZIG_LAYERS)
_R_C = tl.constexpr(ZIG_R)
# The states of a lane of ``_normal``: accepted (0), a new word to try, a word to decide the
# wedge or go to the tail with, in the tail.
_NEW = tl.constexpr(1)
_DECIDE = tl.constexpr(2)
_TAIL = tl.constexpr(3)
_GPU_BLOCK = 256  # pixels (or cells) per program on the GPU
_INTERPRETED_BLOCK = 1 << 16  # the interpreter pays per operation, not per element


@triton.jit
def _splitmix(x):
    """SplitMix64's output for uint64 state ``x``."""
    z = x + _GOLDEN_C
    z = (z ^ (z >> 30)) * _MIX1_C
    z = (z ^ (z >> 27)) * _MIX2_C
    return z ^ (z >> 31)


@triton.jit
def _uniform(h):
    """(0, 1] from the top 53 bits of uint64 ``h``."""
    return ((h >> 11) + 1).to(tl.float64) * (1.0 / 9007199254740992.0)


@triton.jit
def _normal(key, counter, zig):
    """``normal(key, counter)`` (:func:`warpnoise.rng.counter_normal`) for int64 ``key`` (the
    uint64 key's bits) and int64 counters, float64: the same integer steps and tables
    (``zig``: :func:`warpnoise.rng.ziggurat_table`) as numba's and torch's. Each lane runs the
    ziggurat's rejection loop as a state machine (a new word, the wedge or tail decision, the
    tail), all lanes stepping together until every one has accepted."""
    c = counter.to(tl.uint64, bitcast=True)
    h = _splitmix(key.to(tl.int64).to(tl.uint64, bitcast=True) + c * _GOLDEN_C)
    i = (h & (_LAYERS_C - 1)).to(tl.int32)
    u = 2.0 * ((h >> 11).to(tl.float64) * (1.0 / 9007199254740992.0)) - 1.0
    res = u * 0.0
    state = i * 0 + _NEW
    while tl.max(state) > 0:
        new = state == _NEW
        i = tl.where(new, (h & (_LAYERS_C - 1)).to(tl.int32), i)
        u = tl.where(new, 2.0 * ((h >> 11).to(tl.float64) * (1.0 / 9007199254740992.0)) - 1.0,
                     u)
        xi = tl.load(zig + i)
        fast = new & (tl.abs(u) < tl.load(zig + _LAYERS_C + 1 + i))
        res = tl.where(fast, u * xi, res)
        h = tl.where(new & ~fast, _splitmix(h), h)
        state = tl.where(fast, 0, tl.where(new, _DECIDE, state))
        # Layer 0 goes to the tail; another layer's wedge accepts or starts over.
        decide = state == _DECIDE
        state = tl.where(decide & (i == 0), _TAIL, state)
        wedge = decide & (i != 0)
        x = u * xi
        xn = tl.load(zig + i + 1)
        f0 = tl.exp(-0.5 * (xi * xi - x * x))
        f1 = tl.exp(-0.5 * (xn * xn - x * x))
        took = wedge & (f1 + _uniform(h) * (f0 - f1) < 1.0)
        res = tl.where(took, x, res)
        h = tl.where(wedge & ~took, _splitmix(h), h)
        state = tl.where(took, 0, tl.where(wedge, _NEW, state))
        tail = state == _TAIL
        a = -tl.log(_uniform(h)) / _R_C
        h1 = _splitmix(h)
        b = -tl.log(_uniform(h1))
        took = tail & (b + b > a * a)
        res = tl.where(took, tl.where(u < 0.0, -(_R_C + a), _R_C + a), res)
        h = tl.where(tail, _splitmix(h1), h)
        state = tl.where(took, 0, state)
    return res


@triton.jit
def _fill_kernel(out, key, zig, N, BLOCK: tl.constexpr):
    """``out[i] = normal(key, i)`` (float32) for ``i < N``."""
    q = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out + q, _normal(key, q, zig).to(tl.float32), mask=q < N)


@triton.jit
def _pixels(H, W, BLOCK: tl.constexpr):
    """This program's pixels: flat index, whether in the frame, row, column."""
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    i = p // W
    return p, p < H * W, i, p - i * W


@triton.jit
def _joined(ref, c: tl.constexpr, top, left, right, bottom):
    """Whether corner ``c`` (0: top-left, 1: top-right, 2: bottom-left, 3: bottom-right) lies on
    corner ``ref``'s side of every motion discontinuity (the CPU kernel's ``_joined``)."""
    diag = (top & right) | (left & bottom)
    anti = (top & left) | (right & bottom)
    if c == 0:
        j = tl.where(ref == 1, top, tl.where(ref == 2, left, diag))
    elif c == 1:
        j = tl.where(ref == 0, top, tl.where(ref == 2, anti, right))
    elif c == 2:
        j = tl.where(ref == 0, left, tl.where(ref == 1, anti, bottom))
    else:
        j = tl.where(ref == 0, diag, tl.where(ref == 1, right, bottom))
    return (ref == c) | (j != 0)


@triton.jit
def _advance_kernel(map_prev, traced_prev, links, b, f, map_new, src, role, n_loose, H, W,
                    HAS_FORWARD: tl.constexpr, ALPHA: tl.constexpr, BETA: tl.constexpr,
                    BLOCK: tl.constexpr):
    """Frame t's anchor positions (``map_new``), source positions ``x + b(x)`` (``src``) and
    roles from frame t-1's (``map_prev``, ``traced_prev``, ``links``), the backward flow ``b``
    and, with ``HAS_FORWARD``, frame t-1's forward flow ``f``; ``n_loose`` counts the loose
    pixels. The CPU kernel's ``advance``, float64 operation for operation."""
    n = H * W
    p, on, i, j = _pixels(H, W, BLOCK)
    bx = tl.load(b + p, mask=on, other=0.0).to(tl.float64)
    by = tl.load(b + n + p, mask=on, other=0.0).to(tl.float64)
    sx = j.to(tl.float64) + bx
    sy = i.to(tl.float64) + by
    cx = tl.minimum(tl.maximum(sx, 0.0), (W - 1).to(tl.float64))
    cy = tl.minimum(tl.maximum(sy, 0.0), (H - 1).to(tl.float64))
    x0 = tl.minimum(tl.floor(cx).to(tl.int32), tl.maximum(W - 2, 0))
    y0 = tl.minimum(tl.floor(cy).to(tl.int32), tl.maximum(H - 2, 0))
    x1 = tl.minimum(x0 + 1, W - 1)
    y1 = tl.minimum(y0 + 1, H - 1)
    ux = cx - x0.to(tl.float64)
    uy = cy - y0.to(tl.float64)
    inside = on & (sx >= -0.5) & (sx <= W - 0.5) & (sy >= -0.5) & (sy <= H - 0.5)
    b2 = bx * bx + by * by
    ref = tl.full([BLOCK], -1, tl.int32)
    best = tl.zeros([BLOCK], tl.float64)
    any_loose = p < 0  # all False
    for c in tl.static_range(4):
        r = y1 if c >= 2 else y0
        q = x1 if c % 2 == 1 else x0
        wc = (ux if c % 2 == 1 else 1.0 - ux) * (uy if c >= 2 else 1.0 - uy)
        ok = inside & (wc > 0.0)
        if HAS_FORWARD:
            fx = tl.load(f + r * W + q, mask=on, other=0.0).to(tl.float64)
            fy = tl.load(f + n + r * W + q, mask=on, other=0.0).to(tl.float64)
            ex = bx + fx
            ey = by + fy
            ok = ok & (ex * ex + ey * ey <= ALPHA * (b2 + fx * fx + fy * fy) + BETA)
        tr = tl.load(traced_prev + r * W + q, mask=on, other=0) != 0
        better = ok & tr & (wc > best)
        ref = tl.where(better, c, ref)
        best = tl.where(better, wc, best)
        any_loose = any_loose | (ok & ~tr)
    anchored = ref >= 0
    lk0 = tl.load(links + y0 * W + x0, mask=on, other=0).to(tl.int32)
    top = lk0 & 1
    left = (lk0 >> 1) & 1
    right = (tl.load(links + y0 * W + x1, mask=on, other=0).to(tl.int32) >> 1) & 1
    bottom = tl.load(links + y1 * W + x0, mask=on, other=0).to(tl.int32) & 1
    total = tl.zeros([BLOCK], tl.float64)
    dx = tl.zeros([BLOCK], tl.float64)
    dy = tl.zeros([BLOCK], tl.float64)
    for c in tl.static_range(4):
        r = y1 if c >= 2 else y0
        q = x1 if c % 2 == 1 else x0
        wc = (ux if c % 2 == 1 else 1.0 - ux) * (uy if c >= 2 else 1.0 - uy)
        tr = tl.load(traced_prev + r * W + q, mask=on, other=0) != 0
        inc = anchored & (wc > 0.0) & tr & _joined(ref, c, top, left, right, bottom)
        # Excluded corners add exact zeros: the sums are the CPU kernel's, term for term.
        px = tl.load(map_prev + r * W + q, mask=inc, other=0.0) - q.to(tl.float64)
        py = tl.load(map_prev + n + r * W + q, mask=inc, other=0.0) - r.to(tl.float64)
        total += tl.where(inc, wc, 0.0)
        dx += tl.where(inc, wc * px, 0.0)
        dy += tl.where(inc, wc * py, 0.0)
    total = tl.where(anchored, total, 1.0)
    tl.store(map_new + p, sx + dx / total, mask=on)
    tl.store(map_new + n + p, sy + dy / total, mask=on)
    tl.store(src + p, sx, mask=on)
    tl.store(src + n + p, sy, mask=on)
    loose = ~anchored & any_loose
    tl.store(role + p, tl.where(anchored, 1, tl.where(loose, 2, 0)).to(tl.uint8), mask=on)
    tl.atomic_add(n_loose, tl.sum(loose.to(tl.int32), axis=0))


@triton.jit
def _close(sx, sy, nx, ny, JUMP_: tl.constexpr):
    """Whether spacing ``(sx, sy)`` continues the neighbouring spacing ``(nx, ny)``."""
    ex = sx - nx
    ey = sy - ny
    tol = JUMP_ * tl.maximum(1.0, tl.sqrt(nx * nx + ny * ny))
    return ex * ex + ey * ey <= tol * tol


@triton.jit
def _pair_linked(pos, role, want, i0, j0, DI: tl.constexpr, DJ: tl.constexpr, H, W, on,
                 JUMP_: tl.constexpr):
    """Whether pixel ``(i0, j0)`` and its neighbour ``(i0 + DI, j0 + DJ)`` (right or below) are
    linked: the CPU kernel's ``_linked``, on the same float64 positions ``pos`` ``(2, H, W)``."""
    n = H * W
    i1 = i0 + DI
    j1 = j0 + DJ
    ok = on & (i1 < H) & (j1 < W)
    p0 = i0 * W + j0
    p1 = i1 * W + j1
    ok = ok & (tl.load(role + p0, mask=ok, other=255) == want)
    ok = ok & (tl.load(role + p1, mask=ok, other=255) == want)
    x0 = tl.load(pos + p0, mask=ok, other=0.0)
    y0 = tl.load(pos + n + p0, mask=ok, other=0.0)
    x1 = tl.load(pos + p1, mask=ok, other=0.0)
    y1 = tl.load(pos + n + p1, mask=ok, other=0.0)
    sx = x1 - x0
    sy = y1 - y0
    ok = ok & ((sx if DJ == 1 else sy) > 0.0)
    # The pixel before the pair and the one after it.
    pa = p0 - (DI * W + DJ)
    has_a = ok & (i0 - DI >= 0) & (j0 - DJ >= 0)
    has_a = has_a & (tl.load(role + pa, mask=has_a, other=255) == want)
    ax = x0 - tl.load(pos + pa, mask=has_a, other=0.0)
    ay = y0 - tl.load(pos + n + pa, mask=has_a, other=0.0)
    pb = p1 + (DI * W + DJ)
    has_b = ok & (i1 + DI < H) & (j1 + DJ < W)
    has_b = has_b & (tl.load(role + pb, mask=has_b, other=255) == want)
    bx = tl.load(pos + pb, mask=has_b, other=0.0) - x1
    by = tl.load(pos + n + pb, mask=has_b, other=0.0) - y1
    near = (has_a & _close(sx, sy, ax, ay, JUMP_)) | (has_b & _close(sx, sy, bx, by, JUMP_))
    return ok & (near | ~(has_a | has_b))


@triton.jit
def _links_kernel(pos, role, links, want, H, W, ALL: tl.constexpr, JUMP_: tl.constexpr,
                  BLOCK: tl.constexpr, gate):
    """``links`` of the pixels of role ``want`` (bit 0: linked to the right neighbour, bit 1:
    to the one below); with ``ALL``, 0 for every other pixel too (another role is never
    linked to ``want``, so a later pass of another role finds zeros there)."""
    if tl.load(gate) == 0:
        return
    p, on, i, j = _pixels(H, W, BLOCK)
    right = _pair_linked(pos, role, want, i, j, 0, 1, H, W, on, JUMP_)
    below = _pair_linked(pos, role, want, i, j, 1, 0, H, W, on, JUMP_)
    bits = (right.to(tl.int32) | (below.to(tl.int32) << 1)).to(tl.uint8)
    mine = tl.load(role + p, mask=on, other=255) == want
    if ALL:
        tl.store(links + p, bits, mask=on)
    else:
        tl.store(links + p, bits, mask=on & mine)


@triton.jit
def _extent(pos, p, step, has_lo, has_hi, lo_ok, hi_ok, mine):
    """One axis of a box, in float64, rounded to float32: the midpoints to linked neighbours, a
    broken side mirroring the other, ``a -+ 1/2`` around the position ``a`` when both are
    broken (the CPU kernel's ``_extent``, same operations)."""
    a = tl.load(pos + p, mask=mine, other=0.0)
    lo = tl.load(pos + p - step, mask=mine & has_lo, other=0.0)
    hi = tl.load(pos + p + step, mask=mine & has_hi, other=0.0)
    lo_mid = 0.5 * (tl.where(has_lo, lo, a) + a)
    hi_mid = 0.5 * (a + tl.where(has_hi, hi, a))
    e0 = tl.where(lo_ok, lo_mid, tl.where(hi_ok, a - (hi_mid - a), a - 0.5))
    e1 = tl.where(hi_ok, hi_mid, tl.where(lo_ok, a + (a - lo_mid), a + 0.5))
    return e0.to(tl.float32), e1.to(tl.float32)


@triton.jit
def _boxes_kernel(pos, role, links, want, edges, cell0, H, W, HA, WA, BLOCK: tl.constexpr,
                  gate):
    """Each pixel's box ``edges = (x0, x1, y0, y1)`` (float32, source pixels, as the CPU
    kernel's ``pixel_boxes``) and ``cell0 = (cx0, cy0, ncx, ncy)``, ``cx0 = -1`` for no box
    (other roles, folded, outside the source, wider than 3 x 3 cells)."""
    if tl.load(gate) == 0:
        return
    n = H * W
    p, on, i, j = _pixels(H, W, BLOCK)
    mine = on & (tl.load(role + p, mask=on, other=255) == want)
    lk = tl.load(links + p, mask=mine, other=0).to(tl.int32)
    left = tl.load(links + p - 1, mask=mine & (j > 0), other=0).to(tl.int32) & 1
    up = (tl.load(links + p - W, mask=mine & (i > 0), other=0).to(tl.int32) >> 1) & 1
    x0, x1 = _extent(pos, p, 1, j > 0, j < W - 1, left != 0, (lk & 1) != 0, mine)
    y0, y1 = _extent(pos + n, p, W, i > 0, i < H - 1, up != 0, ((lk >> 1) & 1) != 0, mine)
    ok = mine & (x1 > x0) & (y1 > y0) & (x0 >= -0.5) & (y0 >= -0.5)
    ok = ok & (x1 <= WA - 0.5) & (y1 <= HA - 0.5)
    cx0 = tl.floor(x0.to(tl.float64) + 0.5).to(tl.int32)
    cy0 = tl.floor(y0.to(tl.float64) + 0.5).to(tl.int32)
    ncx = tl.minimum(tl.ceil(x1.to(tl.float64) + 0.5).to(tl.int32) - 1, WA - 1) - cx0 + 1
    ncy = tl.minimum(tl.ceil(y1.to(tl.float64) + 0.5).to(tl.int32) - 1, HA - 1) - cy0 + 1
    ok = ok & (ncx >= 1) & (ncy >= 1) & (ncx <= _SIDE_C) & (ncy <= _SIDE_C)
    tl.store(edges + p, x0, mask=mine)
    tl.store(edges + n + p, x1, mask=mine)
    tl.store(edges + 2 * n + p, y0, mask=mine)
    tl.store(edges + 3 * n + p, y1, mask=mine)
    tl.store(cell0 + p, tl.where(ok, cx0, -1), mask=on)
    tl.store(cell0 + n + p, cy0, mask=on)
    tl.store(cell0 + 2 * n + p, ncx, mask=on)
    tl.store(cell0 + 3 * n + p, ncy, mask=on)


@triton.jit
def _span(lo, hi, c, K: tl.constexpr):
    """Overlap of ``[lo, hi)`` (float32 edges) with cell ``c`` (``[c - 1/2, c + 1/2)``), in
    float64 as the CPU kernel's ``_span``: its length (exact: differences of float32 values
    near each other) and the sub-pixels ``[s0, s1)`` whose centres fall inside."""
    c_lo = c.to(tl.float64) - 0.5
    a = tl.maximum(lo.to(tl.float64), c_lo)
    b = tl.minimum(hi.to(tl.float64), c_lo + 1.0)
    has = b > a
    s0 = tl.minimum(tl.maximum(tl.ceil((a - c_lo) * K - 0.5), 0.0), K).to(tl.int32)
    s1 = tl.minimum(tl.maximum(tl.ceil((b - c_lo) * K - 0.5), 0.0), K).to(tl.int32)
    return tl.where(has, b - a, 0.0), tl.where(has, s0, 0), tl.where(has, s1, 0)


@triton.jit
def _claim(masks, r0, r1, s0, s1, ok, K: tl.constexpr):
    """The field values a piece claims, as int64 bits, read from the table the CPU kernel and the
    torch path read (:func:`warpnoise.kernels.value_masks`); 0 where not ``ok``."""
    at = ((r0 * (K + 1) + r1) * (K + 1) + s0) * (K + 1) + s1
    return tl.load(masks + at, mask=ok, other=0)


@triton.jit
def _load_box(edges, cell0, p, n, valid):
    """A pixel's box as ``_boxes_kernel`` stored it: ``(cx0, cy0, ncx, ncy, x0, x1, y0, y1)``,
    ``cx0 = -1`` where there is none (or not ``valid``)."""
    cx0 = tl.load(cell0 + p, mask=valid, other=-1)
    has = cx0 >= 0
    return (cx0, tl.load(cell0 + n + p, mask=has, other=0),
            tl.load(cell0 + 2 * n + p, mask=has, other=0),
            tl.load(cell0 + 3 * n + p, mask=has, other=0), tl.load(edges + p, mask=has, other=0.0),
            tl.load(edges + n + p, mask=has, other=0.0),
            tl.load(edges + 2 * n + p, mask=has, other=0.0),
            tl.load(edges + 3 * n + p, mask=has, other=0.0))


@triton.jit
def _piece(cx0, cy0, ncx, ncy, x0, x1, y0, y1, barred, dy, dx, WA, K: tl.constexpr,
           RESTRICT: tl.constexpr):
    """Piece ``(dy, dx)`` of each pixel's box (``_load_box``): whether it exists, its cell, its
    float64 area and its sub-pixel ranges."""
    cy = cy0 + dy
    cx = cx0 + dx
    ok = (cx0 >= 0) & (dx < ncx) & (dy < ncy)
    oy, r0, r1 = _span(y0, y1, cy, K)
    ox, s0, s1 = _span(x0, x1, cx, K)
    cell = tl.where(ok, cy * WA + cx, 0)
    if RESTRICT:
        ok = ok & (tl.load(barred + cell, mask=ok, other=1) == 0)
    area = ox * oy
    ok = ok & (area > 0.0)
    return ok, cell, area, r0, r1, s0, s1


@triton.jit
def _a_eff(area, cover):
    """A piece's area rescaled by its cell's cover (fixed point) when that exceeds 1."""
    return area.to(tl.float32) / tl.maximum(cover.to(tl.float32) * (1.0 / _FIX_C), 1.0)


@triton.jit
def _claims_kernel(edges, cell0, barred, cells, masks, H, W, WA, K: tl.constexpr,
                   HAS_FIELD: tl.constexpr, RESTRICT: tl.constexpr, NCOL: tl.constexpr,
                   BLOCK: tl.constexpr, gate):
    """Cover (fixed point) and claims of every piece, by integer atomics."""
    if tl.load(gate) == 0:
        return
    n = H * W
    p, on, _, _ = _pixels(H, W, BLOCK)
    cx0, cy0, ncx, ncy, x0, x1, y0, y1 = _load_box(edges, cell0, p, n, on)
    for dy in range(_SIDE_C):
        for dx in range(_SIDE_C):
            ok, cell, area, r0, r1, s0, s1 = _piece(cx0, cy0, ncx, ncy, x0, x1, y0, y1, barred,
                                                    dy, dx, WA, K, RESTRICT)
            row = cells + cell.to(tl.int64) * NCOL
            tl.atomic_add(row, (area * _FIX_C + 0.5).to(tl.int64), mask=ok)
            if HAS_FIELD:
                m = _claim(masks, r0, r1, s0, s1, ok, K)
                sub = ok & (m != 0)
                # A bit claimed twice is set in conflict whichever claim comes first.
                old = tl.atomic_or(row + 1, m, mask=sub)
                tl.atomic_or(row + 2, old & m, mask=sub & ((old & m) != 0))


@triton.jit
def _owned_sum(field, cell, mine, at, NB: tl.constexpr, E: tl.constexpr, ch, C: tl.constexpr,
               ok):
    """Sum over the set bits ``b < NB`` of ``mine`` (int64) of the persistent values
    ``field[cell, at + b]`` ``(BLOCK, CP)`` (``E`` values per cell), and their count."""
    s = tl.zeros([mine.shape[0], ch.shape[1]], tl.float32)
    cnt = tl.zeros(mine.shape, tl.int32)
    base = (cell.to(tl.int64) * E + at) * C
    for e in range(NB):
        bit = ok & (((mine >> e) & 1) != 0)
        s += tl.load(field + (base + e * C)[:, None] + ch, mask=bit[:, None] & (ch < C),
                     other=0.0)
        cnt += bit.to(tl.int32)
    return s, cnt


@triton.jit
def _lowest(x):
    """Index of the lowest set bit of ``0 < x < 2^32`` (int64), by halving."""
    n = tl.zeros(x.shape, tl.int64)
    for h in tl.static_range(5):
        low = (x & ((1 << (16 >> h)) - 1)) == 0
        n += tl.where(low, 16 >> h, 0)
        x = tl.where(low, x >> (16 >> h), x)
    return n


@triton.jit
def _piece_sum(field, cell, mine, K: tl.constexpr, ch, C: tl.constexpr, ok):
    """The sum and count of the persistent values a piece owns (``mine``, bits of
    :func:`warpnoise.kernels.value_masks`): sub-pixels among the first ``K^2`` bits, or, a
    sliver, at most ``K`` consecutive extras (a strip's, or one corner), found from the lowest
    set bit so that only ``K^2 + K`` values are visited, not ``K^2 + 4K + 4``."""
    E: tl.constexpr = K * K + 4 * K + 4
    s, cnt = _owned_sum(field, cell, mine, 0, K * K, E, ch, C, ok)
    ext = (mine >> (K * K)) & ((1 << (4 * K + 4)) - 1)
    first = _lowest(tl.where(ext != 0, ext, 1))
    s2, cnt2 = _owned_sum(field, cell, ext >> first, K * K + first, K, E, ch, C, ok)
    return s + s2, cnt + cnt2


@triton.jit
def _pieces_kernel(edges, cell0, barred, cells, masks, field, ybuf, key, zig, offset, H, W,
                   WA,
                   K: tl.constexpr, C: tl.constexpr, CP: tl.constexpr, HAS_FIELD: tl.constexpr,
                   RESTRICT: tl.constexpr, NCOL: tl.constexpr, BLOCK: tl.constexpr, gate):
    """Each piece's ``Y``: the sum of the values it owns scaled to variance ``a_eff`` (a fresh
    draw when it owns none), added to its cell's sums (fixed point) and, per pixel and cell row,
    to ``ybuf``."""
    if tl.load(gate) == 0:
        return
    n = H * W
    p, on, _, _ = _pixels(H, W, BLOCK)
    ch = tl.arange(0, CP)[None, :]
    cx0, cy0, ncx, ncy, x0, x1, y0, y1 = _load_box(edges, cell0, p, n, on)
    for dy in range(_SIDE_C):
        acc = tl.zeros([BLOCK, CP], tl.float32)
        for dx in range(_SIDE_C):
            ok, cell, area, r0, r1, s0, s1 = _piece(cx0, cy0, ncx, ncy, x0, x1, y0, y1, barred,
                                                    dy, dx, WA, K, RESTRICT)
            row = cells + cell.to(tl.int64) * NCOL
            a_eff = _a_eff(area, tl.load(row, mask=ok, other=0))
            if HAS_FIELD:
                mine = _claim(masks, r0, r1, s0, s1, ok, K) & ~tl.load(row + 2, mask=ok, other=0)
                s, cnt = _piece_sum(field, cell, mine, K, ch, C, ok)
            else:
                s = tl.zeros([BLOCK, CP], tl.float32)
                cnt = tl.zeros([BLOCK], tl.int32)
            y = s * tl.sqrt(a_eff / tl.maximum(cnt, 1).to(tl.float32))[:, None]
            fresh = ok & (cnt == 0)
            if tl.sum(fresh.to(tl.int32), axis=0) > 0:
                slot = (p * (_SIDE_C * _SIDE_C) + dy * _SIDE_C + dx).to(tl.int64)
                z = _normal(key, offset + (slot * C)[:, None] + ch, zig).to(tl.float32)
                y = tl.where(fresh[:, None], z * tl.sqrt(a_eff)[:, None], y)
            y = tl.where(ok[:, None], y, 0.0)
            tl.atomic_add(row[:, None] + _COLS_C + ch, (y * _FIX_C).to(tl.int64),
                          mask=ok[:, None] & (ch < C))
            acc += y
        tl.store(ybuf + (p * _SIDE_C + dy)[:, None] * C + ch, acc, mask=on[:, None] & (ch < C))


@triton.jit
def _remainders_kernel(cells, field, xa, barred, d, key, zig, offset, NCELL, FULL: tl.constexpr,
                       K: tl.constexpr, C: tl.constexpr, CP: tl.constexpr,
                       HAS_FIELD: tl.constexpr, RESTRICT: tl.constexpr, NCOL: tl.constexpr,
                       REM_EPS_: tl.constexpr, BLOCK: tl.constexpr, gate):
    """Per source cell: the uncovered rest, from the sub-pixels no piece owns scaled to variance
    ``1 - cover`` (fresh if none), and ``d = x - (sum Y + rest)``."""
    if tl.load(gate) == 0:
        return
    q = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    on = q < NCELL
    if RESTRICT:
        on = on & (tl.load(barred + q, mask=on, other=1) == 0)
    ch = tl.arange(0, CP)[None, :]
    cm = on[:, None] & (ch < C)
    row = cells + q.to(tl.int64) * NCOL
    cover = tl.load(row, mask=on, other=0)
    rem_fixed = _FIX_INT_C - cover
    rem = rem_fixed.to(tl.float32) * (1.0 / _FIX_C)
    has_rem = on & (cover > 0) & (rem > REM_EPS_)
    if HAS_FIELD:
        own = tl.load(row + 1, mask=on, other=0) & ~tl.load(row + 2, mask=on, other=0)
        free = FULL & ~own
        s, cnt = _owned_sum(field, q, free, 0, K * K, K * K + 4 * K + 4, ch, C, has_rem)
    else:
        s = tl.zeros([BLOCK, CP], tl.float32)
        cnt = tl.zeros([BLOCK], tl.int32)
    y = s * tl.sqrt(tl.maximum(rem, 0.0) / tl.maximum(cnt, 1).to(tl.float32))[:, None]
    fresh = has_rem & (cnt == 0)
    if tl.sum(fresh.to(tl.int32), axis=0) > 0:
        z = _normal(key, offset + (q.to(tl.int64) * C)[:, None] + ch, zig).to(tl.float32)
        y = tl.where(fresh[:, None], z * tl.sqrt(tl.maximum(rem, 0.0))[:, None], y)
    y = tl.where(has_rem[:, None], y, 0.0)
    sy = tl.load(row[:, None] + _COLS_C + ch, mask=cm, other=0).to(tl.float32) * (
        1.0 / _FIX_C)
    x = tl.load(xa + ch * NCELL + q[:, None], mask=cm, other=0.0)
    tl.store(d + q[:, None] * C + ch, x - (sy + y), mask=cm)


@triton.jit
def _gather_kernel(edges, cell0, barred, cells, d, ybuf, key, zig, offset, out, keep, traced, H, W,
                   WA, K: tl.constexpr, C: tl.constexpr, CP: tl.constexpr,
                   RESTRICT: tl.constexpr, FILL: tl.constexpr, NCOL: tl.constexpr,
                   BLOCK: tl.constexpr, gate):
    """The bridge pieces ``a_eff d + Y`` summed per pixel over ``sqrt(sum a_eff)`` into ``out``
    ``(C, H, W)``. ``FILL`` (the anchored pass): every pixel is written, those without area get
    fresh noise (also into ``keep``), ``traced`` marks the others; otherwise only pixels with an
    area are written, to ``out`` and ``keep``."""
    if tl.load(gate) == 0:
        return
    n = H * W
    p, on, _, _ = _pixels(H, W, BLOCK)
    ch = tl.arange(0, CP)[None, :]
    cm = ch < C
    cx0, cy0, ncx, ncy, x0, x1, y0, y1 = _load_box(edges, cell0, p, n, on)
    has_box = cx0 >= 0
    acc = tl.zeros([BLOCK, CP], tl.float32)
    area = tl.zeros([BLOCK], tl.float32)
    for dy in range(_SIDE_C):
        acc += tl.load(ybuf + (p * _SIDE_C + dy)[:, None] * C + ch,
                       mask=(has_box & (dy < ncy))[:, None] & cm, other=0.0)
        for dx in range(_SIDE_C):
            ok, cell, a, _r0, _r1, _s0, _s1 = _piece(cx0, cy0, ncx, ncy, x0, x1, y0, y1,
                                                     barred, dy, dx, WA, K, RESTRICT)
            a_eff = tl.where(ok, _a_eff(a, tl.load(cells + cell.to(tl.int64) * NCOL, mask=ok,
                                                   other=0)), 0.0)
            area += a_eff
            acc += a_eff[:, None] * tl.load(d + cell[:, None] * C + ch, mask=ok[:, None] & cm,
                                            other=0.0)
    has = area > 0.0
    val = acc * (1.0 / tl.sqrt(tl.where(has, area, 1.0)))[:, None]
    at = ch * n + p[:, None]
    if FILL:
        fresh = on & ~has
        if tl.sum(fresh.to(tl.int32), axis=0) > 0:
            z = _normal(key, offset + (p.to(tl.int64) * C)[:, None] + ch, zig).to(tl.float32)
            val = tl.where(fresh[:, None], z, val)
            tl.store(keep + at, z, mask=fresh[:, None] & cm)
        tl.store(out + at, val, mask=on[:, None] & cm)
        tl.store(traced + p, has, mask=on)
    else:
        tl.store(out + at, val, mask=has[:, None] & cm)
        tl.store(keep + at, val, mask=has[:, None] & cm)


@triton.jit
def _zero_kernel(buf, size, BLOCK: tl.constexpr, gate):
    """``buf[:size] = 0`` (int64), unless ``gate`` is 0."""
    if tl.load(gate) == 0:
        return
    q = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(buf + q, tl.zeros([BLOCK], tl.int64), mask=q < size)


@dataclass
class Workspace:
    """Every buffer one step of the Triton kernels writes, on the device, made once per frame
    size and reused (as the CPU kernel's :class:`warpnoise.kernels.boxes.Workspace`).

    ``maps``, ``traced`` and ``keep`` are double buffers (a step reads one half and writes the
    other); the rest are scratch.
    """

    maps: Tensor  # (2, 2, H, W) float64 anchor positions, x then y
    src: Tensor  # (2, H, W) float64 source positions x + b(x), read by the loose pass
    traced: Tensor  # (2, H, W) bool, pixels drawn on the anchor
    keep: Tensor  # (2, C, H, W) float32, the loose pixels' noise
    role: Tensor  # (H, W) uint8: FRESH, ANCHORED or LOOSE
    links: Tensor  # (H, W) uint8, bit 0: linked to the right neighbour, bit 1: below
    edges: Tensor  # (4, H, W) float32: x0, x1, y0, y1
    cell0: Tensor  # (4, H, W) int32: cx0, cy0, ncx, ncy
    cells: Tensor  # (H * W, 3 + C) int64: cover, claimed, conflict, fixed-point sums of Y
    ybuf: Tensor  # (H * W, 3, C) float32: Y summed per pixel and cell row
    d: Tensor  # (H * W, C) float32: x - sum Y per cell
    n_loose: Tensor  # (1,) int32
    everyone: Tensor  # (1,) int32, always 1: the gate of the kernels that always run
    current: int = 0  # which half of the double buffers holds the current frame

    @classmethod
    def empty(cls, channels: int, height: int, width: int, device: torch.device) -> Workspace:
        h, w, c = height, width, channels

        def new(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
            return torch.empty(shape, dtype=dtype, device=device)

        return cls(
            maps=new(2, 2, h, w, dtype=torch.float64), src=new(2, h, w, dtype=torch.float64),
            traced=new(2, h, w, dtype=torch.bool), keep=new(2, c, h, w),
            role=new(h, w, dtype=torch.uint8), links=new(h, w, dtype=torch.uint8),
            edges=new(4, h, w), cell0=new(4, h, w, dtype=torch.int32),
            cells=new(h * w, _COLS + c, dtype=torch.int64), ybuf=new(h * w, MAX_SIDE, c),
            d=new(h * w, c), n_loose=new(1, dtype=torch.int32),
            everyone=torch.ones(1, dtype=torch.int32, device=device))

    def reset(self) -> None:
        """Start from the anchor: every pixel at its own centre, anchored and linked."""
        self.current = 0
        _, _, h, w = self.maps.shape
        dev = self.maps.device
        self.maps[0, 0].copy_(torch.arange(w, dtype=torch.float64, device=dev)[None, :])
        self.maps[0, 1].copy_(torch.arange(h, dtype=torch.float64, device=dev)[:, None])
        self.traced[0].fill_(True)
        self.links.fill_(3)
        self.links[:, -1] &= 2
        self.links[-1, :] &= 1


class _Kernels:
    """This module's kernels as launched on one kind of device."""

    def __init__(self, interpret: bool) -> None:
        self.interpret = interpret
        self.block = _INTERPRETED_BLOCK if interpret else _GPU_BLOCK
        # The geometry kernels (map, links, boxes) repeat the CPU kernel's float64 operations;
        # fused multiply-adds would round differently, so the compiler may not fuse there.
        self.exact: dict[str, Any] = {} if interpret else {"enable_fp_fusion": False}
        self.launchers: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in self.launchers:
            kernel = globals()[name]
            self.launchers[name] = Interpreted(kernel) if self.interpret else kernel
        return self.launchers[name]


_ON_GPU, _ON_CPU = _Kernels(False), _Kernels(True)


def _kernels(device: torch.device) -> tuple[_Kernels, int]:
    """The kernels that run on ``device`` (interpreted on the CPU) and the pixels per program."""
    kern = _ON_CPU if device.type == "cpu" else _ON_GPU
    return kern, kern.block


def _signed(key: int) -> int:
    """A uint64 key as the int64 with its bits (what a kernel argument holds)."""
    return key - 2**64 if key >= 2**63 else key


def fill_normal(out: Tensor, key: int) -> None:
    """``out.flat[i] = normal(key, i)`` for a contiguous float32 tensor, in one kernel."""
    kern, block = _kernels(out.device)
    n = out.numel()
    block, grid = _block(n, block)
    on_device = torch.cuda.device(out.device) if out.is_cuda else contextlib.nullcontext()
    with on_device:
        kern._fill_kernel[grid](out, _signed(key), ziggurat_table(out.device), n, BLOCK=block)


def _block(size: int, block: int) -> tuple[int, tuple[int]]:
    block = min(block, triton.next_power_of_2(max(size, 16)))
    return block, (triton.cdiv(size, block),)


def advance(ws: Workspace, backward_flow: Tensor, forward_flow: Tensor | None) -> None:
    """Frame t's anchor positions into ``ws.maps[1 - ws.current]``, source positions into
    ``ws.src`` and roles into ``ws.role`` from the state of frame t-1 held in ``ws``;
    ``ws.n_loose`` counts the loose pixels.

    Convention:
        ``backward_flow`` is frame t's, ``forward_flow`` frame t-1's (or None), ``(2, H, W)``
        float32 contiguous on the workspace's device.
    """
    kern, block = _kernels(backward_flow.device)
    _, h, w = backward_flow.shape
    block, grid = _block(h * w, block)
    ws.n_loose.zero_()
    f = backward_flow if forward_flow is None else forward_flow
    kern._advance_kernel[grid](
        ws.maps[ws.current], ws.traced[ws.current], ws.links, backward_flow, f,
        ws.maps[1 - ws.current], ws.src, ws.role, ws.n_loose, h, w,
        HAS_FORWARD=forward_flow is not None, ALPHA=FB_ALPHA, BETA=FB_BETA, BLOCK=block,
        **kern.exact)


def integrate(ws: Workspace, pos: Tensor, role: int, xa: Tensor, field: Tensor | None, k: int,
              barred: Tensor | None, key: int, out: Tensor, keep: Tensor, traced: Tensor,
              base: int = 0) -> None:
    """Integrate the pixels of one role (``ws.role``) on their source, into ``out``
    ``(C, H, W)`` float32 (the CPU kernel's ``integrate``).

    Args:
        pos: ``(2, H, W)`` float64 source positions of the pixel centres.
        role: ``ANCHORED`` (writes every pixel: fresh noise where there is no area, ``traced``
            marks the others) or ``LOOSE`` (writes only its pixels with an area, to ``out`` and
            ``keep``; runs only if ``ws.n_loose`` is not 0).
        xa: ``(C, Ha, Wa)`` float32 source noise (i.i.d. N(0, 1)).
        field: ``(Ha, Wa, k^2 + 4k + 4, C)`` float32 persistent values independent of ``xa``,
            or None (every ``Y`` fresh).
        barred: ``(Ha, Wa)`` bool cells that are not sources, or None.
        key: the step's key, an int in ``[0, 2^64)``; base: the first counter of this pass
            (:func:`warpnoise.kernels.counter_offsets`).
        keep: ``(C, H, W)`` float32 receiving the loose (not anchored) pixels' noise.
    """
    kern, block0 = _kernels(pos.device)
    c_n, ha, wa = xa.shape
    _, h, w = pos.shape
    n = h * w
    block, grid = _block(n, block0)
    anchored = role == ANCHORED
    gate = ws.everyone if anchored else ws.n_loose
    restrict = barred is not None
    cells_barred = barred if restrict else ws.role  # never read without RESTRICT
    values = field if field is not None else xa  # never read without HAS_FIELD
    k_ = k if field is not None else 1
    cp = triton.next_power_of_2(c_n)
    ncol = _COLS + c_n
    shape = dict(K=k_, C=c_n, CP=cp, NCOL=ncol)
    key = _signed(key)
    zig = ziggurat_table(pos.device)
    off_piece, off_rem, off_fresh, _ = counter_offsets(h, w, c_n, base)
    kern._links_kernel[grid](pos, ws.role, ws.links, role, h, w, ALL=anchored, JUMP_=JUMP,
                             BLOCK=block, gate=gate, **kern.exact)
    kern._boxes_kernel[grid](pos, ws.role, ws.links, role, ws.edges, ws.cell0, h, w, ha, wa,
                             BLOCK=block, gate=gate, **kern.exact)
    zb, zgrid = _block(ws.cells.numel(), block0)
    kern._zero_kernel[zgrid](ws.cells, ws.cells.numel(), BLOCK=zb, gate=gate)
    masks = value_masks_on(k_, pos.device)
    kern._claims_kernel[grid](ws.edges, ws.cell0, cells_barred, ws.cells, masks, h, w, wa, K=k_,
                              HAS_FIELD=field is not None, RESTRICT=restrict, NCOL=ncol,
                              BLOCK=block, gate=gate)
    kern._pieces_kernel[grid](ws.edges, ws.cell0, cells_barred, ws.cells, masks, values, ws.ybuf,
                              key, zig, off_piece, h, w, wa,
                              HAS_FIELD=field is not None, RESTRICT=restrict, BLOCK=block,
                              gate=gate, **shape)
    cblock, cgrid = _block(ha * wa, block0)
    full = (1 << (k_ * k_)) - 1 if field is not None else 0
    kern._remainders_kernel[cgrid](ws.cells, values, xa, cells_barred, ws.d, key,
                                   zig, off_rem, ha * wa,
                                   FULL=full - (1 << 64) if full >= 1 << 63 else full,
                                   HAS_FIELD=field is not None, RESTRICT=restrict,
                                   REM_EPS_=REM_EPS, BLOCK=cblock, gate=gate, **shape)
    kern._gather_kernel[grid](ws.edges, ws.cell0, cells_barred, ws.cells, ws.d, ws.ybuf, key,
                              zig, off_fresh, out, keep, traced, h, w, wa, RESTRICT=restrict,
                              FILL=anchored, BLOCK=block, gate=gate, **shape)


def step(ws: Workspace, backward_flow: Tensor, forward_flow: Tensor | None, xa: Tensor,
         field: Tensor, k: int, key: int) -> Tensor:
    """One whole warping step on the device: advance the map held in ``ws`` by the backward flow
    (with frame t-1's forward flow for occlusion, if given), integrate the anchored pixels on the
    anchor (``xa`` ``(C, H, W)``, ``field``) and the loose ones on the previous frame's loose
    noise. Returns the new ``(C, H, W)`` float32 noise (new memory); ``ws`` then holds frame t.
    No host sync: the loose pass is gated on the device.
    """
    cur, nxt = ws.current, 1 - ws.current
    c_n, h, w = xa.shape
    # Triton launches on the current CUDA device: make it the data's (cuda:1 and beyond).
    on_device = torch.cuda.device(xa.device) if xa.is_cuda else contextlib.nullcontext()
    with on_device:
        advance(ws, backward_flow, forward_flow)
        out = torch.empty(c_n, h, w, dtype=torch.float32, device=xa.device)
        integrate(ws, ws.maps[nxt], ANCHORED, xa, field, k, None, key, out, ws.keep[nxt],
                  ws.traced[nxt])
        integrate(ws, ws.src, LOOSE, ws.keep[cur], None, k, ws.traced[cur], key, out,
                  ws.keep[nxt], ws.traced[nxt], counter_offsets(h, w, c_n)[3])
    ws.current = nxt
    return out


def box_integrate(pos: Tensor, usable: Tensor, xa: Tensor, field: Tensor, k: int, key: int
                  ) -> tuple[Tensor, Tensor, Workspace]:
    """The anchored integration alone, in a fresh workspace: ``(noise (C, H, W), traced (H, W),
    workspace)`` for the ``usable`` pixels at anchor positions ``pos`` ``(2, H, W)``. For tests
    and one-off calls (the workspace holds the boxes, links, cover and claims)."""
    c_n, h, w = xa.shape
    ws = Workspace.empty(c_n, h, w, pos.device)
    ws.role.copy_(torch.where(usable, ANCHORED, FRESH))
    out = torch.empty(c_n, h, w, dtype=torch.float32, device=pos.device)
    traced = torch.empty(h, w, dtype=torch.bool, device=pos.device)
    integrate(ws, pos.double().contiguous(), ANCHORED, xa, field, k, None, key, out, ws.keep[0],
              traced)
    return out, traced, ws


"""``persistent``: exact ∫-noise warping over a persistent sub-pixel white-noise field.

Why a new method. The paper's warper (:mod:`.integral`) is exact and keeps long-range coherence,
but rasterises ``k^2`` sub-pixels per pixel and quantises every overlap to ``1/k``. The
infinite-resolution warper (:mod:`.bridge`, Deng et al. 2025) has exact areas and is fast, but
draws new sub-pixel detail every frame, so slow motion loses its correlation within a few frames.
This method keeps both properties and is fast.

How. The anchor frame's white noise ``W`` is split into its pixel values ``x_q`` (the anchor
noise) and an independent sub-pixel fluctuation, held as ``k x k`` i.i.d. N(0, 1) values ``Z``
per anchor pixel in per-cell summed-area tables. They are drawn once per anchor and reused by
every frame until the next, so the same region of white noise gives the same value whichever frame
asks. Each pixel ``p`` of frame t is traced to the anchor with the accumulated backward map; its
pre-image is the box spanned by the mapped midpoints between ``p`` and its neighbours (neighbours
share edges bit for bit, so the boxes of a row tile it; exact for translation and axis-aligned
zoom, the box of the local footprint otherwise). The box cuts anchor cell ``q`` in a rectangle of
exact area ``a``. The Brownian-bridge split of Deng et al. gives that piece the value

    ``P = a x_q + Y - a * sum_q(Y)``,   ``Y ~ N(0, a)`` independent over the pieces of ``q``,

and the pixel ``G(p) = sum P / sqrt(sum a)``. Here ``Y`` is not a fresh draw: it is the sum of the
persistent ``Z`` whose sub-pixel centres lie in the rectangle (at most four table look-ups),
scaled to variance exactly ``a`` (``Y = sqrt(a / n) * sum Z`` for ``n`` sub-pixels; a fresh
``N(0, a)`` only for slivers holding no sub-pixel centre). Sub-pixels claimed by two boxes (folds,
occlusions the flow did not flag) are given to neither, cells covered more than once are rescaled
as in Deng et al., and the uncovered rest of a cell enters ``sum_q(Y)`` with the sub-pixels no
piece holds, scaled likewise to variance ``1 - cover``. So the
``Y`` of one cell are independent with variance ``a`` and every frame is exactly i.i.d. N(0, 1) by
construction. The correlation with the anchor is the *exact* continuous overlap ``a`` (no ``1/k``
quantisation), and between nearby frames the sub-pixel detail inside the boxes is shared.

Cost. Per pixel: a box, at most 3 x 3 pieces (2 x 2 without zoom), a few look-ups per piece and
channel; no ``k^2`` work per frame (``k^2`` values per pixel are drawn once per anchor). The numba
kernel runs the per-pixel and per-cell phases in parallel and the scatters into anchor cells in
fixed bands of rows, so results are bit-identical for any thread count. Memory: the tables take
``C k^2`` floats per pixel (16 MB at 4 x 512^2 with k=2), independent of the sequence length.

Route chosen. Of the two routes the brief suggests (a hashed hierarchical field refined where a
pre-image boundary cuts a cell; exact bridge increments keyed by position), this is the second
with a stored rather than hashed field: table look-ups are several times cheaper than evaluating a
hash hierarchy per piece, and the bridge makes the geometry continuous, so ``k`` only sets how
finely the detail persists, not how accurate the overlaps are.

Anchoring and fresh noise follow :mod:`.integral`: disoccluded pixels (forward-backward test),
pixels traced out of the frame or to fresh pixels, and boxes spanning more than 3 x 3 anchor
pixels get fresh noise; the anchor is renewed every ``anchor_every`` frames (default 64: twice the
usual 30-frame coherence horizon, and table draws amortised over many frames) or when more than
``max_fresh`` of the frame has no source in it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..flow import FB_ALPHA, FB_BETA, inside_frame, pixel_grid
from .base import WarpState, register
from .integral import check_anchor_options, needs_anchor

__all__ = ["JUMP", "Persistent", "PersistentState", "box_edges", "integrate_boxes"]

_KEY_RANGE = 2**62
#: Relative jump in the anchor spacing of neighbours that marks a motion discontinuity (see
#: :func:`box_edges`); the numba kernel uses the same value.
JUMP = 0.25
_REM_EPS = 1e-9


@dataclass
class PersistentState(WarpState):
    """``anchor``: ``(H, W, C)`` anchor noise; ``sat``: ``(H, W, k, k, C)`` summed-area tables
    of the sub-pixel fluctuation; ``acc_map``/``traced``/``age`` as in :class:`AnchorState`;
    ``links``: ``(H, W)`` uint8, bit 0 set where a pixel is linked to its right neighbour (same
    side of every motion discontinuity, :func:`box_edges`), bit 1 to the one below.

    On the CPU kernel path, ``workspace`` holds every buffer a step writes, reused from step to
    step: a state is consumed by the step that follows it (its ``acc_map`` and ``traced`` are
    overwritten two steps later). The noise a step returns is always new memory.
    """

    anchor: Tensor
    sat: Tensor
    acc_map: Tensor
    traced: Tensor
    age: int
    links: Tensor
    workspace: Any = None


@register("persistent")
class Persistent:
    """Exact, coherent and fast ∫-noise warping (see the module docstring).

    Args:
        upsample: sub-pixels per pixel and axis of the persistent field (1..8, default 2).
            Overlaps are exact whatever it is; it sets how finely detail persists between
            frames. Under a (0.37, 0.21) px/frame translation the correlation of consecutive
            frames averages 0.48 with 2, 0.46 with 4 and 0.49 with 8 (ideal 0.498), and 2 is
            the fastest (``benchmarks/bench_warp.py``).
        anchor_every: renew the anchor after this many frames (default 64).
        max_fresh: renew it sooner once this fraction of the frame has no source in it.
    """

    def __init__(self, upsample: int = 2, anchor_every: int = 64, max_fresh: float = 0.25) -> None:
        check_anchor_options(upsample, anchor_every, max_fresh)
        if upsample > 8:
            raise ValueError(f"persistent supports upsample <= 8, got {upsample}")
        self.k = upsample
        self.anchor_every = anchor_every
        self.max_fresh = max_fresh

    def _anchor(self, noise: Tensor, generator: torch.Generator,
                reuse: PersistentState | None = None) -> PersistentState:
        c, h, w = noise.shape
        k = self.k
        if not _use_kernel(noise.device):
            z = torch.randn(h, w, k, k, c, generator=generator, device=noise.device)
            return PersistentState(
                noise, noise.permute(1, 2, 0).contiguous(), z.cumsum(2).cumsum(3),
                pixel_grid(h, w, device=noise.device, dtype=torch.float64),
                torch.ones(h, w, dtype=torch.bool, device=noise.device), 0,
                _all_links(h, w, noise.device))
        from ..kernels.boxes import Workspace, summed_area_tables

        if reuse is None:  # the first anchor: make the buffers every later anchor reuses
            anchor, sat, ws = torch.empty(h, w, c), torch.empty(h, w, k, k, c), None
        else:
            anchor, sat, ws = reuse.anchor, reuse.sat, reuse.workspace
        anchor.copy_(noise.permute(1, 2, 0))
        torch.randn(sat.shape, generator=generator, out=sat)
        summed_area_tables(sat.numpy())
        if ws is None:
            ws = Workspace.empty(c, h, w)
        ws.reset()
        return PersistentState(noise, anchor, sat, torch.from_numpy(ws.maps[0]),
                               torch.from_numpy(ws.traced[0]), 0, torch.from_numpy(ws.links), ws)

    def init(self, noise: Tensor, generator: torch.Generator) -> PersistentState:
        return self._anchor(noise, generator)

    def step(self, state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> PersistentState:
        key = int(torch.randint(0, _KEY_RANGE, (1,), generator=generator,
                                device=generator.device).item())
        if state.workspace is not None:
            noise, acc_map, traced = _step_kernel(state, backward_flow, forward_flow, key,
                                                  generator)
            links = state.links
        else:
            acc_map, usable = advance(state.acc_map, state.traced, state.links, backward_flow,
                                      forward_flow)
            noise, traced, links = integrate_boxes(acc_map, usable, state.anchor, state.sat, key)
        noise = noise.to(state.noise.dtype)
        age = state.age + 1
        if needs_anchor(age, traced, self.anchor_every, self.max_fresh):
            return self._anchor(noise, generator, state)
        return PersistentState(noise, state.anchor, state.sat, acc_map, traced, age, links,
                               state.workspace)


def _use_kernel(device: torch.device) -> bool:
    return device.type == "cpu" and _have_numba()


@functools.cache
def _have_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _step_kernel(state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
                 key: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """The CPU path: the whole step in numba kernels, in the state's workspace."""
    from ..kernels.boxes import step

    ws = state.workspace
    off = ws.pool_offsets()
    pool = _pool(ws, int(off[-1]), state.anchor.shape[2], generator)
    b = backward_flow.numpy()
    f = None if forward_flow is None else forward_flow.numpy()
    out = step(ws, b[0], b[1], None if f is None else f[0], None if f is None else f[1],
               state.anchor.numpy(), state.sat.numpy(), np.uint64(key), pool, off)
    cur = ws.current
    return torch.from_numpy(out), torch.from_numpy(ws.maps[cur]), torch.from_numpy(ws.traced[cur])


def _pool(ws: Any, rows: int, channels: int, generator: torch.Generator) -> np.ndarray:
    """``(rows, C)`` fresh N(0, 1) for the step's slivers, drawn into a buffer kept in the
    workspace (grown when a step needs more): one vectorised draw is many times cheaper than
    counter-based draws one by one inside the kernel."""
    if ws.pool is None or ws.pool.shape[0] < rows:
        ws.pool = torch.empty(rows + rows // 4, channels)
    out = ws.pool[:rows]
    torch.randn(out.shape, generator=generator, out=out)
    return out.numpy()


def _all_links(h: int, w: int, device: torch.device) -> Tensor:
    """The anchor's links: every pixel linked to its right and lower neighbour."""
    links = torch.full((h, w), 3, dtype=torch.uint8, device=device)
    links[:, -1] &= 2
    links[-1, :] &= 1
    return links


def advance(acc_map: Tensor, traced: Tensor, links: Tensor, backward_flow: Tensor,
            forward_flow: Tensor | None) -> tuple[Tensor, Tensor]:
    """Compose the accumulated map with one backward flow without interpolating across motion
    discontinuities, and find the pixels it can serve: the torch form of the kernel's
    :func:`warpnoise.kernels.boxes.advance` (same rule).

    Convention:
        ``acc_map`` ``(2, H, W)`` float64 holds frame t-1's anchor positions, ``traced`` and
        ``links`` ``(H, W)`` its traced pixels and links; ``backward_flow`` is frame t's,
        ``forward_flow`` frame t-1's (or None), ``(2, H, W)``.

    Of the (up to four) pixels bilinear sampling at the source ``x + b(x)`` weighs, the
    *reference* is the heaviest traced one that passes the forward-backward test; the
    displacement ``A - grid`` is the bilinear mix, weights renormalised, of the reference and the
    traced pixels linked to it. A pixel is usable when its source is in the frame and it has a
    reference.

    Returns:
        ``(acc_map, usable)``: frame t's ``(2, H, W)`` float64 map and ``(H, W)`` bool.
    """
    _, h, w = acc_map.shape
    b = backward_flow.to(torch.float64)
    grid = pixel_grid(h, w, device=b.device, dtype=b.dtype)
    src = grid + b
    cx = src[0].clamp(0, w - 1)
    cy = src[1].clamp(0, h - 1)
    x0 = cx.floor().clamp_max(max(w - 2, 0))
    y0 = cy.floor().clamp_max(max(h - 2, 0))
    ux, uy = cx - x0, cy - y0
    xs = (x0.long(), (x0.long() + 1).clamp_max(w - 1))
    ys = (y0.long(), (y0.long() + 1).clamp_max(h - 1))
    corners = [(ys[c >> 1], xs[c & 1]) for c in range(4)]
    wts = [(ux if c & 1 else 1 - ux) * (uy if c >> 1 else 1 - uy) for c in range(4)]
    tr = [traced[r, q] & (wt > 0) for (r, q), wt in zip(corners, wts, strict=True)]
    b2 = b.square().sum(0)
    ref = torch.full((h, w), -1, dtype=torch.long, device=b.device)
    best = torch.zeros(h, w, dtype=b.dtype, device=b.device)
    for c, ((r, q), wt) in enumerate(zip(corners, wts, strict=True)):
        ok = tr[c] & (wt > best)
        if forward_flow is not None:
            f = forward_flow.to(b.dtype)[:, r, q]
            ok &= (b + f).square().sum(0) <= FB_ALPHA * (b2 + f.square().sum(0)) + FB_BETA
        ref = torch.where(ok, c, ref)
        best = torch.where(ok, wt, best)
    usable = (ref >= 0) & inside_frame(src, h, w)
    top = (links[corners[0]] & 1) > 0
    left = (links[corners[0]] & 2) > 0
    right = (links[corners[1]] & 2) > 0
    bottom = (links[corners[2]] & 1) > 0
    # joined[ref][c]: corner c is on the reference's side (see the kernel's ``_joined``).
    diag = (top & right) | (left & bottom)
    anti = (top & left) | (right & bottom)
    yes = torch.ones_like(top)
    joined = [[yes, top, left, diag], [top, yes, anti, right],
              [left, anti, yes, bottom], [diag, right, bottom, yes]]
    total = torch.zeros_like(best)
    disp = torch.zeros_like(b)
    for c, ((r, q), wt) in enumerate(zip(corners, wts, strict=True)):
        with_ref = torch.stack([joined[k][c] for k in range(4)])  # (4, H, W)
        inc = tr[c] & with_ref.gather(0, ref.clamp_min(0)[None])[0] & (ref >= 0)
        wt = torch.where(inc, wt, 0.0)
        total += wt
        disp += wt * (acc_map[:, r, q] - torch.stack([q, r]).to(b.dtype))
    disp = disp / total.clamp_min(1e-300)
    return src + disp, usable


def _close(s: Tensor, nb: Tensor) -> Tensor:
    """Whether spacings ``s`` ``(2, ...)`` continue the neighbouring spacings ``nb`` (the kernel's
    ``_close``, same arithmetic)."""
    tol = JUMP * nb.square().sum(0).sqrt().clamp_min(1.0)
    return (s - nb).square().sum(0) <= tol * tol


def _linked(a: Tensor, usable: Tensor, axis: int) -> Tensor:
    """Whether each pair of neighbours along ``axis`` (0: columns, x; 1: rows, y) shares its box
    edge: the torch form of the kernel's ``_linked`` (same rule, same arithmetic).

    Args:
        a: ``(2, H, W)`` float64 anchor positions; usable: ``(H, W)`` bool.

    Returns:
        ``(H, W-1)`` (axis 0) or ``(H-1, W)`` (axis 1) bool, entry k for the pair (k, k+1).
    """
    ud = 1 - axis  # the axis's dimension in (H, W)
    n = a.shape[ud + 1]
    s = a.diff(dim=ud + 1)  # (2, ...) spacing of each pair
    ok = usable.narrow(ud, 0, n - 1) & usable.narrow(ud, 1, n - 1) & (s[axis] > 0.0)
    if n < 3:
        return ok
    no = torch.zeros_like(ok.narrow(ud, 0, 1))
    pairs = n - 1
    before, after = s.narrow(ud + 1, 0, pairs - 1), s.narrow(ud + 1, 1, pairs - 1)
    near_prev = torch.cat([no, _close(after, before)], dim=ud)  # pair k against pair k-1
    near_next = torch.cat([_close(before, after), no], dim=ud)  # pair k against pair k+1
    has_prev = torch.cat([no, usable.narrow(ud, 0, n - 2)], dim=ud)  # pixel k-1 of pair k
    has_next = torch.cat([usable.narrow(ud, 2, n - 2), no], dim=ud)  # pixel k+2 of pair k
    return ok & ((has_prev & near_prev) | (has_next & near_next) | ~(has_prev | has_next))


def _extent(a: Tensor, linked: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Low and high box edges of ``a`` ``(H, W)`` along ``dim`` (1: columns, 0: rows) from the
    links of neighbouring pairs: midpoints where linked, the mirrored other side where one side
    is broken, ``a -+ 0.5`` where both are (the kernel's ``_extent``)."""
    n = a.shape[dim]
    if n == 1:
        return a - 0.5, a + 0.5
    no = torch.zeros_like(linked.narrow(dim, 0, 1))
    lo_ok, hi_ok = torch.cat([no, linked], dim=dim), torch.cat([linked, no], dim=dim)
    mid = 0.5 * (a.narrow(dim, 0, n - 1) + a.narrow(dim, 1, n - 1))
    lo_mid = torch.cat([a.narrow(dim, 0, 1), mid], dim=dim)  # entry 0 unused: lo_ok is False
    hi_mid = torch.cat([mid, a.narrow(dim, n - 1, 1)], dim=dim)
    lo = torch.where(lo_ok, lo_mid, torch.where(hi_ok, a - (hi_mid - a), a - 0.5))
    hi = torch.where(hi_ok, hi_mid, torch.where(lo_ok, a + (a - lo_mid), a + 0.5))
    return lo, hi


def box_edges(acc_map: Tensor, usable: Tensor
              ) -> tuple[tuple[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """Boundary-aware pre-image boxes of every pixel, ``(x0, x1, y0, y1)``, each ``(H, W)``, and
    the links (``(H, W)`` uint8, as in :class:`PersistentState`).

    Convention:
        ``acc_map`` is ``(2, H, W)`` float64: each pixel's centre in the anchor frame (x, y),
        anchor pixel centres at integers. A box ``[x0, x1) x [y0, y1)`` is in those coordinates.

    A box edge is shared with a neighbour (the midpoint of the two anchor positions) only when the
    two are *linked*: both usable, in the same order in the anchor (no fold), and their spacing
    continuing the spacing just outside the pair on at least one side, within ``JUMP`` times the
    latter (at least ``JUMP`` anchor pixels). Otherwise the neighbour belongs to another layer,
    was disoccluded or left the frame, and the box mirrors its opposite side; with both sides
    broken it is the unit box around the traced centre.
    """
    lx, ly = _linked(acc_map, usable, 0), _linked(acc_map, usable, 1)
    x0, x1 = _extent(acc_map[0], lx, 1)
    y0, y1 = _extent(acc_map[1], ly, 0)
    links = torch.zeros(usable.shape, dtype=torch.uint8, device=usable.device)
    links[:, :-1] |= lx.to(torch.uint8)
    links[:-1, :] |= ly.to(torch.uint8) << 1
    return (x0, x1, y0, y1), links


def _spans(lo: Tensor, hi: Tensor, cell: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Overlap length of ``[lo, hi)`` with cell ``cell`` and the sub-pixel range whose centres
    fall inside (as the kernel's ``_span``)."""
    a = torch.maximum(lo, cell - 0.5)
    b = torch.minimum(hi, cell + 0.5)
    length = (b - a).clamp_min(0.0)
    s0 = torch.ceil((a - (cell - 0.5)) * k - 0.5).clamp(0, k).long()
    s1 = torch.ceil((b - (cell - 0.5)) * k - 0.5).clamp(0, k).long()
    return length, s0, torch.maximum(s1, s0)


def integrate_boxes(acc_map: Tensor, usable: Tensor, anchor: Tensor, sat: Tensor,
                    key: int) -> tuple[Tensor, Tensor, Tensor]:
    """The torch path of the ``persistent`` integration (any device); same boxes
    (:func:`box_edges`) and mathematics as the numba kernel
    (:func:`warpnoise.kernels.boxes.integrate`), with fresh draws taken from a generator seeded
    by ``key`` (so the bits differ from the CPU kernel's, not the law).

    Returns ``(noise (C, H, W), traced (H, W), links (H, W) uint8)``.
    """
    dev = acc_map.device
    _, h, w = acc_map.shape
    ha, wa, c_n = anchor.shape
    k = sat.shape[2]
    gen = torch.Generator(device=dev)
    gen.manual_seed(key)
    (x0, x1, y0, y1), links = box_edges(acc_map, usable)
    cx0 = torch.floor(x0 + 0.5).long()
    cy0 = torch.floor(y0 + 0.5).long()
    ncx = (torch.ceil(x1 + 0.5).long() - 1).clamp_max(wa - 1) - cx0 + 1
    ncy = (torch.ceil(y1 + 0.5).long() - 1).clamp_max(ha - 1) - cy0 + 1
    valid = usable & (x1 > x0) & (y1 > y0) & (x0 >= -0.5) & (y0 >= -0.5)
    valid &= (x1 <= wa - 0.5) & (y1 <= ha - 0.5)
    valid &= (ncx >= 1) & (ncy >= 1) & (ncx <= 3) & (ncy <= 3)

    # Candidate pieces: 3 x 3 cells from the first one, per valid pixel.
    pix = valid.flatten().nonzero().squeeze(1)
    d3 = torch.arange(3, device=dev)
    cxs = cx0.flatten()[pix, None] + d3  # (P, 3)
    cys = cy0.flatten()[pix, None] + d3
    ox, s0, s1 = _spans(x0.flatten()[pix, None], x1.flatten()[pix, None], cxs.double(), k)
    oy, r0, r1 = _spans(y0.flatten()[pix, None], y1.flatten()[pix, None], cys.double(), k)
    inx = d3 < ncx.flatten()[pix, None]
    iny = d3 < ncy.flatten()[pix, None]
    area = oy[:, :, None] * ox[:, None, :] * (iny[:, :, None] & inx[:, None, :])  # (P, 3, 3)
    p_i, dy_i, dx_i = (area > 0).nonzero(as_tuple=True)
    a = area[p_i, dy_i, dx_i]
    cy, cx = cys[p_i, dy_i], cxs[p_i, dx_i]
    cell = cy * wa + cx
    pr0, pr1, ps0, ps1 = r0[p_i, dy_i], r1[p_i, dy_i], s0[p_i, dx_i], s1[p_i, dx_i]

    # Sub-pixels of each piece; those claimed twice go to nobody.
    kk = torch.arange(k, device=dev)
    sub_in = ((kk >= pr0[:, None]) & (kk < pr1[:, None]))[:, :, None] & (
        (kk >= ps0[:, None]) & (kk < ps1[:, None]))[:, None, :]  # (N, k, k)
    sub_id = cell[:, None, None] * (k * k) + kk[:, None] * k + kk[None, :]
    claims = torch.bincount(sub_id[sub_in], minlength=ha * wa * k * k)
    mine = sub_in & (claims[sub_id] == 1)
    n = mine.sum(dim=(1, 2))
    pad = torch.nn.functional.pad(sat, (0, 0, 1, 0, 1, 0))  # zero row and column before
    z = pad[:, :, 1:, 1:] - pad[:, :, :-1, 1:] - pad[:, :, 1:, :-1] + pad[:, :, :-1, :-1]
    zsum = (z.reshape(ha * wa, k, k, c_n)[cell] * mine[..., None]).sum(dim=(1, 2)).double()

    cover = torch.zeros(ha * wa, dtype=torch.float64, device=dev).index_add_(0, cell, a)
    a_eff = a / cover[cell].clamp_min(1.0)
    y = torch.empty(a.numel(), c_n, dtype=torch.float64, device=dev)
    has = n > 0
    y[has] = zsum[has] * (a_eff[has] / n[has]).sqrt()[:, None]
    n_sliver = int((~has).sum())
    y[~has] = torch.randn(n_sliver, c_n, generator=gen, device=dev, dtype=torch.float64) * (
        a_eff[~has].sqrt()[:, None])
    sy = torch.zeros(ha * wa, c_n, dtype=torch.float64, device=dev).index_add_(0, cell, y)
    # The uncovered rest of a cell takes the sub-pixels no piece holds (fresh if there are none).
    rem = (1.0 - cover) * ((cover > 0) & (cover < 1.0 - _REM_EPS))
    free = claims.view(ha * wa, k, k) != 1
    n_free = free.sum(dim=(1, 2))
    free_sum = (z.reshape(ha * wa, k, k, c_n) * free[..., None]).sum(dim=(1, 2)).double()
    fresh = torch.randn(ha * wa, c_n, generator=gen, device=dev, dtype=torch.float64)
    rem_y = torch.where((n_free > 0)[:, None],
                        free_sum * (rem / n_free.clamp_min(1)).sqrt()[:, None],
                        fresh * rem.sqrt()[:, None])
    sy += rem_y
    dval = anchor.reshape(ha * wa, c_n).double() - sy
    pieces = a_eff[:, None] * dval[cell] + y
    flat = pix[p_i]
    acc = torch.zeros(h * w, c_n, dtype=torch.float64, device=dev).index_add_(0, flat, pieces)
    tot = torch.zeros(h * w, dtype=torch.float64, device=dev).index_add_(0, flat, a_eff)
    traced = tot > 0
    out = torch.randn(h * w, c_n, generator=gen, device=dev, dtype=torch.float64)
    out[traced] = acc[traced] / tot[traced].sqrt()[:, None]
    return out.T.reshape(c_n, h, w).float(), traced.view(h, w), links

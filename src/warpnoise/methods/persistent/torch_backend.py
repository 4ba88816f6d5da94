"""The torch backend of ``persistent``: every phase of a step as tensor operations, on any
device (the reference the compiled backends follow; MPS, CUDA without triton and the CPU without
numba run it).

The geometry repeats the numba kernel's arithmetic (:mod:`warpnoise.kernels.boxes`): float64
maps in the same operation order, box edges rounded to float32 as the kernel stores them, the
same spans, first cells and claims, so roles, maps, links, boxes and claims are identical. The
noise sums are float64 (the kernel's are partly float32), so values agree to rounding. Sums over
pieces use ``index_add_``, whose order on the CPU is the index order (sequential per target),
not the thread schedule.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ...flow import FB_ALPHA, FB_BETA, bilinear_corners, inside_frame, pixel_grid
from ...rng import counter_normal, normal_tensor
from .rule import (
    ANCHORED,
    FRESH,
    JUMP,
    LOOSE,
    MAX_SIDE,
    REM_EPS,
    SLOTS,
    PersistentState,
    counter_offsets,
    field_size,
    value_masks_on,
)

__all__ = ["Pieces", "TorchBackend", "advance", "all_links", "box_edges", "integrate_boxes",
           "links_of", "pieces"]


class TorchBackend:
    """Every phase as torch operations, on the state's device."""

    name = "torch"

    def normal(self, key: int, shape: tuple[int, ...], device: torch.device) -> Tensor:
        return normal_tensor(key, shape, device)

    def anchor(self, noise: Tensor, key: int, k: int,
               reuse: PersistentState | None = None) -> PersistentState:
        c, h, w = noise.shape
        dev = noise.device
        field = normal_tensor(key, (h, w, field_size(k), c), dev)
        return PersistentState(
            noise, noise.clone(), field, pixel_grid(h, w, device=dev, dtype=torch.float64),
            torch.ones(h, w, dtype=torch.bool, device=dev), 0, all_links(h, w, dev),
            noise.clone(), backend=self)

    def step(self, state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
             key: int, k: int) -> PersistentState:
        acc_map, src, role = advance(state.acc_map, state.traced, state.links, backward_flow,
                                     forward_flow)
        c_n, h, w = state.anchor.shape
        noise, traced, links = integrate_boxes(acc_map, role == ANCHORED, state.anchor,
                                               state.field, k, None, key)
        noise = noise.float()
        loose = role == LOOSE
        if bool(loose.any()):
            base = counter_offsets(h, w, c_n)[3]
            carried, has, loose_links = integrate_boxes(src, loose, state.keep, None, k,
                                                        state.traced, key, base)
            noise = torch.where(has, carried.float(), noise)
            links |= loose_links
        keep = torch.where(traced, 0.0, noise)
        return PersistentState(noise.to(state.noise.dtype), state.anchor, state.field, acc_map,
                               traced, state.age + 1, links, keep, backend=self)


def from_anchor(state: PersistentState) -> PersistentState:
    """A compiled backend's anchor state (age 0) as the torch backend's: every pixel at its own
    centre, anchored and linked, the same anchor noise and field (which it only reads)."""
    _, h, w = state.anchor.shape
    dev = state.anchor.device
    return PersistentState(
        state.noise, state.anchor, state.field,
        pixel_grid(h, w, device=dev, dtype=torch.float64),
        torch.ones(h, w, dtype=torch.bool, device=dev), 0, all_links(h, w, dev),
        state.noise.clone(), root=state.root, frame=state.frame, backend=TorchBackend())


def all_links(h: int, w: int, device: torch.device) -> Tensor:
    """The anchor's links: every pixel linked to its right and lower neighbour."""
    links = torch.full((h, w), 3, dtype=torch.uint8, device=device)
    links[:, -1] &= 2
    links[-1, :] &= 1
    return links


def advance(acc_map: Tensor, traced: Tensor, links: Tensor, backward_flow: Tensor,
            forward_flow: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Compose the accumulated map with one backward flow without interpolating across motion
    discontinuities, and give each pixel its role: the torch form of the kernel's
    :func:`warpnoise.kernels.boxes.advance` (same rule).

    Convention:
        ``acc_map`` ``(2, H, W)`` float64 holds frame t-1's anchor positions, ``traced`` and
        ``links`` ``(H, W)`` its anchored pixels and links; ``backward_flow`` is frame t's,
        ``forward_flow`` frame t-1's (or None), ``(2, H, W)``.

    Of the (up to four) pixels that bilinear sampling at the source ``x + b(x)`` weighs, those
    passing the forward-backward test are candidates. With an anchored candidate the pixel is
    ``ANCHORED`` and its displacement ``A - grid`` is the bilinear mix, weights renormalised, of
    the heaviest anchored candidate and the anchored pixels linked to it; otherwise, with a loose
    candidate, ``LOOSE``; with none (or a source outside the frame), ``FRESH``.

    Returns:
        ``(acc_map, src, role)``: frame t's ``(2, H, W)`` float64 map, the ``(2, H, W)`` source
        positions ``x + b(x)`` and the ``(H, W)`` uint8 roles.
    """
    _, h, w = acc_map.shape
    b = backward_flow.to(torch.float64)
    grid = pixel_grid(h, w, device=b.device, dtype=b.dtype)
    src = grid + b
    x0, y0, ux, uy = bilinear_corners(src)
    xs = (x0, (x0 + 1).clamp_max(w - 1))
    ys = (y0, (y0 + 1).clamp_max(h - 1))
    corners = [(ys[c >> 1], xs[c & 1]) for c in range(4)]
    wts = [(ux if c & 1 else 1 - ux) * (uy if c >> 1 else 1 - uy) for c in range(4)]
    inside = inside_frame(src, h, w)
    b2 = b.square().sum(0)
    ref = torch.full((h, w), -1, dtype=torch.long, device=b.device)
    best = torch.zeros(h, w, dtype=b.dtype, device=b.device)
    any_loose = torch.zeros(h, w, dtype=torch.bool, device=b.device)
    fwd = None if forward_flow is None else forward_flow.to(b.dtype)
    for c, ((r, q), wt) in enumerate(zip(corners, wts, strict=True)):
        ok = inside & (wt > 0)
        if fwd is not None:
            f = fwd[:, r, q]
            ok &= (b + f).square().sum(0) <= FB_ALPHA * (b2 + f.square().sum(0)) + FB_BETA
        tr = traced[r, q]
        better = ok & tr & (wt > best)
        ref = torch.where(better, c, ref)
        best = torch.where(better, wt, best)
        any_loose |= ok & ~tr
    role = torch.where(ref >= 0, ANCHORED, torch.where(any_loose, LOOSE, FRESH)).to(torch.uint8)
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
        inc = traced[r, q] & with_ref.gather(0, ref.clamp_min(0)[None])[0] & (ref >= 0)
        wt = torch.where(inc & (wt > 0), wt, 0.0)
        total += wt
        disp += wt * (acc_map[:, r, q] - torch.stack([q, r]).to(b.dtype))
    disp = torch.where(total > 0, disp / total.clamp_min(1e-300), 0.0)
    return src + disp, src, role


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
        ``acc_map`` is ``(2, H, W)`` float64: each pixel's centre in the source frame (x, y),
        source pixel centres at integers. A box ``[x0, x1) x [y0, y1)`` is in those coordinates.

    A box edge is shared with a neighbour (the midpoint of the two positions) only when the two
    are *linked*: both ``usable``, in the same order in the source (no fold), and their spacing
    continuing the spacing just beside the pair on at least one side (every side that exists
    breaking it marks a jump), within ``JUMP`` times the latter (at least ``JUMP`` source
    pixels). Otherwise the neighbour belongs to another layer, was disoccluded or left the frame,
    and the box mirrors its opposite side; with both sides broken it is the unit box around its
    position.
    """
    lx, ly = _linked(acc_map, usable, 0), _linked(acc_map, usable, 1)
    x0, x1 = _extent(acc_map[0], lx, 1)
    y0, y1 = _extent(acc_map[1], ly, 0)
    return (x0, x1, y0, y1), _pack_links(lx, ly)


def _pack_links(lx: Tensor, ly: Tensor) -> Tensor:
    """``(H, W)`` uint8 links from the pairs along x ``(H, W-1)`` and y ``(H-1, W)``."""
    links = torch.zeros(ly.shape[0] + 1, lx.shape[1] + 1, dtype=torch.uint8, device=lx.device)
    links[:, :-1] |= lx.to(torch.uint8)
    links[:-1, :] |= ly.to(torch.uint8) << 1
    return links


def links_of(acc_map: Tensor, usable: Tensor) -> Tensor:
    """The links of :func:`box_edges` alone (``(H, W)`` uint8, bit 0: linked to the right
    neighbour, bit 1: to the one below), for methods that compose maps without boxes."""
    return _pack_links(_linked(acc_map, usable, 0), _linked(acc_map, usable, 1))


def _spans(lo: Tensor, hi: Tensor, cell: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Overlap length of ``[lo, hi)`` with cell ``cell`` and the sub-pixel range whose centres
    fall inside (as the kernel's ``_span``)."""
    a = torch.maximum(lo, cell - 0.5)
    b = torch.minimum(hi, cell + 0.5)
    length = (b - a).clamp_min(0.0)
    s0 = torch.ceil((a - (cell - 0.5)) * k - 0.5).clamp(0, k).long()
    s1 = torch.ceil((b - (cell - 0.5)) * k - 0.5).clamp(0, k).long()
    return length, s0, torch.maximum(s1, s0)


def _owned(r0: Tensor, r1: Tensor, s0: Tensor, s1: Tensor, k: int) -> Tensor:
    """``(N, k^2 + 4k + 4)`` bool: the field values each piece claims, from its sub-pixel rows
    ``[r0, r1)`` and columns ``[s0, s1)`` (the table the kernel reads,
    :func:`warpnoise.kernels.value_masks`)."""
    table = value_masks_on(k, r0.device)
    masks = table[((r0 * (k + 1) + r1) * (k + 1) + s0) * (k + 1) + s1]
    bits = torch.arange(field_size(k), device=r0.device)
    return (masks[:, None] >> bits) & 1 == 1


class Pieces(NamedTuple):
    """The geometry of one integration pass: each pixel's box, the pieces it cuts from the source
    cells and their claims (what the numba kernel's ``pixel_boxes`` and claims walk compute).

    ``edges`` ``(4, H, W)`` float64 holding the float32 box edges ``x0, x1, y0, y1``; ``cell0``
    ``(4, H, W)`` int64 first cell and counts ``cx0, cy0, ncx, ncy`` (``cx0 = -1``: no box);
    ``links`` ``(H, W)`` uint8. Per piece (``N``): its pixel ``pix`` (flat), position ``dy, dx``
    in the box, source cell ``cell`` (flat), area ``area`` (float64) and sub-pixel ranges
    ``r0, r1, s0, s1``. ``cover`` ``(Ha Wa,)`` float64 and ``claims`` ``(Ha Wa, E)`` int64: how
    many pieces claim each field value (None without a field).
    """

    edges: Tensor
    cell0: Tensor
    links: Tensor
    pix: Tensor
    dy: Tensor
    dx: Tensor
    cell: Tensor
    area: Tensor
    r0: Tensor
    r1: Tensor
    s0: Tensor
    s1: Tensor
    cover: Tensor
    claims: Tensor | None


def pieces(acc_map: Tensor, active: Tensor, ha: int, wa: int, k: int | None,
           barred: Tensor | None = None) -> Pieces:
    """The boxes of the ``active`` pixels at source positions ``acc_map`` ``(2, H, W)`` float64
    in an ``ha x wa`` source, their pieces, cover and (with ``k``, a field's sub-pixel factor)
    claims; cells ``barred`` ``(Ha, Wa)`` are not sources."""
    dev = acc_map.device
    (x0, x1, y0, y1), links = box_edges(acc_map, active)
    # The kernels store edges as float32 and read them back: the same cells, spans and claims.
    x0, x1, y0, y1 = (e.float().double() for e in (x0, x1, y0, y1))
    cx0 = torch.floor(x0 + 0.5).long()
    cy0 = torch.floor(y0 + 0.5).long()
    ncx = (torch.ceil(x1 + 0.5).long() - 1).clamp_max(wa - 1) - cx0 + 1
    ncy = (torch.ceil(y1 + 0.5).long() - 1).clamp_max(ha - 1) - cy0 + 1
    valid = active & (x1 > x0) & (y1 > y0) & (x0 >= -0.5) & (y0 >= -0.5)
    valid &= (x1 <= wa - 0.5) & (y1 <= ha - 0.5)
    valid &= (ncx >= 1) & (ncy >= 1) & (ncx <= MAX_SIDE) & (ncy <= MAX_SIDE)

    # Candidate pieces: MAX_SIDE x MAX_SIDE cells from the first one, per valid pixel.
    pix = valid.flatten().nonzero().squeeze(1)
    side = torch.arange(MAX_SIDE, device=dev)
    cxs = cx0.flatten()[pix, None] + side  # (P, MAX_SIDE)
    cys = cy0.flatten()[pix, None] + side
    sk = k or 1
    ox, s0, s1 = _spans(x0.flatten()[pix, None], x1.flatten()[pix, None], cxs.double(), sk)
    oy, r0, r1 = _spans(y0.flatten()[pix, None], y1.flatten()[pix, None], cys.double(), sk)
    inx = side < ncx.flatten()[pix, None]
    iny = side < ncy.flatten()[pix, None]
    area = oy[:, :, None] * ox[:, None, :] * (iny[:, :, None] & inx[:, None, :])  # (P, S, S)
    p_i, dy_i, dx_i = (area > 0).nonzero(as_tuple=True)
    cy, cx = cys[p_i, dy_i], cxs[p_i, dx_i]
    if barred is not None:
        keep = ~barred[cy, cx]
        p_i, dy_i, dx_i, cy, cx = p_i[keep], dy_i[keep], dx_i[keep], cy[keep], cx[keep]
    a = area[p_i, dy_i, dx_i]
    cell = cy * wa + cx
    cover = torch.zeros(ha * wa, dtype=torch.float64, device=dev).index_add_(0, cell, a)
    r0, r1, s0, s1 = r0[p_i, dy_i], r1[p_i, dy_i], s0[p_i, dx_i], s1[p_i, dx_i]
    claims = None
    if k is not None:
        n_val = field_size(k)
        own = _owned(r0, r1, s0, s1, k)  # (N, E)
        val_id = cell[:, None] * n_val + torch.arange(n_val, device=dev)
        claims = torch.bincount(val_id[own], minlength=ha * wa * n_val).view(ha * wa, n_val)
    cell0 = torch.stack([torch.where(valid, cx0, -1), cy0, ncx, ncy])
    return Pieces(torch.stack([x0, x1, y0, y1]), cell0, links, pix[p_i], dy_i, dx_i, cell, a,
                  r0, r1, s0, s1, cover, claims)


def integrate_boxes(acc_map: Tensor, active: Tensor, xa: Tensor, field: Tensor | None, k: int,
                    barred: Tensor | None, key: int, base: int = 0
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """The torch backend's integration (any device): the same boxes (:func:`box_edges`, edges
    rounded to float32 as the numba kernel stores them), claims, bridge pieces and counter-based
    draws as the kernel's ``integrate``.

    Args:
        acc_map: ``(2, H, W)`` float64 source positions of the pixel centres.
        active: ``(H, W)`` bool pixels to integrate.
        xa: ``(C, Ha, Wa)`` source noise, i.i.d. N(0, 1).
        field: ``(Ha, Wa, k^2 + 4k + 4, C)`` persistent values independent of ``xa``, or None
            (every ``Y`` a fresh draw: Deng et al.'s frame-to-frame bridge).
        barred: ``(Ha, Wa)`` bool cells that are not sources, or None.
        key: every fresh draw is ``normal(key, counter)``.
        base: the first counter of this pass, laid out by
            :func:`warpnoise.kernels.counter_offsets`.

    Returns:
        ``(noise (C, H, W) float64, has (H, W) bool, links (H, W) uint8)``: the integrated noise
        where ``has`` (pixels with a pre-image area), fresh N(0, 1) elsewhere.
    """
    dev = acc_map.device
    _, h, w = acc_map.shape
    c_n, ha, wa = xa.shape
    n_val = field_size(k)
    off_piece, off_rem, off_fresh, _ = counter_offsets(h, w, c_n, base)
    chan = torch.arange(c_n, device=dev)
    pc = pieces(acc_map, active, ha, wa, k if field is not None else None, barred)
    links, cell, a, cover, claims = pc.links, pc.cell, pc.area, pc.cover, pc.claims
    a_eff = a / cover[cell].clamp_min(1.0)

    # What each piece owns: its claimed values, unless another piece of the cell claims them.
    slot = (pc.pix * SLOTS + pc.dy * MAX_SIDE + pc.dx) * c_n + off_piece
    y = torch.zeros(a.numel(), c_n, dtype=torch.float64, device=dev)
    has = torch.zeros(a.numel(), dtype=torch.bool, device=dev)
    free_sum = torch.zeros(ha * wa, c_n, dtype=torch.float64, device=dev)
    n_free = torch.zeros(ha * wa, dtype=torch.long, device=dev)
    if field is not None and claims is not None:
        own = _owned(pc.r0, pc.r1, pc.s0, pc.s1, k)  # (N, E)
        mine = own & (claims[cell] == 1)
        n = mine.sum(dim=1)
        vals = field.reshape(ha * wa, n_val, c_n).double()
        sums = (vals[cell] * mine[..., None]).sum(dim=1)
        has = n > 0
        y[has] = sums[has] / n[has, None].sqrt()
        # The uncovered rest of a cell takes the sub-pixels no piece owns (fresh if none).
        free = claims[:, :k * k] != 1
        n_free = free.sum(dim=1)
        free_sum = (vals[:, :k * k] * free[..., None]).sum(dim=1)
    drawn = (~has).nonzero().squeeze(1)
    y[drawn] = counter_normal(key, slot[drawn, None] + chan)
    y *= a_eff.sqrt()[:, None]
    sy = torch.zeros(ha * wa, c_n, dtype=torch.float64, device=dev).index_add_(0, cell, y)
    rem = 1.0 - cover
    rem = rem * ((cover > 0) & (rem > REM_EPS))
    rem_y = free_sum / n_free.clamp_min(1).sqrt()[:, None]
    drawn = ((rem > 0) & (n_free == 0)).nonzero().squeeze(1)
    rem_y[drawn] = counter_normal(key, (off_rem + drawn * c_n)[:, None] + chan)
    rem_y = rem_y * rem.sqrt()[:, None]
    dval = xa.reshape(c_n, ha * wa).T.double() - (sy + rem_y)
    bridge = a_eff[:, None] * dval[cell] + y
    flat = pc.pix
    acc = torch.zeros(h * w, c_n, dtype=torch.float64, device=dev).index_add_(0, flat, bridge)
    tot = torch.zeros(h * w, dtype=torch.float64, device=dev).index_add_(0, flat, a_eff)
    has_area = tot > 0
    out = acc / tot.clamp_min(1e-300).sqrt()[:, None]
    none = (~has_area).nonzero().squeeze(1)
    out[none] = counter_normal(key, (off_fresh + none * c_n)[:, None] + chan)
    return out.T.reshape(c_n, h, w), has_area.view(h, w), links

"""``persistent``: exact ∫-noise warping over a persistent sub-pixel white-noise field.

Why a new method. The paper's warper (:mod:`.integral`) is exact and keeps long-range coherence,
but rasterises ``k^2`` sub-pixels per pixel and quantises every overlap to ``1/k``. The
infinite-resolution warper (:mod:`.bridge`, Deng et al. 2025) has exact areas and is fast, but
draws new sub-pixel detail every frame, so slow motion loses its correlation within a few frames.
This method keeps both properties, keeps each layer's noise at object boundaries, and is fast.

How. The anchor frame's white noise ``W`` is split into its pixel values ``x_q`` (the anchor
noise) and an independent persistent field: per anchor pixel (cell), ``k x k`` i.i.d. N(0, 1)
sub-pixel values ``Z`` plus ``4k + 4`` values for slivers (below). It is drawn once per anchor and
reused by every frame until the next, so the same region of white noise gives the same value
whichever frame asks. Each pixel ``p`` of frame t is traced to the anchor with the accumulated
backward map; its pre-image is a box around its anchor position whose edges are the midpoints to
its neighbours' anchor positions (:func:`box_edges`). The box cuts anchor cell ``q`` in a
rectangle of exact area ``a``. The Brownian-bridge split of Deng et al. gives that piece the value

    ``P = a x_q + Y - a * sum_q(Y)``,   ``Y ~ N(0, a)`` independent over the pieces of ``q``,

and the pixel ``G(p) = sum P / sqrt(sum a)``. Here ``Y`` is not a fresh draw: it is the sum of the
persistent ``Z`` whose sub-pixel centres lie in the rectangle, scaled to variance exactly ``a``
(``Y = sqrt(a / n) * sum Z`` for ``n`` values). A sliver (a piece thinner than the sub-pixel
spacing, holding no centre; about 45% of the pieces under rotation at ``k = 2``) lies along a
side of its cell, so it takes that side's strip values for the sub-columns (sub-rows) it spans, or
a corner value; only a sliver between two centres (strong zoom) draws fresh. Values claimed by two
pieces (folds, occlusions the flow did not flag) go to neither, cells covered more than once are
rescaled as in Deng et al., and the uncovered rest of a cell enters ``sum_q(Y)`` with the
sub-pixels no piece holds, scaled likewise to variance ``1 - cover``. So the ``Y`` of one cell are
independent with variance ``a``, and every frame is exactly i.i.d. N(0, 1) by construction, for
any box geometry. The correlation with the anchor is the *exact* continuous overlap ``a`` (no
``1/k`` quantisation), and between nearby frames the detail inside the boxes is shared.

Object boundaries. A box edge is the midpoint to a neighbour only when the two are *linked*:
both drawn on the same source, in the same order in the anchor (no fold), and their spacing in the
anchor continuing the spacing just beside the pair (within ``JUMP = 0.25`` of it, at least a
quarter anchor pixel). At a motion discontinuity the neighbour belongs to another layer, was
disoccluded or left the frame, and a midpoint would stretch the box across the occluded region or
fold it over the other layer; instead the box mirrors its opposite side, or is the unit box around
its anchor position when both sides break. The threshold: on smooth motion the spacings of
neighbours change by the map's second difference, zero for rotations, zooms and shears and below
0.21 for 99.9% of the pairs of DIS flow on ``tree.avi`` accumulated over 38 frames, while a
missed jump ``J`` shifts both boxes' shared edge by ``J/2``: 0.25 costs at most an eighth of a
pixel where a jump goes unseen and splits almost no smooth pair. The same links keep the map
composition on one side of a discontinuity: the accumulated map is interpolated only over the
source pixels linked to the best one (interpolating across a boundary gives a position belonging
to neither layer).

Occlusion. With forward flows, a pixel draws on a source pixel only if that pixel passes the
forward-backward test (:func:`warpnoise.flow.forward_backward_occlusion`): disoccluded pixels get
fresh noise, and a layer's own edge keeps its noise. Pixels that did not draw on the anchor
(disoccluded, entered the frame, or carried since) are *loose*: the next frame carries their noise
by the same boxes and bridge pieces from the previous frame (fresh ``Y``, Deng et al.'s frame to
frame warp), so an uncovered background does not flicker until the next anchor. Without forward
flows there is no occlusion information: a pixel draws on whichever traced pixel its source
lands on, so uncovered background shares anchor cells with the layer that covered it; the claims
rule keeps both exact (each loses the shared part) and the links still keep each box on its own
side.

Cost. Per pixel: a box, at most 3 x 3 pieces (2 x 2 without zoom), a few look-ups per piece and
channel; no ``k^2`` work per frame (``(k^2 + 4k + 4) C`` values per pixel are drawn once per
anchor). The numba kernel runs the whole step in compiled code, in a workspace of buffers kept in
the state, with the scatters in fixed bands of rows, so results are bit-identical for any thread
count. On CUDA, Triton kernels (:mod:`warpnoise.kernels.triton_boxes`) run the same phases on
the device, their geometry bit-identical to the numba kernel's and their sums integer atomics (same
seed, same bits); the step itself never waits for the device, and the two host syncs per frame are
the warper's flow check (NaN/inf) and the traced-pixel count that decides re-anchoring. Other
devices, and CUDA without triton, run the torch path (:func:`integrate_boxes`); so does a
sequence whose compiled kernels fail on its first step, with a warning (``backend="auto"``, see
:mod:`warpnoise.backends`). Memory: the field
takes ``(k^2 + 4k + 4) C`` floats per pixel (64 MB at 4 x 512^2 with k=2), independent of the
sequence length.

Route chosen. Of the two routes to persistent infinite-resolution detail (a hashed hierarchical
field refined where a pre-image boundary cuts a cell; exact bridge increments keyed by
position), this is the second with a stored rather than hashed field: table look-ups are several
times cheaper than evaluating a hash hierarchy per piece, and the bridge makes the geometry
continuous, so ``k`` only sets how finely the detail persists, not how accurate the overlaps are.

Anchoring follows :mod:`.integral`: pixels traced out of the frame and boxes spanning more than
3 x 3 anchor pixels get fresh noise; the anchor is renewed every ``anchor_every`` frames (default
64: twice the usual 30-frame coherence horizon, and field draws amortised over many frames) or
when more than ``max_fresh`` of the frame no longer draws on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..backends import check_backend, choose, have_numba, run_compiled
from ..flow import FB_ALPHA, FB_BETA, bilinear_corners, inside_frame, pixel_grid
from ..kernels import (
    ANCHORED,
    FRESH,
    JUMP,
    LOOSE,
    MAX_SIDE,
    MAX_UPSAMPLE,
    REM_EPS,
    field_size,
    value_masks_on,
)
from .base import WarpState, register
from .integral import check_anchor_options, needs_anchor

__all__ = ["JUMP", "Persistent", "PersistentState", "advance", "backend_for", "box_edges",
           "integrate_boxes", "links_of"]

_KEY_RANGE = 2**62


@dataclass
class PersistentState(WarpState):
    """What ``persistent`` carries from frame to frame.

    ``anchor``: ``(C, H, W)`` anchor noise; ``field``: ``(H, W, k^2 + 4k + 4, C)`` persistent
    values (sub-pixels, side strips, corners); ``acc_map``/``traced``/``age`` as in
    :class:`AnchorState`; ``links``: ``(H, W)`` uint8, bit 0 set where a pixel is linked to its
    right neighbour (same side of every motion discontinuity, :func:`box_edges`), bit 1 to the
    one below; ``keep``: ``(C, H, W)`` the current frame's noise at its loose (not anchored)
    pixels, which the next frame may carry.

    On the CPU kernel path, ``workspace`` holds every buffer a step writes, reused from step to
    step: a state is consumed by the step that follows it (its ``acc_map``, ``traced``, ``links``
    and ``keep`` are overwritten by later steps). The noise a step returns is always new memory.
    On the Triton path likewise, on the device (:mod:`warpnoise.kernels.triton_boxes`).
    """

    anchor: Tensor
    field: Tensor
    acc_map: Tensor
    traced: Tensor
    age: int
    links: Tensor
    keep: Tensor
    workspace: Any = None


@register("persistent")
class Persistent:
    """Exact, coherent and fast ∫-noise warping (see the module docstring).

    Args:
        upsample: sub-pixels per pixel and axis of the persistent field (1..6, default 2).
            Overlaps are exact whatever it is; it sets how finely detail persists between
            frames. Under a (0.37, 0.21) px/frame translation the correlation of consecutive
            frames averages 0.48 with 2, 0.46 with 4 and 0.49 with 8 (ideal 0.498), and 2 is
            the fastest (``benchmarks/bench_warp.py``).
        anchor_every: renew the anchor after this many frames (default 64).
        max_fresh: renew it sooner once this fraction of the frame no longer draws on it.
        backend: ``"auto"`` (default: Triton on CUDA, numba on the CPU, the torch path
            elsewhere; compiled kernels that fail on the first step fall back to the torch path
            with a warning), or ``"numba"``, ``"triton"`` or ``"torch"`` to insist on one
            (:mod:`warpnoise.backends`). Every backend gives exact noise; the bits differ
            between backends.
    """

    def __init__(self, upsample: int = 2, anchor_every: int = 64, max_fresh: float = 0.25,
                 backend: str = "auto") -> None:
        check_anchor_options(upsample, anchor_every, max_fresh)
        if upsample > MAX_UPSAMPLE:
            raise ValueError(f"persistent supports upsample <= {MAX_UPSAMPLE}, got {upsample}")
        self.k = upsample
        self.anchor_every = anchor_every
        self.max_fresh = max_fresh
        self.backend = check_backend(backend)

    def _anchor(self, noise: Tensor, generator: torch.Generator,
                reuse: PersistentState | None = None) -> PersistentState:
        c, h, w = noise.shape
        size = (h, w, field_size(self.k), c)
        path = backend_for(noise.device, self.backend)[0] if reuse is None else _path(reuse)
        if path == "torch":
            return PersistentState(
                noise, noise.clone(), torch.randn(size, generator=generator, device=noise.device),
                pixel_grid(h, w, device=noise.device, dtype=torch.float64),
                torch.ones(h, w, dtype=torch.bool, device=noise.device), 0,
                _all_links(h, w, noise.device), noise.clone())
        return _anchor_compiled(noise, size, generator, reuse, path == "triton")

    def init(self, noise: Tensor, generator: torch.Generator) -> PersistentState:
        return self._anchor(noise, generator)

    def step(self, state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> PersistentState:
        # On the Triton path the key stays on the device: no host sync.
        key = torch.randint(0, _KEY_RANGE, (1,), generator=generator, device=generator.device)
        path = _path(state)
        args = (backward_flow, forward_flow, key, self.k)
        if path == "torch":
            new = _step_torch(state, *args)
        else:
            compiled = _step_triton if path == "triton" else _step_kernel
            # From an anchor the torch path can take over: the state is the anchor's noise and
            # field. Later the compiled buffers may be half written by the failed step.
            fallback = None if state.age else lambda: _step_torch(_torch_anchor(state), *args)
            new = run_compiled("persistent", path, self.backend, state.noise.device,
                               lambda: compiled(state, *args), fallback)
        if needs_anchor(new.age, new.traced, self.anchor_every, self.max_fresh):
            return self._anchor(new.noise, generator, new)
        return new


def _use_kernel(device: torch.device) -> bool:
    """Whether ``"auto"`` may run the numba kernels on ``device`` (tests switch them off)."""
    return device.type == "cpu" and have_numba()


#: Run the Triton kernels on CPU tensors too, in Triton's interpreter (slow: for tests).
TRITON_ON_CPU = False
#: Set to False to run the torch path on CUDA even where triton imports (benchmarks, debugging).
USE_TRITON = True


def backend_for(device: torch.device, requested: str = "auto") -> tuple[str, str]:
    """The backend ``persistent`` runs on ``device`` and why (:func:`warpnoise.backends.choose`):
    CUDA runs the Triton kernels when triton imports (and the CPU, interpreted, with
    :data:`TRITON_ON_CPU`); the CPU runs numba; MPS, CUDA without triton and the CPU without numba
    take the torch path. Read when a warper starts: a sequence stays on the path it started on,
    unless its compiled kernels fail on the first step (then the torch path takes over)."""
    backend, reason = choose("persistent", requested, device, use_triton=USE_TRITON,
                             triton_on_cpu=TRITON_ON_CPU)
    if requested == "auto" and backend == "numba" and not _use_kernel(device):
        return "torch", "the numba kernels are switched off"
    return backend, reason


def _use_triton(device: torch.device) -> bool:
    """Whether ``"auto"`` runs the Triton kernels on ``device``."""
    return backend_for(device)[0] == "triton"


def _path(state: PersistentState) -> str:
    """The backend a state belongs to: its workspace holds the numba kernel's numpy arrays or the
    Triton kernels' device tensors; the torch path has none."""
    ws = state.workspace
    if ws is None:
        return "torch"
    return "triton" if isinstance(ws.maps, Tensor) else "numba"


def _torch_anchor(state: PersistentState) -> PersistentState:
    """A compiled path's anchor state (age 0) as the torch path's: every pixel at its own centre,
    anchored and linked, the same anchor noise and field (which the torch path only reads)."""
    _, h, w = state.anchor.shape
    dev = state.anchor.device
    return PersistentState(
        state.noise, state.anchor, state.field,
        pixel_grid(h, w, device=dev, dtype=torch.float64),
        torch.ones(h, w, dtype=torch.bool, device=dev), 0, _all_links(h, w, dev),
        state.noise.clone())


def _anchor_compiled(noise: Tensor, size: tuple[int, ...], generator: torch.Generator,
                     reuse: PersistentState | None, triton: bool) -> PersistentState:
    """A new anchor for a compiled path (the numba kernel, or Triton when ``triton``), in the
    buffers of the previous anchor if any: the first anchor makes every buffer later ones reuse."""
    c, h, w = noise.shape
    if reuse is None:
        if triton:
            from ..kernels.triton_boxes import Workspace as TritonWorkspace

            ws: Any = TritonWorkspace.empty(c, h, w, noise.device)
        else:
            from ..kernels.boxes import Workspace

            ws = Workspace.empty(c, h, w)
        anchor = torch.empty(c, h, w, device=noise.device)
        field = torch.empty(size, device=noise.device)
    else:
        anchor, field, ws = reuse.anchor, reuse.field, reuse.workspace
    anchor.copy_(noise)
    torch.randn(size, generator=generator, out=field)
    ws.reset()
    view = torch.as_tensor  # the numba workspace's numpy arrays, shared; Triton's are tensors
    return PersistentState(noise, anchor, field, view(ws.maps[0]), view(ws.traced[0]), 0,
                           view(ws.links), view(ws.keep[0]), ws)


def _step_triton(state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
                 key: Tensor, k: int) -> PersistentState:
    """The CUDA path: the whole step in Triton kernels, in the state's workspace."""
    from ..kernels.triton_boxes import step

    ws = state.workspace
    f = None if forward_flow is None else forward_flow.float().contiguous()
    out = step(ws, backward_flow.float().contiguous(), f, state.anchor, state.field, k, key)
    cur = ws.current
    return PersistentState(out.to(state.noise.dtype), state.anchor, state.field, ws.maps[cur],
                           ws.traced[cur], state.age + 1, state.links, ws.keep[cur], ws)


def _step_kernel(state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
                 key: Tensor, k: int) -> PersistentState:
    """The CPU path: the whole step in numba kernels, in the state's workspace."""
    from ..kernels.boxes import step

    ws = state.workspace
    b = backward_flow.numpy()
    f = None if forward_flow is None else forward_flow.numpy()
    out = step(ws, b[0], b[1], None if f is None else f[0], None if f is None else f[1],
               state.anchor.numpy(), state.field.numpy(), k, np.uint64(int(key.item())))
    cur = ws.current
    return PersistentState(torch.from_numpy(out).to(state.noise.dtype), state.anchor, state.field,
                           torch.from_numpy(ws.maps[cur]), torch.from_numpy(ws.traced[cur]),
                           state.age + 1, state.links, torch.from_numpy(ws.keep[cur]), ws)


def _step_torch(state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
                key: Tensor, k: int) -> PersistentState:
    """The torch path (any device): the same phases as the kernel's ``step``, fresh draws from a
    generator seeded by ``key`` (so the bits differ from the CPU kernel's, not the law)."""
    gen = torch.Generator(device=state.noise.device)
    gen.manual_seed(int(key.item()))
    acc_map, src, role = advance(state.acc_map, state.traced, state.links, backward_flow,
                                 forward_flow)
    anchored = role == ANCHORED
    noise, traced, links = integrate_boxes(acc_map, anchored, state.anchor, state.field, k,
                                           None, gen)
    noise = noise.float()
    loose = role == LOOSE
    if bool(loose.any()):
        carried, has, loose_links = integrate_boxes(src, loose, state.keep, None, k,
                                                    state.traced, gen)
        noise = torch.where(has, carried.float(), noise)
        links |= loose_links
    keep = torch.where(traced, 0.0, noise)
    return PersistentState(noise.to(state.noise.dtype), state.anchor, state.field, acc_map,
                           traced, state.age + 1, links, keep)


def _all_links(h: int, w: int, device: torch.device) -> Tensor:
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


def integrate_boxes(acc_map: Tensor, active: Tensor, xa: Tensor, field: Tensor | None, k: int,
                    barred: Tensor | None, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """The torch path of the integration (any device): the same boxes (:func:`box_edges`),
    claims and bridge pieces as the kernel's ``integrate``.

    Args:
        acc_map: ``(2, H, W)`` float64 source positions of the pixel centres.
        active: ``(H, W)`` bool pixels to integrate.
        xa: ``(C, Ha, Wa)`` source noise, i.i.d. N(0, 1).
        field: ``(Ha, Wa, k^2 + 4k + 4, C)`` persistent values independent of ``xa``, or None
            (every ``Y`` a fresh draw: Deng et al.'s frame-to-frame bridge).
        barred: ``(Ha, Wa)`` bool cells that are not sources, or None.
        gen: the generator of every fresh draw.

    Returns:
        ``(noise (C, H, W) float64, has (H, W) bool, links (H, W) uint8)``: the integrated noise
        where ``has`` (pixels with a pre-image area), fresh N(0, 1) elsewhere.
    """
    dev = acc_map.device
    _, h, w = acc_map.shape
    c_n, ha, wa = xa.shape
    n_val = field_size(k)
    (x0, x1, y0, y1), links = box_edges(acc_map, active)
    cx0 = torch.floor(x0 + 0.5).long()
    cy0 = torch.floor(y0 + 0.5).long()
    ncx = (torch.ceil(x1 + 0.5).long() - 1).clamp_max(wa - 1) - cx0 + 1
    ncy = (torch.ceil(y1 + 0.5).long() - 1).clamp_max(ha - 1) - cy0 + 1
    valid = active & (x1 > x0) & (y1 > y0) & (x0 >= -0.5) & (y0 >= -0.5)
    valid &= (x1 <= wa - 0.5) & (y1 <= ha - 0.5)
    valid &= (ncx >= 1) & (ncy >= 1) & (ncx <= MAX_SIDE) & (ncy <= MAX_SIDE)

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
    cy, cx = cys[p_i, dy_i], cxs[p_i, dx_i]
    keep = torch.ones_like(cy, dtype=torch.bool) if barred is None else ~barred[cy, cx]
    p_i, dy_i, dx_i, cy, cx = p_i[keep], dy_i[keep], dx_i[keep], cy[keep], cx[keep]
    a = area[p_i, dy_i, dx_i]
    cell = cy * wa + cx
    cover = torch.zeros(ha * wa, dtype=torch.float64, device=dev).index_add_(0, cell, a)
    a_eff = a / cover[cell].clamp_min(1.0)

    # What each piece owns: its claimed values, unless another piece of the cell claims them.
    y = torch.randn(a.numel(), c_n, generator=gen, device=dev, dtype=torch.float64)
    free_sum = torch.zeros(ha * wa, c_n, dtype=torch.float64, device=dev)
    n_free = torch.zeros(ha * wa, dtype=torch.long, device=dev)
    if field is not None:
        own = _owned(r0[p_i, dy_i], r1[p_i, dy_i], s0[p_i, dx_i], s1[p_i, dx_i], k)  # (N, V)
        val_id = cell[:, None] * n_val + torch.arange(n_val, device=dev)
        claims = torch.bincount(val_id[own], minlength=ha * wa * n_val).view(ha * wa, n_val)
        mine = own & (claims.view(-1)[val_id] == 1)
        n = mine.sum(dim=1)
        vals = field.reshape(ha * wa, n_val, c_n).double()
        sums = (vals[cell] * mine[..., None]).sum(dim=1)
        has = n > 0
        y[has] = sums[has] / n[has, None].sqrt()
        # The uncovered rest of a cell takes the sub-pixels no piece owns (fresh if none).
        free = claims[:, :k * k] != 1
        n_free = free.sum(dim=1)
        free_sum = (vals[:, :k * k] * free[..., None]).sum(dim=1)
    y *= a_eff.sqrt()[:, None]
    sy = torch.zeros(ha * wa, c_n, dtype=torch.float64, device=dev).index_add_(0, cell, y)
    rem = (1.0 - cover) * ((cover > 0) & (cover < 1.0 - REM_EPS))
    fresh = torch.randn(ha * wa, c_n, generator=gen, device=dev, dtype=torch.float64)
    rem_y = torch.where((n_free > 0)[:, None], free_sum / n_free.clamp_min(1).sqrt()[:, None],
                        fresh) * rem.sqrt()[:, None]
    dval = xa.reshape(c_n, ha * wa).T.double() - (sy + rem_y)
    pieces = a_eff[:, None] * dval[cell] + y
    flat = pix[p_i]
    acc = torch.zeros(h * w, c_n, dtype=torch.float64, device=dev).index_add_(0, flat, pieces)
    tot = torch.zeros(h * w, dtype=torch.float64, device=dev).index_add_(0, flat, a_eff)
    has_area = tot > 0
    out = torch.randn(h * w, c_n, generator=gen, device=dev, dtype=torch.float64)
    out[has_area] = acc[has_area] / tot[has_area].sqrt()[:, None]
    return out.T.reshape(c_n, h, w), has_area.view(h, w), links

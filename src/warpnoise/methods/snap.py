"""``snap``: exact noise warping that carries whole pixels whole, with sub-pixel memory.

Why. Exact ∫-noise transport (:mod:`.persistent`; Chang et al., "How I Warped Your Noise", ICLR
2024, Eq. 4) moves a white-noise field by a fractional shift ``e``: each pixel keeps only the
overlap ``(1-|e_x|)(1-|e_y|)`` of its previous value and re-draws the rest, so under the 1.5-3
px/frame motion of real footage about half of the fine detail a diffusion model draws from the
noise is re-drawn every frame, and the edited video flickers more than with nearest-neighbour
warping, which re-draws nothing. Nearest warping, in turn, duplicates values under zoom-in (a
frame is no longer i.i.d.) and, frame to frame, never moves below half a pixel per frame (the noise
sticks to the screen). This method carries whole values like nearest warping (and like the
particles of Go-with-the-Flow, Burgert et al. 2025), keeps every frame exactly i.i.d. N(0, 1), and
follows slow motion.

How. Every value of the current frame has a *home*: a float position, its pixel's centre plus an
offset ``r``, moved along the flows since the value was drawn, so sub-pixel motion accumulates.
Pixel ``x`` of frame t looks at ``s = x + b(x)`` in frame t-1 and wants the value whose home is
nearest ``s`` among the 3 x 3 pixels around ``round(s)`` (with forward flows, only pixels that
pass the forward-backward test of :func:`warpnoise.flow.forward_backward_occlusion` for ``x``). A
value wanted by several pixels (zoom-in, folds) goes to the one whose ``s`` lies nearest its home
(ties: the first pixel in raster order); the others, and pixels with no candidate (disoccluded,
entered the frame), get fresh noise with their home at their centre. The carried value's home in
frame t is ``x + (home - s)``: the offset ``r = home - s`` is kept to the next frame. Under a
0.37 px/frame translation a value stays on its pixel while its offset grows to 0.37, then moves by
one pixel at the second frame (0.74 px accumulated), its offset becoming -0.26, and so on: it is
never more than half a pixel from where the flow has carried it.

Exactness. Each frame's values are distinct values of the previous frame (each used once) and
fresh draws, and which pixel gets which depends on the flows only, never on the noise: by induction
every frame is exactly i.i.d. N(0, 1), under any motion. A value that no pixel takes is gone for
good, so under zoom-out a hidden value never comes back. What is given up against ∫-noise is the
sub-pixel overlap: a pixel's correlation with an earlier frame is 1 or 0 along the motion, not
``(1-|e_x|)(1-|e_y|)``. There is no anchor: nothing is re-drawn on a schedule.

Flicker. Following the true sub-pixel motion has a price that no whole-pixel transport avoids: a
value moving 2.4 px/frame must step 2 px on three frames of five and 3 px on the other two, and
content born at different frames steps at different frames, so on average a frame keeps, along
``round(x + b(x))``, the same share of the previous frame as ∫-noise keeps (``1 - |e|``), as whole
values instead of overlaps. Frame-to-frame nearest warping keeps it all by never taking the extra
steps: it drifts, and sticks below half a pixel per frame. ``slack`` sets the compromise: a pixel
keeps the value at ``round(x + b(x))`` while that value's home lags less than ``slack`` pixels
behind ``x + b(x)``, so the noise lags at most ``slack`` behind the content and takes fewer, larger
catch-up steps (``slack=0.5``, the default: the nearest home always, no lag beyond rounding).
``benchmarks/bench_flicker.py`` measures the edited video (docs/snap.md).

Backends. The torch path (:func:`snap_sources`) runs on any device; on the CPU a numba kernel
(:mod:`warpnoise.kernels.snap`) and on CUDA Triton kernels (:mod:`warpnoise.kernels.triton_snap`)
run the same rule with the same float64 arithmetic and the same candidate order, and all draw the
fresh values with :func:`.base.fresh_like` from the caller's generator: the three give the same
bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..backends import BACKENDS, check_backend, choose, run_compiled
from ..flow import FB_ALPHA, FB_BETA, pixel_grid
from ..kernels import SNAP_OFFSETS as OFFSETS
from ..kernels import SNAP_ROUNDS as ROUNDS
from .base import WarpState, register

__all__ = ["BACKENDS", "Snap", "SnapState", "claim_nearest", "draw_fresh", "gather_sources",
           "snap_sources", "take_sources"]

#: Run the Triton kernels on CPU tensors too, in Triton's interpreter (slow: for tests).
TRITON_ON_CPU = False
#: Set to False to run the torch path on CUDA even where triton imports (benchmarks, debugging).
USE_TRITON = True



@dataclass
class SnapState(WarpState):
    """What ``snap`` carries from frame to frame: ``offset`` ``(2, H, W)`` float64, each value's
    home minus its pixel's centre (x, y)."""

    offset: Tensor


@register("snap")
class Snap:
    """Exact warping that carries whole pixels whole (see the module docstring).

    Args:
        slack: how far (pixels) a value's home may lag behind ``x + b(x)`` before the pixel takes
            a nearer value instead of the one at ``round(x + b(x))`` (0.5 to 2, default 0.5: the
            nearest home always).
        backend: ``"auto"`` (default: Triton on CUDA, numba on the CPU, the torch path elsewhere;
            a compiled path that fails hands over to the torch path with a warning), or
            ``"numba"``, ``"triton"`` or ``"torch"`` to insist on one
            (:data:`warpnoise.backends.BACKENDS`). All give the same bits.
    """

    def __init__(self, slack: float = 0.5, backend: str = "auto") -> None:
        if not 0.5 <= slack <= 2.0:
            raise ValueError(f"slack must be in [0.5, 2], got {slack!r}")
        self.slack = float(slack)
        self.backend = check_backend(backend)

    def path(self, device: torch.device) -> str:
        """The backend steps on ``device`` run (:func:`warpnoise.backends.choose`: ``auto``
        takes Triton on CUDA and numba on the CPU where they import and have not failed in this
        process; ValueError for an explicit backend that cannot run on ``device``)."""
        return choose("snap", self.backend, device, use_triton=USE_TRITON,
                      triton_on_cpu=TRITON_ON_CPU)[0]

    def init(self, noise: Tensor, generator: torch.Generator) -> SnapState:
        self.path(noise.device)  # an explicit backend that cannot run here fails before any work
        _, h, w = noise.shape
        return SnapState(noise, torch.zeros(2, h, w, dtype=torch.float64, device=noise.device))

    def step(self, state: SnapState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> SnapState:
        device = state.noise.device
        path = self.path(device)
        args = (state.offset, backward_flow, forward_flow, self.slack)
        if path == "torch":
            idx, offset = snap_sources(*args)
            return SnapState(take_sources(state.noise, idx, generator), offset)
        if path == "triton":
            from ..kernels.triton_snap import snap_sources_triton as compiled
        else:
            from ..kernels.snap import snap_sources_numba as compiled
        # Every path gives the same bits and keeps no buffers, so a failed kernel can hand over
        # at any step.
        idx, offset = run_compiled("snap", path, self.backend, device, lambda: compiled(*args),
                                   lambda: snap_sources(*args))
        fresh = draw_fresh(state.noise, idx, generator)
        if path == "numba":
            from ..kernels.snap import gather_numba

            noise = run_compiled("snap", path, self.backend, device,
                                 lambda: gather_numba(state.noise, idx, fresh),
                                 lambda: gather_sources(state.noise, idx, fresh))
        else:
            noise = gather_sources(state.noise, idx, fresh)
        return SnapState(noise, offset)

def claim_nearest(cell: Tensor, dist: Tensor, want: Tensor, n_cells: int) -> Tensor:
    """Give each wanted cell to one pixel: the one at the least ``dist``, ties to the first in
    raster order.

    Args:
        cell: ``(H, W)`` int64 the cell each pixel wants (read where ``want``).
        dist: ``(H, W)`` float64 each pixel's distance to it.
        want: ``(H, W)`` bool the pixels that take part.
        n_cells: the number of cells.

    Returns:
        ``(H, W)`` bool, the pixels that won their cell.
    """
    pix = want.flatten().nonzero().squeeze(1)
    c, d = cell.flatten()[pix], dist.flatten()[pix]
    best = torch.full((n_cells,), torch.inf, dtype=d.dtype, device=d.device)
    best.scatter_reduce_(0, c, d, "amin")
    tie = d == best[c]
    pix, c = pix[tie], c[tie]
    first = torch.full((n_cells,), want.numel(), dtype=torch.long, device=d.device)
    first.scatter_reduce_(0, c, pix, "amin")
    won = torch.zeros(want.numel(), dtype=torch.bool, device=d.device)
    won[pix[first[c] == pix]] = True
    return won.view(want.shape)


def snap_sources(offset: Tensor, backward_flow: Tensor, forward_flow: Tensor | None,
                 slack: float = 0.5) -> tuple[Tensor, Tensor]:
    """Which value of frame t-1 each pixel of frame t takes, and the new offsets (torch path).

    Convention:
        ``offset`` ``(2, H, W)`` float64: frame t-1's homes minus pixel centres (x, y);
        ``backward_flow`` is frame t's, ``forward_flow`` frame t-1's (or None), ``(2, H, W)``;
        pixel centres at integers.

    Returns:
        ``(sources, offset)``: ``(H, W)`` int64 flat pixel of frame t-1 (each at most once), -1
        for fresh noise; frame t's ``(2, H, W)`` float64 offsets (0 at fresh pixels).
    """
    _, h, w = offset.shape
    n = h * w
    b = backward_flow.to(torch.float64)
    s = pixel_grid(h, w, device=b.device, dtype=b.dtype) + b
    taken = torch.zeros(n, dtype=torch.bool, device=b.device)
    src = torch.full((h, w), -1, dtype=torch.long, device=b.device)
    new = torch.zeros_like(s)
    for _ in range(ROUNDS):
        q, d, home = _nearest_free_home(offset, s, b, forward_flow, taken, slack)
        won = claim_nearest(q, d, (src < 0) & (q >= 0), n)
        src = torch.where(won, q, src)
        new = torch.where(won, home - s, new)
        taken[q[won]] = True
    return src, new


def _nearest_free_home(offset: Tensor, s: Tensor, b: Tensor, forward_flow: Tensor | None,
                       taken: Tensor, slack: float) -> tuple[Tensor, Tensor, Tensor]:
    """Each pixel's nearest home to ``s`` among the :data:`OFFSETS` around ``round(s)`` not yet
    ``taken`` and passing the forward-backward test: ``(flat pixel or -1, squared distance,
    home (2, H, W))``."""
    _, h, w = s.shape
    c = torch.floor(s + 0.5)
    b2 = b[0] * b[0] + b[1] * b[1]
    fwd = None if forward_flow is None else forward_flow.to(b.dtype).reshape(2, -1)
    best = torch.full((h, w), torch.inf, dtype=b.dtype, device=b.device)
    src = torch.full((h, w), -1, dtype=torch.long, device=b.device)
    home = torch.zeros_like(s)
    pinned = torch.zeros(h, w, dtype=torch.bool, device=b.device)
    for dy, dx in OFFSETS:
        qx, qy = c[0] + dx, c[1] + dy
        ok = (qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)
        q = qy.clamp(0, h - 1).long() * w + qx.clamp(0, w - 1).long()
        ok &= ~taken[q]
        if fwd is not None:
            f = fwd[:, q]
            ex, ey = b[0] + f[0], b[1] + f[1]
            ok &= ex * ex + ey * ey <= FB_ALPHA * (b2 + (f[0] * f[0] + f[1] * f[1])) + FB_BETA
        r = offset.reshape(2, -1)[:, q]
        hx, hy = qx + r[0], qy + r[1]
        ex, ey = hx - s[0], hy - s[1]
        d = ex * ex + ey * ey
        better = ok & (d < best) & ~pinned
        if (dy, dx) == (0, 0):  # the first candidate: kept while its home is within ``slack``
            pinned = ok & (d <= slack * slack)
        best = torch.where(better, d, best)
        src = torch.where(better, q, src)
        home = torch.where(better, torch.stack([hx, hy]), home)
    return src, best, home


def take_sources(previous: Tensor, idx: Tensor, generator: torch.Generator) -> Tensor:
    """Frame t's ``(C, H, W)`` noise: frame t-1's values at the flat pixels ``idx`` ``(H, W)``,
    fresh draws from ``generator`` (in raster order, as :func:`.base.fresh_like` draws them) where
    ``idx < 0``."""
    return gather_sources(previous, idx, draw_fresh(previous, idx, generator))


def draw_fresh(previous: Tensor, idx: Tensor, generator: torch.Generator) -> Tensor:
    """The fresh values of frame t, ``(C, n)`` for the ``n`` pixels where ``idx < 0``, drawn as
    :func:`.base.fresh_like` draws them (nothing drawn when ``n == 0``)."""
    c = previous.shape[0]
    n = int((idx < 0).sum())
    if n == 0:
        return previous.new_empty(c, 0)
    return torch.randn(c, n, generator=generator, device=previous.device, dtype=previous.dtype)


def gather_sources(previous: Tensor, idx: Tensor, fresh: Tensor) -> Tensor:
    """Frame t's ``(C, H, W)`` noise (new memory): ``previous`` ``(C, H, W)`` at the flat pixels
    ``idx`` ``(H, W)``, and the columns of ``fresh`` ``(C, n)`` in raster order where
    ``idx < 0``."""
    c, h, w = previous.shape
    noise = previous.reshape(c, h * w)[:, idx.flatten().clamp_min(0)].view(c, h, w)
    if fresh.shape[1]:
        noise[:, idx < 0] = fresh
    return noise

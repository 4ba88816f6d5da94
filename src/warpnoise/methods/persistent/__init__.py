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
anchor).

Backends. One rule (:mod:`.rule`), three interchangeable implementations behind one small
protocol (:class:`Backend`): numba kernels on the CPU (:mod:`warpnoise.kernels.boxes`: the whole
step in compiled code, in a workspace of buffers kept in the state, the scatters in fixed bands
of rows, so results are bit-identical for any thread count), Triton kernels on CUDA
(:mod:`warpnoise.kernels.triton_boxes`: integer atomics, so the same bits run after run; the
step never waits for the device) and torch operations anywhere (:mod:`.torch_backend`: MPS,
CUDA without triton, the CPU without numba). The backend is chosen once, when a sequence starts
(``backend="auto"``: :func:`backend_for`), and kept in the state; compiled kernels that fail on
the first step hand over to torch with a warning (:mod:`warpnoise.backends`).

Same seed, same noise on every backend. Every draw is counter-based, ``normal(key, counter)``
(:func:`warpnoise.rng.counter_normal`: SplitMix64 words and an exact ziggurat, the same integer
steps and tables in numba, torch and Triton), with keys derived from one root drawn from the
caller's generator and the same counter for the same piece, cell, pixel and channel on every
backend (:mod:`.rule`).
The geometry (maps, roles, links, boxes, claims) is computed with the same float64 operations in
the same order, so it is identical; the noise sums are float32 on the compiled backends (fixed
point on Triton) and float64 on torch, so backends agree to rounding (about 1e-6).
:data:`BITS_VERSION` numbers these bits.

Memory: the field takes ``(k^2 + 4k + 4) C`` floats per pixel (64 MB at 4 x 512^2 with k=2),
independent of the sequence length.

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

import torch
from torch import Tensor

from ...backends import check_backend, run_compiled
from ...rng import draw_root
from ..base import register
from ..integral import check_anchor_options, needs_anchor
from .backend import Backend, backend_for, make_backend
from .rule import (
    BITS_VERSION,
    JUMP,
    MAX_UPSAMPLE,
    PersistentState,
    field_key,
    first_key,
    step_key,
)
from .torch_backend import (
    TorchBackend,
    advance,
    box_edges,
    from_anchor,
    integrate_boxes,
    links_of,
)

__all__ = ["BITS_VERSION", "JUMP", "Backend", "Persistent", "PersistentState", "advance",
           "backend_for", "box_edges", "integrate_boxes", "links_of"]


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
        backend: ``"auto"`` (default: Triton on CUDA, numba on the CPU, torch elsewhere;
            compiled kernels that fail on the first step fall back to torch with a warning), or
            ``"numba"``, ``"triton"`` or ``"torch"`` to insist on one
            (:mod:`warpnoise.backends`), or a :class:`Backend` instance (tests: the Triton
            kernels interpreted on CPU tensors). Every backend gives the same noise from the
            same root key, to float rounding.

    Draws are counter-based (``counter_rng = True``): :meth:`start` draws one root key from the
    generator and everything else from it, so the generator is read once per sequence.
    """

    counter_rng = True
    #: The version of the bits a seed gives (recorded in noise files' metadata).
    bits_version = BITS_VERSION

    def __init__(self, upsample: int = 2, anchor_every: int = 64, max_fresh: float = 0.25,
                 backend: str | Backend = "auto") -> None:
        check_anchor_options(upsample, anchor_every, max_fresh)
        if upsample > MAX_UPSAMPLE:
            raise ValueError(f"persistent supports upsample <= {MAX_UPSAMPLE}, got {upsample}")
        self.k = upsample
        self.anchor_every = anchor_every
        self.max_fresh = max_fresh
        self._given: Backend | None = None
        if isinstance(backend, str):
            self.backend = check_backend(backend)
        else:
            self._given, self.backend = backend, backend.name

    def start(self, shape: tuple[int, int, int], generator: torch.Generator,
              device: torch.device, dtype: torch.dtype = torch.float32) -> PersistentState:
        """A new sequence: the root key from ``generator`` (one draw), frame 0's ``shape``
        ``(C, H, W)`` noise counter-drawn on ``device``, and the first anchor."""
        root = draw_root(generator)
        backend = self._backend(device)
        noise = backend.normal(first_key(root), shape, device).to(dtype)
        return self._begin(noise, root, backend)

    def init(self, noise: Tensor, generator: torch.Generator) -> PersistentState:
        """A new sequence from given frame-0 noise (the protocol's form): the root key from
        ``generator``."""
        return self._begin(noise, draw_root(generator), self._backend(noise.device))

    def _backend(self, device: torch.device) -> Backend:
        """The backend a sequence on ``device`` runs, chosen once when it starts."""
        return self._given or make_backend(backend_for(device, self.backend)[0])

    def _begin(self, noise: Tensor, root: int, backend: Backend) -> PersistentState:
        state = backend.anchor(noise, field_key(root, 0), self.k)
        state.root = root
        return state

    def step(self, state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> PersistentState:
        """One frame. ``generator`` is not read: the keys derive from the state's root."""
        frame = state.frame + 1
        key = step_key(state.root, frame)
        backend = state.backend
        assert backend is not None
        args = (backward_flow, forward_flow, key, self.k)
        if backend.name == "torch":
            new = backend.step(state, *args)
        else:
            # From an anchor torch can take over: the state is the anchor's noise and field.
            # Later the compiled buffers may be half written by the failed step.
            fallback = None if state.age else lambda: TorchBackend().step(from_anchor(state),
                                                                          *args)
            requested = "explicit" if self._given is not None else self.backend
            new = run_compiled("persistent", backend.name, requested, state.noise.device,
                               lambda: backend.step(state, *args), fallback)
        new.root, new.frame = state.root, frame
        if needs_anchor(new.age, new.traced, self.anchor_every, self.max_fresh):
            anchored = new.backend.anchor(new.noise, field_key(state.root, frame), self.k, new)
            anchored.root, anchored.frame = state.root, frame
            return anchored
        return new

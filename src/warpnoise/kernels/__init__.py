"""Compiled kernels of the ``persistent`` method (numba on the CPU, Triton on CUDA) and the
constants and tables every backend of it reads, so all follow one rule
(:mod:`warpnoise.methods.persistent.rule`)."""

import functools

import numpy as np
import torch

#: A neighbour lies across a motion discontinuity when the spacing of the two anchor positions
#: differs from the spacings beside the pair by more than this fraction of them (at least this
#: many anchor pixels): see :func:`warpnoise.methods.persistent.box_edges`.
JUMP = 0.25
#: A cell remainder below this area is rounding, not an uncovered part (nothing is drawn for it).
REM_EPS = 1e-9
#: A pre-image box may span at most this many source cells along each axis (more: fresh noise).
MAX_SIDE = 3
#: Pixel roles: no source (fresh noise), drawing on the anchor, carried from the previous frame.
FRESH, ANCHORED, LOOSE = 0, 1, 2


#: ``snap``: the candidates around ``round(x + b(x))``, in the order every backend visits them
#: (ties keep the first).
SNAP_OFFSETS = tuple((dy, dx) for dy in (0, -1, 1) for dx in (0, -1, 1))
#: ``snap``: rounds of claims; a pixel that lost its nearest home to a nearer pixel takes the
#: nearest home still free, if any (zoom-out and rotation leave free homes beside most losers).
SNAP_ROUNDS = 3


#: Counters per pixel and channel of a step's fresh piece draws: one per cell its box may cut.
SLOTS = MAX_SIDE * MAX_SIDE


def counter_offsets(h: int, w: int, c: int, base: int = 0) -> tuple[int, int, int, int]:
    """Where the counters of one integration pass start, from ``base``, for an ``h x w`` frame
    and source of ``c`` channels: ``(piece, remainder, fresh, end)``. Counter of the fresh ``Y``
    of the piece of pixel ``(i, j)`` in cell ``(cy0 + dy, cx0 + dx)`` of its box (first cell
    ``(cy0, cx0)``), channel ``ch``: ``piece + ((i w + j) SLOTS + dy MAX_SIDE + dx) c + ch``;
    of cell ``q``'s fresh remainder: ``remainder + q c + ch``; of pixel ``p``'s fresh noise (a
    pixel without a pre-image): ``fresh + p c + ch``. The loose pass starts at the anchored
    pass's ``end``. Every backend draws ``normal(step key, counter)`` there."""
    rem = base + h * w * SLOTS * c
    fresh = rem + h * w * c
    return base, rem, fresh, fresh + h * w * c


#: The largest sub-pixel factor: every value of a cell then has a bit in one 64-bit claims mask.
MAX_UPSAMPLE = 6


def field_size(k: int) -> int:
    """Persistent values per cell and channel of ``persistent``'s field: ``k x k`` sub-pixels,
    then ``k`` per side strip (top, bottom, left, right) for slivers, then the four corners."""
    return k * k + 4 * k + 4


@functools.cache
def value_masks(k: int) -> np.ndarray:
    """The values a piece claims, as bits of its cell's field (bit ``e`` for value ``e``), indexed
    by the sub-pixel rows ``[r0, r1)`` and columns ``[s0, s1)`` whose centres it holds:
    ``masks[((r0 * (k + 1) + r1) * (k + 1) + s0) * (k + 1) + s1]``, ``(k + 1)^4`` uint64.

    A piece holding centres claims those sub-pixels. A piece holding none (a sliver, thinner than
    the sub-pixel spacing) lies between a side of its cell and the first centres, so it claims
    that side's strip values for the sub-columns (sub-rows) it spans, or, thin both ways in a
    corner, the corner's value. A sliver between two centres (only under strong zoom) claims
    nothing and is drawn fresh.
    """
    if not 1 <= k <= MAX_UPSAMPLE:
        raise ValueError(f"upsample must be in 1..{MAX_UPSAMPLE}, got {k}")
    kk = k * k
    masks = np.zeros((k + 1,) * 4, np.uint64)
    for r0, r1, s0, s1 in np.ndindex(*masks.shape):
        rows, cols = max(r1 - r0, 0), max(s1 - s0, 0)
        bits: list[int] = []
        if rows and cols:
            bits = [r * k + s for r in range(r0, r1) for s in range(s0, s1)]
        elif cols and r0 in (0, k):
            bits = [kk + (k if r0 == k else 0) + s for s in range(s0, s1)]
        elif rows and s0 in (0, k):
            bits = [kk + (3 * k if s0 == k else 2 * k) + r for r in range(r0, r1)]
        elif not rows and not cols and r0 in (0, k) and s0 in (0, k):
            bits = [kk + 4 * k + (2 if r0 == k else 0) + (1 if s0 == k else 0)]
        masks[r0, r1, s0, s1] = sum(np.uint64(1) << np.uint64(b) for b in bits)
    return masks.reshape(-1)


@functools.cache
def value_masks_on(k: int, device: torch.device) -> torch.Tensor:
    """:func:`value_masks` as int64 on ``device`` (made once per device), for the torch and
    Triton paths."""
    return torch.from_numpy(value_masks(k).view(np.int64)).to(device)

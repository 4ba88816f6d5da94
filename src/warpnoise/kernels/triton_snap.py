"""Triton kernels of the ``snap`` method: which value each pixel takes, on a CUDA device.

The same rule as the torch path (:func:`warpnoise.methods.snap.snap_sources`) and the numba kernel
(:mod:`warpnoise.kernels.snap`), with the same float64 arithmetic in the same order and the same
candidate order, so the three give the same sources and offsets, hence the same bits (the fresh
draws come from the caller's generator in all three, :func:`warpnoise.methods.base.fresh_like`).
Each of the :data:`~warpnoise.kernels.SNAP_ROUNDS` rounds is three kernels over pixels:

1. ``_homes_kernel``: each pixel not yet served finds the nearest free home around
   ``round(x + b(x))`` (the forward-backward test of
   :func:`warpnoise.flow.forward_backward_occlusion` per candidate, with forward flows) and bids
   for it: ``atomic_min`` of its squared distance's float64 bits (non-negative floats order as
   their bits) on the source;
2. ``_owner_kernel``: among the pixels that bid the least distance, the first in raster order
   (``atomic_min`` of the pixel index), as the torch and numba claims;
3. ``_accept_kernel``: the winners record their source, their offset, and the source as taken.

Determinism: the only cross-thread reductions are integer ``atomic_min``, whose result does not
depend on the order; fused multiply-adds are disabled on the GPU so that every float64 operation
rounds as on the CPU. Constants (the forward-backward ``alpha``, ``beta`` and ``slack^2``) are
read from a float64 tensor, never rounded to float32 as a Python float argument would be.

The kernels compile for CUDA and run unchanged in Triton's interpreter on CPU tensors (launched
as :mod:`warpnoise.kernels.triton_boxes` launches its own), which is how the tests compare them
with the other paths on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..flow import FB_ALPHA, FB_BETA
from . import SNAP_OFFSETS as OFFSETS
from . import SNAP_ROUNDS as ROUNDS
from .triton_interp import Interpreted

__all__ = ["snap_sources_triton"]

_GPU_BLOCK = 256  # pixels per program on the GPU
_INTERPRETED_BLOCK = 1 << 16  # the interpreter pays per operation, not per element
_NO_BID = (1 << 63) - 1  # above the bits of every finite non-negative float64


def _candidate(k: int) -> tuple[int, int]:
    """The ``k``-th of :data:`OFFSETS` as the kernels compute it (``(dy, dx)``)."""
    return (k // 3) * (3 * (k // 3) - 5) // 2, (k % 3) * (3 * (k % 3) - 5) // 2


# The kernels map 0, 1, 2 to 0, -1, 1 by the formula above: it must list OFFSETS in their order.
assert tuple(_candidate(k) for k in range(9)) == OFFSETS


@triton.jit
def _homes_kernel(offset, b, f, consts, done, taken, src, best, home, least, H, W,
                  HAS_FORWARD: tl.constexpr, BLOCK: tl.constexpr):
    """Per pixel of frame t not yet ``done``: the pixel of frame t-1 around ``round(x + b(x))``
    not ``taken`` whose home (centre + ``offset``) is nearest ``x + b(x)`` (``src``, flat, -1 if
    none qualifies), its squared distance ``best``, its home minus ``x + b(x)`` (``home``,
    ``(2, H, W)``), and the bid on ``least``. ``consts``: float64 ``alpha, beta, slack^2``."""
    n = H * W
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    on = p < n
    i = p // W
    j = p - i * W
    alpha = tl.load(consts)
    beta = tl.load(consts + 1)
    slack2 = tl.load(consts + 2)
    todo = on & (tl.load(done + p, mask=on, other=0) < 0)
    bx = tl.load(b + p, mask=on, other=0.0).to(tl.float64)
    by = tl.load(b + n + p, mask=on, other=0.0).to(tl.float64)
    sx = j.to(tl.float64) + bx
    sy = i.to(tl.float64) + by
    cx = tl.floor(sx + 0.5)
    cy = tl.floor(sy + 0.5)
    b2 = bx * bx + by * by
    bd = tl.full([BLOCK], float("inf"), tl.float64)
    bq = tl.full([BLOCK], -1, tl.int32)
    bhx = tl.zeros([BLOCK], tl.float64)
    bhy = tl.zeros([BLOCK], tl.float64)
    pinned = p < 0  # all False
    for k in tl.static_range(9):
        # OFFSETS[k] = (dy, dx): 0, -1, 1 for each of k // 3 and k % 3 (see _candidate).
        qx = cx + ((k % 3) * (3 * (k % 3) - 5) // 2)
        qy = cy + ((k // 3) * (3 * (k // 3) - 5) // 2)
        ok = todo & (qx >= 0.0) & (qx <= W - 1) & (qy >= 0.0) & (qy <= H - 1)
        r = tl.minimum(tl.maximum(qy, 0.0), H - 1).to(tl.int32)
        c = tl.minimum(tl.maximum(qx, 0.0), W - 1).to(tl.int32)
        q = r * W + c
        ok = ok & (tl.load(taken + q, mask=ok, other=1) == 0)
        if HAS_FORWARD:
            fx = tl.load(f + q, mask=ok, other=0.0).to(tl.float64)
            fy = tl.load(f + n + q, mask=ok, other=0.0).to(tl.float64)
            ex = bx + fx
            ey = by + fy
            ok = ok & (ex * ex + ey * ey <= alpha * (b2 + (fx * fx + fy * fy)) + beta)
        hx = qx + tl.load(offset + q, mask=ok, other=0.0)
        hy = qy + tl.load(offset + n + q, mask=ok, other=0.0)
        ex = hx - sx
        ey = hy - sy
        d = ex * ex + ey * ey
        better = ok & (d < bd) & ~pinned
        if k == 0:  # the first candidate is kept while its home is within ``slack``
            pinned = ok & (d <= slack2)
        bd = tl.where(better, d, bd)
        bq = tl.where(better, q, bq)
        bhx = tl.where(better, hx, bhx)
        bhy = tl.where(better, hy, bhy)
    tl.store(src + p, bq.to(tl.int64), mask=on)
    tl.store(best + p, bd, mask=on)
    tl.store(home + p, bhx - sx, mask=on)
    tl.store(home + n + p, bhy - sy, mask=on)
    bid = on & (bq >= 0)
    tl.atomic_min(least + bq, bd.to(tl.int64, bitcast=True), mask=bid)


@triton.jit
def _owner_kernel(src, best, least, owner, N, BLOCK: tl.constexpr):
    """Each source's owner: the first pixel (raster order) among those that bid its least
    distance."""
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    on = p < N
    q = tl.load(src + p, mask=on, other=-1)
    bid = on & (q >= 0)
    d = tl.load(best + p, mask=bid, other=0.0).to(tl.int64, bitcast=True)
    least_q = tl.load(least + q, mask=bid, other=0)
    tl.atomic_min(owner + q, p.to(tl.int64), mask=bid & (d == least_q))


@triton.jit
def _accept_kernel(src, home, owner, done, taken, new, N, BLOCK: tl.constexpr):
    """Record this round's winners: their source, their offset, and the source as taken."""
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    on = p < N
    q = tl.load(src + p, mask=on, other=-1)
    won = on & (q >= 0)
    won = won & (tl.load(owner + q, mask=won, other=-1) == p.to(tl.int64))
    tl.store(done + p, q, mask=won)
    tl.store(taken + q, tl.full([BLOCK], 1, tl.int8), mask=won)
    tl.store(new + p, tl.load(home + p, mask=won, other=0.0), mask=won)
    tl.store(new + N + p, tl.load(home + N + p, mask=won, other=0.0), mask=won)


@functools.cache
def _interpreted(kernel: Any) -> Any:
    return Interpreted(kernel)


def _launcher(kernel: Any, device: torch.device) -> Any:
    """``kernel`` as launched on ``device``: compiled on CUDA, interpreted on CPU tensors."""
    return _interpreted(kernel) if device.type == "cpu" else kernel


def snap_sources_triton(offset: Tensor, backward_flow: Tensor, forward_flow: Tensor | None,
                        slack: float = 0.5) -> tuple[Tensor, Tensor]:
    """:func:`warpnoise.methods.snap.snap_sources` in Triton kernels: ``(sources, offset)``.

    Convention:
        ``offset`` ``(2, H, W)`` float64: frame t-1's homes minus pixel centres (x, y);
        ``backward_flow`` is frame t's, ``forward_flow`` frame t-1's (or None), ``(2, H, W)``
        on the same CUDA device (or CPU tensors, run in Triton's interpreter).

    Returns:
        ``(sources, offset)``: ``(H, W)`` int64 flat pixel of frame t-1 (each at most once), -1
        for fresh noise; frame t's ``(2, H, W)`` float64 offsets (0 at fresh pixels).
    """
    _, h, w = offset.shape
    n = h * w
    dev = offset.device
    interpret = dev.type == "cpu"
    block = min(_INTERPRETED_BLOCK if interpret else _GPU_BLOCK,
                triton.next_power_of_2(max(n, 16)))
    grid = (triton.cdiv(n, block),)
    # The geometry repeats the CPU's float64 operations: fused multiply-adds would round
    # differently, so the compiler may not fuse there.
    exact: dict[str, Any] = {} if interpret else {"enable_fp_fusion": False}
    o = offset.to(torch.float64).contiguous()
    b = backward_flow.contiguous()
    has_forward = forward_flow is not None
    f = forward_flow.contiguous() if has_forward else b  # never read without HAS_FORWARD
    consts = torch.tensor([FB_ALPHA, FB_BETA, slack * slack], dtype=torch.float64, device=dev)
    done = torch.full((n,), -1, dtype=torch.int64, device=dev)
    taken = torch.zeros(n, dtype=torch.int8, device=dev)
    src = torch.empty(n, dtype=torch.int64, device=dev)
    best = torch.empty(n, dtype=torch.float64, device=dev)
    home = torch.empty(2, n, dtype=torch.float64, device=dev)
    least = torch.empty(n, dtype=torch.int64, device=dev)
    owner = torch.empty(n, dtype=torch.int64, device=dev)
    new = torch.zeros(2, h, w, dtype=torch.float64, device=dev)
    homes = _launcher(_homes_kernel, dev)
    owners = _launcher(_owner_kernel, dev)
    accept = _launcher(_accept_kernel, dev)
    # Triton launches on the current CUDA device: make it the data's (cuda:1 and beyond).
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        for _ in range(ROUNDS):
            least.fill_(_NO_BID)
            owner.fill_(n)
            homes[grid](o, b, f, consts, done, taken, src, best, home, least, h, w,
                        HAS_FORWARD=has_forward, BLOCK=block, **exact)
            owners[grid](src, best, least, owner, n, BLOCK=block)
            accept[grid](src, home, owner, done, taken, new, n, BLOCK=block)
    return done.view(h, w), new

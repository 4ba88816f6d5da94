"""The paper's ∫-noise warper (Chang et al., "How I Warped Your Noise", ICLR 2024, Alg. 1).

Each anchor frame's noise is refined by conditional upsampling into ``k x k`` unit-variance
sub-pixels (the discrete white-noise field). Frame t's pixels are mapped back to the anchor with
the *accumulated* backward map; each pixel's 9-point polygon (8 fan triangles) is rasterised on the
sub-pixel grid and its noise is ``G(p) = sum_{i in Omega(p)} U_i / sqrt(|Omega(p)|)`` (the noise
transport equation, discretised). Since the ``U_i`` are i.i.d. N(0, 1) and the ``Omega(p)`` are
disjoint, every frame is i.i.d. N(0, 1).

Fresh noise goes to pixels that (a) are disoccluded by the forward-backward test when a forward
flow is given, (b) trace back to a fresh pixel or out of the frame, (c) have a folded fan or a
pre-image leaving the anchor frame, or (d) cover no sub-pixel (strong zoom-in). A sub-pixel inside
two pre-images is given to neither.

Re-anchoring: warping every frame from the anchor keeps the sub-pixel detail fixed, so the
correlation with earlier frames is the exact overlap of pre-images; re-anchoring resamples that
detail (a small loss of correlation each time) but lets new content, which has fresh noise while
the anchor cannot see it, become coherent. The anchor is renewed every ``anchor_every`` frames
(default 32: longer than the 30-frame horizon over which ∫-noise coherence is usually judged, and
a 1-in-32 resampling costs little) or sooner when more than ``max_fresh`` of the frame (default
25%) has no source in the anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..field import conditional_upsample
from ..flow import compose_map, forward_backward_occlusion, inside_frame, pixel_grid, sample
from ..polygon import fan_is_valid, lattice_vertices, polygon_corners, rasterize, unique_claims
from .base import WarpState, register

__all__ = [
    "AnchorState",
    "Integral",
    "advance_map",
    "check_anchor_options",
    "integrate_or_fresh",
    "needs_anchor",
]


@dataclass
class AnchorState(WarpState):
    """``field``: the anchor's sub-pixel noise (method-specific layout); ``acc_map``: ``(2, H, W)``
    float64 anchor positions of the current pixels; ``traced``: ``(H, W)`` pixels whose noise
    came from the anchor; ``age``: frames since the anchor."""

    field: object
    acc_map: Tensor
    traced: Tensor
    age: int


def check_anchor_options(upsample: int, anchor_every: int, max_fresh: float) -> None:
    if not isinstance(upsample, int) or upsample < 1:
        raise ValueError(f"upsample must be an int >= 1, got {upsample!r}")
    if not isinstance(anchor_every, int) or anchor_every < 1:
        raise ValueError(f"anchor_every must be an int >= 1, got {anchor_every!r}")
    if not 0.0 <= max_fresh <= 1.0:
        raise ValueError(f"max_fresh must be in [0, 1], got {max_fresh!r}")


def advance_map(
    acc_map: Tensor, traced: Tensor, backward_flow: Tensor, forward_flow: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Compose the accumulated map with one backward flow and find the pixels it can serve.

    Returns:
        ``(acc_map, usable)``: the new ``(2, H, W)`` float64 map and the ``(H, W)`` pixels that
        trace back to the anchor (inside the frame, from a traced pixel, not disoccluded).
    """
    _, h, w = acc_map.shape
    b = backward_flow.to(torch.float64)
    src = pixel_grid(h, w, device=b.device, dtype=b.dtype) + b
    new_map = compose_map(acc_map, b)
    # The nearest source pixel must itself trace back to the anchor. (Requiring all four bilinear
    # neighbours would grow an untraced band by a pixel every frame, whatever the motion.)
    usable = inside_frame(src, h, w)
    usable &= sample(traced[None].to(b.dtype), src, mode="nearest")[0] > 0.5
    if forward_flow is not None:
        usable &= ~forward_backward_occlusion(b, forward_flow.to(torch.float64))
    return new_map, usable


def needs_anchor(age: int, traced: Tensor, anchor_every: int, max_fresh: float) -> bool:
    """Renew the anchor after ``anchor_every`` frames, or once more than ``max_fresh`` of the
    frame no longer traces back to it."""
    if age >= anchor_every:
        return True
    n_traced = int(np.count_nonzero(traced.numpy())) if traced.device.type == "cpu" else int(
        traced.sum())
    return 1.0 - n_traced / traced.numel() > max_fresh


@register("integral")
class Integral:
    """The paper's algorithm, vectorised in torch (runs on any device). Reference, not fast:
    cost grows with ``upsample**2`` per pixel."""

    def __init__(self, upsample: int = 8, anchor_every: int = 32, max_fresh: float = 0.25) -> None:
        check_anchor_options(upsample, anchor_every, max_fresh)
        self.k = upsample
        self.anchor_every = anchor_every
        self.max_fresh = max_fresh

    def _anchor(self, noise: Tensor, generator: torch.Generator) -> AnchorState:
        _, h, w = noise.shape
        return AnchorState(
            noise,
            conditional_upsample(noise, self.k, generator),
            pixel_grid(h, w, device=noise.device, dtype=torch.float64),
            torch.ones(h, w, dtype=torch.bool, device=noise.device),
            0,
        )

    def init(self, noise: Tensor, generator: torch.Generator) -> AnchorState:
        return self._anchor(noise, generator)

    def step(self, state: AnchorState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> AnchorState:
        c, h, w = state.noise.shape
        acc_map, usable = advance_map(state.acc_map, state.traced, backward_flow, forward_flow)
        boundary, centre = polygon_corners(lattice_vertices(acc_map))
        usable &= fan_is_valid(boundary, centre)
        usable &= inside_frame(boundary.permute(3, 0, 1, 2), h, w).all(dim=-1)
        pix = usable.flatten().nonzero().squeeze(1)
        poly, sub, _ = rasterize(boundary.reshape(-1, 8, 2)[pix], self.k, h, w)
        keep = unique_claims(sub, h * w * self.k * self.k)
        poly, sub = poly[keep], sub[keep]
        field: Tensor = state.field  # type: ignore[assignment]
        sums = torch.zeros(c, pix.numel(), dtype=field.dtype, device=field.device)
        sums.index_add_(1, poly, field.reshape(c, -1)[:, sub])
        count = torch.bincount(poly, minlength=pix.numel())
        noise, traced = integrate_or_fresh(sums, count, pix, (c, h, w), generator)
        age = state.age + 1
        if needs_anchor(age, traced, self.anchor_every, self.max_fresh):
            return self._anchor(noise, generator)
        return AnchorState(noise, field, acc_map, traced, age)


def integrate_or_fresh(
    sums: Tensor, count: Tensor, pix: Tensor, shape: tuple[int, int, int],
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Normalise pre-image sums into noise (``sum / sqrt(count)``) and draw fresh noise for every
    pixel that has none.

    Args:
        sums: ``(C, P)`` sums of sub-pixel noise for the pixels ``pix`` (flat indices).
        count: ``(P,)`` sub-pixels in each sum.

    Returns:
        ``(noise, traced)``: ``(C, H, W)`` noise and the ``(H, W)`` mask of integrated pixels.
    """
    c, h, w = shape
    noise = torch.empty(c, h * w, dtype=sums.dtype, device=sums.device)
    traced = torch.zeros(h * w, dtype=torch.bool, device=sums.device)
    has = count > 0
    tp = pix[has]
    noise[:, tp] = sums[:, has] / count[has].to(sums.dtype).sqrt()
    traced[tp] = True
    n_fresh = h * w - tp.numel()
    if n_fresh:
        noise[:, ~traced] = torch.randn(c, n_fresh, generator=generator, device=sums.device,
                                        dtype=sums.dtype)
    return noise.view(c, h, w), traced.view(h, w)



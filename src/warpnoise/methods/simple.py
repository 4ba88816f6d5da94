"""The two trivial baselines: fresh noise every frame, and the same noise every frame."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import WarpState, register


@register("random")
class Random:
    """Fresh i.i.d. noise every frame: no temporal correlation (flickers in video)."""

    def init(self, noise: Tensor, generator: torch.Generator) -> WarpState:
        return WarpState(noise)

    def step(self, state: WarpState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> WarpState:
        n = state.noise
        return WarpState(torch.randn(n.shape, generator=generator, device=n.device, dtype=n.dtype))


@register("fixed")
class Fixed:
    """The first frame's noise for every frame: it does not follow the motion (texture sticks)."""

    def init(self, noise: Tensor, generator: torch.Generator) -> WarpState:
        return WarpState(noise)

    def step(self, state: WarpState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> WarpState:
        return state

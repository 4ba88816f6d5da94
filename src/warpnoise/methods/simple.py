"""The two trivial baselines: fresh noise every frame, and the same noise every frame.

Neither reads the flows ``step`` receives: both declare ``uses_flows = False`` so that
``warpnoise noise`` estimates none for them (:func:`warpnoise.methods.uses_flows`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .base import WarpState, register


@register("random")
class Random:
    """Fresh i.i.d. noise every frame: no temporal correlation (flickers in video)."""

    uses_flows: ClassVar[bool] = False

    def init(self, noise: Tensor, generator: torch.Generator) -> WarpState:
        return WarpState(noise)

    def step(self, state: WarpState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> WarpState:
        n = state.noise
        return WarpState(torch.randn(n.shape, generator=generator, device=n.device, dtype=n.dtype))


@register("fixed")
class Fixed:
    """The first frame's noise for every frame: it does not follow the motion (texture sticks)."""

    uses_flows: ClassVar[bool] = False

    def init(self, noise: Tensor, generator: torch.Generator) -> WarpState:
        return WarpState(noise)

    def step(self, state: WarpState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> WarpState:
        return state

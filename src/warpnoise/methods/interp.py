"""Interpolation baselines: resample the previous frame's noise at ``x + b(x)``.

These are the naive baselines of Chang et al. (2024, §5): nearest duplicates values under zoom-in
and blocks under rotation, bilinear and bicubic average neighbours and so lose variance and add
spatial correlation. They are kept exactly that naive on purpose. Pixels whose source falls
outside the previous frame get fresh noise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..flow import inside_frame, pixel_grid, sample
from .base import WarpState, fresh_like, register


class _Interpolate:
    mode: str = "bilinear"

    def init(self, noise: Tensor, generator: torch.Generator) -> WarpState:
        return WarpState(noise)

    def step(self, state: WarpState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> WarpState:
        _, h, w = state.noise.shape
        src = pixel_grid(h, w, device=backward_flow.device, dtype=backward_flow.dtype)
        src = src + backward_flow
        warped = sample(state.noise, src, mode=self.mode, padding="border")
        return WarpState(fresh_like(warped, ~inside_frame(src, h, w), generator))


@register("nearest")
class Nearest(_Interpolate):
    mode = "nearest"


@register("bilinear")
class Bilinear(_Interpolate):
    mode = "bilinear"


@register("bicubic")
class Bicubic(_Interpolate):
    mode = "bicubic"

"""PYoCo's correlated video noise priors (Ge et al., "Preserve Your Own Correlation", ICCV 2023).

Mixed: ``e_t = (a e_shared + e_ind,t) / sqrt(1 + a^2)``. Progressive:
``e_t = (a e_{t-1} + e_ind,t) / sqrt(1 + a^2)``. Both ignore the flow; they are N(0, 1) per
frame and correlated over time by a fixed amount (``a^2 / (1 + a^2)`` between frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import WarpState, register


@dataclass
class MixedState(WarpState):
    shared: Tensor


def _mix(a: float, base: Tensor, generator: torch.Generator) -> Tensor:
    ind = torch.randn(base.shape, generator=generator, device=base.device, dtype=base.dtype)
    return (a * base + ind) / math.sqrt(1.0 + a * a)


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


@register("pyoco-mixed")
class PyocoMixed:
    """Mixed noise: a shared component plus an independent one per frame."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = _check_alpha(alpha)

    def init(self, noise: Tensor, generator: torch.Generator) -> MixedState:
        # The first frame is itself a mix, so every frame has the same law.
        shared = torch.randn(noise.shape, generator=generator, device=noise.device,
                             dtype=noise.dtype)
        return MixedState(_mix(self.alpha, shared, generator), shared)

    def step(self, state: MixedState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> MixedState:
        return MixedState(_mix(self.alpha, state.shared, generator), state.shared)


@register("pyoco-progressive")
class PyocoProgressive:
    """Progressive noise: an AR(1) chain over frames."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = _check_alpha(alpha)

    def init(self, noise: Tensor, generator: torch.Generator) -> WarpState:
        return WarpState(noise)

    def step(self, state: WarpState, backward_flow: Tensor, forward_flow: Tensor | None,
             generator: torch.Generator) -> WarpState:
        return WarpState(_mix(self.alpha, state.noise, generator))

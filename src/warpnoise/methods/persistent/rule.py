"""The rule of ``persistent`` that every backend follows: its constants and tables, the state it
carries, and which random stream each draw comes from (:mod:`warpnoise.methods.persistent`
describes the mathematics).

Random draws. Every value the method draws is ``normal(key, counter)``
(:func:`warpnoise.rng.counter_normal`, bit for bit the same integer steps in the numba, torch
and Triton backends), so a seed gives the same noise on every backend and device:

* the root key: one ``torch.randint`` on the caller's generator (:func:`warpnoise.rng.draw_root`);
* frame 0's noise ``(C, H, W)``: key :func:`first_key`, counter the flat index;
* the persistent field drawn at an anchor made at frame ``t`` ``(H, W, E, C)``:
  key :func:`field_key`, counter the flat index;
* every fresh draw of step ``t`` (pieces that own no field value, cell remainders, pixels
  without a pre-image, the loose pass's ``Y``): key :func:`step_key`, counters laid out by
  :func:`warpnoise.kernels.counter_offsets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor

from ...kernels import (
    ANCHORED,
    FRESH,
    JUMP,
    LOOSE,
    MAX_SIDE,
    MAX_UPSAMPLE,
    REM_EPS,
    SLOTS,
    counter_offsets,
    field_size,
    value_masks,
    value_masks_on,
)
from ...rng import derive_key
from ..base import WarpState

if TYPE_CHECKING:
    from .backend import Backend

__all__ = ["ANCHORED", "BITS_VERSION", "FRESH", "JUMP", "LOOSE", "MAX_SIDE", "MAX_UPSAMPLE",
           "REM_EPS", "SLOTS", "PersistentState", "counter_offsets", "field_key", "field_size",
           "first_key", "step_key", "value_masks", "value_masks_on"]

#: The version of the noise bits a seed gives: 2 since every draw is counter-based (the same on
#: every backend and device). Version 1 drew with a different generator per backend.
BITS_VERSION = 2

_FIRST, _FIELD, _STEP = 0, 1, 2


def first_key(root: int) -> int:
    """The key of frame 0's noise."""
    return derive_key(root, _FIRST)


def field_key(root: int, frame: int) -> int:
    """The key of the persistent field of the anchor made at ``frame`` (0: the first)."""
    return derive_key(root, _FIELD, frame)


def step_key(root: int, frame: int) -> int:
    """The key of the fresh draws of the step that makes ``frame`` (1, 2, ...)."""
    return derive_key(root, _STEP, frame)


@dataclass
class PersistentState(WarpState):
    """What ``persistent`` carries from frame to frame.

    ``anchor``: ``(C, H, W)`` anchor noise; ``field``: ``(H, W, k^2 + 4k + 4, C)`` float32
    persistent values (sub-pixels, side strips, corners); ``acc_map`` ``(2, H, W)`` float64
    anchor positions, ``traced`` ``(H, W)`` pixels drawn on the anchor, ``age`` frames since
    it; ``links``: ``(H, W)`` uint8, bit 0 set where a pixel is linked to its right neighbour
    (same side of every motion discontinuity, :func:`box_edges`), bit 1 to the one below;
    ``keep``: ``(C, H, W)`` the current frame's noise at its loose (not anchored) pixels, which
    the next frame may carry. ``root``: the root key of every draw; ``frame``: this frame's
    index; ``backend``: the backend the sequence runs on, chosen when it started.

    A compiled backend's ``workspace`` holds every buffer a step writes, reused from step to
    step: a state is consumed by the step that follows it (its ``acc_map``, ``traced``, ``links``
    and ``keep`` are overwritten by later steps). The noise a step returns is always new memory.
    """

    anchor: Tensor
    field: Tensor
    acc_map: Tensor
    traced: Tensor
    age: int
    links: Tensor
    keep: Tensor
    workspace: Any = None
    root: int = 0
    frame: int = 0
    backend: Backend | None = None

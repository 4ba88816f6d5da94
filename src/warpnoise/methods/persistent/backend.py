"""The backends of ``persistent``: the small protocol each implements, and the choice of one
when a sequence starts (:func:`warpnoise.backends.choose`)."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from ...backends import choose
from .rule import PersistentState

__all__ = ["Backend", "backend_for", "make_backend"]


class Backend(Protocol):
    """One implementation of the rule (:mod:`.rule`): the numba kernels, the Triton kernels or
    torch operations. Every backend draws the same values for the same keys and counters and
    computes the same geometry, so they give the same noise to float rounding.

    ``anchor`` makes a new anchor from frame noise ``(C, H, W)``: the anchor noise, the
    persistent field ``normal(key, flat index)`` ``(H, W, k^2 + 4k + 4, C)`` float32, every
    pixel at its own centre; in the buffers of ``reuse`` (a state of this backend) if given.
    ``step`` advances a state of this backend by one frame, its fresh draws keyed by ``key``.
    ``normal`` draws a float32 tensor of ``shape`` on ``device`` whose flat entry ``i`` is
    ``normal(key, i)`` (frame 0's noise, the field).
    """

    name: str

    def normal(self, key: int, shape: tuple[int, ...], device: torch.device) -> Tensor: ...

    def anchor(self, noise: Tensor, key: int, k: int,
               reuse: PersistentState | None = None) -> PersistentState: ...

    def step(self, state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
             key: int, k: int) -> PersistentState: ...


def backend_for(device: torch.device, requested: str = "auto") -> tuple[str, str]:
    """The backend ``persistent`` runs on ``device`` and why (:func:`warpnoise.backends.choose`):
    CUDA runs the Triton kernels when triton imports; the CPU runs numba; MPS, CUDA without
    triton and the CPU without numba run torch. Read once when a sequence starts: it stays on
    that backend, unless its compiled kernels fail on the first step (then torch takes over)."""
    return choose("persistent", requested, device)


def make_backend(name: str) -> Backend:
    """The backend called ``name`` (``"numba"``, ``"triton"`` or ``"torch"``)."""
    if name == "numba":
        from .numba_backend import NumbaBackend

        return NumbaBackend()
    if name == "triton":
        from .triton_backend import TritonBackend

        return TritonBackend()
    from .torch_backend import TorchBackend

    return TorchBackend()

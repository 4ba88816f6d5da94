"""The numba backend of ``persistent``: the whole step in the CPU kernels of
:mod:`warpnoise.kernels.boxes`, in a workspace of numpy buffers kept in the state."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..._interrupt import native_interrupts
from .rule import PersistentState, field_size

__all__ = ["NumbaBackend"]


class NumbaBackend:
    """CPU tensors only (they share memory with the kernels' numpy arrays). Interrupts that
    arrive inside compiled code or numba's cache loading are re-raised as themselves
    (:func:`warpnoise._interrupt.native_interrupts`)."""

    name = "numba"

    def normal(self, key: int, shape: tuple[int, ...], device: torch.device) -> Tensor:
        from ...kernels.hashing import fill_normal

        out = torch.empty(shape)
        with native_interrupts():
            fill_normal(np.uint64(key), out.numpy())
        return out

    def anchor(self, noise: Tensor, key: int, k: int,
               reuse: PersistentState | None = None) -> PersistentState:
        from ...kernels import boxes
        from ...kernels.hashing import fill_normal

        c, h, w = noise.shape
        if reuse is None:
            ws = boxes.Workspace.empty(c, h, w)
            anchor = torch.empty(c, h, w)
            field = torch.empty(h, w, field_size(k), c)
        else:
            anchor, field, ws = reuse.anchor, reuse.field, reuse.workspace
        anchor.copy_(noise)
        with native_interrupts():
            fill_normal(np.uint64(key), field.numpy())
        ws.reset()
        return PersistentState(noise, anchor, field, torch.from_numpy(ws.maps[0]),
                               torch.from_numpy(ws.traced[0]), 0, torch.from_numpy(ws.links),
                               torch.from_numpy(ws.keep[0]), ws, backend=self)

    def step(self, state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
             key: int, k: int) -> PersistentState:
        from ...kernels import boxes

        ws = state.workspace
        b = backward_flow.numpy()
        f = None if forward_flow is None else forward_flow.numpy()
        with native_interrupts():
            out = boxes.step(ws, b[0], b[1], None if f is None else f[0],
                             None if f is None else f[1], state.anchor.numpy(),
                             state.field.numpy(), k, np.uint64(key))
        cur = ws.current
        return PersistentState(torch.from_numpy(out).to(state.noise.dtype), state.anchor,
                               state.field, torch.from_numpy(ws.maps[cur]),
                               torch.from_numpy(ws.traced[cur]), state.age + 1, state.links,
                               torch.from_numpy(ws.keep[cur]), ws, backend=self)

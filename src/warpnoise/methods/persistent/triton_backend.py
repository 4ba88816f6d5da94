"""The Triton backend of ``persistent``: the whole step in the kernels of
:mod:`warpnoise.kernels.triton_boxes`, on the device, in a workspace kept in the state. On CPU
tensors the same kernels run in Triton's interpreter (slow: how the tests check them without a
GPU); ``backend="auto"`` and ``backend="triton"`` pick it on CUDA only, the interpreter is
reached by passing ``backend=TritonBackend()``."""

from __future__ import annotations

import torch
from torch import Tensor

from .rule import PersistentState, field_size

__all__ = ["TritonBackend"]


class TritonBackend:
    """CUDA tensors (or CPU tensors, interpreted). The step never waits for the device."""

    name = "triton"

    def normal(self, key: int, shape: tuple[int, ...], device: torch.device) -> Tensor:
        from ...kernels import triton_boxes as T

        out = torch.empty(shape, device=device)
        T.fill_normal(out, key)
        return out

    def anchor(self, noise: Tensor, key: int, k: int,
               reuse: PersistentState | None = None) -> PersistentState:
        from ...kernels import triton_boxes as T

        c, h, w = noise.shape
        if reuse is None:
            ws = T.Workspace.empty(c, h, w, noise.device)
            anchor = torch.empty(c, h, w, device=noise.device)
            field = torch.empty(h, w, field_size(k), c, device=noise.device)
        else:
            anchor, field, ws = reuse.anchor, reuse.field, reuse.workspace
        anchor.copy_(noise)
        T.fill_normal(field, key)
        ws.reset()
        return PersistentState(noise, anchor, field, ws.maps[0], ws.traced[0], 0, ws.links,
                               ws.keep[0], ws, backend=self)

    def step(self, state: PersistentState, backward_flow: Tensor, forward_flow: Tensor | None,
             key: int, k: int) -> PersistentState:
        from ...kernels import triton_boxes as T

        ws = state.workspace
        f = None if forward_flow is None else forward_flow.float().contiguous()
        out = T.step(ws, backward_flow.float().contiguous(), f, state.anchor, state.field, k, key)
        cur = ws.current
        return PersistentState(out.to(state.noise.dtype), state.anchor, state.field,
                               ws.maps[cur], ws.traced[cur], state.age + 1, state.links,
                               ws.keep[cur], ws, backend=self)

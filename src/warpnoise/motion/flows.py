"""Exact flows of an authored motion, frame by frame.

Each pixel of frame t belongs to the front-most layer whose shape covers its centre, else to the
background (:meth:`Scene.owner`), and moves with that layer's map (the camera's for the
background), so its flows are the map evaluated at the pixel, in closed form: nothing is
estimated.

Convention:
    ``backward`` ``(2, H, W)``: pixel ``x`` of frame t came from ``x + b(x)`` in frame t-1;
    ``forward`` ``(2, H, W)``: pixel ``x`` of frame t-1 goes to ``x + f(x)`` in frame t (a pixel
    that frame t hides still gets its owner's motion). dx then dy, pixels, centres at integers.
    A pixel of frame t whose point was hidden in frame t-1 (the background a layer uncovers, or
    a layer coming out from behind another) has no source: its backward flow sends it to
    ``x = -W`` (a whole frame left of frame t-1), which every warper treats as noise entering the
    frame, so it gets fresh noise whether or not the forward flow is given. Such pixels are
    listed in ``disoccluded``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .scene import BACKGROUND, Scene, apply_grid, apply_matrix

__all__ = ["BACKGROUND", "FlowStep", "flows", "positions"]


@dataclass(frozen=True)
class FlowStep:
    """The flows between frames t-1 and t.

    Attributes:
        frame: t (1 to T-1).
        backward: ``(2, H, W)`` frame t's backward flow.
        forward: ``(2, H, W)`` frame t-1's forward flow.
        owner: ``(H, W)`` int8: the layer each pixel of frame t shows (-1: background).
        disoccluded: ``(H, W)`` bool: pixels of frame t hidden in frame t-1.
    """

    frame: int
    backward: Tensor
    forward: Tensor
    owner: Tensor
    disoccluded: Tensor

    def visibility(self, layers: int) -> Tensor:
        """``(layers, H, W)`` bool: where each layer is seen in frame t."""
        return self.owner[None] == torch.arange(layers, dtype=torch.int8)[:, None, None]


def _moved(sc: Scene, owner: np.ndarray, t_from: int, t_to: int) -> np.ndarray:
    """Where each pixel of frame ``t_from`` is seen in frame ``t_to``, by its owner's map."""
    out = apply_grid(sc.step_map(BACKGROUND, t_from, t_to), sc.height, sc.width)
    flat, grid = out.reshape(2, -1), None
    for k in range(len(sc.layers)):
        idx = np.flatnonzero(owner == k)
        if idx.size:
            if grid is None:
                grid = apply_grid(np.eye(3), sc.height, sc.width).reshape(2, -1)
            flat[:, idx] = apply_matrix(sc.step_map(k, t_from, t_to), grid[:, idx])
    return out


def flows(sc: Scene, *, dtype: torch.dtype = torch.float32,
          device: torch.device | str = "cpu") -> Iterator[FlowStep]:
    """Yield :class:`FlowStep` for t = 1 .. T-1, one at a time (memory: a few ``(H, W)`` maps).

    Positions are computed in float64 (NumPy) and the flows cast to ``dtype`` on ``device``.
    """
    grid = apply_grid(np.eye(3), sc.height, sc.width)
    prev_owner = sc.owner_grid(0)
    for t in range(1, sc.frames):
        owner = sc.owner_grid(t)
        src = _moved(sc, owner, t, t - 1)
        # A pixel's source is its own point in frame t-1; it was seen there only if the same
        # layer owned that point then (a layer in front may have hidden it, or it was uncovered).
        hidden = sc.owner(src, t - 1) != owner
        src[0][hidden] = -float(sc.width)
        src[1][hidden] = grid[1][hidden]
        fwd = _moved(sc, prev_owner, t - 1, t)
        yield FlowStep(t, _tensor(src - grid, dtype, device), _tensor(fwd - grid, dtype, device),
                       torch.from_numpy(owner), torch.from_numpy(hidden))
        prev_owner = owner


def _tensor(x: np.ndarray, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    # NumPy casts on one thread; torch's threads only contend on a loaded machine.
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    return torch.from_numpy(x.astype(np_dtype)).to(device)


def positions(sc: Scene, points: np.ndarray, layer: int, t: int) -> np.ndarray:
    """``(N, 2)``: where frame t shows first-frame points ``(N, 2)`` of ``layer`` (-1:
    background), camera included."""
    pts = np.asarray(points, dtype=np.float64).T
    return apply_matrix(sc.placement(layer, t), pts).T

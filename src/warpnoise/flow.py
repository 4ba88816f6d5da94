"""Flow conventions, validation, sampling, composition and occlusion.

Convention:
    A flow is a ``(2, H, W)`` tensor (batched: ``(T, 2, H, W)``) in pixels; channel 0 is dx
    (columns), channel 1 is dy (rows). Pixel centres sit at integer coordinates, origin top-left,
    so pixel ``(row i, col j)`` is the unit square ``[j - 0.5, j + 0.5) x [i - 0.5, i + 0.5)``.
    The *backward* flow ``b`` of frame t says that pixel ``x`` of frame t came from ``x + b(x)``
    in frame t-1. The *forward* flow ``f`` of frame t-1 says that pixel ``x`` of frame t-1 goes to
    ``x + f(x)`` in frame t. A *map* is a ``(2, H, W)`` tensor of absolute positions (x, y).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Forward-backward tolerance ``alpha |..|^2 + beta`` of Sundaram, Brox & Keutzer (ECCV 2010).
FB_ALPHA = 0.01
FB_BETA = 0.5

__all__ = [
    "FB_ALPHA",
    "FB_BETA",
    "as_flow",
    "as_flows",
    "bilinear_corners",
    "compose_map",
    "forward_backward_occlusion",
    "inside_frame",
    "pixel_grid",
    "sample",
]


def _to_tensor(x: Any, name: str, device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got numpy dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must be real-valued, got dtype {x.dtype}")
    # Flows are data, not parameters: noise is never differentiated through them.
    return x.detach().to(device=device if device is not None else x.device, dtype=dtype)


def as_flow(
    flow: Any,
    height: int | None = None,
    width: int | None = None,
    *,
    name: str = "flow",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Validate one flow and return it as a ``(2, H, W)`` tensor.

    Args:
        flow: ``(2, H, W)`` tensor or array, dx then dy, in pixels.
        height: the frame height the flow must have, if known.
        width: the frame width the flow must have, if known.
        name: what to call the argument in error messages.

    Returns:
        the flow, detached from autograd (a flow with ``requires_grad`` is accepted as data).

    Raises:
        ValueError: wrong type, wrong shape (the shape is in the message), NaN or inf values.
    """
    t = _to_tensor(flow, name, device, dtype)
    if t.ndim != 3 or t.shape[0] != 2:
        hint = " (OpenCV's (H, W, 2) layout? use flow.permute(2, 0, 1))" if (
            t.ndim == 3 and t.shape[-1] == 2
        ) else ""
        raise ValueError(f"{name} must have shape (2, H, W), got {tuple(t.shape)}{hint}")
    if height is not None and width is not None and tuple(t.shape[1:]) != (height, width):
        raise ValueError(
            f"{name} has shape {tuple(t.shape)}, expected (2, {height}, {width}) for this frame"
        )
    _check_finite(t, name)
    return t


def as_flows(
    flows: Any,
    height: int | None = None,
    width: int | None = None,
    *,
    name: str = "flows",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Validate a sequence of flows and return a ``(T, 2, H, W)`` tensor (see :func:`as_flow`)."""
    if isinstance(flows, (list, tuple)):
        if len(flows) == 0:
            return torch.zeros(0, 2, height or 0, width or 0, device=device, dtype=dtype)
        flows = torch.stack([as_flow(f, height, width, name=f"{name}[{i}]", device=device,
                                     dtype=dtype) for i, f in enumerate(flows)])
    t = _to_tensor(flows, name, device, dtype)
    if t.ndim != 4 or t.shape[1] != 2:
        raise ValueError(f"{name} must have shape (T, 2, H, W), got {tuple(t.shape)}")
    if height is not None and width is not None and tuple(t.shape[2:]) != (height, width):
        raise ValueError(
            f"{name} has shape {tuple(t.shape)}, expected (T, 2, {height}, {width})"
        )
    _check_finite(t, name)
    return t


def _finite(t: Tensor) -> bool:
    if t.device.type == "cpu":
        # numpy's single pass beats torch's thread pool on frame-sized arrays.
        return bool(np.isfinite(t.detach().numpy()).all())
    return bool(torch.isfinite(t.abs().amax()))  # max propagates NaN and inf


def _check_finite(t: Tensor, name: str) -> None:
    if t.numel() and not _finite(t):
        bad = ~torch.isfinite(t)
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(f"{name} contains non-finite values ({n_nan} NaN, {n_inf} inf)")


def pixel_grid(
    height: int, width: int, *, device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Pixel-centre coordinates as a ``(2, H, W)`` map: ``grid[0] = x`` (columns), ``grid[1] = y``.
    """
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy])


def sample(
    field: Tensor, points: Tensor, *, mode: str = "bilinear", padding: str = "border"
) -> Tensor:
    """Sample ``field`` at pixel coordinates.

    Convention:
        ``field`` is ``(C, H, W)``; ``points`` is ``(2, ...)`` with x then y in pixels of ``field``
        (centres at integers). Returns ``(C, ...)``. ``mode`` is any ``grid_sample`` mode
        (``nearest``, ``bilinear``, ``bicubic``); ``padding`` any of its padding modes.
    """
    c, h, w = field.shape
    out_shape = points.shape[1:]
    pts = points.reshape(2, -1).to(field.dtype)
    # align_corners=True maps -1/+1 to the centres of the first/last pixels.
    gx = pts[0] * (2.0 / max(w - 1, 1)) - 1.0
    gy = pts[1] * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).view(1, 1, -1, 2)
    out = F.grid_sample(field.unsqueeze(0), grid, mode=mode, padding_mode=padding,
                        align_corners=True)
    return out.view(c, *out_shape)


def inside_frame(points: Tensor, height: int, width: int, margin: float = 0.0) -> Tensor:
    """Boolean ``(...)`` mask of points ``(2, ...)`` within ``[-0.5, W-0.5] x [-0.5, H-0.5]``.

    ``margin`` shrinks (positive) or grows (negative) the accepted box.
    """
    x, y = points[0], points[1]
    return (
        (x >= -0.5 + margin) & (x <= width - 0.5 - margin)
        & (y >= -0.5 + margin) & (y <= height - 0.5 - margin)
    )


def compose_map(prev_map: Tensor, backward_flow: Tensor) -> Tensor:
    """Accumulate a backward map by one frame: ``A_t(x) = A_{t-1}(x + b_t(x))``.

    Convention:
        ``prev_map`` ``(2, H, W)`` holds, for each pixel of frame t-1, its absolute position in
        the anchor frame; ``backward_flow`` is frame t's backward flow. The displacement
        ``A_{t-1} - grid`` is interpolated (bilinear, border-extended), which keeps the map exact
        for translations up to the frame edge.
    """
    _, h, w = prev_map.shape
    grid = pixel_grid(h, w, device=prev_map.device, dtype=prev_map.dtype)
    src = grid + backward_flow
    disp = sample(prev_map - grid, src)
    return src + disp


def bilinear_corners(src: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The top-left corner and the weights of border-padded bilinear sampling at ``src``
    (``sample``'s convention).

    Convention:
        ``src`` ``(2, H, W)``, x then y, in pixels of an ``H x W`` frame. Returns ``(x0, y0, ux,
        uy)``, each ``(H, W)``: integer corners (``x0 <= W - 2`` so ``x0 + 1`` is in the frame
        when ``W > 1``) and the fractional offsets, with positions clamped to the frame first.
    """
    _, h, w = src.shape
    cx = src[0].clamp(0, w - 1)
    cy = src[1].clamp(0, h - 1)
    x0 = cx.floor().clamp_max(max(w - 2, 0))
    y0 = cy.floor().clamp_max(max(h - 2, 0))
    return x0.long(), y0.long(), cx - x0, cy - y0


def forward_backward_occlusion(
    backward_flow: Tensor, forward_flow: Tensor, *, alpha: float = FB_ALPHA, beta: float = FB_BETA
) -> Tensor:
    """Disocclusion mask of frame t from its backward flow and frame t-1's forward flow.

    A pixel ``x`` of frame t is *disoccluded* (it has no reliable source in frame t-1) when the
    round trip ``x -> x + b(x) -> x + b(x) + f'`` misses ``x`` by more than the tolerance of
    Sundaram, Brox & Keutzer (ECCV 2010): ``|b + f'|^2 > alpha (|b|^2 + |f'|^2) + beta``, for
    every ``f'`` among the forward flows of the (up to four) pixels that bilinear sampling at
    ``x + b(x)`` weighs. Sundaram et al. take the bilinear value itself; across a motion boundary
    that value belongs to neither layer (half the layer's motion, say), and a layer's own edge
    pixels would fail the test every frame. Testing the pixels themselves keeps the edge and still
    flags every pixel whose source neighbourhood moved elsewhere. The defaults (0.01, 0.5 px^2)
    are theirs. Pixels whose source leaves frame t-1 are also marked. Returns a ``(H, W)`` bool
    tensor, True where disoccluded.
    """
    _, h, w = backward_flow.shape
    grid = pixel_grid(h, w, device=backward_flow.device, dtype=backward_flow.dtype)
    src = grid + backward_flow
    x0, y0, ux, uy = bilinear_corners(src)
    b2 = backward_flow.square().sum(0)
    consistent = torch.zeros(h, w, dtype=torch.bool, device=backward_flow.device)
    for oy in (0, 1):
        for ox in (0, 1):
            wgt = (ux if ox else 1 - ux) * (uy if oy else 1 - uy)
            idx = (y0 + oy).clamp_max(h - 1) * w + (x0 + ox).clamp_max(w - 1)
            f = forward_flow.reshape(2, -1)[:, idx.reshape(-1)].reshape(2, h, w)
            err = (backward_flow + f).square().sum(0)
            consistent |= (wgt > 0) & (err <= alpha * (b2 + f.square().sum(0)) + beta)
    return ~consistent | ~inside_frame(src, h, w)

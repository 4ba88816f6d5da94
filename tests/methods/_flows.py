"""Synthetic motions for tests: exact backward (and forward) flows in the project's convention.

Each function returns frame t's backward flow ``(2, H, W)``: pixel ``x`` of frame t came from
``x + b(x)`` in frame t-1, for a motion applied once per frame.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from warpnoise.flow import pixel_grid


def _centred(h: int, w: int) -> tuple[Tensor, Tensor, Tensor]:
    g = pixel_grid(h, w, dtype=torch.float64)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    return g, g[0] - cx, g[1] - cy


def translation(h: int, w: int, dx: float, dy: float) -> Tensor:
    """Content moves by ``(dx, dy)`` pixels per frame."""
    b = torch.empty(2, h, w, dtype=torch.float64)
    b[0], b[1] = -dx, -dy
    return b.float()


def rotation(h: int, w: int, degrees: float) -> Tensor:
    """Content rotates by ``degrees`` per frame about the frame centre."""
    _, x, y = _centred(h, w)
    a = math.radians(-degrees)
    sx = math.cos(a) * x - math.sin(a) * y
    sy = math.sin(a) * x + math.cos(a) * y
    return torch.stack([sx - x, sy - y]).float()


def zoom(h: int, w: int, factor: float) -> Tensor:
    """Content scales by ``factor`` per frame about the centre (> 1 zooms in)."""
    _, x, y = _centred(h, w)
    return torch.stack([x / factor - x, y / factor - y]).float()


def shear(h: int, w: int, amount: float) -> Tensor:
    """Horizontal shear: rows move by ``amount * (y - cy)`` per frame."""
    _, _, y = _centred(h, w)
    return torch.stack([-amount * y, torch.zeros_like(y)]).float()


def swirl(h: int, w: int, degrees: float, radius: float) -> Tensor:
    """Non-uniform rotation: ``degrees`` at the centre, decaying as a Gaussian of ``radius``."""
    _, x, y = _centred(h, w)
    a = -math.radians(degrees) * torch.exp(-(x * x + y * y) / (2.0 * radius * radius))
    sx = torch.cos(a) * x - torch.sin(a) * y
    sy = torch.sin(a) * x + torch.cos(a) * y
    return torch.stack([sx - x, sy - y]).float()


def layered(
    h: int, w: int, t: int, *, size: int, dx: float, dy: float = 0.0, top: int = 0, left: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """A ``size x size`` square moving by ``(dx, dy)`` per frame over a static background.

    Frame t's square covers ``[left + t*dx, left + t*dx + size)`` (columns, likewise rows).
    Returns frame t's backward flow, frame t-1's forward flow, and frame t's foreground mask.
    """
    g = pixel_grid(h, w, dtype=torch.float64)

    def square(k: int) -> Tensor:
        x0, y0 = left + k * dx, top + k * dy
        return (g[0] >= x0 - 0.5) & (g[0] < x0 + size - 0.5) & (g[1] >= y0 - 0.5) & (
            g[1] < y0 + size - 0.5)

    fg_t, fg_prev = square(t), square(t - 1)
    b = torch.zeros(2, h, w)
    b[0][fg_t], b[1][fg_t] = -dx, -dy
    f = torch.zeros(2, h, w)
    f[0][fg_prev], f[1][fg_prev] = dx, dy
    return b, f, fg_t

"""Layered test scenes: a square layer moving over a static background, with exact flows, the
pixel classes at its boundary, and the exact-transport prediction of each pixel's noise.

Convention: frame t's layer is the square of side ``size`` (in pixels) centred at ``centre(t)``
and turned by ``t * spin`` degrees about that centre; the background does not move. A pixel
belongs to the layer when its centre lies inside the square. Flows follow the project's
convention: frame t's backward flow sends pixel ``x`` to where it was in frame t-1, frame t-1's
forward flow sends its pixels to frame t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from warpnoise.flow import pixel_grid


@dataclass(frozen=True)
class Scene:
    """A ``size`` x ``size`` square starting at ``(x0, y0)`` (top-left pixel centre), moving by
    ``(dx, dy)`` and turning by ``spin`` degrees per frame, in an ``h x w`` frame."""

    h: int
    w: int
    size: int
    x0: float
    y0: float
    dx: float = 0.0
    dy: float = 0.0
    spin: float = 0.0

    def centre(self, t: int) -> tuple[float, float]:
        half = (self.size - 1) / 2.0
        return self.x0 + half + t * self.dx, self.y0 + half + t * self.dy

    def _local(self, t: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Coordinates of points in the square's own frame at time t (unrotated, centred)."""
        cx, cy = self.centre(t)
        a = math.radians(-t * self.spin)
        u, v = x - cx, y - cy
        return math.cos(a) * u - math.sin(a) * v, math.sin(a) * u + math.cos(a) * v

    def inside(self, t: int, x: Tensor, y: Tensor) -> Tensor:
        u, v = self._local(t, x, y)
        half = self.size / 2.0
        return (u.abs() < half) & (v.abs() < half)

    def back(self, t: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Where the layer's points at ``(x, y)`` in frame t were in frame t-1."""
        u, v = self._local(t, x, y)
        cx, cy = self.centre(t - 1)
        a = math.radians((t - 1) * self.spin)
        return cx + math.cos(a) * u - math.sin(a) * v, cy + math.sin(a) * u + math.cos(a) * v

    def forth(self, t: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Where the layer's points at ``(x, y)`` in frame t-1 go in frame t."""
        u, v = self._local(t - 1, x, y)
        cx, cy = self.centre(t)
        a = math.radians(t * self.spin)
        return cx + math.cos(a) * u - math.sin(a) * v, cy + math.sin(a) * u + math.cos(a) * v

    def mask(self, t: int) -> Tensor:
        g = pixel_grid(self.h, self.w, dtype=torch.float64)
        return self.inside(t, g[0], g[1])

    def flows(self, t: int) -> tuple[Tensor, Tensor]:
        """Frame t's backward flow and frame t-1's forward flow, ``(2, H, W)`` float32 each."""
        g = pixel_grid(self.h, self.w, dtype=torch.float64)
        b = torch.zeros(2, self.h, self.w, dtype=torch.float64)
        f = torch.zeros_like(b)
        now, before = self.mask(t), self.mask(t - 1)
        bx, by = self.back(t, g[0], g[1])
        b[0] = torch.where(now, bx - g[0], 0.0)
        b[1] = torch.where(now, by - g[1], 0.0)
        fx, fy = self.forth(t, g[0], g[1])
        f[0] = torch.where(before, fx - g[0], 0.0)
        f[1] = torch.where(before, fy - g[1], 0.0)
        return b.float(), f.float()

    def transport(self, t: int, previous: Tensor, samples: int = 8) -> Tensor:
        """The exact-transport prediction of frame t's noise from frame t-1's ``(C, H, W)``:
        ``sum_y a_y G_{t-1}(y)``, with ``a_y`` the share of the pixel's pre-image (its unit
        square moved back with its layer, by ``samples^2`` points) that falls in pixel ``y`` of
        the same layer in frame t-1. (Where a pixel's square straddles the layer's edge, the part
        beyond it is the other layer's noise, which no pixel-level flow can assign.)"""
        c, h, w = previous.shape
        g = pixel_grid(h, w, dtype=torch.float64)
        offs = (torch.arange(samples, dtype=torch.float64) + 0.5) / samples - 0.5
        ox = offs.repeat(samples)[:, None, None]  # (S^2, 1, 1), every sample point at once
        oy = offs.repeat_interleave(samples)[:, None, None]
        x, y = g[0] + ox, g[1] + oy
        bx, by = self.back(t, x, y)
        layer = self.mask(t)
        sx, sy = torch.where(layer, bx, x), torch.where(layer, by, y)
        col = torch.floor(sx + 0.5).long().clamp(0, w - 1)
        row = torch.floor(sy + 0.5).long().clamp(0, h - 1)
        src = (row * w + col).reshape(samples * samples, -1)
        keep = self.mask(t - 1).reshape(-1)[src] == layer.reshape(-1)
        flat = previous.double().reshape(c, -1)
        out = (flat[:, src] * keep).sum(dim=1)
        return (out / samples**2).reshape(c, h, w)


def edge_classes(scene: Scene, t: int, depth: int = 1) -> dict[str, Tensor]:
    """Boolean ``(H, W)`` masks of the pixels around the layer's boundary in frame t.

    ``layer_edge``: layer pixels within ``depth`` pixels of the background; ``background_edge``:
    background pixels within ``depth`` of the layer that were background in frame t-1 too (visible
    in both); ``disoccluded``: background pixels that the layer covered in frame t-1. The
    ``leading``/``trailing`` split of ``layer_edge`` is by the sign of the motion along the
    boundary normal (ahead of or behind the layer's centre along its motion).
    """
    now, before = scene.mask(t), scene.mask(t - 1)
    k = 2 * depth + 1
    pool = torch.nn.functional.max_pool2d
    grow = pool(now[None, None].float(), k, 1, depth)[0, 0] > 0
    shrink = pool((~now)[None, None].float(), k, 1, depth)[0, 0] > 0
    layer_edge = now & shrink
    background_edge = grow & ~now & ~before
    g = pixel_grid(scene.h, scene.w, dtype=torch.float64)
    cx, cy = scene.centre(t)
    ahead = (g[0] - cx) * scene.dx + (g[1] - cy) * scene.dy > 0
    return {
        "layer_edge": layer_edge,
        "leading": layer_edge & ahead,
        "trailing": layer_edge & ~ahead,
        "background_edge": background_edge,
        "disoccluded": before & ~now,
    }


def carry(noise: Tensor, predicted: Tensor, mask: Tensor) -> float:
    """``sum G * P / sum P^2`` over the masked pixels and every channel: the share of the
    noise the frame should carry from the previous one that it does carry (1 for exact
    transport, 0 for independent noise)."""
    g = noise.double()[:, mask]
    p = predicted[:, mask]
    return float((g * p).sum() / (p * p).sum())

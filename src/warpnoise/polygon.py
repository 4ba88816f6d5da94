"""Pixel pre-images as polygons, and their rasterisation on a sub-pixel grid.

Convention:
    Each pixel of frame t is the unit square around its centre. Its 9 points (4 corners, 4 edge
    midpoints, centre) form the *half-pixel lattice* ``(2H+1, 2W+1)``: lattice point ``(r, c)``
    sits at ``x = c/2 - 0.5, y = r/2 - 0.5``. Mapped into the anchor frame they give the 8-gon
    ``TL, T, TR, R, BR, B, BL, L`` and the centre, i.e. the 8 fan triangles of Chang et al. (2024,
    §4.1). Neighbouring pixels share lattice points, so their pre-images share edges exactly.

    The anchor's sub-pixel grid has ``k`` sub-pixels per pixel and axis; in sub-pixel units
    ``s = (x + 0.5) * k``, sub-pixel ``(R, J)`` has its centre at ``(J + 0.5, R + 0.5)``.
    A sub-pixel belongs to a polygon when its centre is inside by the crossing rule with half-open
    spans (``y0 <= y < y1`` and ``x < x_cross``), evaluated in float64 with canonically ordered
    edge endpoints, so a centre on an edge shared by two polygons belongs to exactly one of them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .flow import pixel_grid, sample

__all__ = [
    "BOUNDARY",
    "fan_is_valid",
    "lattice_vertices",
    "polygon_corners",
    "rasterize",
    "unique_claims",
]

# (row, col) offsets on the half-pixel lattice of the 8 boundary points, in fan order.
BOUNDARY: tuple[tuple[int, int], ...] = (
    (0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0),
)


def lattice_vertices(acc_map: Tensor) -> Tensor:
    """Positions in the anchor frame of frame t's half-pixel lattice.

    Args:
        acc_map: ``(2, H, W)`` anchor positions of frame t's pixel centres.

    Returns:
        ``(2, 2H+1, 2W+1)`` anchor positions of the lattice points; the displacement
        ``acc_map - grid`` is interpolated bilinearly and extended at the border.
    """
    _, h, w = acc_map.shape
    lat = pixel_grid(2 * h + 1, 2 * w + 1, device=acc_map.device, dtype=acc_map.dtype) * 0.5 - 0.5
    disp = acc_map - pixel_grid(h, w, device=acc_map.device, dtype=acc_map.dtype)
    return lat + sample(disp, lat)


def polygon_corners(vertices: Tensor) -> tuple[Tensor, Tensor]:
    """Split lattice vertices into the per-pixel 8-gons and centres.

    Returns:
        ``(boundary, centre)``: ``(H, W, 8, 2)`` and ``(H, W, 2)``.
    """
    _, h2, w2 = vertices.shape
    h, w = (h2 - 1) // 2, (w2 - 1) // 2
    pts = []
    for r, c in BOUNDARY:
        pts.append(vertices[:, r:r + 2 * h:2, c:c + 2 * w:2])
    boundary = torch.stack(pts, dim=-1).permute(1, 2, 3, 0)
    centre = vertices[:, 1::2, 1::2].permute(1, 2, 0)
    return boundary, centre


def fan_is_valid(boundary: Tensor, centre: Tensor) -> Tensor:
    """True ``(H, W)`` where all 8 fan triangles keep the orientation of the identity map.

    A fan with a flat or flipped triangle is a folded pre-image: no region of the anchor can be
    its pre-image, so such pixels take fresh noise.
    """
    a = boundary - centre.unsqueeze(-2)
    b = torch.roll(a, shifts=-1, dims=-2)
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return (cross > 0).all(dim=-1)


def rasterize(
    boundary: Tensor, k: int, grid_h: int, grid_w: int, *, max_window: int = 64,
    chunk: int = 1 << 22,
) -> tuple[Tensor, Tensor, Tensor]:
    """Sub-pixels whose centres lie inside each polygon.

    Args:
        boundary: ``(P, 8, 2)`` polygons in anchor pixel coordinates.
        k: sub-pixels per pixel and axis.
        grid_h, grid_w: the anchor size in pixels; sub-pixels outside it are never returned.
        max_window: polygons whose bounding box spans more sub-pixels than this on an axis are
            skipped (returned as ``too_big``).
        chunk: candidate sub-pixels tested at once (bounds memory).

    Returns:
        ``(poly, sub, too_big)``: for each hit, the polygon index and the flat sub-pixel index
        ``R * (grid_w * k) + J`` (int64), and a ``(P,)`` bool mask of skipped polygons.
    """
    s = (boundary.to(torch.float64) + 0.5) * k
    lo = torch.floor(s.amin(dim=1)).long()
    hi = torch.ceil(s.amax(dim=1)).long()
    span = hi - lo
    too_big = (span > max_window).any(dim=1)
    ok = (~too_big).nonzero().squeeze(1)
    polys, subs = [], []
    if ok.numel() == 0:
        e = torch.zeros(0, dtype=torch.long, device=boundary.device)
        return e, e, too_big
    sw, sh = int(span[ok, 0].max()), int(span[ok, 1].max())
    per = max(1, chunk // max(sw * sh, 1))
    da = torch.arange(sh, device=boundary.device)
    db = torch.arange(sw, device=boundary.device)
    for start in range(0, ok.numel(), per):
        idx = ok[start:start + per]
        ps = s[idx]  # (n, 8, 2)
        rows = lo[idx, 1, None] + da  # (n, sh)
        cols = lo[idx, 0, None] + db  # (n, sw)
        py = (rows.to(torch.float64) + 0.5)[:, :, None, None]  # (n, sh, 1, 1)
        px = (cols.to(torch.float64) + 0.5)[:, None, :, None]  # (n, 1, sw, 1)
        inside = _crossing_parity(ps, px, py)
        valid = inside & (rows >= 0)[:, :, None] & (rows < grid_h * k)[:, :, None]
        valid &= ((cols >= 0) & (cols < grid_w * k))[:, None, :]
        n_i, r_i, c_i = valid.nonzero(as_tuple=True)
        polys.append(idx[n_i])
        subs.append(rows[n_i, r_i] * (grid_w * k) + cols[n_i, c_i])
    return torch.cat(polys), torch.cat(subs), too_big


def _crossing_parity(ps: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Odd number of edge crossings to the right of ``(px, py)``; ``ps`` is ``(n, 8, 2)``."""
    a = ps
    b = torch.roll(ps, shifts=-1, dims=1)
    # Canonical endpoint order (lower y first) so both polygons sharing an edge compute the
    # same crossing bit for bit.
    swap = a[..., 1] > b[..., 1]
    lo = torch.where(swap[..., None], b, a)
    hi = torch.where(swap[..., None], a, b)
    x0, y0 = lo[..., 0][:, None, None, :], lo[..., 1][:, None, None, :]
    x1, y1 = hi[..., 0][:, None, None, :], hi[..., 1][:, None, None, :]
    spans = (y0 <= py) & (py < y1)
    dy = torch.where(y1 > y0, y1 - y0, torch.ones_like(y1))
    xc = x0 + (py - y0) * (x1 - x0) / dy
    hits = spans & (px < xc)
    return (hits.sum(dim=-1) % 2) == 1


def unique_claims(sub: Tensor, n_sub: int) -> Tensor:
    """Mask of hits whose sub-pixel is claimed by exactly one polygon.

    A sub-pixel inside two pre-images (a fold or an occlusion the flow did not flag) is given to
    neither, so no piece of white noise ever feeds two pixels of one frame.
    """
    counts = torch.bincount(sub, minlength=n_sub)
    return counts[sub] == 1

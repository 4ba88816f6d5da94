"""Fidelity statistics of noise: is each frame i.i.d. N(0, 1), and does it move with the video?

The checks described in ``docs/method.md`` ("How it is tested"): per frame mean, standard
deviation, a Kolmogorov-Smirnov test against N(0, 1), lag-1 spatial correlation, channel
correlation and Moran's I; over time, the correlation of a frame with an earlier one after undoing
the motion.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FrameStats",
    "channel_correlation",
    "frame_stats",
    "ks_normal",
    "lag1_correlation",
    "morans_i",
    "shifted_correlation",
    "warped_correlation",
]


def _corr(a: Tensor, b: Tensor) -> float:
    a = a.double().reshape(-1)
    b = b.double().reshape(-1)
    am, bm = float(a.mean()), float(b.mean())
    cov = float(torch.dot(a, b)) / a.numel() - am * bm
    va = float(torch.dot(a, a)) / a.numel() - am * am
    vb = float(torch.dot(b, b)) / b.numel() - bm * bm
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else float("nan")


def ks_normal(x: Tensor) -> tuple[float, float]:
    """One-sample Kolmogorov-Smirnov test of ``x`` against N(0, 1).

    Returns ``(D, p)``: the statistic and its asymptotic p-value (Stephens' finite-size
    correction, Numerical Recipes §14.3.3).
    """
    v = torch.from_numpy(np.sort(x.detach().cpu().double().numpy().ravel()))
    n = v.numel()
    cdf = 0.5 * torch.erfc(-v / math.sqrt(2.0))
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = max(float((i / n - cdf).max()), float((cdf - (i - 1) / n).max()))
    sq = math.sqrt(n)
    lam = (sq + 0.12 + 0.11 / sq) * d
    if lam < 0.2:
        return d, 1.0
    p = 2.0 * sum((-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam) for j in range(1, 101))
    return d, min(max(p, 0.0), 1.0)


def lag1_correlation(noise: Tensor) -> tuple[float, float]:
    """Correlation of each pixel with its right and lower neighbour, pooled over channels.

    ``noise`` is ``(C, H, W)``; returns ``(corr_x, corr_y)``.
    """
    return (_corr(noise[..., :, :-1], noise[..., :, 1:]),
            _corr(noise[..., :-1, :], noise[..., 1:, :]))


def channel_correlation(noise: Tensor) -> float:
    """Largest absolute correlation between two channels of ``(C, H, W)`` noise (0 if C == 1)."""
    c = noise.shape[0]
    if c < 2:
        return 0.0
    z = noise.double().reshape(c, -1)
    z = z - z.mean(dim=1, keepdim=True)
    cov = z @ z.T
    d = cov.diagonal().sqrt()
    corr = cov / (d[:, None] * d[None, :])
    return float((corr - torch.eye(c, dtype=corr.dtype)).abs().max())


def morans_i(noise: Tensor) -> tuple[float, float]:
    """Moran's I with rook (4-neighbour) weights, averaged over channels, and its z-score.

    Under independence ``E[I] = -1/(N-1)``; the variance is the normality approximation
    (Cliff & Ord 1981). ``|z| < 3`` means no detectable spatial autocorrelation.
    """
    c, h, w = noise.shape
    n = h * w
    n_pairs = h * (w - 1) + (h - 1) * w  # undirected; W = 2 * n_pairs
    big_w = 2.0 * n_pairs
    deg = torch.full((h, w), 4.0, dtype=torch.float64)
    deg[0, :] -= 1
    deg[-1, :] -= 1
    deg[:, 0] -= 1
    deg[:, -1] -= 1
    s1 = 2.0 * big_w
    s2 = float((2.0 * deg).square().sum())
    e_i = -1.0 / (n - 1)
    var = (n * n * s1 - n * s2 + 3.0 * big_w * big_w) / ((n * n - 1) * big_w * big_w) - e_i**2
    z = noise.double()
    z = z - z.mean(dim=(1, 2), keepdim=True)
    cross = (z[:, :, :-1] * z[:, :, 1:]).sum(dim=(1, 2)) + (z[:, :-1, :] * z[:, 1:, :]).sum(
        dim=(1, 2))
    values = (n / big_w) * 2.0 * cross / z.square().sum(dim=(1, 2))
    i_mean = float(values.mean())
    # Channels are independent, so the mean's variance shrinks by C.
    return i_mean, (i_mean - e_i) / math.sqrt(var / c)


@dataclass
class FrameStats:
    """Per-frame report (see :func:`frame_stats`)."""

    mean: float
    std: float
    ks_stat: float
    ks_p: float
    lag1_x: float
    lag1_y: float
    channel_corr: float
    morans_i: float
    morans_z: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def frame_stats(noise: Tensor) -> FrameStats:
    """All per-frame checks of ``(C, H, W)`` noise."""
    if noise.ndim != 3:
        raise ValueError(f"noise must have shape (C, H, W), got {tuple(noise.shape)}")
    x = noise.double()
    d, p = ks_normal(x)
    lx, ly = lag1_correlation(x)
    mi, mz = morans_i(x)
    return FrameStats(
        mean=float(x.mean()), std=float(x.std()), ks_stat=d, ks_p=p, lag1_x=lx, lag1_y=ly,
        channel_corr=channel_correlation(x), morans_i=mi, morans_z=mz,
    )


def shifted_correlation(a: Tensor, b: Tensor, dx: int, dy: int) -> float:
    """``corr(a(x), b(x - d))`` over the pixels where both exist, for an integer shift ``d``.

    ``a`` and ``b`` are ``(C, H, W)``; for content moving by ``d`` from ``b``'s frame to ``a``'s,
    this undoes the motion.
    """
    _, h, w = a.shape
    ya, yb = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xa, xb = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    return _corr(a[:, ya, xa], b[:, yb, xb])


def warped_correlation(a: Tensor, b: Tensor, backward_flow: Tensor,
                       mask: Tensor | None = None) -> float:
    """Correlation of frame ``a`` with frame ``b`` sampled (nearest) at ``x + flow(x)``.

    ``backward_flow`` ``(2, H, W)`` maps ``a``'s pixels to ``b``'s frame (e.g. a composed backward
    flow). Pixels whose source leaves the frame, or outside ``mask``, are ignored.
    """
    _, h, w = a.shape
    xs = torch.arange(w, dtype=torch.float64).view(1, w) + backward_flow[0].double().cpu()
    ys = torch.arange(h, dtype=torch.float64).view(h, 1) + backward_flow[1].double().cpu()
    xi, yi = torch.round(xs).long(), torch.round(ys).long()
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    if mask is not None:
        ok &= mask.cpu().bool()
    src = b.cpu()[:, yi.clamp(0, h - 1), xi.clamp(0, w - 1)]
    return _corr(a.cpu()[:, ok], src[:, ok])

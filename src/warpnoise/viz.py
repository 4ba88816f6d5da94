"""Pictures of flows and noise: the flow colour wheel, noise as RGB, previews, correlation plots.

Convention:
    Flows are ``(2, H, W)`` (dx, dy in pixels); noise is ``(C, H, W)``; pictures are ``(H, W, 3)``
    uint8 RGB numpy arrays.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from .flow import as_flow
from .io.atomic import atomic_output

__all__ = [
    "flow_to_rgb",
    "noise_to_rgb",
    "plot_covariance_maps",
    "preview_frame",
]


def _color_wheel() -> np.ndarray:
    """The Middlebury colour wheel (Baker et al., IJCV 2011): ``(55, 3)`` float RGB in [0, 1]."""
    # Hue segments red->yellow->green->cyan->blue->magenta->red, lengths chosen by Baker et al.
    segments = [(15, (1, 0, 0), (1, 1, 0)), (6, (1, 1, 0), (0, 1, 0)), (4, (0, 1, 0), (0, 1, 1)),
                (11, (0, 1, 1), (0, 0, 1)), (13, (0, 0, 1), (1, 0, 1)), (6, (1, 0, 1), (1, 0, 0))]
    rows = []
    for n, a, b in segments:
        s = np.arange(n, dtype=np.float64)[:, None] / n
        rows.append((1 - s) * np.asarray(a, np.float64) + s * np.asarray(b, np.float64))
    return np.concatenate(rows)


_WHEEL = _color_wheel()


def flow_to_rgb(flow: Tensor, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code a flow: hue is the direction, saturation the speed (white = still).

    Args:
        flow: ``(2, H, W)``, dx then dy in pixels.
        max_magnitude: the speed shown fully saturated; larger speeds are clipped. Default: the
            largest speed in ``flow`` (so a sequence should pass one value for every frame).

    Returns:
        ``(H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: wrong shape (the shape is in the message), NaN or inf.
    """
    f = as_flow(flow).cpu().double().numpy()
    u, v = f[0], f[1]
    mag = np.hypot(u, v)
    top = float(mag.max()) if max_magnitude is None else float(max_magnitude)
    rad = np.clip(mag / top, 0.0, 1.0) if top > 0 else np.zeros_like(mag)
    n = len(_WHEEL)
    pos = (np.arctan2(-v, -u) / np.pi + 1.0) / 2.0 * (n - 1)
    k0 = np.floor(pos).astype(np.int64)
    k1 = (k0 + 1) % n
    frac = (pos - k0)[..., None]
    col = (1 - frac) * _WHEEL[k0] + frac * _WHEEL[k1]
    col = 1.0 - rad[..., None] * (1.0 - col)
    return np.round(col * 255.0).astype(np.uint8)


def noise_to_rgb(noise: Tensor) -> np.ndarray:
    """Show ``(C, H, W)`` noise as RGB: the first 3 channels, ``[-3, 3]`` mapped to ``[0, 255]``.

    One channel is shown as grey; two channels fill red and green (blue at mid-grey).
    """
    if not isinstance(noise, Tensor) or noise.ndim != 3:
        raise ValueError(f"noise must be a (C, H, W) tensor, got shape "
                         f"{tuple(getattr(noise, 'shape', ()))}")
    x = noise.detach().float().cpu()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] == 2:
        x = torch.cat([x, torch.zeros_like(x[:1])])
    img = ((x[:3] + 3.0) * (255.0 / 6.0)).clamp(0, 255).round().to(torch.uint8)
    return img.permute(1, 2, 0).contiguous().numpy()


def _resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    if img.shape[:2] == (height, width):
        return img
    rows = (np.arange(height) * img.shape[0] // height)
    cols = (np.arange(width) * img.shape[1] // width)
    return img[rows][:, cols]


def preview_frame(frame: np.ndarray, flow: Tensor | None, noise: Tensor,
                  max_magnitude: float | None = None) -> np.ndarray:
    """One preview frame: input | flow | noise side by side, ``(H, 3W, 3)`` uint8.

    ``flow`` is the frame's backward flow (None for the first frame: shown white). Latent-size
    noise is enlarged with nearest neighbour so every noise pixel stays a visible block.
    """
    h, w = frame.shape[:2]
    flow_img = (np.full((h, w, 3), 255, np.uint8) if flow is None
                else _resize_nearest(flow_to_rgb(flow, max_magnitude), h, w))
    noise_img = _resize_nearest(noise_to_rgb(noise), h, w)
    return np.concatenate([frame, flow_img, noise_img], axis=1)


def plot_covariance_maps(spatial: np.ndarray, temporal: np.ndarray | None,
                          path: str | os.PathLike, *, title: str = "") -> None:
    """Save the paper's covariance maps as a PNG, atomically.

    ``spatial[dy + r, dx + r]`` is the covariance of a pixel with its neighbour at offset
    ``(dx, dy)`` in the same frame; ``temporal`` the same with frame t-1 (along the motion when
    flows were given). Both ``(2r+1, 2r+1)`` (see :func:`warpnoise.report.covariance_maps`).
    Ideal ∫-noise: 1 at the centre of the spatial map, 0 elsewhere.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = [("spatial covariance (frame t)", spatial)]
    if temporal is not None:
        maps.append(("temporal covariance (t vs t-1)", temporal))
    fig, axes = plt.subplots(1, len(maps), figsize=(4.6 * len(maps), 4.2), squeeze=False,
                             layout="constrained")
    for ax, (name, m) in zip(axes[0], maps, strict=True):
        r = m.shape[0] // 2
        im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, extent=(-r - .5, r + .5, r + .5, -r - .5))
        for (i, j), val in np.ndenumerate(m):
            ax.text(j - r, i - r, f"{val:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(val) > 0.5 else "black")
        ax.set_title(name)
        ax.set_xlabel("dx (px)")
        ax.set_ylabel("dy (px)")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

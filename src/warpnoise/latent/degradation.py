"""Degradation: blend warped noise with fresh noise and stay exactly N(0, 1).

Models fine-tuned on warped noise (Go-with-the-Flow, Burgert et al., CVPR 2025, §3.3, and later
works that reuse its noise format) take their noise *degraded* by a factor γ in [0, 1]:

    Q ← ((1 − γ) Q + γ ζ) / sqrt((1 − γ)² + γ²),   ζ ~ N(0, 1) independent of Q.

With Q and ζ independent unit normals the numerator has variance ``(1 − γ)² + γ²``, so every
value stays N(0, 1) and independent of its neighbours; the correlation with anything ζ is
independent of (another frame's noise, the flow) is multiplied by ``(1 − γ) / sqrt((1 − γ)² + γ²)``,
so the correlation between two degraded frames scales by ``(1 − γ)² / ((1 − γ)² + γ²)``. γ = 0
returns Q as it is, γ = 1 fresh noise; γ ≈ 0.5 is Go-with-the-Flow's default (0.2–0.7 by task).

γ may vary per pixel (a map, e.g. stronger away from a mask): each value keeps its own exact
N(0, 1), because the formula normalises value by value.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..rng import make_generator

__all__ = ["check_degradation", "degradation_map", "degrade", "read_degradation_map"]


def check_degradation(gamma: float | Tensor) -> None:
    """Raise ValueError unless ``gamma`` (a number or a floating-point map) lies in [0, 1]."""
    if isinstance(gamma, Tensor):
        if not gamma.dtype.is_floating_point:
            raise ValueError(f"degradation map must be floating point, got {gamma.dtype}")
        if not bool(torch.isfinite(gamma).all()):
            raise ValueError("degradation map contains NaN or inf")
        lo, hi = float(gamma.min()), float(gamma.max())
    else:
        if not isinstance(gamma, (int, float)) or isinstance(gamma, bool):
            raise ValueError(f"degradation must be a number in [0, 1], got {gamma!r}")
        lo = hi = float(gamma)
    if not (lo >= 0.0 and hi <= 1.0):
        raise ValueError(f"degradation must lie in [0, 1], got values in [{lo:g}, {hi:g}]")


def degrade(
    noise: Tensor,
    gamma: float | Tensor,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``((1 − γ) Q + γ ζ) / sqrt((1 − γ)² + γ²)`` with ζ drawn from the caller's seed/generator.

    Burgert et al., "Go-with-the-Flow", CVPR 2025, §3.3. ζ is one ``torch.randn`` of
    ``noise.shape`` from ``generator`` (on ``noise``'s device); a stream that degrades frame by
    frame with one generator gets the same bits as :func:`warpnoise.diffusion.latents_for`, which
    also degrades one frame at a time.

    Convention:
        ``noise`` has any shape (one ``(C, H, W)`` frame, or a ``(T, C, H, W)`` clip); ``gamma``
        is a number or a tensor broadcastable to ``noise`` (e.g. an ``(H, W)`` map), in [0, 1].
        Returns a tensor like ``noise`` (dtype and device follow it). A scalar ``gamma = 0``
        returns ``noise`` itself and draws nothing.

    Raises:
        ValueError: γ outside [0, 1], NaN, a map that does not broadcast, or neither/both of
            ``seed`` and ``generator`` (when something must be drawn).
    """
    check_degradation(gamma)
    if not isinstance(gamma, Tensor) and gamma == 0:
        return noise
    g = gamma
    if isinstance(g, Tensor):
        # By hand: torch.broadcast_shapes imports sympy, 0.7 s on a first call.
        fits = g.ndim <= noise.ndim and all(
            a in (1, b) for a, b in zip(reversed(g.shape), reversed(noise.shape), strict=False))
        if not fits:
            raise ValueError(f"degradation map of shape {tuple(g.shape)} does not broadcast to "
                             f"noise of shape {tuple(noise.shape)}")
        g = g.to(noise.device, torch.float32)
    gen = make_generator(seed, generator, noise.device)
    zeta = torch.randn(noise.shape, generator=gen, device=noise.device, dtype=torch.float32)
    keep = 1 - g
    norm = (keep**2 + g**2) ** 0.5
    return ((keep * noise.float() + g * zeta) / norm).to(noise.dtype)


def degradation_map(mask: Tensor, inside: float, outside: float,
                    size: tuple[int, int] | None = None) -> Tensor:
    """A per-pixel γ from a mask: ``inside`` where the mask is 1, ``outside`` where it is 0.

    The mask is area-averaged to ``size`` (the latent grid) first, so a mask drawn on the video's
    pixels can drive latent noise; fractional coverage interpolates linearly between the two
    values. Example: ``degradation_map(mask, 0.2, 0.7, (60, 104))`` keeps the warped noise
    strongly inside the mask and loosens it elsewhere.

    Convention:
        ``mask`` is ``(H, W)`` with values in [0, 1]; returns ``(h, w)`` float32 (``size`` or
        ``(H, W)``), ready as :func:`degrade`'s ``gamma``.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {tuple(mask.shape)}")
    check_degradation(inside)
    check_degradation(outside)
    m = mask.float()
    if not bool(torch.isfinite(m).all()) or float(m.min()) < 0 or float(m.max()) > 1:
        raise ValueError("mask values must be finite and in [0, 1]")
    if size is not None and tuple(size) != tuple(m.shape):
        m = F.interpolate(m[None, None], size=tuple(size), mode="area")[0, 0]
    return outside + (inside - outside) * m


def read_degradation_map(path: str | os.PathLike) -> Tensor:
    """A per-pixel γ read from a file (``warpnoise noise --degradation-map``).

    Convention:
        A grayscale image (8 or 16 bits; colour images are converted to gray) maps black to
        γ = 0 and white to γ = 1; a ``.npy`` file holds the ``(H, W)`` γ values themselves.
        Returns ``(H, W)`` float32 in [0, 1]; resample it to the noise grid with
        :func:`degradation_map` (``inside=1, outside=0``).

    Raises:
        ValueError: a missing or unreadable file, not one channel of ``(H, W)``, values outside
            [0, 1] or not finite.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"degradation map {str(p)!r} does not exist")
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"cannot read degradation map {str(p)!r} as .npy: {e}") from None
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"degradation map {str(p)!r} holds {arr.dtype}, not numbers")
        gamma = arr.astype(np.float32)
    else:
        import cv2

        img = cv2.imread(str(p), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ValueError(f"cannot read degradation map {str(p)!r} as an image (PNG, JPEG, "
                             "TIFF, ...) or .npy")
        if img.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"degradation map {str(p)!r} is a {img.dtype} image; use 8 or 16 "
                             "bits, or a .npy of float values")
        gamma = img.astype(np.float32) / float(np.iinfo(img.dtype).max)
    if gamma.ndim != 2 or min(gamma.shape) < 1:
        raise ValueError(f"degradation map {str(p)!r} must be (H, W), got shape {gamma.shape}")
    g = torch.from_numpy(np.ascontiguousarray(gamma))
    try:
        check_degradation(g)
    except ValueError as e:
        raise ValueError(f"degradation map {str(p)!r}: {e}") from None
    return g

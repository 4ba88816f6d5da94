"""∫-noise primitives: conditional upsampling and block integration.

A pixel of ∫-noise is the integral of a continuous white-noise field over the pixel's unit square,
so it is N(0, 1) and disjoint pixels are independent (Chang et al., "How I Warped Your Noise",
ICLR 2024, §3).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["block_integrate", "conditional_upsample"]


def conditional_upsample(noise: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """Refine each pixel into ``k x k`` unit-variance sub-pixels that integrate back to it.

    Implements the paper's conditional upsampling (Chang et al. 2024, Eq. 5):
    ``U = x / k + Z - mean(Z)`` with ``Z`` i.i.d. N(0, 1) per block, so ``sum(U) / k == x``
    exactly and, when ``x`` is i.i.d. N(0, 1), every ``U`` is i.i.d. N(0, 1).

    Args:
        noise: ``(C, H, W)`` i.i.d. N(0, 1) noise.
        k: upsampling factor (>= 1).
        generator: source of ``Z`` (on ``noise.device``).

    Returns:
        ``(C, H*k, W*k)`` sub-pixel noise; sub-pixel ``(a, b)`` of pixel ``(i, j)`` is at
        ``(i*k + a, j*k + b)``.
    """
    if k < 1:
        raise ValueError(f"upsampling factor must be >= 1, got {k}")
    c, h, w = noise.shape
    z = torch.randn(c, h, k, w, k, generator=generator, device=noise.device, dtype=noise.dtype)
    z = z - z.mean(dim=(2, 4), keepdim=True)
    u = z + (noise / k).view(c, h, 1, w, 1)
    return u.view(c, h * k, w * k)


def block_integrate(noise: Tensor, factor: int) -> Tensor:
    """Integrate ``factor x factor`` blocks: ``sum / factor``, the ∫-noise of the coarser grid.

    i.i.d. N(0, 1) in, i.i.d. N(0, 1) out (a sum of ``factor**2`` unit normals has variance
    ``factor**2``). This is how pixel-resolution warped noise becomes latent noise for a VAE with
    downsampling ``factor``: one ∫-noise field seen at two resolutions (Chang et al., ICLR 2024;
    ``docs/method.md``).

    Args:
        noise: ``(..., H, W)`` with ``H`` and ``W`` divisible by ``factor``.

    Returns:
        ``(..., H // factor, W // factor)``.
    """
    *lead, h, w = noise.shape
    if factor < 1 or h % factor or w % factor:
        raise ValueError(
            f"cannot integrate {factor}x{factor} blocks of a {h}x{w} frame: "
            "height and width must be divisible by the factor"
        )
    v = noise.reshape(*lead, h // factor, factor, w // factor, factor)
    return v.sum(dim=(-3, -1)) / factor

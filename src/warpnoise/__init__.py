"""warpnoise: Gaussian noise that moves with a video.

Temporally coherent, exactly i.i.d. N(0, 1) in every frame (∫-noise warping, Chang et al.,
"How I Warped Your Noise", ICLR 2024).

    >>> import warpnoise
    >>> w = warpnoise.NoiseWarper(4, 64, 64, seed=0)
    >>> noise = w.step(backward_flow)          # (4, 64, 64)
"""

from __future__ import annotations

from . import methods  # the package, callable: warpnoise.methods() lists the method names
from .field import block_integrate, conditional_upsample
from .methods import DEFAULT_METHOD
from .warper import NoiseWarper, warp_noise

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_METHOD",
    "NoiseWarper",
    "__version__",
    "block_integrate",
    "conditional_upsample",
    "methods",
    "warp_noise",
]

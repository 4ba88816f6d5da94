"""warpnoise: Gaussian noise that moves with a video.

Temporally coherent, exactly i.i.d. N(0, 1) in every frame (∫-noise warping, Chang et al.,
"How I Warped Your Noise", ICLR 2024).

    >>> import warpnoise
    >>> w = warpnoise.NoiseWarper(4, 64, 64, seed=0)
    >>> noise = w.step(backward_flow)          # (4, 64, 64)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import methods  # the package, callable: warpnoise.methods() lists the method names
    from .field import block_integrate, conditional_upsample
    from .methods import DEFAULT_METHOD
    from .warper import NoiseWarper, warp_noise

__version__ = "0.2.0"

# Imported on first use (PEP 562): the names below pull in torch, seconds of start-up during
# which the command line could not yet turn Ctrl-C into its one-line message.
_LAZY = {"methods": ".methods", "DEFAULT_METHOD": ".methods", "block_integrate": ".field",
         "conditional_upsample": ".field", "NoiseWarper": ".warper", "warp_noise": ".warper"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name], __name__)
    value = module if name == "methods" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "DEFAULT_METHOD",
    "NoiseWarper",
    "__version__",
    "block_integrate",
    "conditional_upsample",
    "methods",
    "warp_noise",
]

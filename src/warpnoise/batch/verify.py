"""A quick check that a noise file is complete, reading only its header.

Resuming a batch of a million videos must not read a million noise files back: every output was
fully validated (:func:`warpnoise.io.noisefile.validate_noise_file`) by its worker before it was
renamed into place, so on resume it is enough to prove the file is still whole. Both formats
state their tensor's shape and dtype in a header, so the exact size of a complete file is
known; a truncated, padded or foreign file fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io.noisefile import LATENTS_FORMAT, NOISE_FORMAT
from ..io.tensorfile import read_npy_header, read_safetensors_header

__all__ = ["quick_check_noise_file"]


def _safetensors_header(path: Path) -> dict[str, Any]:
    # The shared reader checks that the tensors exactly cover the file (truncated or padded).
    with path.open("rb") as fh:
        spans, meta = read_safetensors_header(fh, str(path))
    if meta.get("format") == LATENTS_FORMAT and "latents" in spans:
        # `warpnoise noise --latent`: the pipeline's latents tensor, any rank; its frames are
        # the video frames it was made from, as validate_noise_file reports them.
        if not meta.get("frames", "").isdigit():
            raise ValueError(f"{str(path)!r}: latents metadata lacks the frame count")
        return {"frames": int(meta["frames"]), "shape": spans["latents"].shape}
    if "noise" not in spans:
        raise ValueError(f"{str(path)!r} has no 'noise' tensor")
    if meta.get("format") != NOISE_FORMAT:
        raise ValueError(f"{str(path)!r} is not a warpnoise noise file")
    shape = spans["noise"].shape
    if len(shape) != 4:
        raise ValueError(f"{str(path)!r}: the 'noise' tensor must be (T, C, H, W), got {shape}")
    return {"frames": shape[0], "shape": shape}


def _npy_header(path: Path, size: int) -> dict[str, Any]:
    with path.open("rb") as fh:
        try:
            span = read_npy_header(fh, str(path))
        except ValueError:
            raise ValueError(f"{str(path)!r} is truncated or not a .npy file") from None
    if len(span.shape) != 4:
        raise ValueError(f"{str(path)!r} must hold [T, H, W, C] noise, got shape {span.shape}")
    expected = span.offset + span.nbytes
    if size != expected:
        raise ValueError(f"{str(path)!r} is {size} bytes, a complete file has {expected}")
    t, h, w, c = span.shape
    return {"frames": t, "shape": (t, c, h, w)}


def quick_check_noise_file(path: str | os.PathLike) -> dict[str, Any]:
    """Check from its header alone that a noise file is complete.

    Convention:
        Returns ``{"frames": T, "shape": (T, C, H, W)}`` (a latents file of
        ``warpnoise noise --latent``: T video frames and the latents tensor's shape) like
        :func:`warpnoise.io.noisefile.validate_noise_file`, which also reads the values (NaN,
        inf); this one reads a few hundred bytes whatever the file's size.

    Raises:
        ValueError: a missing file, an unknown suffix, a header that is not a warpnoise noise
            tensor, or a size other than the header implies (truncated or padded).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError:
        raise ValueError(f"noise file {str(p)!r} does not exist") from None
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        return _safetensors_header(p)
    if suffix == ".npy":
        return _npy_header(p, size)
    raise ValueError(f"unknown noise file type {suffix!r} for {str(p)!r}")

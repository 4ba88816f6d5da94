"""A quick check that a noise file is complete, reading only its header.

Resuming a batch of a million videos must not read a million noise files back: every output was
fully validated (:func:`warpnoise.io.noisefile.validate_noise_file`) by its worker before it was
renamed into place, so on resume it is enough to prove the file is still whole. Both formats
state their tensor's shape and dtype in a header, so the exact size of a complete file is
known; a truncated, padded or foreign file fails.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..io.noisefile import NOISE_FORMAT

__all__ = ["quick_check_noise_file"]

# safetensors dtype names and their sizes in bytes.
_ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
# A header beyond this is not a noise file (ours are a few hundred bytes).
_MAX_HEADER = 1 << 24


def _safetensors_header(path: Path, size: int) -> dict[str, Any]:
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{str(path)!r} is truncated (no safetensors header)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _MAX_HEADER):
            raise ValueError(f"{str(path)!r} is truncated or not a safetensors file")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{str(path)!r} has a corrupt safetensors header") from None
    tensor = header.get("noise") if isinstance(header, dict) else None
    if not isinstance(tensor, dict):
        raise ValueError(f"{str(path)!r} has no 'noise' tensor")
    meta = header.get("__metadata__") or {}
    if meta.get("format") != NOISE_FORMAT:
        raise ValueError(f"{str(path)!r} is not a warpnoise noise file")
    shape = [int(s) for s in tensor.get("shape", [])]
    begin, end = (int(v) for v in tensor.get("data_offsets", (0, -1)))
    itemsize = _ST_ITEMSIZE.get(tensor.get("dtype"), 0)
    if len(shape) != 4 or itemsize == 0 or end - begin != math.prod(shape) * itemsize:
        raise ValueError(f"{str(path)!r}: the 'noise' tensor header is inconsistent")
    if size != 8 + n + end:
        raise ValueError(f"{str(path)!r} is {size} bytes, a complete file has {8 + n + end}")
    return {"frames": shape[0], "shape": tuple(shape)}


def _npy_header(path: Path, size: int) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(fh)
            offset = fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError):
        raise ValueError(f"{str(path)!r} is truncated or not a .npy file") from None
    if len(shape) != 4:
        raise ValueError(f"{str(path)!r} must hold [T, H, W, C] noise, got shape {shape}")
    expected = offset + math.prod(shape) * np.dtype(dtype).itemsize
    if size != expected:
        raise ValueError(f"{str(path)!r} is {size} bytes, a complete file has {expected}")
    t, h, w, c = shape
    return {"frames": t, "shape": (t, c, h, w)}


def quick_check_noise_file(path: str | os.PathLike) -> dict[str, Any]:
    """Check from its header alone that a noise file is complete.

    Convention:
        Returns ``{"frames": T, "shape": (T, C, H, W)}`` like
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
        return _safetensors_header(p, size)
    if suffix == ".npy":
        return _npy_header(p, size)
    raise ValueError(f"unknown noise file type {suffix!r} for {str(p)!r}")

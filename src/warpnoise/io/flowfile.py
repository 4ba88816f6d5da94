"""Flow files: ``.safetensors``, ``.npz``, ``.npy``, Middlebury ``.flo`` (and folders of them).

Convention:
    In memory a sequence of flows is ``(N, 2, H, W)`` float32, dx then dy in pixels. ``backward[i]``
    is frame ``i+1``'s backward flow (pixel x of frame i+1 came from ``x + b(x)`` in frame i);
    ``forward[i]`` is frame ``i``'s forward flow (pixel x of frame i goes to ``x + f(x)``).

    On disk:
        * ``.safetensors``: tensors ``backward`` and optionally ``forward``, ``(N, 2, H, W)``,
          with string metadata (what ``warpnoise flow`` writes).
        * ``.npz``: arrays ``backward`` and optionally ``forward`` in the same layout.
        * ``.npy``: one array, the backward flows ``(N, 2, H, W)`` (or one flow ``(2, H, W)``).
        * ``.flo``: one backward flow (Middlebury format, read and written by OpenCV's
          ``readOpticalFlow`` / ``writeOpticalFlow``, which are ``(H, W, 2)``); a folder of ``.flo``
          files is a sequence in natural file-name order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..flow import as_flows
from .atomic import atomic_output
from .video import natural_key

__all__ = ["FLOW_EXTENSIONS", "load_flows", "save_flows"]

FLOW_EXTENSIONS = (".safetensors", ".npz", ".npy", ".flo")


def _as_sequence(x: np.ndarray | Tensor, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(x)) if isinstance(x, np.ndarray) else x
    if t.ndim == 3:
        t = t.unsqueeze(0)
    return as_flows(t, name=name)


def _read_flo(path: Path) -> Tensor:
    import cv2

    try:
        hw2 = cv2.readOpticalFlow(str(path))
    except cv2.error as e:
        raise ValueError(f"cannot read flow file {str(path)!r}: {e}") from None
    if hw2 is None or hw2.size == 0:
        raise ValueError(f"{str(path)!r} is not a valid .flo file (bad magic number or truncated)")
    return torch.from_numpy(np.ascontiguousarray(hw2.transpose(2, 0, 1)))


def load_flows(path: str | os.PathLike) -> tuple[Tensor, Tensor | None]:
    """Read flows from a file (or a folder of ``.flo`` files); see the module docstring.

    Returns:
        ``(backward, forward)``: ``(N, 2, H, W)`` float32 each; ``forward`` is None when the file
        holds only backward flows.

    Raises:
        ValueError: missing file, unknown extension, wrong keys or shapes, NaN or inf.
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"flow file {str(p)!r} does not exist")
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if f.suffix.lower() == ".flo"),
                       key=lambda f: natural_key(f.name))
        if not files:
            raise ValueError(f"folder {str(p)!r} holds no .flo files")
        return as_flows([_read_flo(f) for f in files], name=str(p)), None
    ext = p.suffix.lower()
    if ext == ".flo":
        return _as_sequence(_read_flo(p), str(p)), None
    if ext == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"cannot read {str(p)!r} as .npy: {e}") from None
        return _as_sequence(arr, str(p)), None
    if ext == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                tensors = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"cannot read {str(p)!r} as .npz: {e}") from None
    elif ext == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"cannot read {str(p)!r} as safetensors: {e}") from None
    else:
        raise ValueError(f"unknown flow file type {ext!r} for {str(p)!r}; "
                         f"use one of {', '.join(FLOW_EXTENSIONS)} or a folder of .flo files")
    if "backward" not in tensors:
        raise ValueError(f"{str(p)!r} has no 'backward' tensor (found: {sorted(tensors)})")
    backward = _as_sequence(tensors["backward"], f"{p.name}:backward")
    forward = None
    if "forward" in tensors:
        forward = _as_sequence(tensors["forward"], f"{p.name}:forward")
        if forward.shape != backward.shape:
            raise ValueError(f"{str(p)!r}: forward flows {tuple(forward.shape)} and backward "
                             f"flows {tuple(backward.shape)} differ in shape")
    return backward, forward


def save_flows(
    path: str | os.PathLike,
    backward: Tensor,
    forward: Tensor | None = None,
    *,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write flows atomically; the format follows the extension (see the module docstring).

    ``.npy`` and ``.flo`` hold backward flows only (``.flo``: exactly one); ``metadata`` is kept
    by ``.safetensors`` only.

    Raises:
        ValueError: wrong shapes, non-finite values, a format that cannot hold what is given.
    """
    p = Path(path)
    ext = p.suffix.lower()
    b = as_flows(backward, name="backward").cpu().contiguous()
    f = None if forward is None else as_flows(forward, name="forward").cpu().contiguous()
    if f is not None and f.shape != b.shape:
        raise ValueError(f"forward flows {tuple(f.shape)} and backward flows {tuple(b.shape)} "
                         "differ in shape")
    if ext not in FLOW_EXTENSIONS:
        raise ValueError(f"unknown flow file type {ext!r}; use one of {', '.join(FLOW_EXTENSIONS)}")
    if ext == ".flo" and b.shape[0] != 1:
        raise ValueError(f".flo holds one flow, got {b.shape[0]}; use .safetensors or .npz")
    with atomic_output(p) as tmp:
        if ext == ".safetensors":
            from safetensors.torch import save_file

            tensors = {"backward": b} | ({} if f is None else {"forward": f})
            save_file(tensors, str(tmp), metadata=dict(metadata or {}))
        elif ext == ".npz":
            arrays = {"backward": b.numpy()} | ({} if f is None else {"forward": f.numpy()})
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        elif ext == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, b.numpy())
        else:
            import cv2

            if not cv2.writeOpticalFlow(str(tmp), np.ascontiguousarray(b[0].permute(1, 2, 0))):
                raise ValueError(f"OpenCV could not write {str(p)!r}")

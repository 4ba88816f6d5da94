"""Noise files: warpnoise's ``.safetensors`` and Go-with-the-Flow's ``.npy``.

Convention:
    In memory a noise sequence is ``(T, C, H, W)``.

    * ``.safetensors``: one tensor ``noise`` ``(T, C, H, W)`` (float32 or float16) and string
      metadata: ``format`` (``warpnoise-noise/1``), ``method``, ``seed``, ``flow``, ``source``,
      ``frame_size`` (``WxH`` of the frames the flow was computed on), ``downsample``,
      ``warpnoise_version`` and whatever else the writer adds.
    * ``.npy``: Go-with-the-Flow's ``noises.npy`` layout, ``[T, H, W, C]`` float16, no metadata
      (Burgert et al., CVPR 2025: what its CogVideoX inference reads).
    * ``.safetensors`` written by ``warpnoise noise --latent MODEL``: one tensor ``latents`` in
      exactly the shape the model's diffusers pipeline takes as ``latents=`` (see
      :mod:`warpnoise.latent.presets`), metadata ``format`` ``warpnoise-latents/1`` and
      ``latent_model``; read it with :func:`load_latents`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import torch
from torch import Tensor

from .atomic import atomic_output
from .tensorfile import (
    npy_header,
    read_npy_header,
    read_safetensors_header,
    read_slices,
    safetensors_header,
)

if TYPE_CHECKING:
    from .tensorfile import TensorSpan

__all__ = [
    "LATENTS_FORMAT",
    "NOISE_EXTENSIONS",
    "NOISE_FORMAT",
    "NoiseWriter",
    "load_latents",
    "load_noise",
    "save_latents",
    "save_noise",
    "validate_noise_file",
]

NOISE_FORMAT = "warpnoise-noise/1"
LATENTS_FORMAT = "warpnoise-latents/1"
NOISE_EXTENSIONS = (".safetensors", ".npy")
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def _check_noise(noise: Tensor, name: str) -> None:
    if noise.ndim != 4:
        raise ValueError(f"{name} must have shape (T, C, H, W), got {tuple(noise.shape)}")
    if min(noise.shape) < 1:
        raise ValueError(f"{name} is empty: shape {tuple(noise.shape)}")
    if not noise.dtype.is_floating_point:
        raise ValueError(f"{name} must be floating point, got {noise.dtype}")
    if not bool(torch.isfinite(noise).all()):
        raise ValueError(f"{name} contains NaN or inf values")


def _check_target(path: str | os.PathLike, dtype: str) -> Path:
    p = Path(path)
    if p.suffix.lower() not in NOISE_EXTENSIONS:
        raise ValueError(f"unknown noise file type {p.suffix.lower()!r} for {str(p)!r}; use "
                         ".safetensors, or .npy for Go-with-the-Flow's [T, H, W, C] float16 "
                         "layout")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    return p


class NoiseWriter:
    """Write a noise file frame by frame, so a long clip never sits in memory whole.

    The frame count is known up front, so the header is written first and each ``(C, H, W)``
    frame is appended as it is produced, with plain file writes (a memory map would count every
    written page in the process's resident memory). The file appears atomically when all ``T``
    frames are in (temporary file + rename); on an exception, or with frames missing, nothing is
    left.

    ``.safetensors``: the standard layout (8-byte little-endian header length, JSON header with
    ``__metadata__``, raw little-endian data), read back by the ``safetensors`` library.
    ``.npy``: ``[T, H, W, C]`` float16, read back by ``numpy.load``.
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int, int, int],
                 metadata: dict[str, Any] | None = None, *, dtype: str = "float32") -> None:
        self.path = _check_target(path, dtype)
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"noise shape must be (T, C, H, W) with positive sizes, got {shape}")
        self.shape = tuple(int(v) for v in shape)
        self.npy = self.path.suffix.lower() == ".npy"
        self.dtype = torch.float16 if self.npy else _DTYPES[dtype]
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        self.metadata = meta | {"format": NOISE_FORMAT, "shape": "x".join(map(str, self.shape))}
        self.written = 0
        self._atomic = atomic_output(self.path)
        self._fh: Any = None

    def __enter__(self) -> NoiseWriter:
        tmp = self._atomic.__enter__()
        t, c, h, w = self.shape
        np_dtype = np.dtype("<f2" if self.dtype == torch.float16 else "<f4")
        try:
            self._fh = open(tmp, "wb")
            self._fh.write(npy_header(np_dtype, (t, h, w, c)) if self.npy else
                           safetensors_header({"noise": (np_dtype, self.shape)}, self.metadata))
        except BaseException:
            if self._fh is not None:
                self._fh.close()
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, frame: Tensor) -> None:
        """Append the next ``(C, H, W)`` frame (finite values; cast to the file's dtype)."""
        if tuple(frame.shape) != self.shape[1:]:
            raise ValueError(f"noise frame has shape {tuple(frame.shape)}, expected "
                             f"{self.shape[1:]}")
        if self.written >= self.shape[0]:
            raise ValueError(f"all {self.shape[0]} frames are already written")
        _check_noise(frame.unsqueeze(0), f"noise frame {self.written}")
        x = frame.detach().to("cpu", self.dtype)
        arr = (x.permute(1, 2, 0) if self.npy else x).contiguous().numpy()
        # Both formats are little-endian whatever the machine.
        self._fh.write(arr.astype(arr.dtype.newbyteorder("<"), copy=False).data)
        self.written += 1

    def __exit__(self, *exc: Any) -> None:
        try:
            self._fh.close()
            if exc[0] is None and self.written != self.shape[0]:
                raise ValueError(f"only {self.written} of {self.shape[0]} noise frames were "
                                 "written")
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._atomic.__exit__(*exc)


def save_noise(
    path: str | os.PathLike,
    noise: Tensor,
    metadata: dict[str, Any] | None = None,
    *,
    dtype: str = "float32",
) -> None:
    """Write ``(T, C, H, W)`` noise atomically; the format follows the extension.

    Args:
        dtype: ``float32`` or ``float16`` for ``.safetensors``; ``.npy`` is always float16
            ``[T, H, W, C]`` (Go-with-the-Flow's layout).
        metadata: stored as strings in ``.safetensors`` (ignored by ``.npy``).

    Raises:
        ValueError: unknown extension or dtype, wrong shape, NaN or inf.
    """
    _check_target(path, dtype)
    _check_noise(noise, "noise")
    with NoiseWriter(path, tuple(noise.shape), metadata, dtype=dtype) as writer:
        for frame in noise:
            writer.write(frame)


def load_noise(path: str | os.PathLike) -> tuple[Tensor, dict[str, str]]:
    """Read a noise file written by :func:`save_noise` (or any file of the same layout).

    Returns:
        ``(noise, metadata)``: ``(T, C, H, W)`` in the stored dtype, and the metadata strings
        (empty for ``.npy``).

    Raises:
        ValueError: missing, truncated or malformed file, wrong shape, NaN or inf.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"noise file {str(p)!r} does not exist")
    ext = p.suffix.lower()
    if ext == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"cannot read {str(p)!r} as .npy: {e}") from None
        if arr.ndim != 4:
            raise ValueError(f"{str(p)!r} must hold [T, H, W, C] noise, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"{str(p)!r} must hold floating-point noise, got {arr.dtype}")
        noise = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
        meta: dict[str, str] = {}
    elif ext == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(p), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
                if "noise" not in fh.keys() and meta.get("format") == LATENTS_FORMAT:  # noqa: SIM118
                    raise ValueError(f"{str(p)!r} holds a {meta.get('latent_model', '?')} "
                                     "pipeline's latents tensor (warpnoise noise --latent), not "
                                     "(T, C, H, W) noise; read it with load_latents")
                if "noise" not in fh.keys():  # noqa: SIM118  (safe_open is not a mapping)
                    raise ValueError(f"{str(p)!r} has no 'noise' tensor (found: "
                                     f"{sorted(fh.keys())})")
                noise = fh.get_tensor("noise")
        except (SafetensorError, OSError) as e:
            raise ValueError(f"cannot read {str(p)!r} as safetensors (truncated or not a "
                             f"safetensors file): {e}") from None
    else:
        raise ValueError(f"unknown noise file type {ext!r} for {str(p)!r}; expected "
                         ".safetensors or .npy")
    _check_noise(noise, f"noise in {str(p)!r}")
    return noise, meta


def save_latents(path: str | os.PathLike, latents: Tensor, metadata: dict[str, Any],
                 *, dtype: str = "float32") -> None:
    """Write a pipeline's ``latents=`` tensor (any shape) atomically to ``.safetensors``, with
    string metadata plus ``format`` (:data:`LATENTS_FORMAT`) and ``shape``. The same tensor and
    metadata give the same bytes (keys sorted; the safetensors library's writer orders them
    differently from run to run)."""
    p = Path(path)
    if p.suffix.lower() != ".safetensors":
        raise ValueError(f"latents go to a .safetensors file, got {str(p)!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if not bool(torch.isfinite(latents).all()):
        raise ValueError("latents contain NaN or inf values")
    meta = {str(k): str(v) for k, v in metadata.items()} | {
        "format": LATENTS_FORMAT, "shape": "x".join(map(str, latents.shape))}
    data = latents.detach().to("cpu", _DTYPES[dtype]).contiguous().numpy()
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    with atomic_output(p) as tmp, open(tmp, "wb") as fh:
        fh.write(safetensors_header({"latents": (data.dtype, data.shape)}, meta))
        fh.write(data.tobytes())


def load_latents(path: str | os.PathLike) -> tuple[Tensor, dict[str, str]]:
    """Read a file written by :func:`save_latents`: ``(latents, metadata)``.

    Raises:
        ValueError: missing or unreadable file, or no ``latents`` tensor in it.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"latents file {str(p)!r} does not exist")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            if "latents" not in fh.keys():  # noqa: SIM118  (safe_open is not a mapping)
                raise ValueError(f"{str(p)!r} has no 'latents' tensor (found: "
                                 f"{sorted(fh.keys())})")
            latents = fh.get_tensor("latents")
    except (SafetensorError, OSError) as e:
        raise ValueError(f"cannot read {str(p)!r} as safetensors: {e}") from None
    return latents, meta


def _validate_latents(fh: BinaryIO, span: TensorSpan, meta: dict[str, str],
                      name: str) -> dict[str, Any]:
    """Check a ``warpnoise noise --latent`` file's ``latents`` tensor slice by slice."""
    if span.dtype.kind != "f":
        raise ValueError(f"{name!r} must hold floating-point latents, got {span.dtype}")
    for frame in read_slices(fh, span, name):
        if not np.isfinite(frame).all():
            raise ValueError(f"latents in {name!r} contain NaN or inf values")
    return {"frames": int(meta.get("frames", 0)), "shape": tuple(int(s) for s in span.shape),
            "dtype": span.dtype.name, "metadata": meta}


def validate_noise_file(path: str | os.PathLike) -> dict[str, Any]:
    """Open a noise file and check it is complete and well-formed, one frame at a time.

    Reads every value (NaN, inf) but holds only one frame, whatever the clip's length.

    Returns:
        ``{"frames": T, "shape": (T, C, H, W), "dtype": str, "metadata": {...}}``.

    Raises:
        ValueError: anything :func:`load_noise` rejects, or a ``.safetensors`` file whose
            metadata lacks the warpnoise format tag or disagrees with the tensor.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"noise file {str(p)!r} does not exist")
    ext = p.suffix.lower()
    if ext not in NOISE_EXTENSIONS:
        raise ValueError(f"unknown noise file type {ext!r} for {str(p)!r}; expected "
                         ".safetensors or .npy")
    with p.open("rb") as fh:
        if ext == ".npy":
            span, meta = read_npy_header(fh, str(p)), {}
            if len(span.shape) != 4:
                raise ValueError(f"{str(p)!r} must hold [T, H, W, C] noise, got shape "
                                 f"{span.shape}")
            t, h, w, c = span.shape
            shape = (t, c, h, w)
            if fh.seek(0, os.SEEK_END) != span.offset + span.nbytes:
                raise ValueError(f"{str(p)!r} is truncated or padded: not a complete .npy file")
        else:
            spans, meta = read_safetensors_header(fh, str(p))
            if meta.get("format") == LATENTS_FORMAT and "latents" in spans:
                return _validate_latents(fh, spans["latents"], meta, str(p))
            if "noise" not in spans:
                raise ValueError(f"{str(p)!r} has no 'noise' tensor (found: {sorted(spans)})")
            span = spans["noise"]
            shape = span.shape
            if meta.get("format") != NOISE_FORMAT:
                raise ValueError(f"{str(p)!r} is not a warpnoise noise file (metadata format "
                                 f"{meta.get('format')!r}, expected {NOISE_FORMAT!r})")
            if "shape" in meta and meta["shape"] != "x".join(map(str, shape)):
                raise ValueError(f"{str(p)!r}: metadata shape {meta['shape']} does not match "
                                 f"the tensor {shape}")
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"noise in {str(p)!r} must have shape (T, C, H, W) with positive "
                             f"sizes, got {shape}")
        if span.dtype.kind != "f":
            raise ValueError(f"{str(p)!r} must hold floating-point noise, got {span.dtype}")
        for i, frame in enumerate(read_slices(fh, span, str(p))):
            if not np.isfinite(frame).all():
                raise ValueError(f"noise in {str(p)!r} contains NaN or inf values (frame {i})")
    return {"frames": int(shape[0]), "shape": tuple(int(s) for s in shape),
            "dtype": span.dtype.name, "metadata": meta}

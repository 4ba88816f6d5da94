"""Tensor files read and written one slice at a time: ``.safetensors`` and ``.npy``.

A long clip's noise or flows must never sit in memory whole, so the writers put the header down
first (the shape is known up front) and append slices along the first axis, and the readers parse
the header and read one slice at a time with plain file reads. Plain reads, not memory maps: the
pages of a mapped file count in the process's resident memory for as long as they stay mapped.

Convention:
    A tensor of shape ``(N, ...)`` is read and written as ``N`` C-ordered slices ``(...)``.
    ``.safetensors``: 8-byte little-endian header length, a JSON header (each tensor's ``dtype``,
    ``shape`` and ``data_offsets`` relative to the end of the header, plus ``__metadata__``, a map
    of strings), then the raw little-endian data, exactly covered by the tensors. ``.npy``: NumPy's
    format 1.0 (magic, header dict, C-ordered data).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

__all__ = [
    "TensorSpan",
    "npy_header",
    "read_npy_header",
    "read_safetensors_header",
    "read_slices",
    "safetensors_header",
]

# safetensors dtype names and the NumPy dtypes they are stored as (always little-endian).
_ST_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
              "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
              "I8": np.dtype("i1"), "U8": np.dtype("u1")}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
# A header beyond this is not one of ours (they are a few hundred bytes).
_MAX_HEADER = 1 << 24


@dataclass(frozen=True)
class TensorSpan:
    """Where a tensor's data lies in a file: its shape, dtype and first byte."""

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int

    @property
    def slice_bytes(self) -> int:
        """Bytes of one slice along the first axis."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def safetensors_header(tensors: Mapping[str, tuple[np.dtype, Sequence[int]]],
                       metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes before a safetensors file's data: tensors laid out in the order given.

    Args:
        tensors: ``name -> (dtype, shape)``; dtypes F64/F32/F16 and integers.
        metadata: strings kept in ``__metadata__``, written in sorted key order (the same
            metadata gives the same bytes).

    Raises:
        ValueError: a dtype safetensors cannot name.
    """
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        dt = np.dtype(dtype).newbyteorder("<")
        if dt not in _ST_NAMES:
            raise ValueError(f"safetensors cannot hold dtype {np.dtype(dtype)}")
        nbytes = math.prod(shape) * dt.itemsize
        header[name] = {"dtype": _ST_NAMES[dt], "shape": [int(s) for s in shape],
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format allows space padding; keeps the data aligned
    return struct.pack("<Q", len(text)) + text


def read_safetensors_header(fh: IO[bytes], name: str) -> tuple[dict[str, TensorSpan],
                                                               dict[str, str]]:
    """Parse a safetensors header from the start of a seekable file.

    Returns:
        ``(tensors, metadata)``: each tensor's :class:`TensorSpan` (absolute offsets), and the
        metadata strings.

    Raises:
        ValueError: the file is truncated, padded or not a safetensors file (``name`` is what to
            call it), or holds a dtype this reader does not know (BF16 and other exotics).
    """
    bad = ValueError(f"{name!r} is truncated or not a safetensors file")
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    head = fh.read(8)
    if len(head) < 8:
        raise bad
    (n,) = struct.unpack("<Q", head)
    if n > min(size - 8, _MAX_HEADER):
        raise bad
    try:
        header = json.loads(fh.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(header, dict):
        raise bad
    meta = header.pop("__metadata__", None) or {}
    spans: dict[str, TensorSpan] = {}
    end = 0
    for key, info in header.items():
        try:
            shape = tuple(int(s) for s in info["shape"])
            begin, stop = (int(v) for v in info["data_offsets"])
            dtype = info["dtype"]
        except (KeyError, TypeError, ValueError):
            raise bad from None
        if dtype not in _ST_DTYPES:
            raise ValueError(f"{name!r}: tensor {key!r} has dtype {dtype}, which warpnoise does "
                             f"not read (use one of {', '.join(_ST_DTYPES)})")
        span = TensorSpan(shape, _ST_DTYPES[dtype], 8 + n + begin)
        if stop - begin != span.nbytes:
            raise bad
        spans[key] = span
        end = max(end, stop)
    if size != 8 + n + end:
        raise bad
    return spans, {str(k): str(v) for k, v in meta.items()}


def npy_header(dtype: np.dtype, shape: Sequence[int]) -> bytes:
    """The bytes before a C-ordered ``.npy`` array's data (format 1.0)."""
    buf = io.BytesIO()
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
         "shape": tuple(int(s) for s in shape)}
    np.lib.format.write_array_header_1_0(buf, d)
    return buf.getvalue()


def read_npy_header(fh: IO[bytes], name: str) -> TensorSpan:
    """Parse a ``.npy`` header from the current position of ``fh`` (a file or a stream).

    The returned offset is where the data starts (valid for seekable files).

    Raises:
        ValueError: not a ``.npy`` file, Fortran order, or an object dtype.
    """
    try:
        version = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(fh)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise ValueError(f"cannot read {name!r} as .npy: {e}") from None
    if fortran and len(shape) > 1:
        raise ValueError(f"{name!r} is stored in Fortran order; save it C-ordered "
                         "(numpy.ascontiguousarray)")
    if dtype.hasobject:
        raise ValueError(f"{name!r} holds Python objects, not numbers")
    return TensorSpan(tuple(int(s) for s in shape), dtype, fh.tell() if fh.seekable() else 0)


def read_slices(fh: IO[bytes], span: TensorSpan, name: str, *, seek: bool = True
                ) -> Iterator[np.ndarray]:
    """Yield the tensor's slices along its first axis in order, one read each.

    Each slice is a fresh writable array in native byte order. With ``seek`` (a file) each read
    starts at the slice's own offset, so several tensors of one file can be read in step through
    one handle; without it reading continues from the current position (a stream, e.g. a member
    of a zip file).

    Raises:
        ValueError: the data ends early.
    """
    for i in range(span.shape[0] if span.shape else 0):
        if seek:
            fh.seek(span.offset + i * span.slice_bytes)
        buf = bytearray(span.slice_bytes)
        if fh.readinto(buf) != len(buf):  # type: ignore[attr-defined]
            raise ValueError(f"{name!r} is truncated at slice {i} of {span.shape[0]}")
        arr = np.frombuffer(buf, dtype=span.dtype).reshape(span.shape[1:])
        yield arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))

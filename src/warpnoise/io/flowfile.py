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

import contextlib
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import Tensor

from ..flow import as_flow, as_flows
from .atomic import atomic_output
from .tensorfile import (
    TensorSpan,
    npy_header,
    read_npy_header,
    read_safetensors_header,
    read_slices,
    safetensors_header,
)
from .video import natural_key

__all__ = ["FLOW_EXTENSIONS", "FlowReader", "FlowWriter", "load_flows", "save_flows"]

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


def _flow_span(span: TensorSpan, name: str) -> TensorSpan:
    """A stored ``(N, 2, H, W)`` (or one ``(2, H, W)``) flow tensor, checked before any read."""
    shape = span.shape if len(span.shape) != 3 else (1, *span.shape)
    if len(shape) != 4 or shape[1] != 2:
        hint = " (OpenCV's (H, W, 2) layout? use flow.permute(2, 0, 1))" if (
            len(span.shape) == 3 and span.shape[-1] == 2) else ""
        raise ValueError(f"{name} must have shape (T, 2, H, W), got {span.shape}{hint}")
    if span.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got numpy dtype {span.dtype}")
    return TensorSpan(shape, span.dtype, span.offset)


class FlowReader:
    """The flows of a flow file (or a folder of ``.flo`` files), read one step at a time.

    Opening reads only the headers and checks names, shapes and sizes; iterating yields
    ``(backward[i], forward[i] or None)`` as ``(2, H, W)`` float32 tensors in order, each checked
    for NaN and inf, so a long sequence never sits in memory whole. Use as a context manager.

    Attributes:
        count: N, the number of steps; ``height``, ``width``: the flows' size;
        has_forward: whether the file holds forward flows (``.safetensors``/``.npz`` may).

    Raises:
        ValueError: missing file, unknown extension, wrong keys or shapes, a truncated file; NaN
            or inf while iterating.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        self._flo: list[Path] = []
        self._spans: dict[str, TensorSpan] = {}
        self._streams: dict[str, IO[bytes]] = {}
        try:
            self._open()
            self.count, self.height, self.width = self._size()
        except BaseException:
            self._stack.close()
            raise
        self.has_forward = "forward" in self._spans

    def _open(self) -> None:
        p = self.path
        if not p.exists():
            raise ValueError(f"flow file {str(p)!r} does not exist")
        if p.is_dir():
            self._flo = sorted((f for f in p.iterdir() if f.suffix.lower() == ".flo"),
                               key=lambda f: natural_key(f.name))
            if not self._flo:
                raise ValueError(f"folder {str(p)!r} holds no .flo files")
            return
        ext = p.suffix.lower()
        if ext == ".flo":
            self._flo = [p]
        elif ext == ".npy":
            fh = self._stack.enter_context(p.open("rb"))
            span = read_npy_header(fh, str(p))
            if fh.seek(0, os.SEEK_END) < span.offset + span.nbytes:
                raise ValueError(f"cannot read {str(p)!r} as .npy: the file is truncated")
            self._spans["backward"] = _flow_span(span, str(p))
            self._streams["backward"] = fh
        elif ext == ".npz":
            self._open_npz(p)
        elif ext == ".safetensors":
            fh = self._stack.enter_context(p.open("rb"))
            spans, _ = read_safetensors_header(fh, str(p))
            self._keyed(spans, {k: fh for k in spans})
        else:
            raise ValueError(f"unknown flow file type {ext!r} for {str(p)!r}; "
                             f"use one of {', '.join(FLOW_EXTENSIONS)} or a folder of .flo files")

    def _open_npz(self, p: Path) -> None:
        try:
            zf = self._stack.enter_context(zipfile.ZipFile(p))
            names = {n.removesuffix(".npy"): n for n in zf.namelist() if n.endswith(".npy")}
            spans, streams = {}, {}
            for key in ("backward", "forward"):
                if key in names:
                    # Members are read in order, one slice at a time: no seeking in the stream.
                    streams[key] = self._stack.enter_context(zf.open(names[key]))
                    spans[key] = read_npy_header(streams[key], f"{p.name}:{key}")
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"cannot read {str(p)!r} as .npz: {e}") from None
        self._keyed(spans, streams, found=list(names))

    def _keyed(self, spans: dict[str, TensorSpan], streams: dict[str, IO[bytes]],
               found: list[str] | None = None) -> None:
        if "backward" not in spans:
            raise ValueError(f"{str(self.path)!r} has no 'backward' tensor (found: "
                             f"{sorted(found if found is not None else spans)})")
        for key in ("backward", "forward"):
            if key in spans:
                self._spans[key] = _flow_span(spans[key], f"{self.path.name}:{key}")
                self._streams[key] = streams[key]
        b, f = self._spans["backward"], self._spans.get("forward")
        if f is not None and f.shape != b.shape:
            raise ValueError(f"{str(self.path)!r}: forward flows {f.shape} and backward flows "
                             f"{b.shape} differ in shape")

    def _size(self) -> tuple[int, int, int]:
        """``(count, height, width)``; a ``.flo`` sequence's size is its first file's."""
        if not self._flo:
            _, _, h, w = self._spans["backward"].shape
            return self._spans["backward"].shape[0], h, w
        first = _read_flo(self._flo[0])
        return len(self._flo), int(first.shape[1]), int(first.shape[2])

    def __enter__(self) -> FlowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None]]:
        h, w = self.height, self.width
        if self._flo:
            for f in self._flo:
                yield as_flow(_read_flo(f), h, w, name=f.name), None
            return
        # A .safetensors file serves both tensors through one handle (each read seeks); the
        # members of a .npz are two streams read straight on.
        seek = self.path.suffix.lower() != ".npz"
        parts = {k: read_slices(self._streams[k], s, f"{self.path.name}:{k}", seek=seek)
                 for k, s in self._spans.items()}
        for i in range(self.count):
            b = as_flow(next(parts["backward"]), h, w, name=f"{self.path.name}:backward[{i}]")
            f = None if "forward" not in parts else as_flow(
                next(parts["forward"]), h, w, name=f"{self.path.name}:forward[{i}]")
            yield b, f


def load_flows(path: str | os.PathLike) -> tuple[Tensor, Tensor | None]:
    """Read flows from a file (or a folder of ``.flo`` files); see the module docstring.

    The whole sequence is held in memory; :class:`FlowReader` reads one step at a time.

    Returns:
        ``(backward, forward)``: ``(N, 2, H, W)`` float32 each; ``forward`` is None when the file
        holds only backward flows.

    Raises:
        ValueError: missing file, unknown extension, wrong keys or shapes, NaN or inf.
    """
    with FlowReader(path) as reader:
        pairs = list(reader)
    backward = torch.stack([b for b, _ in pairs]) if pairs else torch.zeros(
        0, 2, reader.height, reader.width)
    forward = torch.stack([f for _, f in pairs]) if reader.has_forward and pairs else None  # type: ignore[misc]
    return backward, forward


class FlowWriter:
    """Write backward (and forward) flows one step at a time, atomically.

    The number of steps is known up front, so nothing is held: ``.safetensors`` writes each flow
    at its place in the file; ``.npz`` streams the backward flows into the archive and spools the
    forward flows into an anonymous temporary file beside the output, copied in on close;
    ``.npy`` holds backward flows only. On an exception, or with steps missing, nothing is left.

    Args:
        path: ``.safetensors`` (tensors ``backward``/``forward``, with ``metadata``), ``.npz``
            (arrays ``backward``/``forward``) or ``.npy`` (backward only).
        count: the sequence is ``(count, 2, height, width)``.
        height: the flows' height.
        width: the flows' width.
        forward: whether forward flows are written too.
    """

    def __init__(self, path: str | os.PathLike, count: int, height: int, width: int, *,
                 forward: bool = True, metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in (".safetensors", ".npz", ".npy"):
            raise ValueError(f"flows are written step by step to .safetensors, .npz or .npy, "
                             f"not {ext!r}")
        if ext == ".npy" and forward:
            raise ValueError(".npy holds backward flows only; use .safetensors or .npz")
        self.shape = (int(count), 2, int(height), int(width))
        self.forward = forward
        self.metadata = dict(metadata or {})
        self.written = 0
        self._atomic = atomic_output(self.path)
        self._stack = contextlib.ExitStack()
        self._fh: Any = None
        self._spool: Any = None

    def __enter__(self) -> FlowWriter:
        tmp = self._atomic.__enter__()
        try:
            self._open(tmp)
        except BaseException:
            self._stack.close()
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def _open(self, tmp: Path) -> None:
        keys = ("backward", "forward") if self.forward else ("backward",)
        f32 = np.dtype("<f4")
        ext = self.path.suffix.lower()
        if ext == ".npz":
            zf = self._stack.enter_context(zipfile.ZipFile(tmp, "w", allowZip64=True))
            self._fh = self._stack.enter_context(zf.open("backward.npy", "w", force_zip64=True))
            self._fh.write(npy_header(f32, self.shape))
            if self.forward:
                # Anonymous: it vanishes with the process, whatever happens.
                self._spool = self._stack.enter_context(
                    tempfile.TemporaryFile(dir=self.path.parent))  # noqa: SIM115
                self._zip = zf
            return
        self._fh = self._stack.enter_context(open(tmp, "wb"))  # noqa: SIM115
        self._fh.write(npy_header(f32, self.shape) if ext == ".npy" else safetensors_header(
            {k: (f32, self.shape) for k in keys}, self.metadata))
        self._data = self._fh.tell()

    def write(self, backward: Tensor, forward: Tensor | None = None) -> None:
        """Append step i: frame i+1's backward flow and frame i's forward flow, ``(2, H, W)``."""
        _, _, h, w = self.shape
        if self.written >= self.shape[0]:
            raise ValueError(f"all {self.shape[0]} flows are already written")
        if (forward is None) == self.forward:
            raise ValueError("a forward flow is required" if self.forward else
                             "this file holds backward flows only")
        b = _le_bytes(as_flow(backward, h, w, name=f"backward[{self.written}]"))
        if self._spool is not None:
            self._fh.write(b)
            self._spool.write(_le_bytes(as_flow(forward, h, w, name=f"forward[{self.written}]")))
        elif self.forward:
            step = len(b)
            self._fh.seek(self._data + self.written * step)
            self._fh.write(b)
            self._fh.seek(self._data + (self.shape[0] + self.written) * step)
            self._fh.write(_le_bytes(as_flow(forward, h, w, name=f"forward[{self.written}]")))
        else:
            self._fh.write(b)
        self.written += 1

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                if self.written != self.shape[0]:
                    raise ValueError(f"only {self.written} of {self.shape[0]} flows were written")
                if self._spool is not None:
                    self._fh.close()
                    self._spool.seek(0)
                    with self._zip.open("forward.npy", "w", force_zip64=True) as member:
                        member.write(npy_header(np.dtype("<f4"), self.shape))
                        shutil.copyfileobj(self._spool, member, 1 << 22)
            self._stack.close()
        except BaseException:
            self._stack.close()
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._atomic.__exit__(*exc)


def _le_bytes(flow: Tensor) -> memoryview:
    """A flow's float32 values as flat little-endian bytes (no copy on little-endian machines)."""
    arr = flow.detach().cpu().contiguous().numpy()
    return arr.astype("<f4", copy=False).data.cast("B")


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
    if ext == ".flo":
        if b.shape[0] != 1:
            raise ValueError(f".flo holds one flow, got {b.shape[0]}; use .safetensors or .npz")
        import cv2

        with atomic_output(p) as tmp:
            if not cv2.writeOpticalFlow(str(tmp), np.ascontiguousarray(b[0].permute(1, 2, 0))):
                raise ValueError(f"OpenCV could not write {str(p)!r}")
        return
    keep_forward = f is not None and ext != ".npy"
    with FlowWriter(p, b.shape[0], b.shape[2], b.shape[3], forward=keep_forward,
                    metadata=metadata) as writer:
        for i in range(b.shape[0]):
            writer.write(b[i], f[i] if keep_forward else None)  # type: ignore[index]

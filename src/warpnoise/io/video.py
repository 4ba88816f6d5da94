"""Video frames in and out: video files (PyAV / FFmpeg) and folders of images.

Convention:
    Frames are ``(T, H, W, 3)`` uint8 RGB numpy arrays, row 0 at the top. Sizes are given as
    ``(W, H)`` like ``--size WxH`` on the command line.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .atomic import atomic_output

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ClipInfo",
    "FrameSource",
    "VideoWriter",
    "list_images",
    "natural_key",
    "parse_size",
    "read_frames",
    "write_video",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".gif", ".mkv", ".m4v")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_T = TypeVar("_T")


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders ``frame2`` before ``frame10`` (digit runs compare as numbers)."""
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of ``folder`` (by extension, case-insensitive), sorted naturally."""
    files = [p for p in Path(folder).iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` (e.g. ``"640x480"``) into ``(W, H)``.

    Raises:
        ValueError: not two positive integers separated by ``x``.
    """
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if m is None or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(f"size must look like WxH with positive integers (e.g. 640x480), "
                         f"got {text!r}")
    return int(m.group(1)), int(m.group(2))


def check_selection(size: tuple[int, int] | None, scale: float | None, start: int,
                     frames: int | None, stride: int) -> None:
    if size is not None and scale is not None:
        raise ValueError("give either size or scale, not both")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (W, H) with positive integers, got {size!r}")
    if scale is not None and not (scale > 0 and np.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if frames is not None and frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")


def _target_size(width: int, height: int, size: tuple[int, int] | None,
                 scale: float | None) -> tuple[int, int]:
    if size is not None:
        return int(size[0]), int(size[1])
    if scale is not None:
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


@dataclass(frozen=True)
class ClipInfo:
    """What a pass over a :class:`FrameSource` found: the selected frames and their size."""

    frames: int
    width: int
    height: int


class FrameSource:
    """The selected frames of a video file or a folder of images, decoded one at a time.

    Iterating opens the input afresh and yields ``(H, W, 3)`` uint8 RGB frames (resized, in
    order), so a source can be walked any number of times without holding the clip: a statistic
    over the whole clip (a frame count, a global normalisation) is a streaming pre-pass, then a
    second pass does the work. Nothing is read until a pass starts; each pass costs one decode.

    Args:
        path: a video (mp4, avi, mov, webm, gif, mkv: anything FFmpeg decodes) or a folder of
            images (png, jpg, bmp, tif, webp), taken in natural order (``2.png`` before ``10.png``).
        size: resize every frame to ``(W, H)``; ``scale``: resize by a factor. Not both.
            Downscaling uses area averaging.
        start: the first frame kept.
        frames: keep at most this many frames.
        stride: keep frames ``start, start + stride, ...``.

    Raises:
        ValueError: a bad selection or a missing path (at once); while iterating, an unreadable
            or undecodable file, a folder without images or with images of different sizes, or a
            selection that keeps no frame. Decoder warnings (e.g. a damaged first slice) do not
            raise as long as frames decode.

    Example:
        >>> src = FrameSource("clip.mp4", size=(512, 384), stride=2)  # doctest: +SKIP
        >>> peak = max(int(f.max()) for f in src)                     # pass 1: a global statistic
        >>> for frame in src: ...                                     # pass 2: the work
    """

    def __init__(self, path: str | os.PathLike, *, size: tuple[int, int] | None = None,
                 scale: float | None = None, start: int = 0, frames: int | None = None,
                 stride: int = 1) -> None:
        check_selection(size, scale, start, frames, stride)
        self.path = Path(path)
        if not self.path.exists():
            raise ValueError(f"input {str(self.path)!r} does not exist")
        self.size, self.scale = size, scale
        self.start, self.frames, self.stride = start, frames, stride

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._selected(_to_rgb)

    def probe(self) -> ClipInfo:
        """Count the selected frames and give their size, keeping none of them.

        A video is decoded (not converted to RGB): container frame counts are estimates, and a
        frame that fails to decode must fail here, before any work. An image folder is counted
        from its file names; only its first selected image is read.
        """
        if self.path.is_dir():
            files = _folder_images(self.path)
            n = len(range(self.start, len(files), self.stride))
            if self.frames is not None:
                n = min(n, self.frames)
            first = next(self._selected(_target_only), None) if n else None
        else:
            n, first = 0, None
            for target in self._selected(_target_only):
                first = first or target
                n += 1
        if first is None:
            raise self._nothing_selected()
        return ClipInfo(frames=n, width=first[0], height=first[1])

    def _selected(self, convert: Callable[[Any, tuple[int, int]], _T]) -> Iterator[_T]:
        """Selected frames, each passed through ``convert(frame, (W, H) target)``; stops
        decoding once ``frames`` are kept."""
        source = _read_folder if self.path.is_dir() else _read_video
        kept = 0
        for out in source(self.path, self.size, self.scale, self.start, self.stride, convert):
            yield out
            kept += 1
            if self.frames is not None and kept >= self.frames:
                return
        if kept == 0:
            raise self._nothing_selected()

    def _nothing_selected(self) -> ValueError:
        return ValueError(f"{str(self.path)!r}: the selection (start={self.start}, "
                          f"stride={self.stride}) keeps no frame; the input has fewer frames "
                          "than start")


def read_frames(
    path: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    scale: float | None = None,
    start: int = 0,
    frames: int | None = None,
    stride: int = 1,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Read the selected frames of a video file or a folder of images into one array.

    The whole selection is held in memory (``T x H x W x 3`` bytes); to process a long clip
    frame by frame, iterate a :class:`FrameSource` instead (same arguments).

    Args:
        path: see :class:`FrameSource`.
        size: see :class:`FrameSource`.
        scale: see :class:`FrameSource`.
        start: see :class:`FrameSource`.
        frames: see :class:`FrameSource`.
        stride: see :class:`FrameSource`.
        progress: called with the number of frames kept so far, after each one.

    Returns:
        ``(T, H, W, 3)`` uint8 RGB.

    Raises:
        ValueError: see :class:`FrameSource`.
    """
    out: list[np.ndarray] = []
    for frame in FrameSource(path, size=size, scale=scale, start=start, frames=frames,
                             stride=stride):
        out.append(frame)
        if progress is not None:
            progress(len(out))
    return np.stack(out)


def _to_rgb(frame: Any, size: tuple[int, int]) -> np.ndarray:
    """A decoded frame (PyAV ``VideoFrame`` or OpenCV BGR array) as ``(H, W, 3)`` uint8 RGB at
    ``size = (W, H)``."""
    tw, th = size
    if isinstance(frame, np.ndarray):
        h, w = frame.shape[:2]
        if (tw, th) != (w, h):
            import cv2

            interp = cv2.INTER_AREA if tw * th < w * h else cv2.INTER_LINEAR
            frame = cv2.resize(frame, (tw, th), interpolation=interp)
        return np.ascontiguousarray(frame[..., ::-1])
    interp = "AREA" if tw * th < frame.width * frame.height else "BILINEAR"
    return frame.to_ndarray(format="rgb24", width=tw, height=th, interpolation=interp)


def _target_only(frame: Any, size: tuple[int, int]) -> tuple[int, int]:
    """The ``(W, H)`` a decoded frame would have, without converting it."""
    return size


def _folder_images(folder: Path) -> list[Path]:
    files = list_images(folder)
    if not files:
        raise ValueError(f"folder {str(folder)!r} holds no images "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _read_folder(folder: Path, size: tuple[int, int] | None, scale: float | None, start: int,
                 stride: int, convert: Callable[[Any, tuple[int, int]], _T]) -> Iterator[_T]:
    import cv2

    files = _folder_images(folder)
    first_shape: tuple[int, ...] | None = None
    for f in files[start::stride]:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {str(f)!r}")
        if first_shape is None:
            first_shape = bgr.shape
        elif bgr.shape != first_shape:
            raise ValueError(f"image {f.name!r} is {bgr.shape[1]}x{bgr.shape[0]} but the first "
                             f"image is {first_shape[1]}x{first_shape[0]}; all frames must "
                             "have one size")
        h, w = bgr.shape[:2]
        yield convert(bgr, _target_size(w, h, size, scale))


def _read_video(path: Path, size: tuple[int, int] | None, scale: float | None, start: int,
                stride: int, convert: Callable[[Any, tuple[int, int]], _T]) -> Iterator[_T]:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot open {str(path)!r} as a video: {e}") from None
    with container:
        if not container.streams.video:
            raise ValueError(f"{str(path)!r} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                if index >= start and (index - start) % stride == 0:
                    yield convert(frame, _target_size(frame.width, frame.height, size, scale))
                index += 1
        except av.error.FFmpegError as e:
            raise ValueError(f"cannot decode {str(path)!r} (codec "
                             f"{stream.codec_context.name}) at frame {index}: {e}") from None
    if index == 0:
        raise ValueError(f"{str(path)!r} contains no decodable video frames")


class VideoWriter:
    """Stream ``(H, W, 3)`` uint8 RGB frames into an H.264 mp4 that appears only when complete.

    Use as a context manager; frames are added with :meth:`write`. On a normal exit the file is
    finalised and renamed into place; on an exception the temporary file is removed. Odd widths or
    heights are padded by one black column/row (H.264 with yuv420p needs even sizes).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 12.0) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._atomic = atomic_output(path)
        self.fps = fps
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        import av

        tmp = self._atomic.__enter__()
        try:
            self._container = av.open(str(tmp), mode="w", format="mp4")
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame (every frame must have the first one's size)."""
        import av

        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] != 3 \
                or frame.dtype != np.uint8:
            raise ValueError(f"a video frame must be an (H, W, 3) uint8 array, got "
                             f"{getattr(frame, 'shape', None)} {getattr(frame, 'dtype', '')}")
        h, w = frame.shape[:2]
        if self._stream is None:
            self._size = (h, w)
            self._stream = self._container.add_stream(
                "libx264", rate=Fraction(self.fps).limit_denominator(1001))
            self._stream.width, self._stream.height = w + w % 2, h + h % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "20", "preset": "veryfast"}
        elif (h, w) != self._size:
            raise ValueError(f"frame is {w}x{h} but the video is {self._size[1]}x{self._size[0]}")
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            self._container.mux(packet)

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is None:
                if self._stream is None:
                    raise ValueError("no frames to write")
                for packet in self._stream.encode():
                    self._container.mux(packet)
        except BaseException:
            self._container.close()
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._container.close()
        self._atomic.__exit__(*exc)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 12.0) -> None:
    """Write ``(T, H, W, 3)`` uint8 RGB frames as an H.264 mp4, atomically (see VideoWriter).

    Raises:
        ValueError: wrong shape or dtype, no frames, or a non-positive fps.
    """
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        raise ValueError(f"frames must be a (T, H, W, 3) array, got shape {shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.shape[0] == 0:
        raise ValueError("no frames to write")
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)

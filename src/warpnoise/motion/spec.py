"""The motion description: what a person writes by hand (or an editor generates) to say how the
first frame of a clip should move.

A motion file is JSON::

    {
      "frames": 49, "fps": 16,
      "camera": {"keyframes": [{"frame": 48, "zoom": 1.2, "pan": [-20, 0]}]},
      "layers": [
        {"name": "box", "polygon": [[60, 50], [140, 50], [140, 130], [60, 130]],
         "keyframes": [{"frame": 24, "translate": [40, 10]},
                       {"frame": 48, "translate": [80, 0], "rotation": 30, "scale": 1.2}]}
      ]
    }

Fields (every one checked; unknown keys are errors):

* ``size``: ``[W, H]`` of the frames; omitted: the image's size. Coordinates are pixels of the
  first frame at that size (pixel centres at integers, origin top-left, y down).
* ``frames`` (at least 2) and ``fps``.
* ``camera``: keyframes of the whole picture's motion, about the frame centre: ``pan`` ``[dx,
  dy]`` (pixels the picture moves by), ``zoom`` (magnification, > 0), ``rotation`` (degrees,
  clockwise on screen), optionally ``homography`` (a 3x3 matrix applied to the picture before
  pan, zoom and rotation, for tilt- or dolly-like moves).
* ``layers``, front to back: a ``polygon`` (at least 3 points, non-zero area) or a ``mask``
  (a grayscale image of the frame's size, white = layer, path relative to the motion file),
  an ``anchor`` (default: the centroid), and keyframes of ``translate`` ``[dx, dy]`` (pixels the
  anchor moves by), ``rotation`` (degrees, clockwise) and ``scale`` (> 0) about the anchor.
  ``path``: ``"smooth"`` (a Catmull-Rom curve through the keyframes' positions, the curve a
  person draws by clicking points) or ``"straight"``.
* ``easing`` (on the camera and each layer, or per keyframe for the segment ending there):
  ``"linear"`` or ``"smooth"`` (ease in and out, ``3u² - 2u³``).

Frame 0 is the image itself: every track starts at rest there (no move), keyframes are at frames
1 to ``frames - 1`` in increasing order, and a track holds its last keyframe to the end. Between
keyframes translation, pan, rotation and the homography's entries are interpolated linearly in
the eased time, scale and zoom geometrically (a steady zoom looks steady).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "Camera",
    "CameraKey",
    "Layer",
    "LayerKey",
    "Motion",
    "MotionError",
    "load",
    "parse",
    "polygon_area",
]

Easing = Literal["linear", "smooth"]
Point = tuple[float, float]
Positive = Annotated[float, Field(gt=0)]


class MotionError(ValueError):
    """A motion description that cannot be used; the message names the field (``layers[0].
    keyframes[1].scale: ...``) and, for a file, the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class CameraKey(_Strict):
    """The camera at one frame: the picture moved by ``pan``, magnified by ``zoom`` and turned by
    ``rotation`` degrees about the frame centre, after ``homography``."""

    frame: int
    pan: Point = (0.0, 0.0)
    zoom: Positive = 1.0
    rotation: float = 0.0
    homography: tuple[tuple[float, float, float], tuple[float, float, float],
                      tuple[float, float, float]] | None = None
    easing: Easing | None = None

    @field_validator("homography")
    @classmethod
    def _invertible(cls, h: Any) -> Any:
        if h is None:
            return h
        import numpy as np

        m = np.array(h, dtype=np.float64)
        if abs(m[2, 2]) < 1e-12 or abs(np.linalg.det(m / m[2, 2])) < 1e-9:
            raise ValueError("must be an invertible 3x3 matrix with a non-zero last entry")
        return tuple(tuple(float(v) for v in row) for row in m / m[2, 2])


class Camera(_Strict):
    """Keyframes of the whole picture's motion (frame 0 is at rest)."""

    easing: Easing = "smooth"
    keyframes: list[CameraKey] = []


class LayerKey(_Strict):
    """A layer at one frame: its anchor moved by ``translate``, the layer turned by ``rotation``
    degrees and scaled by ``scale`` about the anchor."""

    frame: int
    translate: Point = (0.0, 0.0)
    rotation: float = 0.0
    scale: Positive = 1.0
    easing: Easing | None = None


class Layer(_Strict):
    """A part of the first frame cut out and moved: a polygon or a mask image."""

    name: str | None = None
    polygon: list[Point] | None = None
    mask: str | None = None
    anchor: Point | None = None
    path: Literal["smooth", "straight"] = "smooth"
    easing: Easing = "linear"
    keyframes: list[LayerKey] = Field(min_length=1)

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, pts: list[Point] | None) -> list[Point] | None:
        if pts is None:
            return pts
        if len(pts) < 3:
            raise ValueError(f"needs at least 3 points, got {len(pts)}")
        if abs(polygon_area(pts)) < 1e-6:
            raise ValueError("has zero area (its points are on one line)")
        return pts

    @model_validator(mode="after")
    def _one_shape(self) -> Layer:
        if (self.polygon is None) == (self.mask is None):
            raise ValueError("give a 'polygon' or a 'mask', exactly one")
        return self


class Motion(_Strict):
    """A motion description (see the module docstring for every field)."""

    version: Literal[1] = 1
    size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None = None
    frames: Annotated[int, Field(ge=2)]
    fps: Positive = 16.0
    camera: Camera = Camera()
    layers: list[Layer] = []

    @model_validator(mode="after")
    def _keyframe_times(self) -> Motion:
        tracks = [("camera", self.camera.keyframes)] + [
            (f"layers[{i}]", layer.keyframes) for i, layer in enumerate(self.layers)]
        for where, keys in tracks:
            last = 0
            for j, key in enumerate(keys):
                field = f"{where}.keyframes[{j}].frame"
                if key.frame < 1:
                    raise ValueError(f"{field}: {key.frame} is not after frame 0 (frame 0 is the "
                                     "image itself, at rest; keyframes start at frame 1)")
                if key.frame >= self.frames:
                    raise ValueError(f"{field}: {key.frame} is beyond the clip (frames 0 to "
                                     f"{self.frames - 1})")
                if key.frame <= last and j:
                    raise ValueError(f"{field}: {key.frame} is out of order (keyframes must be "
                                     f"in increasing frame order; the previous is {last})")
                last = key.frame
        return self

    def with_frames(self, frames: int) -> Motion:
        """The same motion over ``frames`` frames (checked again: keyframes must fit)."""
        return _validated(self.model_dump() | {"frames": frames}, "motion")

    def to_json(self) -> str:
        """The description as compact JSON (the fields that differ from their defaults)."""
        return self.model_dump_json(exclude_defaults=True)


def polygon_area(points: list[Point]) -> float:
    """Signed area of a polygon (shoelace formula; positive when clockwise on screen, y down)."""
    n = len(points)
    return 0.5 * sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                     for i in range(n))


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "tuple[", "list[", "constrained-")):
            out += ("." if out else "") + str(part)
    return out


def _message(e: ValidationError, source: str) -> str:
    err = e.errors()[0]
    where = _field(err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling)"
    elif err["type"] == "missing":
        msg = "missing (required)"
    elif err["type"] in ("finite_number",):
        msg = "must be a finite number, not NaN or infinity"
    more = f" (and {len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
    return f"{source}: {where + ': ' if where else ''}{msg}{more}"


def _validated(data: Any, source: str) -> Motion:
    if not isinstance(data, dict):
        raise MotionError(f"{source}: a motion description is a JSON object, got "
                          f"{type(data).__name__}")
    try:
        return Motion.model_validate(data)
    except ValidationError as e:
        raise MotionError(_message(e, source)) from None


def parse(text: str | dict[str, Any], source: str = "motion") -> Motion:
    """A :class:`Motion` from JSON text (or an already parsed dict).

    Raises:
        MotionError: a JSON syntax error (with its line and column) or a field that breaks the
            rules (named, e.g. ``layers[0].keyframes[1].scale: Input should be greater than 0``).
    """
    if isinstance(text, dict):
        return _validated(text, source)
    try:
        data = json.loads(text, parse_constant=_non_finite)
    except json.JSONDecodeError as e:
        raise MotionError(f"{source}: JSON syntax error at line {e.lineno}, column {e.colno}: "
                          f"{e.msg}") from None
    return _validated(data, source)


def _non_finite(name: str) -> float:
    # NaN and Infinity are not JSON; Python reads them, so the field checks must reject them.
    return math.nan if name == "NaN" else math.inf


def load(path: str | os.PathLike) -> Motion:
    """Read and check a motion file (JSON). Mask paths in it stay relative to its folder
    (:func:`warpnoise.motion.scene` resolves them with ``base=Path(path).parent``).

    Raises:
        MotionError: see :func:`parse`; the message starts with the file's name.
        FileNotFoundError: no such file.
    """
    p = Path(path)
    if p.is_dir():
        raise MotionError(f"motion file {str(p)!r} is a folder")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MotionError(f"{p!s}: not a UTF-8 text (JSON) file") from None
    return parse(text, str(p))

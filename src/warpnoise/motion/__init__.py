"""Motion you author: cut-and-drag layers and camera moves, their exact flows, the driving
animation, and warped noise for motion-controlled video models.

A motion description (:class:`Motion`, JSON; see :mod:`warpnoise.motion.spec` for every field)
says how the first frame of a clip moves: a camera (pan, zoom, rotation, homography) and layers
cut from the first frame (polygons or masks) dragged along smooth paths, turned and scaled. Since
the motion is known, its flows are exact (no flow estimation), occlusion follows the layers'
order, and the noise is warped exactly along them.

    >>> from warpnoise import motion
    >>> spec = motion.load("motion.json")                        # doctest: +SKIP
    >>> sc = motion.scene(spec, size=(720, 480))                 # doctest: +SKIP
    >>> for step in motion.flows(sc): ...                        # doctest: +SKIP
    >>> for frame in motion.render(sc, image): ...               # doctest: +SKIP
    >>> x = motion.noise(sc, channels=16, seed=0)                # doctest: +SKIP

Shapes:
    :func:`scene` -> :class:`Scene` (``width``, ``height``, ``frames``; ``camera`` ``(T, 3, 3)``,
    each layer's ``motion`` ``(T, 3, 3)``). :func:`flows` yields T-1 :class:`FlowStep`:
    ``backward`` and ``forward`` ``(2, H, W)`` (frame t's backward flow, frame t-1's forward
    flow), ``owner`` ``(H, W)`` int8 (-1 background), ``disoccluded`` ``(H, W)`` bool.
    :func:`render` yields T :class:`AnimationFrame`: ``image`` ``(H, W, 3)`` uint8 RGB,
    ``masks`` ``(L, H, W)`` float32 in [0, 1]. :func:`noise` returns ``(T, C, H/s, W/s)``
    float32. :func:`write` writes noise, animation, masks and preview files.
"""

from __future__ import annotations

from .flows import BACKGROUND, FlowStep, flows, positions
from .make import MotionResult, first_frame, leaving_frames, load_scene, noise, write
from .render import AnimationFrame, coverage, draw_outlines, outlines, render
from .scene import LayerShape, Scene, scene
from .spec import Camera, CameraKey, Layer, LayerKey, Motion, MotionError, load, parse

__all__ = [
    "BACKGROUND",
    "AnimationFrame",
    "Camera",
    "CameraKey",
    "FlowStep",
    "Layer",
    "LayerKey",
    "LayerShape",
    "Motion",
    "MotionError",
    "MotionResult",
    "Scene",
    "camera_move",
    "coverage",
    "draw_outlines",
    "example_path",
    "first_frame",
    "flows",
    "leaving_frames",
    "load",
    "load_scene",
    "noise",
    "outlines",
    "parse",
    "positions",
    "render",
    "scene",
    "write",
]


def camera_move(frames: int = 49, *, pan: tuple[float, float] = (0.0, 0.0), zoom: float = 1.0,
                rotate: float = 0.0, fps: float = 16.0) -> Motion:
    """A ready-made camera move over the whole clip: from rest at frame 0 to ``pan`` pixels,
    ``zoom`` times and ``rotate`` degrees at the last frame (smooth easing), no layers."""
    return parse({"frames": frames, "fps": fps, "camera": {"keyframes": [
        {"frame": frames - 1, "pan": list(pan), "zoom": zoom, "rotation": rotate}]}},
        "camera move")


def example_path() -> str:
    """The bundled example motion file, written for the first frame of the bundled sample clip
    (``warpnoise/data/sample.mp4``); both paths are ``importlib.resources`` files."""
    from importlib.resources import files

    return str(files("warpnoise") / "data" / "motion_example.json")

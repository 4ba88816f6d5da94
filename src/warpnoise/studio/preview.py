"""The studio's live preview: the motion rendered and its noise warped at a reduced resolution,
as one image strip, plus each layer's path for the editor.

Convention:
    Motion coordinates are pixels of the full-size first frame (pixel centres at integers,
    origin top-left, y down). The preview is the same motion made concrete for a frame ``s``
    times smaller: points scale as ``x -> s x`` (a homography ``H`` as ``S H S^-1`` with
    ``S = diag(s, s, 1)``). Paths are in full-size first-frame (picture) coordinates, before
    the camera, because that is where the editor draws them.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import motion as mo

__all__ = ["PREVIEW_SIDE", "Preview", "preview", "scaled", "single_threaded"]

#: Longer side of the preview frames, in pixels.
PREVIEW_SIDE = 192


@dataclass
class Preview:
    """One preview: ``strip`` a JPEG of T rows, each ``animation | noise`` (``width`` x
    ``height`` per half); ``paths`` per layer, the ``(T, 2)`` positions of its anchor;
    ``anchors`` per layer ``(2,)``; ``outlines`` per layer per frame the polygon as the layer's
    own motion moves it (picture coordinates, camera left out)."""

    strip: bytes
    width: int
    height: int
    frames: int
    paths: list[list[list[float]]]
    anchors: list[list[float]]
    outlines: list[list[list[list[float]]]]

    def to_json(self) -> dict[str, Any]:
        return {"strip": "data:image/jpeg;base64," + base64.b64encode(self.strip).decode(),
                "width": self.width, "height": self.height, "frames": self.frames,
                "paths": self.paths, "anchors": self.anchors, "outlines": self.outlines}


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch and the compiled kernels on one thread for the block (then restore).

    A preview's frames are small (192 px): waking a second thread for every step costs more
    than it saves, and on a busy machine far more (on 2 shared cores, 3x to 10x the time). The
    torch setting is process-wide: hold the lock that keeps other warps out while in here.
    """
    import torch

    try:
        import numba
    except ImportError:
        numba = None
    torch_threads = torch.get_num_threads()
    numba_threads = None if numba is None else numba.get_num_threads()
    torch.set_num_threads(1)
    if numba is not None:
        numba.set_num_threads(1)  # numba's count is per calling thread
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        if numba is not None:
            numba.set_num_threads(numba_threads)


def _scale_point(p: Any, s: float) -> list[float]:
    return [float(p[0]) * s, float(p[1]) * s]


def scaled(spec: mo.Motion, size: tuple[int, int], s: float,
           new_size: tuple[int, int]) -> mo.Motion:
    """``spec`` for frames scaled by ``s`` (``size`` ``(W, H)`` to ``new_size``): polygons,
    anchors, translations and pans scaled, homographies conjugated (see the module docstring).
    Rotations, scales, zooms, frames and easing stay. Mask layers are refused (the studio
    draws polygons)."""
    d = spec.model_dump()
    d["size"] = list(new_size)
    for key in d["camera"]["keyframes"]:
        key["pan"] = _scale_point(key["pan"], s)
        if key["homography"] is not None:
            sm = np.diag([s, s, 1.0])
            key["homography"] = (sm @ np.array(key["homography"]) @ np.linalg.inv(sm)).tolist()
    for k, layer in enumerate(d["layers"]):
        if layer["polygon"] is None:
            raise ValueError(f"layers[{k}] is a mask layer; the studio edits polygon layers only")
        layer["polygon"] = [_scale_point(p, s) for p in layer["polygon"]]
        if layer["anchor"] is not None:
            layer["anchor"] = _scale_point(layer["anchor"], s)
        for key in layer["keyframes"]:
            key["translate"] = _scale_point(key["translate"], s)
    return mo.parse(d, "motion")


def noise_colours(x: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 picture of noise ``(C, H, W)``: its first three channels (the first
    repeated if fewer), ±2.67 standard deviations mapped to 0..255."""
    c = x[:3] if x.shape[0] >= 3 else np.repeat(x[:1], 3, axis=0)
    return np.clip(c.transpose(1, 2, 0) * 48.0 + 128.0, 0, 255).astype(np.uint8)


def preview(spec: mo.Motion, image: np.ndarray, *, seed: int = 0,
            side: int = PREVIEW_SIDE) -> Preview:
    """The preview of ``spec`` on the full-size first frame ``image`` ``(H, W, 3)`` uint8 RGB.

    The motion is scaled so the longer side is at most ``side`` pixels; the frames are rendered
    (:func:`warpnoise.motion.render`, outlines drawn) and 3-channel noise is warped along the
    exact flows (:func:`warpnoise.motion.noise`) at that size.
    """
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, side / max(w, h))
    pw, ph = max(2, round(w * s)), max(2, round(h * s))
    if s < 1.0:
        sc = mo.scene(scaled(spec, (w, h), s, (pw, ph)))
        img = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_AREA)
    else:
        sc, img = mo.scene(spec, (w, h)), image
    n = mo.noise(sc, 3, seed=seed).numpy()
    rows = [np.concatenate([mo.draw_outlines(fr.image, sc, fr.frame),
                            noise_colours(n[fr.frame])], 1) for fr in mo.render(sc, img)]
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise RuntimeError("could not encode the preview")
    full = mo.scene(spec, (w, h))
    paths, outlines = [], []
    for layer in full.layers:
        m = layer.motion
        a = np.r_[layer.anchor, 1.0]
        paths.append((m @ a)[:, :2].round(2).tolist())
        poly = np.c_[layer.polygon, np.ones(len(layer.polygon))]
        outlines.append(np.einsum("tij,nj->tni", m, poly)[..., :2].round(2).tolist())
    return Preview(jpeg.tobytes(), pw, ph, sc.frames, paths,
                   [layer.anchor.round(3).tolist() for layer in full.layers], outlines)

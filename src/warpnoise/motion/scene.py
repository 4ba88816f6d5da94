"""A motion description made concrete: the frame size, each layer's shape, and for every frame the
exact map of the camera and of each layer.

Convention:
    Pixel coordinates: pixel centres at integers, origin top-left, x right, y down. Maps are
    ``3 x 3`` homogeneous matrices (float64) acting on column vectors ``(x, y, 1)``.
    ``Scene.camera[t]`` maps a point of the first frame's picture to where frame t shows it;
    ``Scene.layers[k].motion[t]`` moves layer k's points within the picture (first-frame
    coordinates), so a point ``p`` of layer k is seen at ``camera[t] @ motion[t] @ p`` in frame t
    (:meth:`Scene.placement`). Layer 0 is the front-most; a pixel of frame t belongs to the
    front-most layer whose shape covers its centre, else to the background (index -1).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .spec import Camera, Layer, Motion, MotionError

__all__ = ["BACKGROUND", "LayerShape", "Scene", "ease", "scene"]

#: The owner index of pixels that no layer covers.
BACKGROUND = -1


def ease(u: float, kind: str) -> float:
    """Eased time in [0, 1]: ``linear`` is ``u``, ``smooth`` is ``3u² - 2u³`` (smoothstep)."""
    u = min(max(u, 0.0), 1.0)
    return u if kind == "linear" else u * u * (3.0 - 2.0 * u)


def _segment(frames: list[int], easings: list[str], t: int) -> tuple[int, float]:
    """The keyframe segment ``i`` (from key ``i`` to key ``i + 1``, key 0 the rest at frame 0)
    holding frame ``t``, and the eased time within it; past the last key, the last key."""
    for i in range(len(frames) - 1):
        if t <= frames[i + 1]:
            u = (t - frames[i]) / (frames[i + 1] - frames[i])
            return i, ease(u, easings[i + 1])
    return len(frames) - 2, 1.0


def _catmull_rom(p: list[np.ndarray], i: int, u: float) -> np.ndarray:
    """Uniform Catmull-Rom point between ``p[i]`` and ``p[i+1]`` (ends repeated): the curve
    passes through every keyframe position with a continuous tangent."""
    p0, p1 = p[max(i - 1, 0)], p[i]
    p2, p3 = p[i + 1], p[min(i + 2, len(p) - 1)]
    u2, u3 = u * u, u * u * u
    return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u2
                  + (3 * p1 - p0 - 3 * p2 + p3) * u3)


def _similarity(centre: np.ndarray, shift: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    """``x -> centre + shift + scale R(degrees) (x - centre)``; positive degrees turn clockwise
    on screen (y down)."""
    a = math.radians(degrees)
    c, s = scale * math.cos(a), scale * math.sin(a)
    lin = np.array([[c, -s], [s, c]])
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = centre + shift - lin @ centre
    return m


def _lerp(a: float, b: float, u: float) -> float:
    return a + (b - a) * u


def _geom(a: float, b: float, u: float) -> float:
    return a * (b / a) ** u


def _camera_maps(camera: Camera, frames: int, centre: np.ndarray) -> np.ndarray:
    keys = camera.keyframes
    times = [0, *(k.frame for k in keys)]
    easings = [camera.easing, *(k.easing or camera.easing for k in keys)]
    pan = [np.zeros(2), *(np.array(k.pan, dtype=np.float64) for k in keys)]
    zoom = [1.0, *(k.zoom for k in keys)]
    rot = [0.0, *(k.rotation for k in keys)]
    hom = [np.eye(3), *(np.eye(3) if k.homography is None else np.array(k.homography)
                        for k in keys)]
    out = np.tile(np.eye(3), (frames, 1, 1))
    if not keys:
        return out
    for t in range(1, frames):
        i, u = _segment(times, easings, t)
        h = hom[i] + (hom[i + 1] - hom[i]) * u
        sim = _similarity(centre, pan[i] + (pan[i + 1] - pan[i]) * u, _lerp(rot[i], rot[i + 1], u),
                          _geom(zoom[i], zoom[i + 1], u))
        out[t] = sim @ h
    return out


def _layer_maps(layer: Layer, frames: int, anchor: np.ndarray) -> np.ndarray:
    keys = layer.keyframes
    times = [0, *(k.frame for k in keys)]
    easings = [layer.easing, *(k.easing or layer.easing for k in keys)]
    pos = [np.zeros(2), *(np.array(k.translate, dtype=np.float64) for k in keys)]
    scale = [1.0, *(k.scale for k in keys)]
    rot = [0.0, *(k.rotation for k in keys)]
    out = np.tile(np.eye(3), (frames, 1, 1))
    for t in range(1, frames):
        i, u = _segment(times, easings, t)
        shift = (_catmull_rom(pos, i, u) if layer.path == "smooth"
                 else pos[i] + (pos[i + 1] - pos[i]) * u)
        out[t] = _similarity(anchor, shift, _lerp(rot[i], rot[i + 1], u),
                             _geom(scale[i], scale[i + 1], u))
    return out


def apply_matrix(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``m`` applied to points ``(2, ...)`` (homogeneous division included)."""
    x, y = pts[0], pts[1]
    out = np.empty(pts.shape, dtype=np.float64)
    out[0] = m[0, 0] * x + m[0, 1] * y + m[0, 2]
    out[1] = m[1, 0] * x + m[1, 1] * y + m[1, 2]
    if m[2, 0] != 0 or m[2, 1] != 0 or m[2, 2] != 1:  # projective: divide
        out /= m[2, 0] * x + m[2, 1] * y + m[2, 2]
    return out


def apply_grid(m: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(2, H, W)``: ``m`` applied to every pixel centre, by broadcasting a row and a column
    (the lattice makes each coordinate a sum of the two)."""
    xs = np.arange(width, dtype=np.float64)[None, :]
    ys = np.arange(height, dtype=np.float64)[:, None]
    out = np.empty((2, height, width), dtype=np.float64)
    out[0] = m[0, 0] * xs + (m[0, 1] * ys + m[0, 2])
    out[1] = m[1, 0] * xs + (m[1, 1] * ys + m[1, 2])
    if m[2, 0] != 0 or m[2, 1] != 0 or m[2, 2] != 1:
        out /= m[2, 0] * xs + (m[2, 1] * ys + m[2, 2])
    return out


def _inside_polygon(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Even-odd rule: points ``(2, ...)`` whose rightward ray crosses the polygon's ``(N, 2)``
    edges an odd number of times."""
    x, y = pts[0], pts[1]
    inside = np.zeros(x.shape, dtype=bool)
    n = poly.shape[0]
    for j in range(n):
        (x0, y0), (x1, y1) = poly[j], poly[(j + 1) % n]
        if y0 == y1:
            continue
        spans = (y0 <= y) != (y1 <= y)
        xc = x0 + (y - y0) * ((x1 - x0) / (y1 - y0))
        inside ^= spans & (x < xc)
    return inside


def _bilinear(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``img`` ``(H, W)`` sampled bilinearly at points ``(2, ...)``, zero outside."""
    h, w = img.shape
    x, y = pts[0], pts[1]
    x0, y0 = np.floor(x), np.floor(y)
    out = np.zeros(x.shape, dtype=np.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wgt = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            out[ok] += wgt[ok] * img[yi[ok].astype(np.int64), xi[ok].astype(np.int64)]
    return out


@dataclass(frozen=True)
class LayerShape:
    """One layer made concrete.

    Attributes:
        name: the layer's name (``layer<k>`` when the file gives none).
        polygon: ``(N, 2)`` float64 first-frame points, or None for a mask layer.
        mask: ``(H, W)`` float32 in [0, 1] for a mask layer (a pixel is in the layer when the
            bilinear value at its centre is at least 0.5), or None.
        anchor: ``(2,)`` the point rotation and scale turn about.
        motion: ``(T, 3, 3)`` the layer's map from the first frame to frame t (picture
            coordinates, before the camera).
        outline: closed ``(M, 2)`` point lists of its boundary in the first frame (for drawing).
    """

    name: str
    polygon: np.ndarray | None
    mask: np.ndarray | None
    anchor: np.ndarray
    motion: np.ndarray
    outline: tuple[np.ndarray, ...]

    def contains(self, pts: np.ndarray) -> np.ndarray:
        """Boolean ``(...)``: which first-frame points ``(2, ...)`` lie in the layer."""
        if self.polygon is not None:
            return _inside_polygon(self.polygon, pts)
        return _bilinear(self.mask, pts) >= 0.5

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The shape's bounding box in the first frame: ``(min x, min y), (max x, max y)``."""
        pts = np.concatenate(self.outline) if self.outline else np.zeros((1, 2))
        return pts.min(axis=0) - 1.0, pts.max(axis=0) + 1.0


@dataclass(frozen=True)
class Scene:
    """The concrete motion: size, frames, camera and layer maps (see the module docstring)."""

    width: int
    height: int
    frames: int
    fps: float
    camera: np.ndarray  # (T, 3, 3)
    layers: tuple[LayerShape, ...]
    spec: Motion

    def placement(self, layer: int, t: int) -> np.ndarray:
        """``(3, 3)``: where frame t shows the first frame's points of ``layer`` (-1: the
        background)."""
        return self.camera[t] if layer == BACKGROUND else self.camera[t] @ self.layers[
            layer].motion[t]

    def step_map(self, layer: int, t_from: int, t_to: int) -> np.ndarray:
        """``(3, 3)``: where a point of ``layer`` seen at ``x`` in frame ``t_from`` is seen in
        frame ``t_to``."""
        return self.placement(layer, t_to) @ np.linalg.inv(self.placement(layer, t_from))

    def owner(self, pts: np.ndarray, t: int) -> np.ndarray:
        """``(...)`` int8: the layer seen at points ``(2, ...)`` of frame t (front-most covering
        it, :data:`BACKGROUND` if none)."""
        out = np.full(pts.shape[1:], BACKGROUND, dtype=np.int8)
        flat_out, flat = out.reshape(-1), pts.reshape(2, -1)
        for k in reversed(range(len(self.layers))):  # front layers written last, so they win
            # Only points in the layer's bounding box in frame t are mapped back and tested.
            lo, hi = self.frame_bounds(k, t)
            idx = np.flatnonzero((flat[0] >= lo[0]) & (flat[0] <= hi[0]) & (flat[1] >= lo[1])
                                 & (flat[1] <= hi[1]))
            back = apply_matrix(np.linalg.inv(self.placement(k, t)), flat[:, idx])
            flat_out[idx[self.layers[k].contains(back)]] = k
        return out

    def owner_grid(self, t: int) -> np.ndarray:
        """``(H, W)`` int8: :meth:`owner` of every pixel centre of frame t (only the pixels in
        each layer's bounding box are mapped back and tested)."""
        out = np.full((self.height, self.width), BACKGROUND, dtype=np.int8)
        for k in reversed(range(len(self.layers))):
            lo, hi = self.frame_bounds(k, t)
            x0, y0 = max(int(np.ceil(lo[0])), 0), max(int(np.ceil(lo[1])), 0)
            x1, y1 = min(int(hi[0]) + 1, self.width), min(int(hi[1]) + 1, self.height)
            if x0 >= x1 or y0 >= y1:
                continue
            shift = np.array([[1.0, 0, x0], [0, 1.0, y0], [0, 0, 1.0]])
            back = apply_grid(np.linalg.inv(self.placement(k, t)) @ shift, y1 - y0, x1 - x0)
            box = out[y0:y1, x0:x1]
            box[self.layers[k].contains(back)] = k
        return out

    def frame_bounds(self, layer: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Layer ``layer``'s bounding box in frame t, ``(min x, min y), (max x, max y)``, with a
        pixel's margin."""
        lo, hi = self.layers[layer].bounds
        corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        q = apply_matrix(self.placement(layer, t), corners.T)
        return q.min(axis=1) - 1.0, q.max(axis=1) + 1.0


def _mask_image(path: Path, where: str, size: tuple[int, int]) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
    if img is None:
        raise MotionError(f"{where}: cannot read mask image {str(path)!r} (missing or not an "
                          "image)")
    h, w = img.shape[:2]
    if (w, h) != size:
        raise MotionError(f"{where}: mask image {str(path)!r} is {w}x{h} but the frames are "
                          f"{size[0]}x{size[1]}")
    m = img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    if not (m >= 0.5).any():
        raise MotionError(f"{where}: mask image {str(path)!r} is empty (no pixel at or above "
                          "half white)")
    return m


def _mask_outline(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    import cv2

    contours, _ = cv2.findContours((mask >= 0.5).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    return tuple(c[:, 0, :].astype(np.float64) for c in contours)


def _centroid(polygon: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
    if polygon is not None:
        x, y = polygon[:, 0], polygon[:, 1]
        xn, yn = np.roll(x, -1), np.roll(y, -1)
        cross = x * yn - xn * y
        a = cross.sum() / 2
        return np.array([((x + xn) * cross).sum() / (6 * a), ((y + yn) * cross).sum() / (6 * a)])
    w = (mask >= 0.5).astype(np.float64)
    ys, xs = np.indices(w.shape)
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


def scene(spec: Motion, size: tuple[int, int] | None = None,
          base: str | os.PathLike | None = None) -> Scene:
    """Make ``spec`` concrete for frames of ``size`` ``(W, H)`` (used when the description has
    no ``size``; when it has one, that one is used). Mask paths are relative to ``base``.

    Raises:
        MotionError: no size anywhere, or a mask image that is missing, empty or of another size
            (naming the layer's field).
    """
    if spec.size is not None:
        size = (int(spec.size[0]), int(spec.size[1]))
    if size is None:
        raise MotionError("size: the motion gives no frame size and there is no image to take "
                          "it from")
    w, h = size
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    layers = []
    for k, layer in enumerate(spec.layers):
        polygon = mask = None
        if layer.polygon is not None:
            polygon = np.array(layer.polygon, dtype=np.float64)
            outline: tuple[np.ndarray, ...] = (polygon,)
        else:
            path = Path(layer.mask or "")
            if not path.is_absolute() and base is not None:
                path = Path(base) / path
            mask = _mask_image(path, f"layers[{k}].mask", (w, h))
            outline = _mask_outline(mask)
        anchor = (np.array(layer.anchor, dtype=np.float64) if layer.anchor is not None
                  else _centroid(polygon, mask))
        layers.append(LayerShape(layer.name or f"layer{k}", polygon, mask, anchor,
                                 _layer_maps(layer, spec.frames, anchor), outline))
    camera = _camera_maps(spec.camera, spec.frames, centre)
    _check_projective(camera, w, h)
    return Scene(w, h, spec.frames, spec.fps, camera, tuple(layers), spec)


def _check_projective(camera: np.ndarray, w: int, h: int) -> None:
    """A homography must keep the frame on one side of its horizon: every corner of frame t must
    come from a finite point of the picture (else the frame would show the sky beyond it)."""
    if np.allclose(camera[:, 2, :2], 0.0):
        return
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1],
                        [-0.5, h - 0.5, 1]]).T
    for t in range(len(camera)):
        w_back = (np.linalg.inv(camera[t]) @ corners)[2]
        # The denominator is linear over the (convex) frame: one sign at the corners, no zero.
        if not (np.all(w_back > 1e-9) or np.all(w_back < -1e-9)):
            raise MotionError(f"camera.keyframes: the homography at frame {t} maps part of the "
                              "frame through infinity (a horizon inside the frame); use a "
                              "smaller tilt")

"""The driving animation: the first frame with its layers cut out and moved.

What image-to-video models (and Go-with-the-Flow's LoRAs) take beside the noise. Each layer is
its part of the first frame, with anti-aliased edges (the share of each pixel its shape covers,
4 x 4 samples per pixel, or the mask image's grey level), moved by its map with bilinear
resampling and composited back to front over the background. The background is the first frame
with every layer cut out and the holes filled by OpenCV's inpainting (Telea 2004), moved by the
camera; where the camera shows beyond the first frame, its border pixels are repeated.

Convention:
    Frames are ``(H, W, 3)`` uint8 RGB; masks ``(L, H, W)`` float32 in [0, 1], the share of each
    pixel in which layer k is seen (covered by it and by no layer in front of it). Frame 0 is the
    image itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .scene import Scene

__all__ = ["COLOURS", "AnimationFrame", "coverage", "draw_outlines", "outlines", "render"]

_SUPERSAMPLE = 4
_INPAINT_RADIUS = 5


@dataclass(frozen=True)
class AnimationFrame:
    """Frame t of the animation: ``image`` ``(H, W, 3)`` uint8, ``masks`` ``(L, H, W)`` float32."""

    frame: int
    image: np.ndarray
    masks: np.ndarray


def coverage(sc: Scene, layer: int) -> np.ndarray:
    """``(H, W)`` float32: the share of each first-frame pixel that ``layer``'s shape covers."""
    shape = sc.layers[layer]
    if shape.mask is not None:
        return np.clip(shape.mask, 0.0, 1.0).astype(np.float32)
    n = _SUPERSAMPLE
    ys, xs = np.mgrid[0:sc.height, 0:sc.width].astype(np.float64)
    acc = np.zeros((sc.height, sc.width), np.float64)
    for oy in (np.arange(n) + 0.5) / n - 0.5:
        for ox in (np.arange(n) + 0.5) / n - 0.5:
            acc += shape.contains(np.stack([xs + ox, ys + oy]))
    return (acc / n**2).astype(np.float32)


def _warp(img: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    import cv2

    return cv2.warpPerspective(img, m, size, flags=cv2.INTER_LINEAR, borderMode=border)


def _background(image: np.ndarray, alphas: list[np.ndarray]) -> np.ndarray:
    import cv2

    if not alphas:
        return image
    hole = (np.max(alphas, axis=0) > 0).astype(np.uint8)
    hole = cv2.dilate(hole, np.ones((3, 3), np.uint8))  # anti-aliased edges hold layer colour
    return cv2.inpaint(image, hole, _INPAINT_RADIUS, cv2.INPAINT_TELEA)


def render(sc: Scene, image: np.ndarray) -> Iterator[AnimationFrame]:
    """Yield the animation's T frames, one at a time.

    Args:
        sc: the scene (:func:`warpnoise.motion.scene`).
        image: the first frame, ``(H, W, 3)`` uint8 RGB of the scene's size.
    """
    import cv2

    if image.shape != (sc.height, sc.width, 3) or image.dtype != np.uint8:
        raise ValueError(f"image must be ({sc.height}, {sc.width}, 3) uint8 RGB, got "
                         f"{image.shape} {image.dtype}")
    size = (sc.width, sc.height)
    alphas = [coverage(sc, k) for k in range(len(sc.layers))]
    background = _background(image, alphas)
    rgb = image.astype(np.float32)
    # Premultiplied colour and alpha: bilinear resampling then blends edges correctly.
    cutouts = [np.dstack([rgb * a[..., None], a]) for a in alphas]
    for t in range(sc.frames):
        out = _warp(background, sc.camera[t], size, cv2.BORDER_REPLICATE).astype(np.float32)
        seen = np.ones((sc.height, sc.width), np.float32)  # not yet hidden by a front layer
        moved_alpha = [np.zeros(0, np.float32)] * len(alphas)
        for k in reversed(range(len(alphas))):
            moved = _warp(cutouts[k], sc.placement(k, t), size, cv2.BORDER_CONSTANT)
            moved_alpha[k] = a = np.clip(moved[..., 3], 0.0, 1.0)
            out = out * (1.0 - a[..., None]) + moved[..., :3]
        if t == 0:  # at rest: the image itself, not its layers pasted over the inpainting
            out = rgb
        masks = np.zeros((len(alphas), sc.height, sc.width), np.float32)
        for k, a in enumerate(moved_alpha):
            masks[k] = a * seen
            seen = seen * (1.0 - a)
        yield AnimationFrame(t, np.clip(out + 0.5, 0, 255).astype(np.uint8), masks)


def outlines(sc: Scene, t: int) -> list[list[np.ndarray]]:
    """Per layer, its boundary's closed ``(M, 2)`` point lists as seen in frame t."""
    out = []
    for k, layer in enumerate(sc.layers):
        m = sc.placement(k, t)
        pts = []
        for o in layer.outline:
            h = np.c_[o, np.ones(len(o))] @ m.T
            pts.append(h[:, :2] / h[:, 2:])
        out.append(pts)
    return out


#: Outline colours per layer (RGB), cycled.
COLOURS = ((255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255))


def draw_outlines(image: np.ndarray, sc: Scene, t: int) -> np.ndarray:
    """A copy of frame t's ``(H, W, 3)`` uint8 image with each layer's outline drawn."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    for k, pts in enumerate(outlines(sc, t)):
        for p in pts:
            cv2.polylines(out, [np.round(p * 16).astype(np.int32)], True,
                          COLOURS[k % len(COLOURS)], 1, cv2.LINE_AA, shift=4)
    return out

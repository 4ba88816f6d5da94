"""Small synthetic clips for the I/O, pipeline and CLI tests (no file outside the repo is read)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np


def sample_path() -> Path:
    """The bundled real clip (24 frames of OpenCV's box.mp4 at 256x192)."""
    return Path(str(resources.files("warpnoise") / "data" / "sample.mp4"))


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture, ``(H, W, 3)`` uint8: rich enough for optical flow."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 1.5)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return img.round().astype(np.uint8)


def moving_frames(t: int = 4, height: int = 48, width: int = 64, dx: int = 1, dy: int = 0,
                  seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` crops of one texture whose content moves by ``(dx, dy)`` px per frame."""
    pad = 4 + t * max(abs(dx), abs(dy))
    big = texture(height + 2 * pad, width + 2 * pad, seed)
    # Content moving by +d means the window moves by -d.
    return np.stack([big[pad - i * dy:pad - i * dy + height, pad - i * dx:pad - i * dx + width]
                     for i in range(t)])


def write_png_folder(folder: Path, frames: np.ndarray, names: list[str] | None = None) -> Path:
    """Write frames as PNGs (lossless) named ``names`` (default ``frame{i}.png``)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        name = names[i] if names else f"frame{i}.png"
        cv2.imwrite(str(folder / name), f[..., ::-1])
    return folder

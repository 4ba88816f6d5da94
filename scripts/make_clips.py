"""Cut the demo's extra ground-truth clips from OpenCV's ``box.mp4`` (``src/warpnoise/data``).

Each clip is 16 frames of 128x128 RGB, read with :func:`warpnoise.io.video.read_frames` (area
resampling to ``scale``) every ``stride``-th frame from ``start``, then cropped at ``(y, x)``:

- ``box-turn``: frames 160-205 (stride 3), scale 0.4, crop (30, 90): the box turns and comes
  towards the camera (zoom in about 0.8% per frame, rotation), up to 6 px/frame, its edges
  against the table and the room.
- ``hand-box``: frames 345-390 (stride 3), scale 0.4, crop (0, 90): the hand and arm carry the box
  right and away (non-rigid arm, zoom out, occlusion of the background), 3 px/frame at the 90th
  percentile.

No frame of these ranges trained a bundled model: the super-resolver saw nothing of ``box.mp4``
and the denoiser saw frames 0, 250, 330 and 400 only (``scripts/train_*.py``). The first demo
clip, ``sr_clip.npz`` (``box``), is frames 110-140 of the same video. OpenCV's sample data is
under the Apache-2.0 / BSD-3-Clause licences, which allow bundling.

    python scripts/make_clips.py /path/to/box.mp4
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from warpnoise.io.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
#: name -> (start, stride, scale, (y, x)) of a 16-frame 128x128 crop.
CLIPS = {
    "box-turn": (160, 3, 0.4, (30, 90)),
    "hand-box": (345, 3, 0.4, (0, 90)),
}
FRAMES, SIZE = 16, 128


def cut(video: str, start: int, stride: int, scale: float, at: tuple[int, int]) -> np.ndarray:
    """``(16, 128, 128, 3)`` uint8 frames of ``video`` (see the module docstring)."""
    v = read_frames(video, scale=scale, start=start, frames=FRAMES, stride=stride)
    y, x = at
    return np.ascontiguousarray(v[:, y:y + SIZE, x:x + SIZE])


def main(video: str) -> None:
    for name, (start, stride, scale, at) in CLIPS.items():
        frames = cut(video, start, stride, scale, at)
        out = ROOT / "src" / "warpnoise" / "data" / f"clip_{name.replace('-', '_')}.npz"
        source = (f"box.mp4 (OpenCV samples) frames {start}-{start + stride * (FRAMES - 1)} "
                  f"stride {stride}, scale {scale}, crop y={at[0]} x={at[1]}")
        np.savez_compressed(out, frames=frames, source=np.array(source))
        print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB): {source}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/make_clips.py BOX_MP4")
    main(sys.argv[1])

"""The motion figure: the bundled example motion on the bundled sample's first frame.

Row 1: the animation at a few frames; the first panel is the first frame with each layer's
outline and the path its anchor follows (dots at the keyframes, camera included). Row 2: the
warped noise of the same frames (first three of four channels as RGB, seed 0), blurred by a
Gaussian of 2 px so that its pattern can be followed by eye, with the layers' outlines: each
layer's noise moves with it, the background's with the camera, and what a layer uncovers is new
noise.

    python scripts/draw_motion.py docs/motion.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from warpnoise import motion
from warpnoise.motion.render import COLOURS
from warpnoise.viz import noise_to_rgb

FRAMES = (0, 16, 32, 48)


def _blurred(noise: torch.Tensor) -> torch.Tensor:
    """Each channel blurred (σ = 2 px) and rescaled to unit variance, for display only."""
    import cv2

    x = np.stack([cv2.GaussianBlur(c.numpy(), (0, 0), 2.0) for c in noise])
    return torch.from_numpy(x / x.std())


def main(out: str) -> None:
    spec = motion.load(motion.example_path())
    sample = Path(motion.example_path()).with_name("sample.mp4")
    sc, image = motion.load_scene(spec, sample)
    frames = {fr.frame: fr.image for fr in motion.render(sc, image) if fr.frame in FRAMES}
    noise = motion.noise(sc, 4, seed=0)
    fig, axes = plt.subplots(2, len(FRAMES), figsize=(3.2 * len(FRAMES), 5.0))
    colours = [np.array(c) / 255 for c in COLOURS]
    for j, t in enumerate(FRAMES):
        top, bottom = axes[0, j], axes[1, j]
        top.imshow(frames[t])
        for k, pts in enumerate(motion.outlines(sc, t)):
            for p in pts:
                q = np.vstack([p, p[:1]])
                top.plot(q[:, 0], q[:, 1], color=colours[k % len(colours)], lw=1.2)
        if t == 0:
            for k, layer in enumerate(sc.layers):
                path = np.concatenate([motion.positions(sc, layer.anchor[None], k, s)
                                       for s in range(sc.frames)])
                keys = [0, *(key.frame for key in spec.layers[k].keyframes)]
                top.plot(path[:, 0], path[:, 1], "--", color=colours[k % len(colours)], lw=1)
                top.plot(path[keys, 0], path[keys, 1], "o", ms=3.5,
                         color=colours[k % len(colours)])
            top.set_title("first frame: layers and paths", fontsize=9)
        else:
            top.set_title(f"animation, frame {t}", fontsize=9)
        bottom.imshow(noise_to_rgb(_blurred(noise[t])))
        for pts in motion.outlines(sc, t):
            for p in pts:
                q = np.vstack([p, p[:1]])
                bottom.plot(q[:, 0], q[:, 1], color="white", lw=0.8)
        bottom.set_title(f"warped noise, frame {t}", fontsize=9)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out, dpi=100, pil_kwargs={"quality": 85})  # JPEG: noise barely compresses
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/motion.jpg")

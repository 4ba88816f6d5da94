"""The figure of docs/snap.md: what each exact noise carries from frame to frame.

Left: a 12 x 12 patch of one noise channel under a translation of 2.4 px/frame, frame 0 and frame
1 for ``persistent`` (exact ∫-noise: each pixel keeps the overlap (1-0.4) of a value and the rest
is re-drawn) and for ``snap`` (the same values, moved by whole pixels). Middle: the correlation of
consecutive frames along the motion (shift ``round(x + b(x))``, what the warping error of an
edit sees) over 30 frames at 2.4 px/frame. Right: where the noise is (the integer shift that best
matches frame 0) against the content's true position under 0.37 px/frame: ``nearest`` warping
rounds 0.37 to 0 every frame and stays put, ``snap`` follows within half a pixel.

    python scripts/draw_snap.py docs/snap.png
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import warpnoise
from warpnoise.stats import shifted_correlation

SIZE = 64


def frames(method: str, d: tuple[float, float], n: int) -> list[torch.Tensor]:
    flow = torch.empty(2, SIZE, SIZE)
    flow[0], flow[1] = -d[0], -d[1]
    w = warpnoise.NoiseWarper(4, SIZE, SIZE, method=method, seed=0)
    return [w.noise] + [w.step(flow) for _ in range(n)]


def consecutive(fr: list[torch.Tensor], d: float) -> list[float]:
    """corr(G_t(x), G_{t-1}(x - round(d))) inside the frame, for each t."""
    k, m = round(d), 8
    return [shifted_correlation(fr[t][:, m:-m, m:-m], fr[t - 1][:, m:-m, m - k:-m - k], 0, 0)
            for t in range(1, len(fr))]


def position(fr: list[torch.Tensor]) -> list[int]:
    """The integer shift (0..15) at which each frame best matches frame 0."""
    m = 20
    out = []
    for f in fr:
        c = [shifted_correlation(f[:, m:-m, m:-m], fr[0][:, m:-m, m - k:-m - k], 0, 0)
             for k in range(16)]
        out.append(max(range(16), key=lambda k: c[k]))
    return out


def main(out: str) -> None:
    fast = {m: frames(m, (2.4, 0.0), 30) for m in ("persistent", "snap", "nearest")}
    slow = {m: frames(m, (0.37, 0.0), 30) for m in ("snap", "nearest")}
    fig = plt.figure(figsize=(13, 3.6))
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 2.2, 2.2])
    for row, m in enumerate(("persistent", "snap")):
        for col, t in enumerate((0, 1)):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(fast[m][t][0, 26:38, 26 - 2 * t:38 - 2 * t], cmap="gray", vmin=-2.5,
                      vmax=2.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{m}, frame {t}", fontsize=8)
    ax = fig.add_subplot(grid[:, 2])
    for m, style in (("snap", "-"), ("nearest", ":"), ("persistent", "--")):
        ax.plot(range(1, 31), consecutive(fast[m], 2.4), style, label=m)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("frame")
    ax.set_ylabel("corr. with previous frame")
    ax.set_title("2.4 px/frame: what carries over", fontsize=9)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[:, 3])
    ax.plot(range(31), [0.37 * t for t in range(31)], "k-", lw=0.8, label="content")
    for m, style in (("snap", "o-"), ("nearest", "s:")):
        ax.plot(range(31), position(slow[m]), style, ms=3, label=m)
    ax.set_xlabel("frame")
    ax.set_ylabel("noise position (px)")
    ax.set_title("0.37 px/frame: sticking", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/snap.png")

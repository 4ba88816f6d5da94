"""The boundary figure of docs/method.md: a layer moving 3 px/frame over a static background,
warped by ``persistent`` with the old midpoint rule (every neighbour defines a box edge) and with
boundary-aware boxes.

Row 1: one noise channel of frame ``T`` (the layer's outline in white); row 2: the carry per
pixel, ``sum G * P / sum P^2`` over channels and seeds, where ``P`` is the exact-transport
prediction from frame ``T - 1`` (1: the pixel keeps the noise it should, 0: it lost it; the
uncovered strip behind the layer is new noise, drawn grey). The old rule runs on the torch path
with every pair linked, as ``tests/methods/test_boundaries.py`` runs it.

Then it prints the table of docs/method.md: the carry of each pixel class on the four layered
scenes of ``tests/methods/test_boundaries.py`` (kernel path, 8 frames x 3 seeds each).

    python scripts/draw_boundaries.py docs/boundaries.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import Tensor

import warpnoise
from warpnoise.methods.persistent import torch_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from methods import test_boundaries  # the tests' layered scenes and their carry per class
from methods._layers import Scene

SCENE = Scene(96, 96, 40, 20, 28, dx=3.0)
T, SEEDS = 3, 24


_BACKEND = ["auto"]  # the old rule runs on the torch backend, whose links it replaces


def _all_linked(a: Tensor, usable: Tensor, axis: int) -> Tensor:
    return torch.ones_like(usable.narrow(1 - axis, 0, usable.shape[1 - axis] - 1))


def _frames(seed: int) -> tuple[Tensor, Tensor]:
    """Frames ``T - 1`` and ``T`` of one seed, ``(C, H, W)`` each."""
    w = warpnoise.NoiseWarper(4, SCENE.h, SCENE.w, seed=seed, backend=_BACKEND[0])
    prev = noise = w.noise
    for t in range(1, T + 1):
        prev, noise = noise, w.step(*SCENE.flows(t))
    return prev, noise


def _carry_map(old: bool) -> tuple[Tensor, Tensor]:
    """Frame ``T``'s first channel for seed 0 and the per-pixel carry over every seed."""
    saved = torch_backend._linked
    if old:
        _BACKEND[0] = "torch"
        torch_backend._linked = _all_linked
    try:
        num = torch.zeros(SCENE.h, SCENE.w, dtype=torch.float64)
        den = torch.zeros_like(num)
        first = None
        for seed in range(SEEDS):
            prev, noise = _frames(seed)
            pred = SCENE.transport(T, prev)
            num += (noise.double() * pred).sum(0)
            den += (pred * pred).sum(0)
            first = noise[0] if first is None else first
    finally:
        _BACKEND[0] = "auto"
        torch_backend._linked = saved
    # Pixels with nothing to carry (uncovered this frame) have no carry: NaN, drawn blank.
    return first, torch.where(den > 0, num / den.clamp_min(1e-12), float("nan"))


def main(out: str) -> None:
    mask = SCENE.mask(T)
    rows = mask.any(1)
    x0, x1 = 8, SCENE.w - 8
    fig = plt.figure(figsize=(10, 6.4), dpi=110)
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1, 1.25])
    profile = fig.add_subplot(grid[:, 2])
    maps = []
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
    for col, (old, title) in enumerate([(True, "old rule: midpoints to every neighbour"),
                                        (False, "boundary-aware boxes")]):
        noise, carry = _carry_map(old)
        top, bottom = fig.add_subplot(grid[0, col]), fig.add_subplot(grid[1, col])
        top.imshow(noise[:, x0:x1], cmap="gray", vmin=-3, vmax=3)
        top.set_title(title + f"\nnoise, frame {T}", fontsize=9)
        im = bottom.imshow(carry[:, x0:x1], cmap=cmap, vmin=0, vmax=1.1)
        maps.append(bottom)
        bottom.set_title("carry per pixel", fontsize=9)
        for ax in (top, bottom):
            ax.contour(mask[:, x0:x1].double(), levels=[0.5], colors="r", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
        line = carry[rows].nanmean(0)
        profile.plot(range(SCENE.w), line, "o-" if old else "s-", ms=3,
                     label=title.split(":")[0])
        trailing = int(mask[rows].float().argmax(1)[0])
        print(f"{title}: trailing edge column carry {float(line[trailing]):.3f}")
    fig.colorbar(im, ax=maps, orientation="horizontal", shrink=0.7, pad=0.04,
                 label="carry (1: keeps the noise it should; grey: uncovered, new noise)")
    uncovered = (SCENE.mask(T - 1) & ~mask)[rows].any(0)
    for c in torch.nonzero(uncovered).flatten().tolist():
        profile.axvspan(c - 0.5, c + 0.5, color="0.85", lw=0)
    profile.axhline(1.0, color="k", ls="--", lw=1)
    profile.set_xlim(x0, x1)
    profile.set_ylim(-0.1, 1.15)
    profile.set_xlabel("column (grey: uncovered this frame, new noise)")
    profile.set_ylabel("carry, mean over the layer's rows")
    profile.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"a square moving 3 px/frame right over a static background "
                 f"(outline red), {SEEDS} seeds x 4 channels", fontsize=10)
    fig.savefig(out, bbox_inches="tight")
    print("| scene | layer's edge | leading | trailing | background beside it | interior |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, scene in test_boundaries.SCENES.items():
        sums = test_boundaries._run(scene)
        got = {k: f"{num / den:.3f}" for k, (num, den) in sums.items()}
        moving = scene.dx or scene.dy
        print(f"| {name} | {got['layer_edge']} | {got['leading'] if moving else ''} | "
              f"{got['trailing'] if moving else ''} | {got['background_edge']} | "
              f"{got['interior']} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/boundaries.png")

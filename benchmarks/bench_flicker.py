"""Flicker of the edited video for each noise: warping error and detail, per clip and task.

What a user sees: the bundled models edit a clip frame by frame with each noise (same seed, model
and steps), and the edit is scored by its warping error (mean ``|O_t - O_{t-1}(x + b(x))|`` on the
pixels visible in both frames, 0-255, lower is steadier; Chang et al. 2024 §6) and its detail
ratio (fine detail against the input clip; 1 = as sharp, lower = blurrier: a low warping error
with a low detail is blur, not coherence; ``bilinear`` is the blur reference row).

Clips (16 frames of 128 x 128):

- ``demo``: the demo's real clip (``load_sr_clip()``, a box carried across OpenCV's ``box.mp4``,
  1.5-3 px/frame); flows: DIS on the clip (SDEdit) or on the bicubic input (super-resolution),
  and DIS on the clip for the metric, as the demo does;
- ``zoom``: a camera zooming in 2% and turning 1 degree per frame over the bundled
  ``rubberwhale1.jpg`` (up to 2.5 px/frame at the corners);
- ``slow``: a camera panning (0.3, 0.17) px/frame over the bundled ``basketball1.jpg``.

The two camera clips are rendered from the still image by an exact similarity transform
(4 x 4 supersampled from an image at least twice as fine), so their flows are exact: the noise
and the metric use them.

Tasks: SDEdit at strength 0.3 and 0.5 with the bundled denoiser (20 steps), and the demo's 4x
super-resolution at strength 0.2 with the bundled super-resolver (40 steps) from the clip's 4x
area-downsampling. Every run uses DDIM with eta = 1 (fresh warped noise at every step).

    python benchmarks/bench_flicker.py                          # every noise, clip and task
    python benchmarks/bench_flicker.py --seeds 0 1 2            # median (range) over 3 seeds
    python benchmarks/bench_flicker.py --clips demo --tasks sdedit0.3 --noises snap nearest
    python benchmarks/bench_flicker.py --sticking --noises snap snap:slack=2 persistent nearest

A noise is a method name, with numeric options after a colon: ``snap:slack=2``.

``--sticking`` measures, instead of edits, whether each noise moves with slow motion
(:func:`sticking`): after 30 frames of a 0.37 px/frame translation, the correlation of the noise
with frame 0's along the accumulated motion (rounded to whole pixels), and the integer shift at
which it correlates best. A noise that sticks to the screen correlates best at shift 0; the
target is a correlation of at least 0.95 along the motion (whole-value noises; ∫-noise keeps the
overlap of the fractional remainder, ``(1 - |e_x|)(1 - |e_y|)``, by construction).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from warpnoise.diffusion.demo import load_sr_clip
from warpnoise.diffusion.metrics import detail_ratio, warping_error
from warpnoise.diffusion.model import load_denoiser
from warpnoise.diffusion.sr import STEPS as SR_STEPS
from warpnoise.diffusion.sr import load_sr_model
from warpnoise.diffusion.video import EditOptions, bicubic_up, downsample, edit_frames

import warpnoise
from warpnoise.estimate import estimate_flows

NOISES = ("snap", "snap:slack=2", "persistent", "nearest", "fixed", "random", "integral",
          "bilinear")
CLIPS = ("demo", "zoom", "slow")
#: name: (task, strength, steps)
TASKS = {"sdedit0.3": ("sdedit", 0.3, 20), "sdedit0.5": ("sdedit", 0.5, 20),
         "sr0.2": ("sr4", 0.2, SR_STEPS)}
FRAMES, SIZE = 16, 128
#: Camera moves per frame: (zoom factor, degrees, dx, dy in output pixels), and the image scale
#: (image pixels per output pixel at frame 0).
MOVES = {"zoom": ("rubberwhale1.jpg", (1.02, 1.0, 0.0, 0.0), 2.5),
         "slow": ("basketball1.jpg", (1.0, 0.0, 0.3, 0.17), 2.5)}


def _image(name: str) -> torch.Tensor:
    from PIL import Image

    path = resources.files("warpnoise") / "data" / "train_images" / name
    with resources.as_file(path) as p:
        im = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(im).permute(2, 0, 1)


def _camera(t: int, move: tuple[float, float, float, float], scale: float) -> np.ndarray:
    """``3 x 3`` matrix from frame t's pixel coordinates (centred) to image offsets from the
    image centre: the camera zooms, turns and pans by ``move`` per frame."""
    z, deg, dx, dy = move
    s = scale / z**t
    a = math.radians(deg * t)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    m = np.eye(3)
    m[:2, :2] = s * rot
    # A pan of (dx, dy) output pixels per frame moves the content by that much on screen.
    m[:2, 2] = -scale * np.array([dx, dy]) * t
    return m


def camera_clip(name: str) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Frames ``(T, H, W, 3)`` uint8 of a camera moving over a bundled image, with the exact
    backward and forward flows ``(T-1, 2, H, W)`` (project convention)."""
    image_name, move, scale = MOVES[name]
    img = _image(image_name)
    _, hi, wi = img.shape
    c = (SIZE - 1) / 2.0
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64),
                            torch.arange(SIZE, dtype=torch.float64), indexing="ij")
    pts = torch.stack([xs - c, ys - c, torch.ones_like(xs)]).reshape(3, -1)  # centred pixels
    sub = (torch.arange(4, dtype=torch.float64) + 0.5) / 4 - 0.5
    frames = []
    mats = [_camera(t, move, scale) for t in range(FRAMES)]
    for m in mats:
        acc = torch.zeros(3, SIZE * SIZE, dtype=torch.float32)
        for oy in sub:
            for ox in sub:
                p = torch.from_numpy(m) @ (pts + torch.tensor([[ox], [oy], [0.0]],
                                                              dtype=torch.float64))
                gx = (p[0] + (wi - 1) / 2.0) * (2.0 / (wi - 1)) - 1.0
                gy = (p[1] + (hi - 1) / 2.0) * (2.0 / (hi - 1)) - 1.0
                grid = torch.stack([gx, gy], -1).float().view(1, 1, -1, 2)
                acc += F.grid_sample(img[None], grid, align_corners=True)[0, :, 0]
        frames.append((acc / 16).reshape(3, SIZE, SIZE))
    video = (torch.stack(frames).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()

    def flow(src: np.ndarray, dst: np.ndarray) -> torch.Tensor:
        """Where frame ``dst``'s pixels are in frame ``src`` (minus their position)."""
        q = torch.from_numpy(np.linalg.inv(src) @ dst) @ pts
        return (q[:2] - pts[:2]).reshape(2, SIZE, SIZE).float()

    back = torch.stack([flow(mats[t - 1], mats[t]) for t in range(1, FRAMES)])
    fwd = torch.stack([flow(mats[t], mats[t - 1]) for t in range(1, FRAMES)])
    return np.ascontiguousarray(video), back, fwd


def load_clips(names: list[str]) -> dict[str, dict]:
    """Per clip: ``frames``, ``metric`` flows, and the noise flows of SDEdit and of SR."""
    out = {}
    for name in names:
        if name == "demo":
            gt = load_sr_clip()[:FRAMES]
            flows = estimate_flows(gt, "dis", preset="medium")
            sr_flows = estimate_flows(bicubic_up(downsample(gt, 4), 4), "dis", preset="medium")
            out[name] = {"frames": gt, "metric": flows, "sdedit": flows, "sr4": sr_flows}
        else:
            gt, b, f = camera_clip(name)
            out[name] = {"frames": gt, "metric": (b, f), "sdedit": (b, f), "sr4": (b, f)}
    return out


def parse_noise(spec: str) -> tuple[str, dict[str, float]]:
    """``"snap:slack=2"`` -> ``("snap", {"slack": 2.0})``: a method and its numeric options."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key] = float(value)
    return name, options


def run(clip: dict, task: str, noise: str, seed: int, models: dict) -> tuple[float, float]:
    """``(warping error 0-255, detail ratio)`` of one edit; ``noise`` as :func:`parse_noise`."""
    method, options = parse_noise(noise)
    kind, strength, steps = TASKS[task]
    gt = clip["frames"]
    frames = downsample(gt, 4) if kind == "sr4" else gt
    unet, sched = models[kind]
    opts = EditOptions(method=method, task=kind, strength=strength, steps=steps, seed=seed,
                       method_options=dict(options))
    res = edit_frames(frames, opts, unet=unet, scheduler=sched, flows=clip[kind])
    we, _ = warping_error(res.frames, *clip["metric"])
    return we * 255.0, detail_ratio(res.frames, gt)


def shifted_corr(a: torch.Tensor, b: torch.Tensor, dx: int, dy: int, margin: int) -> float:
    """``corr(a(x), b(x - d))`` over the ``(C, H, W)`` frames' pixels at least ``margin`` from
    the border (where content enters with fresh noise); ``margin >= |dx|, |dy|``."""
    m = margin
    _, h, w = a.shape
    x = a[:, m:h - m, m:w - m].flatten().double()
    y = b[:, m - dy:h - m - dy, m - dx:w - m - dx].flatten().double()
    return float(torch.corrcoef(torch.stack([x, y]))[0, 1])


def sticking(noise: str, d: tuple[float, float] = (0.37, 0.21), frames: int = 30,
             size: int = 128, seed: int = 0) -> dict[str, object]:
    """Whether ``noise`` moves with a slow translation of ``d`` px/frame (content moves by
    ``+d``; backward flow ``-d``, forward flow ``+d``) over ``frames`` frames of ``4 x size^2``.

    Returns ``along`` (the correlation of the last frame with frame 0 along the accumulated
    motion rounded to whole pixels), ``at_zero`` (the same without any shift: high when the
    noise sticks to the screen), ``best`` (the integer shift ``(dx, dy)`` of the best
    correlation) and ``best_corr``, and ``max_lag`` (the largest distance, over every frame,
    between the best integer shift and the accumulated motion ``t d``)."""
    method, options = parse_noise(noise)
    w = warpnoise.NoiseWarper(4, size, size, method=method, seed=seed, **options)
    b = torch.empty(2, size, size)
    b[0], b[1] = -d[0], -d[1]
    first, lag, margin = w.noise, 0.0, math.ceil(frames * max(map(abs, d))) + 2
    shifts = [(x, y) for x in range(margin + 1) for y in range(margin + 1)]
    for t in range(1, frames + 1):
        now = w.step(b, -b)
        corr = {s: shifted_corr(now, first, *s, margin) for s in shifts}
        best = max(corr, key=corr.__getitem__)
        lag = max(lag, math.hypot(best[0] - t * d[0], best[1] - t * d[1]))
    along = (round(frames * d[0]), round(frames * d[1]))
    return {"along": corr[along], "at_zero": corr[(0, 0)], "best": best,
            "best_corr": corr[best], "max_lag": lag}


def print_sticking(noises: list[str], seed: int) -> None:
    """The :func:`sticking` table of ``noises`` under 0.37 px/frame, along x and diagonally."""
    print("after 30 frames of a slow translation, 4 x 128^2, seed", seed)
    print("| noise | motion (px/frame) | corr along the motion | corr at shift 0 | best shift "
          "(corr) | max lag (px) |")
    print("|---|---|---:|---:|---|---:|")
    for noise in noises:
        for d in ((0.37, 0.0), (0.37, 0.21)):
            r = sticking(noise, d, seed=seed)
            print(f"| {noise} | {d} | {r['along']:.3f} | {r['at_zero']:.3f} | {r['best']} "
                  f"({r['best_corr']:.3f}) | {r['max_lag']:.2f} |", flush=True)


def _cell(values: list[tuple[float, float]]) -> str:
    we = [v[0] for v in values]
    det = statistics.median(v[1] for v in values)
    spread = f" ({min(we):.2f}-{max(we):.2f})" if len(we) > 1 else ""
    return f"{statistics.median(we):.2f}{spread} · {det:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--noises", nargs="+", default=list(NOISES))
    p.add_argument("--clips", nargs="+", default=list(CLIPS), choices=CLIPS)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--sticking", action="store_true",
                   help="measure whether each noise moves with slow motion (no edits)")
    args = p.parse_args()
    for n in args.noises:
        name, options = parse_noise(n)
        try:
            warpnoise.methods.check_options(name, **options)
        except ValueError as e:
            p.error(str(e))
    torch.set_grad_enabled(False)
    if args.sticking:
        print_sticking(args.noises, args.seeds[0])
        return
    tic = time.perf_counter()
    clips = load_clips(args.clips)
    models = {"sdedit": load_denoiser(), "sr4": load_sr_model()}
    cols = [(c, t) for c in args.clips for t in args.tasks]
    res: dict[str, dict[tuple[str, str], list[tuple[float, float]]]] = {}
    for noise in args.noises:
        for c, t in cols:
            for seed in args.seeds:
                we, det = run(clips[c], t, noise, seed, models)
                res.setdefault(noise, {}).setdefault((c, t), []).append((we, det))
                print(f"{noise} {c} {t} seed {seed}: {we:.2f} · {det:.2f}", file=sys.stderr,
                      flush=True)
    print(f"warping error (0-255, lower is steadier) · detail (input = 1); {FRAMES} frames of "
          f"{SIZE}^2, seeds {' '.join(map(str, args.seeds))}"
          f"{' (median, range)' if len(args.seeds) > 1 else ''}; default noise "
          f"{warpnoise.DEFAULT_METHOD}; {time.perf_counter() - tic:.0f} s\n")
    print("| noise | " + " | ".join(f"{c} {t}" for c, t in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for noise in args.noises:
        mark = " (default)" if noise == warpnoise.DEFAULT_METHOD else ""
        print(f"| {noise}{mark} | " + " | ".join(_cell(res[noise][k]) for k in cols) + " |")


if __name__ == "__main__":
    main()

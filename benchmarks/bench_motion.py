"""From a motion file to Wan 2.1 latents on disk: seconds per frame, and where they go.

The motion: 3 layers (polygons of the bundled sample's first frame, enlarged to 720x480) dragged
along smooth paths with rotation and scale, under a camera zoom of 1.15 with a pan; 49 frames at
720x480, written with ``warpnoise.motion.write(..., NoiseOptions(latent="wan2.1"))`` (what
``warpnoise motion IMAGE MOTION --latent wan2.1`` runs): exact flows, the driving animation, the
warp of 16-channel noise at pixel resolution, integration to the latent grid, the animation and
mask videos, the latents file.

Reported per frame: the total and its shares: ``flows`` (the exact flows), ``render`` (the
animation frames, with the layers' coverage and the inpainting done before the first),
``warp`` (the warper's step and the integration), ``videos`` (encoding the animation and masks),
``write`` (the noise file), ``other`` (the rest: checks, the warper's first draw, arranging the
latents). The floor is ``torch.randn(16, 480, 720)``, the fresh noise of one frame at pixel
resolution, timed in the same process before the run; the ratio column is each figure over it.
``--processes N`` runs N fresh processes one after another and reports medians over them.

    python benchmarks/bench_motion.py [--processes 3] [--frames 49]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_warp import run_fresh

from warpnoise import motion
from warpnoise.pipeline import NoiseOptions

W, H = 720, 480
STAGES = ("flows", "render", "warp", "videos", "write")


def spec(frames: int) -> motion.Motion:
    """Three dragged layers and a camera zoom, in 720x480 pixels."""
    s = 720 / 256
    box = [[68, 38], [118, 15], [213, 36], [205, 82], [170, 111], [75, 72]]
    pen = [[83, 86], [117, 87], [117, 92], [83, 91]]
    cloth = [[30, 120], [120, 110], [140, 170], [20, 185]]
    last = frames - 1
    return motion.parse({
        "frames": frames, "fps": 16,
        "camera": {"keyframes": [{"frame": last, "zoom": 1.15, "pan": [-20, 8]}]},
        "layers": [
            {"name": "pen", "polygon": [[x * s, y * s] for x, y in pen],
             "keyframes": [{"frame": last, "translate": [-110, 30], "rotation": -20}]},
            {"name": "box", "polygon": [[x * s, y * s] for x, y in box],
             "keyframes": [{"frame": last // 2, "translate": [40, 50], "rotation": 10},
                           {"frame": last, "translate": [-40, 120], "rotation": 25,
                            "scale": 0.85}]},
            {"name": "cloth", "polygon": [[x * s, y * s] for x, y in cloth],
             "keyframes": [{"frame": last, "translate": [60, -20], "scale": 1.1}]},
        ]})


def floor_s(reps: int = 10) -> float:
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.randn(16, H, W, generator=g)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(frames: int) -> dict[str, float]:
    """One run in this process: seconds per frame of the total and of each stage, and the
    floor."""
    sample = Path(motion.example_path()).with_name("sample.mp4")
    sc, image = motion.load_scene(spec(frames).model_copy(update={"size": (W, H)}), sample)
    floor = floor_s()
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        res = motion.write(image, sc, tmp, NoiseOptions(latent="wan2.1"))
        total = time.perf_counter() - tic
        assert tuple(res.noise.shape) == (1, 16, (frames - 1) // 4 + 1, H // 8, W // 8)
    out = {k: res.seconds[k] / frames for k in STAGES}
    return out | {"total": total / frames, "floor": floor}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, default=49)
    p.add_argument("--processes", type=int, default=1, help="fresh processes to measure in")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.processes < 1 or args.frames < 5 or (args.frames - 1) % 4:
        p.error("--processes must be >= 1 and --frames 4k+1 >= 5 (Wan 2.1)")
    if args.json:
        print(json.dumps(measure(args.frames)))
        return
    runs: list[Any] = ([measure(args.frames)] if args.processes == 1 else
                       run_fresh(__file__, ["--frames", str(args.frames)], args.processes))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"motion -> Wan 2.1 latents on disk, {args.frames} frames {W}x{H}, 3 layers + camera "
          f"zoom; medians over {len(runs)} process(es); torch threads "
          f"{torch.get_num_threads()}")
    print(f"floor: torch.randn(16, {H}, {W}) = {med['floor'] * 1e3:.1f} ms")
    print(f"{'stage':<8} {'s/frame':>9} {'share':>7} {'x floor':>9}")
    med["other"] = med["total"] - sum(med[k] for k in STAGES)  # setup: inpainting, warper init
    for k in (*STAGES, "other", "total"):
        share = med[k] / med["total"]
        print(f"{k:<8} {med[k]:9.3f} {share:7.1%} {med[k] / med['floor']:9.1f}")
    per = np.array([[r[k] for k in ("flows", "warp")] for r in runs])
    print(f"flows / warp per process: {', '.join(f'{a / b:.3f}' for a, b in per)}",
          file=sys.stdout)


if __name__ == "__main__":
    main()

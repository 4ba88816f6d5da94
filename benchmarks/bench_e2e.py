"""End-to-end speed of ``warpnoise noise``: decode, optical flow, warp, write, in frames/s.

The clip is 640x480 and 100 frames by default: the bundled sample (real hand-held video)
enlarged and played back and forth, encoded as H.264 into a temporary folder; or ``--input``.
The floor, measured in the same run, is drawing fresh noise ``torch.randn(C, H, W)`` per frame;
every stage is reported as a ratio to it. Medians over ``--repeats`` runs, after a 3-frame
warm-up run (JIT compilation). Flow runs in a background thread, overlapped with warping, so
``total`` can be less than the sum of the stages.

    python benchmarks/bench_e2e.py                       # default method, 640x480, 100 frames
    python benchmarks/bench_e2e.py --method random --repeats 5
    python benchmarks/bench_e2e.py --input my.mp4 --downsample 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from warpnoise import DEFAULT_METHOD
from warpnoise.io.video import read_frames, write_video
from warpnoise.pipeline import NoiseOptions, video_to_noise


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """The bundled sample resized to ``width x height``, looped back and forth to ``frames``."""
    sample = Path(str(resources.files("warpnoise") / "data" / "sample.mp4"))
    base = read_frames(sample, size=(width, height))
    cycle = np.concatenate([base, base[-2:0:-1]])  # ping-pong: no jump at the loop point
    reps = -(-frames // len(cycle))
    write_video(path, np.concatenate([cycle] * reps)[:frames], fps=15)
    return path


def floor_ms(channels: int, height: int, width: int, repeats: int = 30) -> float:
    """Median ms to draw one frame of fresh noise (the floor)."""
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.randn(channels, height, width, generator=g)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, default=None, help="video to use instead of the clip")
    ap.add_argument("--size", default="640x480", help="WxH of the generated clip")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--method", default=DEFAULT_METHOD)
    ap.add_argument("--flow", default="dis")
    ap.add_argument("--dis-preset", default="medium")
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--downsample", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.input is None:
            w, h = (int(v) for v in args.size.split("x"))
            clip = make_clip(Path(tmp) / "clip.mp4", w, h, args.frames)
        else:
            clip = args.input
        opts = NoiseOptions(method=args.method, channels=args.channels, flow=args.flow,
                            dis_preset=args.dis_preset, downsample=args.downsample,
                            frames=args.frames)
        # Warm-up on 3 frames: JIT compilation (numba kernels) is not per-frame cost.
        video_to_noise(clip, Path(tmp) / "n.safetensors", replace(opts, frames=3))
        runs = [video_to_noise(clip, Path(tmp) / "n.safetensors", opts)
                for _ in range(args.repeats)]
    n = runs[0].frames
    _, _, h, w = runs[0].shape
    fh, fw = h * args.downsample, w * args.downsample
    floor = floor_ms(args.channels, fh, fw)
    steps = {"decode": n, "flow": n - 1, "warp": n - 1, "write": n, "total": n}
    print(f"clip {clip if args.input else f'{fw}x{fh} bundled sample, looped'}: {n} frames, "
          f"method {args.method}, flow {args.flow} ({args.dis_preset}), {args.channels} "
          f"channels, downsample {args.downsample}, median of {args.repeats} runs")
    print(f"floor: torch.randn({args.channels}, {fh}, {fw}) = {floor:.2f} ms/frame\n")
    print(f"| {'stage':<8} | {'ms/frame':>9} | {'frames/s':>9} | {'x floor':>8} |")
    print(f"| {'-' * 8} | {'-' * 9} | {'-' * 9} | {'-' * 8} |")
    for stage, count in steps.items():
        ms = 1e3 * statistics.median(r.seconds[stage] for r in runs) / max(count, 1)
        print(f"| {stage:<8} | {ms:9.2f} | {1e3 / ms:9.1f} | {ms / floor:8.1f} |")


if __name__ == "__main__":
    main()

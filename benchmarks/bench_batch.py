"""Batch throughput (videos per minute) on a local Ray cluster with 1 and 2 workers.

The floor is the same batch run in this process, one video after another with one thread per
library (what a single Ray worker gets), measured in the same run. Every configuration runs the
same generated clips with the default method and DIS flow; Ray start-up and each worker's first
imports and kernel compilation are excluded by a warm-up batch; medians over ``--repeats``.

    python benchmarks/bench_batch.py                 # 12 clips of 16 frames at 256x192
    python benchmarks/bench_batch.py --clips 24 --frames 24 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from warpnoise.batch import RayExecutor, SerialExecutor, plan_jobs, run_batch
from warpnoise.io.video import write_video
from warpnoise.methods import DEFAULT_METHOD
from warpnoise.pipeline import NoiseOptions


def make_clips(folder: Path, clips: int, frames: int, width: int, height: int) -> None:
    """Clips of a random texture panning at a different sub-pixel speed each."""
    rng = np.random.default_rng(0)
    texture = (rng.random((height + 4 * frames, width + 4 * frames, 3)) * 255).astype(np.uint8)
    for c in range(clips):
        vx, vy = 0.5 + 0.25 * c, 0.3 + 0.1 * c
        video = np.stack([texture[int(vy * t):int(vy * t) + height, int(vx * t):int(vx * t) + width]
                          for t in range(frames)])
        write_video(folder / f"clip{c:03d}.mp4", video)


def timed_batch(src: Path, out: Path, options: dict, executor: object, threads: int | None
                ) -> float:
    """Videos per minute of one batch into a fresh output folder."""
    jobs = plan_jobs(src, out, options, options_type=NoiseOptions, seed=0)
    summary = run_batch(jobs, out, executor, threads=threads)  # type: ignore[arg-type]
    if summary.failed:
        raise RuntimeError(f"{summary.failed} videos failed: {summary.records}")
    return summary.videos_per_minute


def measure(name: str, src: Path, warm: Path, tmp: Path, options: dict, repeats: int,
            executor_factory: Callable[[], object], threads: int | None) -> list[float]:
    rates = []
    with executor_factory() as ex:  # type: ignore[attr-defined]
        timed_batch(warm, tmp / f"{name}-warm", options, ex, threads)
        for r in range(repeats):
            rates.append(timed_batch(src, tmp / f"{name}-{r}", options, ex, threads))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--method", default=DEFAULT_METHOD)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    options = {"method": args.method, "channels": 4, "flow": "dis"}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        src, warm = tmp / "videos", tmp / "warmup"
        src.mkdir()
        warm.mkdir()
        make_clips(src, args.clips, args.frames, args.width, args.height)
        make_clips(warm, 4, 4, args.width, args.height)
        rows = [
            ("in-process, 1 thread (floor)",
             measure("floor", src, warm, tmp, options, args.repeats, SerialExecutor, 1)),
            ("Ray, 1 worker",
             measure("ray1", src, warm, tmp, options, args.repeats,
                     lambda: RayExecutor(workers=1), None)),
            ("Ray, 2 workers",
             measure("ray2", src, warm, tmp, options, args.repeats,
                     lambda: RayExecutor(workers=2), None)),
        ]
    floor = statistics.median(rows[0][1])
    print(f"\n{args.clips} clips x {args.frames} frames at {args.width}x{args.height}, method "
          f"{args.method}, DIS flow; median of {args.repeats}\n")
    print(f"| {'configuration':<30} | videos/min | ratio to floor |")
    print(f"| {'-' * 30} | ---------- | -------------- |")
    for name, rates in rows:
        med = statistics.median(rates)
        print(f"| {name:<30} | {med:10.1f} | {med / floor:14.2f} |")
    speedup = statistics.median(rows[2][1]) / statistics.median(rows[1][1])
    print(f"\nspeed-up, 2 workers over 1: {speedup:.2f}x")


if __name__ == "__main__":
    main()

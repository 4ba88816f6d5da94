"""Batch throughput (videos per minute) on a local Ray cluster with 1 and 2 workers.

The floor is the same batch run in this process, one video after another with one thread per
library (what a single Ray worker gets), measured in the same run. Every configuration runs the
same generated clips with the default method and DIS flow; Ray start-up and each worker's first
imports and kernel compilation are excluded by a warm-up batch; medians over ``--repeats``.
A pure CPU loop in 1 and 2 processes, interleaved with the runs, shows how much parallelism the
machine offers at the time (other processes may share its CPUs).

    python benchmarks/bench_batch.py                 # 16 clips of 16 frames at 256x192
    python benchmarks/bench_batch.py --clips 32 --frames 24 --width 512 --height 384
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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


def spin(n: int) -> int:
    """A fixed amount of pure-Python CPU work (no I/O, no memory traffic)."""
    total = 0
    for i in range(n):
        total += i
    return total


def ceiling(pools: dict[int, ProcessPoolExecutor]) -> float:
    """How much faster 2 processes do fixed CPU work than 1 on this machine right now: the
    most any 2-worker speed-up can be (below 2 when other processes share the CPUs)."""
    seconds = {}
    for n, pool in pools.items():
        tic = time.perf_counter()
        list(pool.map(spin, [2_000_000] * 8))
        seconds[n] = time.perf_counter() - tic
    return seconds[1] / seconds[2]


def measure(src: Path, warm: Path, tmp: Path, options: dict, repeats: int
            ) -> dict[str, list[float]]:
    """Videos per minute of each configuration, ``repeats`` times, interleaved so that a change
    in the machine's load hits every configuration alike."""
    configs: dict[str, tuple[Callable[[], object], int | None]] = {
        "in-process, 1 thread (floor)": (SerialExecutor, 1),
        "Ray, 1 worker": (lambda: RayExecutor(workers=1), None),
        "Ray, 2 workers": (lambda: RayExecutor(workers=2), None),
    }
    rates: dict[str, list[float]] = {name: [] for name in configs}
    rates["pure CPU loop, 2 processes over 1"] = []
    spawn = multiprocessing.get_context("spawn")
    pools = {n: ProcessPoolExecutor(n, mp_context=spawn) for n in (1, 2)}
    # One local cluster of 2 CPUs for all; a RayExecutor inside it reuses it and caps the
    # videos in flight at its worker count.
    with RayExecutor(workers=2) as cluster:
        # Imports and kernel compilation, in the workers and in this process.
        timed_batch(warm, tmp / "warm-ray", options, cluster, None)
        timed_batch(warm, tmp / "warm-here", options, SerialExecutor(), 1)
        for r in range(repeats):
            rates["pure CPU loop, 2 processes over 1"].append(ceiling(pools))
            for i, (name, (factory, threads)) in enumerate(configs.items()):
                out = tmp / f"run{r}-config{i}"
                rates[name].append(timed_batch(src, out, options, factory(), threads))
    for pool in pools.values():
        pool.shutdown()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
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
        rates = measure(src, warm, tmp, options, args.repeats)
    cpu_ceiling = statistics.median(rates.pop("pure CPU loop, 2 processes over 1"))
    rows = list(rates.items())
    load = os.getloadavg()[0]
    floor = statistics.median(rows[0][1])
    print(f"\n{args.clips} clips x {args.frames} frames at {args.width}x{args.height}, method "
          f"{args.method}, DIS flow; median of {args.repeats}; {os.cpu_count()} CPUs, load "
          f"average {load:.1f} at the end (other processes share the CPUs if it exceeds 2)\n")
    print(f"| {'configuration':<30} | videos/min | ratio to floor |")
    print(f"| {'-' * 30} | ---------- | -------------- |")
    for name, runs in rows:
        med = statistics.median(runs)
        print(f"| {name:<30} | {med:10.1f} | {med / floor:14.2f} |")
    speedup = statistics.median(rows[2][1]) / statistics.median(rows[1][1])
    print(f"\nspeed-up, 2 workers over 1: {speedup:.2f}x; the same machine ran a pure CPU loop "
          f"{cpu_ceiling:.2f}x faster in 2 processes than in 1 (the ceiling here, now); "
          f"scaling efficiency {speedup / cpu_ceiling:.0%} of that ceiling")


if __name__ == "__main__":
    main()

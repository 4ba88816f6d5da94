"""Milliseconds per frame of ``persistent`` on a CUDA GPU: the Triton kernels, the torch path,
and ``torch.randn`` of the same size on the same device (the floor), as a table with ratios.

Each measurement runs in a fresh process (``--processes`` of them, default 3), and the table shows
the median over processes. In a process: the warper warps 4 or 16 channels under a rotation of
1 degree per frame about the frame centre (backward flows only), after ``--warmup`` steps that
compile the kernels and fill the caches; a repetition times ``--frames`` steps with CUDA events
and the process reports the median over ``--reps`` repetitions (the torch path, much slower,
times an eighth as many frames). Re-anchoring (every 64 frames)
falls inside the repetitions in proportion. The floor is ``torch.randn(C, H, W)`` timed the same
way in the same processes. A path that runs out of GPU memory is reported as such.

    python benchmarks/bench_gpu.py [--sizes 4x512x512 4x1024x1024 ...] [--processes 3]

Without a CUDA device it says so and exits 0 (nothing to measure).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys

import torch
from bench_warp import rotation_flow  # the same motion as the CPU benchmark

SIZES = ["4x512x512", "4x1024x1024", "16x1024x1024", "16x480x720"]
PATHS = ("triton", "torch", "randn")
GOAL_MS = {"4x1024x1024": 0.5}  # the goal on an H100 (docs/benchmarks.md)


def _size(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.split("x"))
    except ValueError:
        raise ValueError(f"--sizes wants CxHxW, e.g. 4x1024x1024, got {text!r}") from None
    return c, h, w


def _timed(fn, frames: int, reps: int) -> float:
    """Median over ``reps`` of the CUDA-event time of ``frames`` calls of ``fn``, per call, ms."""
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(frames):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / frames)
    return statistics.median(times)


def measure(path: str, size: str, frames: int, reps: int, warmup: int) -> float:
    """One process's ms/frame for ``path`` at ``size`` (``nan``: out of GPU memory)."""
    import warpnoise

    c, h, w = _size(size)
    dev = torch.device("cuda")
    try:
        if path == "randn":
            g = torch.Generator(device=dev).manual_seed(0)

            def fn() -> None:
                torch.randn(c, h, w, generator=g, device=dev)
        else:
            # "auto" runs the Triton kernels where triton imports, else torch (as users run it).
            warper = warpnoise.NoiseWarper(c, h, w, seed=0, device=dev,
                                           backend="auto" if path == "triton" else "torch")
            flow = rotation_flow(h, w, 1.0, dev)

            def fn() -> None:
                warper.step(flow)
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        return _timed(fn, frames, reps)
    except torch.cuda.OutOfMemoryError:
        return math.nan


def _child(args: argparse.Namespace) -> None:
    print(json.dumps(measure(args.child, args.sizes[0], args.frames, args.reps, args.warmup)))


def _run(path: str, size: str, args: argparse.Namespace) -> float:
    # The torch path is one to two orders slower: fewer frames keep the run short.
    frames = args.frames if path != "torch" else max(2, args.frames // 8)
    cmd = [sys.executable, __file__, "--child", path, "--sizes", size, "--frames", str(frames),
           "--reps", str(args.reps), "--warmup", str(args.warmup)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"  {path} {size}: failed ({last})", file=sys.stderr)
        return math.nan
    return float(json.loads(r.stdout.strip().splitlines()[-1]))


def _cell(ms: float, floor: float) -> str:
    if math.isnan(ms):
        return "out of memory / failed | -"
    return f"{ms:.3f} | {ms / floor:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=SIZES, metavar="CxHxW")
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--frames", type=int, default=32, help="steps per timed repetition")
    p.add_argument("--reps", type=int, default=5, help="repetitions per process")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    p.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = p.parse_args()
    for s in args.sizes:
        try:
            _size(s)
        except ValueError as e:
            p.error(str(e))
    if args.child:
        _child(args)
        return
    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device here, nothing to measure (it times the Triton "
              "kernels of `persistent` on a CUDA GPU).")
        return
    try:
        import triton

        tri = f"triton {triton.__version__}"
    except ImportError:
        tri = "triton not installed: the 'triton' column runs the torch path too"
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, {tri}; "
          f"median of {args.processes} processes x {args.reps} reps x {args.frames} frames")
    print("| size (C x H x W) | Triton ms/frame | × randn | torch path ms/frame | × randn "
          "| torch.randn ms | Triton / goal |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        res = {path: [] for path in PATHS}
        for _ in range(args.processes):
            for path in PATHS:  # interleaved, so drifts of the clock hit every path alike
                res[path].append(_run(path, size, args))
        ms = {path: statistics.median(v) for path, v in res.items()}
        floor = ms["randn"]
        goal = GOAL_MS.get(size)
        vs_goal = f"{ms['triton'] / goal:.2f} (goal {goal} ms)" if goal else "-"
        print(f"| {size} | {_cell(ms['triton'], floor)} | {_cell(ms['torch'], floor)} "
              f"| {floor:.3f} | {vs_goal} |", flush=True)


if __name__ == "__main__":
    main()

"""Milliseconds per frame of every warping method, and the ratio to drawing fresh noise.

Each method warps 4-channel noise under a rotation of 1 degree per frame about the frame centre, a
sequence long enough to include its re-anchoring; a repetition's cost per frame is its total time
over its frames, and a process's figure is the median over repetitions. The floor is
``torch.randn(4, H, W)`` timed in the same run, just before every repetition: a repetition's
ratio is to that floor, so that the load of a shared machine, which drifts, cancels; the table's
floor is the median of those.

    python benchmarks/bench_warp.py [--sizes 256 512] [--methods persistent integral ...]
                                    [--option upsample=4 ...] [--forward] [--processes 5]

``--option NAME=VALUE`` passes a method option (an int or float) to every method listed.
Frame-guided methods (``control-a-video``) get a clip whose frames alternate between a texture and
the same texture with a square a quarter of the frame painted over it (their cost includes the
residual mask; the pre-pass over the clip, at construction, is not timed).
``--forward`` also passes the forward flows (the inverse rotation), as ``warpnoise noise`` always
does, so methods that use them run their occlusion test. ``--processes N`` measures in N fresh
processes, one after another (a warm process hides the allocation and compile costs a user pays),
and reports the median over processes of each figure and the max/median spread of the ratio.

To compare two versions on the same day, run this script against the other one's source:
``git worktree add /tmp/old COMMIT`` and ``PYTHONPATH=/tmp/old/src python benchmarks/bench_warp.py
...`` (its fresh processes inherit the path). Versions from before frame-guided methods work too.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

import warpnoise
from warpnoise.flow import pixel_grid

try:
    from warpnoise.methods import needs_frames
except ImportError:  # a version from before frame-guided methods (see the docstring)

    def needs_frames(method: str) -> bool:
        return False

SLOW = {"integral": (3, 3), "bridge": (4, 5)}  # (frames, repetitions) for costly methods
FAST = (32, 5)


def rotation_flow(h: int, w: int, degrees: float, device: torch.device) -> torch.Tensor:
    g = pixel_grid(h, w, device=device, dtype=torch.float64)
    x, y = g[0] - (w - 1) / 2, g[1] - (h - 1) / 2
    a = math.radians(-degrees)
    return torch.stack([math.cos(a) * x - math.sin(a) * y - x,
                        math.sin(a) * x + math.cos(a) * y - y]).float()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def floor_ms(h: int, w: int, device: torch.device, reps: int = 30) -> float:
    g = torch.Generator(device=device).manual_seed(0)
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        torch.randn(4, h, w, generator=g, device=device)
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def method_ms(method: str, h: int, w: int, device: torch.device,
              options: dict[str, float] | None = None, forward: bool = False
              ) -> tuple[float, float, float]:
    """Medians over repetitions of the ms per frame, of the floor timed just before each, and of
    each repetition's ratio to its floor."""
    frames, reps = SLOW.get(method, FAST)
    flows = [rotation_flow(h, w, 1.0, device)]
    if forward:
        flows.append(rotation_flow(h, w, -1.0, device))
    extra = dict(options or {})
    if needs_frames(method):
        a = torch.randint(0, 256, (h, w, 3), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
        b = a.clone()
        b[: h // 2, : w // 2] = 255
        extra["frames"] = [a, b] * (1 + reps * frames)  # two arrays, many references
    warper = warpnoise.NoiseWarper(4, h, w, method=method, seed=0, device=device, **extra)
    warper.step(*flows)  # compile kernels, warm caches
    per_frame, floors = [], []
    for _ in range(reps):
        floors.append(floor_ms(h, w, device, reps=10))
        sync(device)
        t = time.perf_counter()
        for _ in range(frames):
            warper.step(*flows)
        sync(device)
        per_frame.append((time.perf_counter() - t) / frames * 1e3)
    ratios = [ms / f for ms, f in zip(per_frame, floors, strict=True)]
    return statistics.median(per_frame), statistics.median(floors), statistics.median(ratios)


def _option(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--option must be NAME=VALUE, got {text!r}")
    return name, float(value) if "." in value or "e" in value else int(value)


def measure(methods: list[str], sizes: list[int], device: torch.device,
            options: dict[str, float], forward: bool) -> dict[str, dict[str, list[float]]]:
    """``{method: {size: [ms, floor_ms, ratio]}}`` measured in this process."""
    out: dict[str, dict[str, list[float]]] = {}
    for method in methods:
        for s in sizes:
            out.setdefault(method, {})[str(s)] = list(method_ms(method, s, s, device, options,
                                                                forward))
    return out


def run_fresh(script: str, argv: list[str], n: int) -> list[Any]:
    """Run ``script`` with ``argv`` and ``--json`` in ``n`` new processes, one after another, and
    return what each printed last (JSON). A failed process ends the run with its last error line."""
    runs = []
    for k in range(n):
        done = subprocess.run([sys.executable, script, *argv, "--json"], capture_output=True,
                              text=True)
        if done.returncode:
            lines = done.stderr.strip().splitlines()
            raise SystemExit(lines[-1] if lines else f"process {k + 1} failed")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"process {k + 1}/{n} done", file=sys.stderr, flush=True)
    return runs


def fresh_processes(args: argparse.Namespace) -> list[dict[str, dict[str, list[float]]]]:
    """Run this script ``args.processes`` times in new processes (``--json``), in turn."""
    argv = ["--sizes", *map(str, args.sizes), "--methods", *args.methods, "--device", args.device]
    argv += [f"--option={o}" for o in args.option] + (["--forward"] if args.forward else [])
    return run_fresh(__file__, argv, args.processes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--methods", nargs="+", default=warpnoise.methods())
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--forward", action="store_true", help="pass forward flows too")
    p.add_argument("--processes", type=int, default=1, help="fresh processes to measure in")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.processes < 1:
        p.error("--processes must be >= 1")
    options = dict(_option(o) for o in args.option)
    device = torch.device(args.device)
    if args.json:
        print(json.dumps(measure(args.methods, args.sizes, device, options, args.forward)))
        return
    runs = ([measure(args.methods, args.sizes, device, options, args.forward)]
            if args.processes == 1 else fresh_processes(args))
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"forward flows {'on' if args.forward else 'off'}, {args.processes} process(es)"
          + "".join(f", {k}={v}" for k, v in options.items()))
    spread = args.processes > 1
    cols = [f"ms/frame {s}² | × randn {s}²" + (f" | max/median {s}²" if spread else "")
            for s in args.sizes]
    print("| method | " + " | ".join(cols) + " |")
    print("|" + "---|" * (1 + (3 if spread else 2) * len(args.sizes)))
    for method in args.methods:
        cells = []
        for s in map(str, args.sizes):
            ms = statistics.median(r[method][s][0] for r in runs)
            ratios = [r[method][s][2] for r in runs]
            ratio = statistics.median(ratios)
            cells.append(f"{ms:.1f} | {ratio:.1f}" + (f" | {max(ratios) / ratio:.2f}"
                                                      if spread else ""))
        print(f"| {method}{' (default)' if method == warpnoise.DEFAULT_METHOD else ''} | "
              + " | ".join(cells) + " |")
    floors = [f"{statistics.median(r[m][str(s)][1] for r in runs for m in args.methods):.2f}"
              + " | 1.0" + (" | " if spread else "") for s in args.sizes]
    print("| floor: torch.randn(4, s, s) | " + " | ".join(floors) + " |")


if __name__ == "__main__":
    main()

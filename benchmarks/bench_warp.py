"""Milliseconds per frame of every warping method, and the ratio to drawing fresh noise.

Each method warps 4-channel noise under a rotation of 1 degree per frame about the frame centre, a
sequence long enough to include its re-anchoring; a repetition's cost per frame is its total time
over its frames, and the table shows the median over repetitions. The floor is
``torch.randn(4, H, W)`` timed in the same run, interleaved with the methods.

    python benchmarks/bench_warp.py [--sizes 256 512] [--methods persistent integral ...]
                                    [--option upsample=4 ...]

``--option NAME=VALUE`` passes a method option (an int or float) to every method listed.
Frame-guided methods (``control-a-video``) get a clip whose frames alternate between a texture and
the same texture with a square a quarter of the frame painted over it (their cost includes the
residual mask; the pre-pass over the clip, at construction, is not timed).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

import warpnoise
from warpnoise.flow import pixel_grid
from warpnoise.methods import needs_frames

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
              options: dict[str, float] | None = None) -> float:
    frames, reps = SLOW.get(method, FAST)
    flow = rotation_flow(h, w, 1.0, device)
    extra = dict(options or {})
    if needs_frames(method):
        a = torch.randint(0, 256, (h, w, 3), generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8)
        b = a.clone()
        b[: h // 2, : w // 2] = 255
        extra["frames"] = [a, b] * (1 + reps * frames)  # two arrays, many references
    warper = warpnoise.NoiseWarper(4, h, w, method=method, seed=0, device=device, **extra)
    warper.step(flow)  # compile kernels, warm caches
    per_frame = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        for _ in range(frames):
            warper.step(flow)
        sync(device)
        per_frame.append((time.perf_counter() - t) / frames)
    return statistics.median(per_frame) * 1e3


def _option(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--option must be NAME=VALUE, got {text!r}")
    return name, float(value) if "." in value or "e" in value else int(value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--methods", nargs="+", default=warpnoise.methods())
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    args = p.parse_args()
    options = dict(_option(o) for o in args.option)
    device = torch.device(args.device)
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}"
          + "".join(f", {k}={v}" for k, v in options.items()))
    header = "| method | " + " | ".join(f"ms/frame {s}² | × randn {s}²" for s in args.sizes) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(args.sizes)))
    floors = {s: [] for s in args.sizes}
    rows = []
    for method in args.methods:
        cells = []
        for s in args.sizes:
            f0 = floor_ms(s, s, device)
            ms = method_ms(method, s, s, device, options)
            f1 = floor_ms(s, s, device)
            floor = statistics.median([f0, f1])
            floors[s].append(floor)
            cells.append(f"{ms:.1f} | {ms / floor:.1f}")
        rows.append(f"| {method}{' (default)' if method == warpnoise.DEFAULT_METHOD else ''} | "
                    + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    print("| floor: torch.randn(4, s, s) | "
          + " | ".join(f"{statistics.median(floors[s]):.2f} | 1.0" for s in args.sizes) + " |")


if __name__ == "__main__":
    main()

"""The ComfyUI node's cost and memory: Warped Noise from Video for Wan 2.1 at 832x480.

Each run is a fresh process that loads the node pack as ComfyUI does, warms the kernels up on a
small crop, then runs the node on a ComfyUI IMAGE of T frames (the bundled sample enlarged to
832x480 and played back and forth). Reported per T, medians over ``--repeats`` processes:
seconds per pixel frame, the ratio to the floor ``torch.randn(16, 480, 832)`` measured in the
same process, and the peak memory the call added (Linux: the process's peak RSS is reset before
the call), each as the median and the range over the processes, next to what holding the
pixel-resolution noise sequence would take (T x 16 x 480 x 832 float32) and to the input IMAGE
itself (which ComfyUI holds anyway). The load average is printed: on a shared machine the times
vary with it.

    python benchmarks/bench_comfyui.py                   # T = 17 and 49, 3 processes each
    python benchmarks/bench_comfyui.py --frames 17 33 65 --repeats 5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

PACK = Path(__file__).resolve().parents[1] / "comfyui" / "warpnoise_nodes"
W, H, C = 832, 480, 16


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(frames: int) -> dict[str, float]:
    import numpy as np
    import torch

    from warpnoise.io.video import read_frames

    spec = importlib.util.spec_from_file_location(str(PACK).replace(".", "_x_"),
                                                  PACK / "__init__.py")
    assert spec is not None and spec.loader is not None
    pack = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pack
    spec.loader.exec_module(pack)
    node = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]()
    args = dict(model="wan2.1", method="persistent", seed=0, degradation=0.0,
                flow="dis-medium", layout="auto", width=0, height=0, channels=C,
                spatial_compression=8, temporal_compression=4, device="cpu")

    sample = Path(str(resources.files("warpnoise") / "data" / "sample.mp4"))
    base = read_frames(sample, size=(W, H))
    cycle = np.concatenate([base, base[-2:0:-1]])
    clip = np.concatenate([cycle] * (-(-frames // len(cycle))))[:frames]
    images = torch.from_numpy(clip).float() / 255.0
    node.make(images[:5, :64, :64].contiguous(), **args)  # warm-up: numba kernels for 16 channels

    g = torch.Generator().manual_seed(0)
    floor = []
    for _ in range(20):
        t0 = time.perf_counter()
        torch.randn(C, H, W, generator=g)
        floor.append(time.perf_counter() - t0)

    rss0 = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    t0 = time.perf_counter()
    _noise, latent, _preview = node.make(images, **args)
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    return {"seconds": seconds, "floor": statistics.median(floor),
            "added_mb": (peak - rss0) / 1024, "input_mb": images.numel() * 4 / 2**20,
            "latent": list(latent["samples"].shape)}


def _spread(values: list[float], fmt: str) -> str:
    """``median (min-max)`` of the runs."""
    return (f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[17, 49])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return
    print(f"Warped Noise from Video, Wan 2.1, {W}x{H}, persistent, DIS medium, {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.1f}; median (range) of {args.repeats} fresh "
          f"processes")
    print("| frames T | latent | s per frame | x randn(16, 480, 832) | peak added MB | "
          "pixel noise sequence MB | input IMAGE MB |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for t in args.frames:
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, __file__, "--child", str(t)], check=True,
                                 capture_output=True, text=True)
            runs.append(json.loads(out.stdout.splitlines()[-1]))
        per_frame = _spread([r["seconds"] / t for r in runs], ".2f")
        ratio = _spread([r["seconds"] / t / r["floor"] for r in runs], ".0f")
        added = _spread([r["added_mb"] for r in runs], ".0f")
        seq = t * C * H * W * 4 / 2**20
        print(f"| {t} | {tuple(runs[0]['latent'])} | {per_frame} | {ratio} | "
              f"{added} | {seq:.0f} | {runs[0]['input_mb']:.0f} |")
    print(f"load average after the runs: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

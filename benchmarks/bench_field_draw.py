"""The cost of ``persistent``'s draw of the persistent field at an anchor: ``(k^2 + 4k + 4) C``
counter-based normals per pixel (16 x 4 at k = 2, C = 4), as each backend on the CPU draws them,
against ``torch.randn`` of the same size (what the draw cost before the draws became
counter-based, and the floor).

Rows: the numba backend (``fill_normal``, a parallel loop), the torch backend
(:func:`warpnoise.rng.normal_tensor`, vectorised int64 arithmetic), and ``torch.randn``. The
three are timed in turn within each repetition (so a busy machine slows them alike), medians over
repetitions; the ratio is to ``torch.randn`` in the same repetition.

    python benchmarks/bench_field_draw.py [--size 512] [--reps 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from warpnoise.kernels import field_size
from warpnoise.kernels.hashing import fill_normal
from warpnoise.rng import normal_tensor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="frame side in pixels (default 512)")
    p.add_argument("--reps", type=int, default=7, help="repetitions (default 7)")
    args = p.parse_args()
    shape = (args.size, args.size, field_size(2), 4)
    out = torch.empty(shape)
    g = torch.Generator().manual_seed(0)
    fill_normal(np.uint64(1), out.numpy())  # load or compile the kernel
    rows: dict[str, list[float]] = {"numba fill_normal": [], "torch normal_tensor": [],
                                    "floor: torch.randn": []}
    ratios: dict[str, list[float]] = {k: [] for k in rows}
    for r in range(args.reps):
        times = {}
        t = time.perf_counter()
        fill_normal(np.uint64(r), out.numpy())
        times["numba fill_normal"] = time.perf_counter() - t
        t = time.perf_counter()
        normal_tensor(r, shape)
        times["torch normal_tensor"] = time.perf_counter() - t
        t = time.perf_counter()
        torch.randn(shape, generator=g, out=out)
        times["floor: torch.randn"] = time.perf_counter() - t
        for k, v in times.items():
            rows[k].append(v * 1e3)
            ratios[k].append(v / times["floor: torch.randn"])
    print(f"field draw {'x'.join(map(str, shape))} ({out.numel() / 1e6:.1f} M values), threads "
          f"{torch.get_num_threads()}, median of {args.reps}")
    print("| draw | ms | × randn |")
    print("|---|---|---|")
    for k in rows:
        print(f"| {k} | {statistics.median(rows[k]):.0f} | {statistics.median(ratios[k]):.2f} |")


if __name__ == "__main__":
    main()

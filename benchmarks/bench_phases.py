"""Where a step of ``persistent`` spends its time on the CPU: milliseconds per frame of each phase
of the numba kernel, and each as a ratio to drawing fresh noise.

The scene is :mod:`bench_warp`'s (4-channel noise, rotation of 1 degree per frame about the frame
centre, forward flows on, as ``warpnoise noise`` runs it; repetitions of 32 frames, so that
re-anchoring falls inside them in proportion). Each phase function of
:mod:`warpnoise.kernels.boxes` is wrapped in a timer (a Python call around a compiled one: about a
microsecond each, a few per frame):

* ``advance``: map composition, forward-backward occlusion test and roles;
* ``pixel boxes``: links and pre-image boxes (anchored pass, and loose pass when there is one);
* ``scatter``: claims, coverage, each piece's ``Y`` and the per-cell sums (both passes);
* ``gather``: the bridge pieces summed per pixel (both passes);
* ``rest of the kernel step``: ``boxes.step`` minus the four above (buffers, the links merge);
* ``around the kernel``: ``NoiseWarper.step`` minus ``boxes.step`` (flow checks, the key draw,
  the re-anchoring draw of the persistent field).

The floor is ``torch.randn(4, s, s)`` timed just before each repetition; a phase's ratio is to
that floor, and each process reports medians over repetitions. ``--processes N`` measures in N
fresh processes, one after another, and reports the median over processes.

    python benchmarks/bench_phases.py [--size 512] [--processes 5]

Needs numba (the CPU kernel); without it the warper takes the torch path and there is nothing to
split, so the script says so and exits 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from bench_warp import FAST, floor_ms, rotation_flow, run_fresh  # the same scene and floor

import warpnoise

PHASES = ("advance", "pixel boxes", "scatter", "gather", "rest of the kernel step",
          "around the kernel", "whole step")


def _timed(fn: Callable[..., Any], name: str, acc: dict[str, float]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] = acc.get(name, 0.0) + time.perf_counter() - t
    return run


def measure(size: int) -> dict[str, list[float]]:
    """``{phase: [ms per frame, ratio to the floor]}``, medians over repetitions, in this
    process."""
    from warpnoise.methods.persistent import backend_for

    if backend_for(torch.device("cpu"))[0] != "numba":
        raise SystemExit("numba is not installed: persistent runs its torch path, no phases")
    from warpnoise.kernels import boxes

    acc: dict[str, float] = {}
    boxes.advance = _timed(boxes.advance, "advance", acc)
    boxes.pixel_boxes = _timed(boxes.pixel_boxes, "pixel boxes", acc)
    boxes.step = _timed(boxes.step, "kernel step", acc)
    for channels, (scatter, gather) in list(boxes._KERNELS.items()):
        boxes._KERNELS[channels] = (_timed(scatter, "scatter", acc), _timed(gather, "gather", acc))
    cpu = torch.device("cpu")
    flows = (rotation_flow(size, size, 1.0, cpu), rotation_flow(size, size, -1.0, cpu))
    warper = warpnoise.NoiseWarper(4, size, size, method="persistent", seed=0)
    warper.step(*flows)  # load the kernels, touch every buffer
    frames, reps = FAST
    per_rep: dict[str, list[float]] = {p: [] for p in PHASES}
    floors = []
    for _ in range(reps):
        floors.append(floor_ms(size, size, cpu, reps=10))
        acc.clear()
        t = time.perf_counter()
        for _ in range(frames):
            warper.step(*flows)
        whole = time.perf_counter() - t
        named = sum(acc.get(p, 0.0) for p in PHASES[:4])
        acc["rest of the kernel step"] = acc["kernel step"] - named
        acc["around the kernel"] = whole - acc["kernel step"]
        acc["whole step"] = whole
        for p in PHASES:
            per_rep[p].append(acc.get(p, 0.0) / frames * 1e3)
    out = {}
    for p in PHASES:
        ms = statistics.median(per_rep[p])
        ratio = statistics.median(v / f for v, f in zip(per_rep[p], floors, strict=True))
        out[p] = [ms, ratio]
    out["floor"] = [statistics.median(floors), 1.0]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=512, help="frame side in pixels (default 512)")
    p.add_argument("--processes", type=int, default=5, help="fresh processes to measure in")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.size < 16:
        p.error(f"--size must be >= 16, got {args.size}")
    if args.processes < 1:
        p.error("--processes must be >= 1")
    if args.json:
        print(json.dumps(measure(args.size)))
        return
    runs = run_fresh(__file__, ["--size", str(args.size)], args.processes)
    s = args.size
    print(f"persistent, 4x{s}x{s}, rotation 1°/frame, forward flows on, threads "
          f"{torch.get_num_threads()}, median over {args.processes} process(es)")
    print("| phase | ms/frame | × randn | share of the step |")
    print("|---|---|---|---|")
    whole = statistics.median(r["whole step"][0] for r in runs)
    for phase in (*PHASES, "floor"):
        ms = statistics.median(r[phase][0] for r in runs)
        ratio = statistics.median(r[phase][1] for r in runs)
        name = f"floor: torch.randn(4, {s}, {s})" if phase == "floor" else phase
        share = "" if phase == "floor" else f"{ms / whole:.0%}"
        print(f"| {name} | {ms:.1f} | {ratio:.1f} | {share} |")


if __name__ == "__main__":
    main()

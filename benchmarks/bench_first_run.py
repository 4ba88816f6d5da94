"""Seconds to the first warped frames of ``persistent`` on the CPU in a new process: with an empty
numba cache (everything compiles), for a second channel count once the first is cached, after
``warpnoise warmup``, and a whole ``warpnoise noise`` on the bundled clip after ``warmup``.

Every figure is the median over ``--processes`` repetitions; each repetition uses new, empty
cache folders (``NUMBA_CACHE_DIR``), so nothing is shared with the user's cache. A measuring
process imports warpnoise, makes a ``NoiseWarper(C, 64, 64)`` and takes two steps of a square
moving over a static background with forward flows (the second step has loose pixels, so both
passes of the kernel run): ``first frames`` is import + warper + those two steps in wall seconds
(and the process's CPU seconds to that point, all threads: less sensitive to a loaded machine),
and ``step`` one more step afterwards (the compiled speed, for scale). Scenarios, per repetition:

- ``cold C``: an empty cache, C channels (what a fresh install's first call costs);
- ``16 after 4``: 16 channels once a 4-channel run filled the cache (a second channel count);
- ``warmup``: ``warpnoise warmup`` in an empty cache (skipped with ``--no-warmup``, e.g. for a
  checkout that predates the command), then ``after warmup C`` for 4 and 16 channels, and
  ``noise after warmup``: ``warpnoise noise`` on the bundled clip (2 frames, so the wall time
  bounds the time to the first frame).

    python benchmarks/bench_first_run.py [--processes 3] [--src PATH/TO/src] [--no-warmup]

``--src`` measures another checkout's ``src`` (e.g. the code before a change) on the same day.
The machine's load moves every figure: compare columns measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CHILD = """
import json, sys, time
t0 = time.perf_counter()
import torch
import warpnoise
t1 = time.perf_counter()
c, n, s = int(sys.argv[1]), 64, 16
def layered(t):
    # A square of side s moving 3 px/frame right over a static background.
    b = torch.zeros(2, n, n); f = torch.zeros(2, n, n)
    b[0, s:2 * s, s + 3 * t:2 * s + 3 * t] = -3.0
    f[0, s:2 * s, s + 3 * (t - 1):2 * s + 3 * (t - 1)] = 3.0
    return b, f
w = warpnoise.NoiseWarper(c, n, n, seed=0)
for t in (1, 2):
    w.step(*layered(t))
t2 = time.perf_counter()
w.step(*layered(3))
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t0, "step": t3 - t2,
                  "first_cpu": time.process_time()}))
"""

SPECIALISED = """
import json, math, statistics, sys, time
import torch
import warpnoise
from warpnoise.kernels import boxes
n = int(sys.argv[1])
g = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="xy")).double()
x, y = g[0] - (n - 1) / 2, g[1] - (n - 1) / 2
a = math.radians(-1.0)
flow = torch.stack([math.cos(a) * x - math.sin(a) * y - x,
                    math.sin(a) * x + math.cos(a) * y - y]).float()
# The four-channel copy is what this module compiled before it kept the generic one alone.
own, generic = boxes._channel_kernels(4), boxes._KERNELS[0]
times = {"specialised": [], "generic": []}
warpers = {}
for name, kern in (("specialised", own), ("generic", generic)):
    boxes._KERNELS[4] = kern
    warpers[name] = warpnoise.NoiseWarper(4, n, n, seed=0)
    for _ in range(3):
        warpers[name].step(flow)
for _ in range(7):
    for name, kern in (("specialised", own), ("generic", generic)):
        boxes._KERNELS[4] = kern
        t = time.perf_counter()
        for _ in range(8):
            warpers[name].step(flow)
        times[name].append((time.perf_counter() - t) / 8 * 1e3)
print(json.dumps({k: statistics.median(v) for k, v in times.items()}))
"""


def _env(src: Path, cache: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "NUMBA_CACHE_DIR": cache}


def _run(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``cmd``; a failure ends the benchmark with its last error line."""
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        raise SystemExit(f"{' '.join(cmd[:4])}...: {lines[-1] if lines else 'failed'}")
    return time.perf_counter() - t


def child(channels: int, src: Path, cache: str) -> dict[str, float]:
    """One measuring process (see the module docstring)."""
    env = _env(src, cache)
    done = subprocess.run([sys.executable, "-c", CHILD, str(channels)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        raise SystemExit(lines[-1] if lines else "a measuring process failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def specialisation(src: Path, size: int, processes: int) -> None:
    """ms/step at 4 x size x size under a 1-degree rotation, a copy of the kernels with four
    channels fixed at compile time against the generic copy every count runs, alternated in
    each process."""
    runs = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(processes):
            done = subprocess.run([sys.executable, "-c", SPECIALISED, str(size)],
                                  env=_env(src, cache), capture_output=True, text=True,
                                  check=False)
            if done.returncode:
                lines = done.stderr.strip().splitlines()
                raise SystemExit(lines[-1] if lines else "a measuring process failed")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    spec = statistics.median(r["specialised"] for r in runs)
    gen = statistics.median(r["generic"] for r in runs)
    print(f"4 x {size} x {size}, 1-degree rotation, median of {processes} processes x 7 reps x 8 "
          f"steps: four-channel kernels {spec:.2f} ms/step, generic kernels {gen:.2f} ms/step "
          f"(generic / four-channel = {gen / spec:.2f})")


def _cli(src: Path, cache: str, *args: str) -> float:
    return _run([sys.executable, "-c", "from warpnoise.cli import main; main()", *args],
                _env(src, cache))


def repetition(src: Path, warmup: bool) -> dict[str, float]:
    """One repetition of every scenario, each in new cache folders."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        cold4 = child(4, src, a)
        out["cold 4"], out["cold 4 (CPU s)"] = cold4["first"], cold4["first_cpu"]
        second = child(16, src, a)
        out["16 after 4"], out["16 after 4 (CPU s)"] = second["first"], second["first_cpu"]
        cold16 = child(16, src, b)
        out["cold 16"], out["cold 16 (CPU s)"] = cold16["first"], cold16["first_cpu"]
        out["import"] = cold16["import"]
        out["step"] = cold16["step"]
    if warmup:
        with tempfile.TemporaryDirectory() as c:
            out["warmup"] = _cli(src, c, "warmup")
            for n in (4, 16):
                warm = child(n, src, c)
                out[f"after warmup {n}"] = warm["first"]
                out[f"after warmup {n} (CPU s)"] = warm["first_cpu"]
            clip = src / "warpnoise" / "data" / "sample.mp4"
            out["noise after warmup"] = _cli(src, c, "noise", str(clip), "-o",
                                             str(Path(c) / "n.safetensors"), "--frames", "2",
                                             "--quiet")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--processes", type=int, default=3, help="repetitions (fresh processes each)")
    p.add_argument("--src", type=Path, default=SRC, help="the src folder to measure")
    p.add_argument("--no-warmup", action="store_true", help="skip the warmup scenarios")
    p.add_argument("--specialisation", type=int, metavar="N", default=0,
                   help="instead: the speed of the four-channel kernels against the generic "
                   "ones at 4 x N x N")
    args = p.parse_args()
    if args.processes < 1:
        p.error("--processes must be >= 1")
    if not (args.src / "warpnoise").is_dir():
        p.error(f"--src {args.src} holds no warpnoise package")
    if args.specialisation:
        specialisation(args.src, args.specialisation, args.processes)
        return
    runs = []
    for r in range(args.processes):
        runs.append(repetition(args.src, not args.no_warmup))
        print(f"repetition {r + 1}/{args.processes}: {json.dumps(runs[-1])}", file=sys.stderr,
              flush=True)
    print(f"src: {args.src}; median of {args.processes} repetitions, fresh processes, empty "
          "numba caches; seconds")
    print("| scenario | seconds (median) | all runs |")
    print("|---|---|---|")
    for key in runs[0]:
        vals = [run[key] for run in runs]
        print(f"| {key} | {statistics.median(vals):.2f} | "
              f"{', '.join(f'{v:.2f}' for v in vals)} |")


if __name__ == "__main__":
    main()

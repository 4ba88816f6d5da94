"""One check of warpnoise on a CUDA GPU, in under 8 minutes, ending in a summary table.

Run it from the repository root on a machine with a CUDA GPU (and triton installed):

    python benchmarks/gpu_check.py [--skip-tests] [--skip-bench]

Steps (each one reported, a failure does not stop the others):

1. ``pytest -m cuda``: the tests that need a CUDA device (the Triton kernels compiled, at full
   size, against the numba kernel);
2. ``benchmarks/bench_gpu.py`` at its four sizes (one process per path and size, to fit the time):
   ms/frame of the Triton kernels, the torch path and ``torch.randn`` (the floor);
3. determinism of the Triton path: the same seed twice, 30 frames of 4 x 512 x 512 with a moving
   layer over a rotating background (fresh draws, loose pixels), bit-identical or not;
4. agreement with the CPU (numba) backend on the same 30 frames at 4 x 256 x 256 from the same
   seed (every backend draws the same counter-based values; float32 sums round in another
   order): the same anchored pixels, and the worst absolute difference within 1e-4;
5. ``warpnoise noise --device cuda`` on the bundled clip, end to end (wall seconds);
6. the torch path against the Triton path on the same GPU at 4 x 512 x 512 (ms/frame).

Without CUDA it says so and exits 0. Exit status 1 when a step failed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 30


def _flows(h: int, w: int, t: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame t's backward flow and frame t-1's forward flow: a square of a third of the frame
    moving 2.6 px/frame right over a background rotating 0.5 degree per frame."""
    g = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")[::-1]).double()
    x, y = g[0] - (w - 1) / 2, g[1] - (h - 1) / 2
    a = math.radians(-0.5)
    rot = torch.stack([math.cos(a) * x - math.sin(a) * y - x,
                       math.sin(a) * x + math.cos(a) * y - y]).float()
    b, f = rot.clone(), -rot
    s, dx = h // 3, 2.6
    left = int(w // 8 + dx * t)
    b[:, s:2 * s, left:left + s] = torch.tensor([-dx, 0.0])[:, None, None]
    prev = int(w // 8 + dx * (t - 1))
    f[:, s:2 * s, prev:prev + s] = torch.tensor([dx, 0.0])[:, None, None]
    return b.to(device), f.to(device)


def _steps(warper, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``frames`` steps of ``warper``: the frames ``(T, C, H, W)`` on the CPU and each frame's
    anchored pixels ``(T, H, W)``."""
    _, h, w = warper.shape
    out, traced = [], []
    for t in range(1, frames + 1):
        out.append(warper.step(*_flows(h, w, t, warper.device)).cpu())
        traced.append(warper._state.traced.cpu().clone())
    return torch.stack(out), torch.stack(traced)


def _triton(device: torch.device) -> object:
    """The Triton backend for ``device``: by name on CUDA, an instance on the CPU (the kernels
    interpreted, for the tests of this script)."""
    if device.type == "cuda":
        return "triton"
    from warpnoise.methods.persistent.triton_backend import TritonBackend

    return TritonBackend()


def determinism(device: torch.device, size: tuple[int, int, int] = (4, 512, 512),
                frames: int = FRAMES) -> tuple[bool, str]:
    """Whether the Triton path gives the same bits twice from the same seed."""
    import warpnoise

    a, b = (_steps(warpnoise.NoiseWarper(*size, seed=7, device=device, backend=_triton(device)),
                   frames)[0] for _ in range(2))
    same = torch.equal(a, b)
    detail = "bit-identical" if same else f"differ: max |a - b| {float((a - b).abs().max()):.3g}"
    return same, f"{frames} frames of {'x'.join(map(str, size))}, seed 7 twice: {detail}"


def agreement(device: torch.device, size: tuple[int, int, int] = (4, 256, 256),
              frames: int = FRAMES) -> tuple[bool, str]:
    """The Triton path against the numba kernel on the CPU from the same seed (both draw the
    same counter-based values; a re-anchoring at frame 16). Passes when both paths anchor the
    same pixels (the geometry is the same to the bit), every value agrees within 1e-4 and both
    paths' values have mean 0 and std 1 (four standard errors)."""
    import warpnoise

    opts = dict(seed=3, anchor_every=16)
    cpu_w = warpnoise.NoiseWarper(*size, device="cpu", backend="numba", **opts)
    gpu_w = warpnoise.NoiseWarper(*size, device=device, backend=_triton(device), **opts)
    gpu, gpu_traced = _steps(gpu_w, frames)
    cpu, cpu_traced = _steps(cpu_w, frames)
    diff = (gpu - cpu).abs()
    worst = float(diff.max())
    close = float((diff <= 1e-4).double().mean())
    corr = float(torch.corrcoef(torch.stack([gpu.flatten(), cpu.flatten()]))[0, 1])
    same_roles = bool(torch.equal(gpu_traced, cpu_traced))
    stats = [(float(v.mean()), float(v.std())) for v in (gpu, cpu)]
    tol = 4.0 / math.sqrt(gpu[0].numel())  # four standard errors of one frame's mean
    ok = same_roles and worst < 1e-4 and all(abs(m) < tol and abs(s - 1) < tol
                                             for m, s in stats)
    return ok, (f"{frames} frames of {'x'.join(map(str, size))}: anchored pixels "
                f"{'identical' if same_roles else 'DIFFERENT'}; {close:.1%} of the values "
                f"within 1e-4, correlation {corr:.6f}, worst |triton - numba| {worst:.3g}; "
                f"mean/std triton {stats[0][0]:+.4f}/{stats[0][1]:.4f}, numba "
                f"{stats[1][0]:+.4f}/{stats[1][1]:.4f}")


def speeds(device: torch.device, size: tuple[int, int, int] = (4, 512, 512),
           frames: int = 20) -> tuple[bool, str]:
    """ms/frame of the Triton and torch paths on ``device``, median of 3 repetitions."""
    import warpnoise

    out = {}
    for backend in ("triton", "torch"):
        warper = warpnoise.NoiseWarper(*size, seed=0, device=device, backend=backend)
        b, f = _flows(size[1], size[2], 1, device)
        for _ in range(3):
            warper.step(b, f)
        reps = []
        for _ in range(3):
            torch.cuda.synchronize(device)
            t = time.perf_counter()
            for _ in range(frames):
                warper.step(b, f)
            torch.cuda.synchronize(device)
            reps.append((time.perf_counter() - t) / frames * 1e3)
        out[backend] = statistics.median(reps)
    ratio = out["torch"] / out["triton"]
    return True, (f"{'x'.join(map(str, size))}: triton {out['triton']:.2f} ms/frame, torch path "
                  f"{out['torch']:.2f} ms/frame ({ratio:.1f}x slower)")


def _command(cmd: list[str], timeout: float, tail: int = 0) -> tuple[bool, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    if tail:
        for line in lines[-tail:]:
            print(f"    {line}", flush=True)
    last = lines[-1] if lines else ""
    return done.returncode == 0, last


def cuda_tests() -> tuple[bool, str]:
    return _command([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
                     "tests"], timeout=240, tail=3)


def bench() -> tuple[bool, str]:
    ok, last = _command([sys.executable, "benchmarks/bench_gpu.py", "--processes", "1",
                         "--reps", "3"], timeout=200, tail=7)
    return ok, "table above" if ok else last


def end_to_end() -> tuple[bool, str]:
    clip = ROOT / "src" / "warpnoise" / "data" / "sample.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "n.safetensors"
        t = time.perf_counter()
        ok, last = _command([sys.executable, "-c", "from warpnoise.cli import main; main()",
                             "noise", str(clip), "-o", str(out), "--device", "cuda", "-q"],
                            timeout=180)
        seconds = time.perf_counter() - t
    return ok, f"{seconds:.1f} s wall: {last}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--skip-tests", action="store_true", help="skip pytest -m cuda")
    p.add_argument("--skip-bench", action="store_true", help="skip bench_gpu.py")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check.py: no CUDA device here, nothing to check (run it on a machine with a "
              "CUDA GPU and triton installed).")
        return 0
    sys.path.insert(0, str(ROOT / "src"))
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}", flush=True)
    steps: list[tuple[str, Callable[[], tuple[bool, str]]]] = []
    if not args.skip_tests:
        steps.append(("pytest -m cuda", cuda_tests))
    if not args.skip_bench:
        steps.append(("bench_gpu.py, four sizes", bench))
    steps += [("triton determinism", lambda: determinism(dev)),
              ("triton vs numba (CPU)", lambda: agreement(dev)),
              ("warpnoise noise --device cuda", end_to_end),
              ("torch path vs triton", lambda: speeds(dev))]
    rows = []
    start = time.perf_counter()
    for name, fn in steps:
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        try:
            ok, detail = fn()
        except Exception as e:  # report and go on: one broken step must not hide the others
            ok, detail = False, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        rows.append((name, ok, time.perf_counter() - t, detail))
        print(f"   {'ok' if ok else 'FAILED'}: {detail}", flush=True)
    print(f"\nsummary ({torch.cuda.get_device_name(dev)}, {time.perf_counter() - start:.0f} s):")
    print("| step | result | seconds | detail |")
    print("|---|---|---|---|")
    for name, ok, seconds, detail in rows:
        print(f"| {name} | {'ok' if ok else 'FAILED'} | {seconds:.0f} | {detail} |")
    return 0 if all(ok for _, ok, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

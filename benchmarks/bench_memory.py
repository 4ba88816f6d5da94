"""Peak resident memory of ``warpnoise noise`` (and ``batch``) against the length of the clip.

Each measurement is one fresh process running the command line on the first L frames
(``--frames L``) of one generated clip per size: the bundled sample (real hand-held video)
resized and played back and forth, H.264, in a temporary folder. Its peak is the kernel's
high-water mark of resident memory (``ru_maxrss`` from ``wait4`` for ``noise``; for ``batch``
the ``VmHWM`` of the Ray worker that ran the video, read from ``/proc`` every 0.1 s, and the
batch driver's own peak). Not ``tracemalloc``: it does not see NumPy's, torch's or FFmpeg's
buffers. Medians over ``--repeats`` processes, after one warm-up run per size (numba's cached
kernels are compiled once, not in every measured run).

The floor is the peak of the same command on the shortest clip, measured in the same run: the
table gives each length's peak as a ratio to it, the growth over it, and the least-squares
slope in MB per frame, beside the size of one decoded frame (what decoding the whole clip up
front added per frame). Targets: slope under 0.05 MB/frame at 640x480, and the peak at
800 frames within 5% of the peak at 50.

    python benchmarks/bench_memory.py                                  # noise, 3 sizes, 50/200/800
    python benchmarks/bench_memory.py --commands noise,batch --sizes 640x480
    python benchmarks/bench_memory.py --sizes 1920x1080 --lengths 60,300,1200 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from warpnoise.io.video import FrameSource, VideoWriter

MB = 1 << 20


def looped_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """The bundled sample at ``width x height``, played back and forth to ``frames`` frames,
    written one frame at a time (a long 1080p clip never sits in this process either)."""
    sample = Path(__file__).resolve().parents[1] / "src" / "warpnoise" / "data" / "sample.mp4"
    base = list(FrameSource(sample, size=(width, height)))
    cycle = base + base[-2:0:-1]  # ping-pong: no jump at the loop point
    with VideoWriter(path, fps=30) as writer:
        for i in range(frames):
            writer.write(cycle[i % len(cycle)])
    return path


def _warpnoise() -> str:
    exe = Path(sys.executable).with_name("warpnoise")
    return str(exe) if exe.exists() else shutil.which("warpnoise") or "warpnoise"


def peak_of_process(cmd: list[str]) -> float:
    """Run ``cmd``; return its peak resident memory in MB (``ru_maxrss`` of that child only)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    return usage.ru_maxrss * 1024 / MB  # kilobytes on Linux


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                # The command name may hold spaces: the parent id follows its closing bracket.
                ppid = int(fh.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return False
    return b"default_worker.py" in cmdline or cmdline.startswith(b"ray::")


def peak_of_batch(cmd: list[str], interval: float = 0.1) -> tuple[float, float]:
    """Run a ``warpnoise batch`` command; return (peak of the largest Ray worker, peak of the
    driver) in MB. Workers' high-water marks are polled from /proc while the batch runs."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: dict[int, int] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            tree, todo = _children(), [proc.pid]
            while todo:
                for child in tree.get(todo.pop(), []):
                    todo.append(child)
                    if _is_worker(child):
                        workers[child] = max(workers.get(child, 0), _status_kb(child, "VmHWM"))
            time.sleep(interval)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    poller.join()
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()[-500:]}")
    if not workers:
        raise RuntimeError("no Ray worker process was seen")
    return max(workers.values()) * 1024 / MB, usage.ru_maxrss * 1024 / MB


def slope(xs: list[int], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def measure(command: str, clip: Path, tmp: Path, length: int, args: argparse.Namespace
            ) -> dict[str, float]:
    """Peaks in MB of one fresh run of ``command`` on the first ``length`` frames."""
    noise = ["--frames", str(length), "--downsample", str(args.downsample),
             "--dis-preset", args.dis_preset, "--method", args.method, "--quiet"]
    if command == "noise":
        cmd = [*args.exe, "noise", str(clip), "-o", str(tmp / "n.safetensors"), *noise]
        return {"noise": peak_of_process(cmd)}
    if command == "noise+preview":
        cmd = [*args.exe, "noise", str(clip), "-o", str(tmp / "n.safetensors"),
               "--preview", str(tmp / "p.mp4"), *noise]
        return {"noise+preview": peak_of_process(cmd)}
    if command == "flow":
        cmd = [*args.exe, "flow", str(clip), "-o", str(tmp / "f.safetensors"),
               "--frames", str(length), "--dis-preset", args.dis_preset, "--quiet"]
        return {"flow": peak_of_process(cmd)}
    videos, out = tmp / "videos", tmp / "out"
    shutil.rmtree(out, ignore_errors=True)
    videos.mkdir(exist_ok=True)
    (videos / "clip.mp4").unlink(missing_ok=True)
    (videos / "clip.mp4").symlink_to(clip)
    cmd = [*args.exe, "batch", str(videos), "-o", str(out), "--workers", "1", *noise]
    worker, driver = peak_of_batch(cmd)
    return {"batch worker": worker, "batch driver": driver}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", default="noise",
                    help="comma-separated: noise, noise+preview, flow, batch")
    ap.add_argument("--sizes", default="320x240,640x480,1280x720")
    ap.add_argument("--lengths", default="50,200,800")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--method", default="persistent")
    ap.add_argument("--downsample", type=int, default=8)
    ap.add_argument("--exe", type=shlex.split, default=[_warpnoise()],
                    help="the command line to measure (default: this environment's warpnoise), "
                    "e.g. another checkout: 'env PYTHONPATH=OTHER/src python -c \"from "
                    "warpnoise.cli import main; main()\"'")
    ap.add_argument("--dis-preset", default="ultrafast",
                    help="flow quality does not change what is held; ultrafast keeps runs short")
    args = ap.parse_args()
    commands = args.commands.split(",")
    lengths = sorted(int(v) for v in args.lengths.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            clip = looped_clip(tmp / f"clip{w}x{h}.mp4", w, h, max(lengths))
            for command in commands:
                measure(command, clip, tmp, 3, args)  # warm-up: numba's cache, first imports
                peaks: dict[str, dict[int, list[float]]] = {}
                for _ in range(args.repeats):
                    for length in lengths:  # interleaved: load changes hit every length alike
                        for name, mb in measure(command, clip, tmp, length, args).items():
                            peaks.setdefault(name, {}).setdefault(length, []).append(mb)
                for name, by_length in peaks.items():
                    rows.append((size, w * h * 3 / MB, name, by_length))
                    print(f"done: {size} {name}", file=sys.stderr, flush=True)
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB
    print(f"\n`warpnoise` {args.method}, --downsample {args.downsample}, DIS {args.dis_preset}; "
          f"peak resident memory (MB), median of {args.repeats} fresh processes [range]; "
          f"floor: the same command on {lengths[0]} frames. This script itself peaked at "
          f"{self_peak:.0f} MB.\n")
    head = " | ".join(f"{n} frames" for n in lengths)
    print(f"| size | command | one frame (MB) | {head} | x floor at {lengths[-1]} | growth (MB) "
          f"| slope (MB/frame) |")
    print("|" + " --- |" * (6 + len(lengths)))
    for size, frame_mb, name, by_length in rows:
        med = [statistics.median(by_length[n]) for n in lengths]
        cells = " | ".join(f"{m:.0f} [{min(by_length[n]):.0f}-{max(by_length[n]):.0f}]"
                           for m, n in zip(med, lengths, strict=True))
        print(f"| {size} | {name} | {frame_mb:.2f} | {cells} | {med[-1] / med[0]:.3f} | "
              f"{med[-1] - med[0]:+.1f} | {slope(lengths, med):+.4f} |")


if __name__ == "__main__":
    main()

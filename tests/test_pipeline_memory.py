"""Memory is flat in the length of the clip: ``warpnoise noise`` (with its preview) on 40 and on
400 frames of one clip peaks at the same resident memory.

Measured as the kernel's high-water mark of each fresh process (``ru_maxrss`` from ``wait4``),
not with tracemalloc (blind to NumPy's, torch's and FFmpeg's buffers) and not as a time. Decoding
the whole clip up front, as warpnoise did before streaming, adds one decoded frame (0.22 MB at
320x240) per frame: 79 MB over these 360 frames, where the bound below allows a quarter of that.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.io._clips import moving_frames
from warpnoise.io.video import VideoWriter

W, H, SHORT, LONG = 320, 240, 40, 400
FRAME_MB = W * H * 3 / 2**20


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LONG frames of a texture panning back and forth, written one frame at a time."""
    cycle = list(moving_frames(12, H, W, dx=2, dy=1))
    cycle += cycle[-2:0:-1]
    path = tmp_path_factory.mktemp("long") / "clip.mp4"
    with VideoWriter(path, fps=30) as writer:
        for i in range(LONG):
            writer.write(cycle[i % len(cycle)])
    return path


def peak_mb(args: list[str | Path]) -> float:
    """Peak resident memory (MB) of one fresh ``warpnoise`` process run with ``args``."""
    cmd = [sys.executable, "-c", "from warpnoise.cli import main; main()", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert os.waitstatus_to_exitcode(status) == 0, err
    return usage.ru_maxrss / 1024  # kilobytes on Linux


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units are Linux's")
@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_frames(long_clip: Path,
                                                             tmp_path: Path) -> None:
    def peak(frames: int) -> float:
        return peak_mb(["noise", long_clip, "-o", tmp_path / "n.safetensors", "--method",
                        "random", "--downsample", "8", "--dis-preset", "ultrafast",
                        "--preview", tmp_path / "p.mp4", "--frames", frames, "--quiet"])

    peak(3)  # first run: OS page cache, interpreter caches
    short, long = peak(SHORT), peak(LONG)
    growth = long - short
    assert growth < 0.25 * FRAME_MB * (LONG - SHORT), (
        f"peak {short:.0f} MB at {SHORT} frames, {long:.0f} MB at {LONG}: "
        f"{growth / (LONG - SHORT):.3f} MB per frame (one frame is {FRAME_MB:.2f} MB)")

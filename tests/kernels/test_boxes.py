"""The CPU kernels of ``persistent`` (``warpnoise.kernels.boxes``). Their numerics are tested
through the method, in tests/methods/test_persistent.py and test_boundaries.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

_STEPS = ("import torch, warpnoise\n"
          "w = warpnoise.NoiseWarper(4, 24, 32, seed=0)\n"
          "f = torch.full((2, 24, 32), 0.3)\n"
          "for _ in range(3):\n"
          "    w.step(f, -f)\n")


def _steps_in_a_new_process() -> str:
    env = dict(os.environ, NUMBA_DEBUG_CACHE="1")
    done = subprocess.run([sys.executable, "-c", _STEPS], env=env, capture_output=True, text=True,
                          check=True, timeout=600)
    return done.stdout + done.stderr


@pytest.mark.slow
def test_a_new_process_loads_every_kernel_from_numbas_cache() -> None:
    """Every process that warps pays numba's cache load, not its compiler (30 s): a kernel whose
    cache key changes from process to process (one calling another closure) would be compiled
    again each time."""
    _steps_in_a_new_process()  # compiles what no earlier process has cached
    log = _steps_in_a_new_process()
    assert "data loaded" in log
    assert [line for line in log.splitlines() if "data saved" in line] == []

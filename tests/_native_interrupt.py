"""A real Ctrl-C inside a real numba kernel, on demand (for the interrupt tests).

The kernel computes long enough (0.1 s or more: 20 million sines) for a timer signal armed just
before the call to land while native code runs, and returns a tuple of arrays: boxing it runs
Python code (numba's ``_numba_unpickle``), where the pending interrupt is raised and wrapped by
CPython into ``SystemError: CPUDispatcher(...) returned a result with an exception set``.
SIGALRM with a handler that raises the interrupt stands in for SIGINT/SIGTERM, so a late signal
can never stop the test session.
"""

from __future__ import annotations

import math
import os
import signal
from typing import Any

import numpy as np
import pytest
import torch

from warpnoise.methods.base import WarpState

numba = pytest.importorskip("numba")


@numba.njit(cache=False)
def _busy_kernel(n: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty(n)
    idx = np.empty(n, np.int64)
    s = 0.0
    for i in range(n):
        for j in range(200):
            s += math.sin(i + j)
        out[i] = s
        idx[i] = i
    return out, idx


def interrupted_kernel(exc: type[BaseException] = KeyboardInterrupt, n: int = 100_000) -> Any:
    """Call the kernel with ``exc`` raised by a signal 10 ms into it; returns only if the signal
    missed the kernel (then the caller's assertion fails)."""
    _busy_kernel(1)  # compiled before the timer is armed

    def handler(signum: int, frame: Any) -> None:
        raise exc

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    try:
        return _busy_kernel(n)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class InterruptedInKernel:
    """A warping method whose step runs a numba kernel that Ctrl-C hits (register it with
    ``monkeypatch.setitem(REGISTRY, name, InterruptedInKernel)``)."""

    def init(self, noise: torch.Tensor, generator: torch.Generator) -> WarpState:
        return WarpState(noise)

    def step(self, state: WarpState, backward_flow: torch.Tensor,
             forward_flow: torch.Tensor | None, generator: torch.Generator) -> WarpState:
        interrupted_kernel()
        return state


class CtrlCDuringStep:
    """A warping method whose step gets a real SIGINT, then runs a numba kernel and records that
    it finished (``finished`` counts the steps that ran to the end)."""

    finished = 0

    def init(self, noise: torch.Tensor, generator: torch.Generator) -> WarpState:
        return WarpState(noise)

    def step(self, state: WarpState, backward_flow: torch.Tensor,
             forward_flow: torch.Tensor | None, generator: torch.Generator) -> WarpState:
        os.kill(os.getpid(), signal.SIGINT)
        _busy_kernel(1000)
        type(self).finished += 1
        return state

"""``warpnoise.backends``: the choice of a compiled path and the fall back to the torch path."""

from __future__ import annotations

import warnings

import pytest
import torch

from warpnoise import backends
from warpnoise.backends import BackendError, BackendFallbackWarning, choose, run_compiled


@pytest.fixture(autouse=True)
def no_failures():
    backends.forget_failures()
    yield
    backends.forget_failures()


def _broken() -> str:
    raise RuntimeError("ptxas fatal: unsupported gpu architecture (simulated)")


def test_auto_picks_the_compiled_path_each_device_supports(monkeypatch) -> None:
    assert choose("m", "auto", torch.device("cpu"))[0] == "numba"
    assert choose("m", "auto", torch.device("mps")) == ("torch", "no compiled kernels for mps "
                                                        "devices")
    assert choose("m", "auto", torch.device("cuda"))[0] == "triton"
    monkeypatch.setattr(backends, "have_triton", lambda: False)
    assert choose("m", "auto", torch.device("cuda")) == ("torch", "triton is not installed")
    assert choose("m", "torch", torch.device("cuda")) == ("torch", "requested")


def test_fallback_warns_once_and_is_remembered() -> None:
    dev = torch.device("cuda")
    with pytest.warns(BackendFallbackWarning, match="unsupported gpu architecture") as seen:
        assert run_compiled("m", "triton", "auto", dev, _broken, lambda: "torch") == "torch"
        assert run_compiled("m", "triton", "auto", dev, _broken, lambda: "torch") == "torch"
    assert len(seen) == 1
    backend, reason = choose("m", "auto", dev)
    assert backend == "torch" and "failed earlier in this process" in reason
    assert choose("other", "auto", dev)[0] == "triton"  # another method's kernels: not affected


def test_explicit_or_unrecoverable_failures_raise() -> None:
    dev = torch.device("cuda")
    with pytest.raises(BackendError, match="backend='auto' falls back"):
        run_compiled("m", "triton", "triton", dev, _broken, lambda: "torch")
    with pytest.raises(BackendError, match="backend='torch' avoids"):
        run_compiled("m", "triton", "auto", dev, _broken, None)


def test_interrupts_and_out_of_memory_pass_through() -> None:
    def interrupted() -> str:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("numba wrapped it") from e

    def oom() -> str:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    dev = torch.device("cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SystemError):
            run_compiled("m", "triton", "auto", dev, interrupted, lambda: "torch")
        with pytest.raises(torch.cuda.OutOfMemoryError):
            run_compiled("m", "triton", "auto", dev, oom, lambda: "torch")
    assert backends.failed("m", "triton", dev) is None

"""``benchmarks/gpu_check.py``: it exits 0 with a message without CUDA, and its determinism and
agreement checks work (Triton interpreted on the CPU, at small sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_exits_0_with_a_message_without_cuda() -> None:
    done = subprocess.run([sys.executable, str(BENCH / "gpu_check.py")], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "no CUDA device here" in done.stdout


@pytest.fixture
def gpu_check(monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("triton")
    monkeypatch.syspath_prepend(str(BENCH))
    import gpu_check

    return gpu_check


def test_triton_determinism_check_passes_on_the_interpreter(gpu_check) -> None:
    ok, detail = gpu_check.determinism(torch.device("cpu"), (4, 24, 24), frames=2)
    assert ok and "bit-identical" in detail


def test_agreement_check_compares_both_backends_from_one_seed(gpu_check) -> None:
    """The same seed on both backends: the same anchored pixels and every value within 1e-4
    (the same counter-based draws), over a re-anchoring."""
    ok, detail = gpu_check.agreement(torch.device("cpu"), (4, 32, 32), frames=18)
    assert ok and "anchored pixels identical" in detail, detail
    share = float(detail.split("; ")[1].split("%")[0])
    assert share == 100.0, detail

"""The Triton kernels of ``snap`` (:mod:`warpnoise.kernels.triton_snap`).

Without a GPU they run in Triton's interpreter on CPU tensors, at small sizes; where a CUDA device
exists the tests marked ``cuda`` run the same checks compiled. The kernels compute only which
value of frame t-1 each pixel takes and the new offsets, by the rule of the torch path and the
numba kernel: the three must agree to the bit (the fresh draws come from the same generator on
every path, so the noise then agrees to the bit too).
"""

from __future__ import annotations

import pytest
import torch

import warpnoise
from warpnoise import backends
from warpnoise.backends import have_numba
from warpnoise.methods import snap
from warpnoise.methods.snap import snap_sources

from ..methods import _flows as F

pytest.importorskip("triton", reason="triton is not installed (it has no wheel for this platform)")
from warpnoise.kernels import triton_snap as T

CUDA = torch.cuda.is_available()
DEVICES = [
    pytest.param("cpu", id="interpreted"),
    pytest.param("cuda", id="cuda", marks=[
        pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="needs a CUDA device")]),
]
SIZE = 40


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch) -> torch.device:
    monkeypatch.setattr(snap, "TRITON_ON_CPU", True)
    return torch.device(request.param)


def _scene(motion: str, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame t's backward flow and frame t-1's forward flow of a ``SIZE^2`` test motion."""
    if motion == "layered":
        b, f, _ = F.layered(SIZE, SIZE, t, size=16, dx=2.6, dy=-1.3, top=14, left=4)
        return b, f
    if motion == "fold":
        # Odd columns come from the even column left of them: every source is wanted by two
        # pixels at the same distance, and each loser has two free homes at the same distance.
        b = torch.zeros(2, SIZE, SIZE)
        b[0, :, 1::2] = -1.0
        return b, None
    flow = {"rotation": F.rotation(SIZE, SIZE, 3.0), "zoom": F.zoom(SIZE, SIZE, 1.06)}[motion]
    return flow, -flow


def _numba_sources(offset, b, f, slack):
    from warpnoise.kernels.snap import snap_sources_numba

    return snap_sources_numba(offset, b, f, slack)


@pytest.mark.parametrize("slack", [0.5, 2.0])
@pytest.mark.parametrize("motion", ["rotation", "zoom", "layered", "fold"])
def test_sources_and_offsets_match_the_torch_and_numba_paths_bit_for_bit(
        device: torch.device, motion: str, slack: float) -> None:
    """Four steps (with forward flows, but the fold), each from the offsets the step before
    left: the same sources (fresh pixels, ties included) and the same float64 offsets on every
    path."""
    offset = torch.zeros(2, SIZE, SIZE, dtype=torch.float64)
    fresh = 0
    for t in range(1, 5):
        b, f = _scene(motion, t)
        want = snap_sources(offset, b, f, slack)
        got = T.snap_sources_triton(offset.to(device), b.to(device),
                                    None if f is None else f.to(device), slack)
        assert torch.equal(got[0].cpu(), want[0]), f"sources differ at step {t}"
        assert torch.equal(got[1].cpu(), want[1]), f"offsets differ at step {t}"
        if have_numba():
            nb = _numba_sources(offset, b, f, slack)
            assert torch.equal(nb[0], want[0]) and torch.equal(nb[1], want[1])
        fresh += int((want[0] < 0).sum())
        offset = want[1]
    # The comparison covers contested sources and fresh pixels, not only plain carries.
    assert fresh > 0


def test_without_forward_flows_the_sources_match_too(device: torch.device) -> None:
    offset = (torch.rand(2, SIZE, SIZE, generator=torch.Generator().manual_seed(1),
                         dtype=torch.float64) - 0.5) * 0.9
    b = F.swirl(SIZE, SIZE, 25.0, 14.0)
    want = snap_sources(offset, b, None, 0.5)
    got = T.snap_sources_triton(offset.to(device), b.to(device), None, 0.5)
    assert torch.equal(got[0].cpu(), want[0]) and torch.equal(got[1].cpu(), want[1])


def test_auto_runs_triton_and_gives_the_torch_paths_bits(device: torch.device,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``backend="auto"`` picks Triton (on CUDA; on the CPU with the interpreter switched on),
    and a whole sequence equals the torch path's, fresh draws included."""
    calls = []
    real = T.snap_sources_triton
    monkeypatch.setattr(T, "snap_sources_triton", lambda *a: calls.append(1) or real(*a))
    b = torch.stack([_scene("layered", t)[0] for t in range(1, 4)]).to(device)
    f = torch.stack([_scene("layered", t)[1] for t in range(1, 4)]).to(device)
    want = warpnoise.warp_noise(b, 4, method="snap", seed=5, forward_flows=f, backend="torch")
    got = warpnoise.warp_noise(b, 4, method="snap", seed=5, forward_flows=f)
    assert len(calls) == 3
    assert torch.equal(got, want)


def test_a_failing_triton_kernel_falls_back_to_the_same_bits_on_auto(
        device: torch.device, monkeypatch: pytest.MonkeyPatch) -> None:
    b = torch.zeros(3, 2, 24, 24, device=device)
    b[:, 0] = -0.6
    want = warpnoise.warp_noise(b, 2, method="snap", seed=1, forward_flows=-b, backend="torch")

    def broken(*args: object) -> None:
        raise RuntimeError("no kernel today")

    monkeypatch.setattr(T, "snap_sources_triton", broken)
    backends.forget_failures()
    try:
        with pytest.warns(backends.BackendFallbackWarning, match="no kernel today"):
            got = warpnoise.warp_noise(b, 2, method="snap", seed=1, forward_flows=-b)
        assert torch.equal(got, want)
        with pytest.raises(backends.BackendError, match="triton kernels failed"):
            warpnoise.warp_noise(b, 2, method="snap", seed=1, forward_flows=-b,
                                 backend="triton")
    finally:
        backends.forget_failures()


def test_explicit_triton_on_the_cpu_is_refused_before_any_work() -> None:
    with pytest.raises(ValueError, match="runs on CUDA"):
        warpnoise.NoiseWarper(4, 8, 8, method="snap", backend="triton")

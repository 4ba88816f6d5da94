from __future__ import annotations

import numpy as np
import pytest
import torch

import warpnoise
from warpnoise.methods import needs_frames
from warpnoise.methods.base import REGISTRY

from .methods import _flows as F


def options_for(method: str, h: int, w: int) -> dict:
    """What a method needs beyond flows: the frames for frame-guided ones (control-a-video)."""
    return {"frames": np.zeros((2, h, w, 3), np.uint8)} if needs_frames(method) else {}


def test_registry_lists_every_method_and_the_default() -> None:
    names = warpnoise.methods()
    for name in ["random", "fixed", "nearest", "bilinear", "bicubic", "pyoco-mixed",
                 "pyoco-progressive", "control-a-video", "integral", "persistent"]:
        assert name in names
    assert warpnoise.DEFAULT_METHOD in names


@pytest.mark.parametrize("method", warpnoise.methods())
def test_every_method_streams_the_documented_shapes(method: str) -> None:
    w = warpnoise.NoiseWarper(3, 24, 20, method=method, seed=0, **options_for(method, 24, 20))
    assert w.noise.shape == (3, 24, 20)
    out = w.step(np.zeros((2, 24, 20), dtype=np.float32))
    assert out.shape == (3, 24, 20) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_warp_noise_returns_t_frames_and_matches_streaming() -> None:
    flows = torch.stack([F.rotation(32, 32, 2.0)] * 4)
    seq = warpnoise.warp_noise(flows, 2, method="persistent", seed=3)
    assert seq.shape == (5, 2, 32, 32)
    w = warpnoise.NoiseWarper(2, 32, 32, method="persistent", seed=3)
    assert torch.equal(seq[0], w.noise)
    for t in range(4):
        assert torch.equal(seq[t + 1], w.step(flows[t]))


def test_generator_is_the_only_source_of_randomness() -> None:
    g1 = torch.Generator().manual_seed(9)
    g2 = torch.Generator().manual_seed(9)
    flow = F.translation(16, 16, 0.3, 0.3)
    a = warpnoise.NoiseWarper(2, 16, 16, generator=g1).step(flow)
    torch.manual_seed(0)  # global state must not matter
    b = warpnoise.NoiseWarper(2, 16, 16, generator=g2).step(flow)
    assert torch.equal(a, b)


def test_half_precision_output() -> None:
    w = warpnoise.NoiseWarper(2, 16, 16, seed=0, dtype=torch.float16)
    assert w.step(torch.zeros(2, 16, 16)).dtype == torch.float16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "nope"}, "unknown method 'nope'"),
        ({"method": "integral", "upsample": 0}, "upsample"),
        ({"method": "integral", "colour": 1}, "bad options for method 'integral'"),
        ({"seed": "x"}, "seed must be an int"),
        ({"dtype": torch.int32}, "floating dtype"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        warpnoise.NoiseWarper(2, 8, 8, **kwargs)


def test_bad_sizes_are_named() -> None:
    with pytest.raises(ValueError, match="height must be a positive int"):
        warpnoise.NoiseWarper(2, 0, 8)


def test_step_rejects_a_flow_of_another_frame_size() -> None:
    w = warpnoise.NoiseWarper(2, 8, 8, seed=0)
    with pytest.raises(ValueError, match=r"backward_flow has shape \(2, 9, 8\)"):
        w.step(torch.zeros(2, 9, 8))
    with pytest.raises(ValueError, match="forward_flow contains non-finite"):
        w.step(torch.zeros(2, 8, 8), torch.full((2, 8, 8), float("nan")))


def test_warp_noise_rejects_mismatched_forward_flows() -> None:
    with pytest.raises(ValueError, match="forward_flows has 1 flows but backward_flows has 2"):
        warpnoise.warp_noise(torch.zeros(2, 2, 8, 8), 1, forward_flows=torch.zeros(1, 2, 8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", warpnoise.methods())
def test_methods_run_on_cuda(method: str) -> None:
    w = warpnoise.NoiseWarper(4, 64, 64, method=method, seed=0, device="cuda",
                              **options_for(method, 64, 64))
    out = w.step(F.rotation(64, 64, 2.0).cuda())
    assert out.device.type == "cuda" and torch.isfinite(out).all()


def test_ctrl_c_inside_a_numba_kernel_is_a_keyboard_interrupt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The numba backend of ``persistent`` unwraps the interrupt numba's boxing wraps."""
    from warpnoise.kernels import boxes

    from ._native_interrupt import interrupted_kernel

    monkeypatch.setattr(boxes, "step", lambda *args: interrupted_kernel())
    w = warpnoise.NoiseWarper(1, 8, 8, seed=0, backend="numba")
    with pytest.raises(KeyboardInterrupt):  # not numba's SystemError
        w.step(torch.zeros(2, 8, 8))


def test_ctrl_c_during_a_step_waits_for_the_step_to_finish(monkeypatch: pytest.MonkeyPatch,
                                                           live_ctrl_c: None) -> None:
    # numba's kernels and cache loading are not safe to interrupt (a crash was seen when Ctrl-C
    # hit a cache load): the interrupt is raised once the step is done.
    from ._native_interrupt import CtrlCDuringStep

    monkeypatch.setitem(REGISTRY, "ctrl-c-during-step", CtrlCDuringStep)
    monkeypatch.setattr(CtrlCDuringStep, "finished", 0)
    w = warpnoise.NoiseWarper(1, 4, 4, method="ctrl-c-during-step", seed=0)
    with pytest.raises(KeyboardInterrupt):
        w.step(torch.zeros(2, 4, 4))
    assert CtrlCDuringStep.finished == 1 and w.frame == 1


def test_cuda_without_cuda_is_a_clear_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = "device cuda was asked for but CUDA is not available"  # the CLI's words
    with pytest.raises(ValueError, match=message):
        warpnoise.NoiseWarper(2, 8, 8, device="cuda")
    with pytest.raises(ValueError, match=message):
        warpnoise.warp_noise(torch.zeros(1, 2, 8, 8), 2, device="cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        warpnoise.NoiseWarper(2, 8, 8, device="gpu0")


@pytest.mark.parametrize("seed", [2**64, -1])
def test_seed_outside_the_generator_range_is_named(seed: int) -> None:
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        warpnoise.NoiseWarper(2, 8, 8, seed=seed)


def test_largest_seed_works() -> None:
    assert warpnoise.NoiseWarper(1, 4, 4, seed=2**64 - 1).noise.shape == (1, 4, 4)


def test_flows_that_require_grad_are_taken_as_data() -> None:
    flow = F.translation(16, 16, 0.3, 0.2).requires_grad_()
    got = warpnoise.NoiseWarper(2, 16, 16, seed=0).step(flow, -flow)
    want = warpnoise.NoiseWarper(2, 16, 16, seed=0).step(flow.detach(), -flow.detach())
    assert torch.equal(got, want) and not got.requires_grad
    assert not warpnoise.warp_noise(torch.stack([flow] * 2), 2, seed=0).requires_grad


def test_methods_is_callable_and_its_modules_import_by_dotted_name() -> None:
    import warpnoise.methods.persistent as m

    assert m.Persistent is warpnoise.methods.get_method("persistent").__class__
    assert warpnoise.methods() == sorted(REGISTRY)
    from warpnoise.methods import methods

    assert methods() == warpnoise.methods()


def test_a_seed_reproduces_counter_drawn_noise_whatever_the_device() -> None:
    """``persistent`` draws by counters: a seed seeds a CPU generator whatever the device (so a
    CUDA run gives the CPU run's noise), and a generator passed in gives the root instead."""
    w = warpnoise.NoiseWarper(4, 16, 24, seed=3, device="cpu")
    assert w.generator.device.type == "cpu"
    same = warpnoise.NoiseWarper(4, 16, 24, generator=torch.Generator().manual_seed(3))
    other = warpnoise.NoiseWarper(4, 16, 24, seed=4)
    assert torch.equal(w.noise, same.noise) and not torch.equal(w.noise, other.noise)
    flow = F.rotation(16, 24, 3.0)
    assert torch.equal(w.step(flow), same.step(flow))


def test_backend_names_the_kernels_a_sequence_runs() -> None:
    assert warpnoise.NoiseWarper(1, 8, 8, seed=0).backend == "numba"
    assert warpnoise.NoiseWarper(1, 8, 8, seed=0, backend="torch").backend == "torch"
    assert warpnoise.NoiseWarper(1, 8, 8, method="integral", seed=0).backend == "torch"

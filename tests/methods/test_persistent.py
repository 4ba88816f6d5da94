"""Properties specific to the ``persistent`` method: its backends agree, it is
deterministic whatever the thread count, it streams in constant memory without allocating per
step, and the noise it returns stays valid."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

import warpnoise
from warpnoise.flow import pixel_grid
from warpnoise.kernels import field_size
from warpnoise.kernels.boxes import ANCHORED, Workspace, advance, box_integrate
from warpnoise.methods import persistent
from warpnoise.methods.persistent import advance as advance_torch
from warpnoise.methods.persistent import integrate_boxes

from . import _flows as F


def _setup(h: int, w: int, k: int = 4, c: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(c, h, w, generator=g), torch.randn(h, w, field_size(k), c, generator=g)


@pytest.mark.parametrize("forward", [False, True])
def test_kernel_map_composition_matches_torch(forward: bool) -> None:
    h, w = 48, 40
    b = F.swirl(h, w, 20.0, 12.0)
    m = pixel_grid(h, w, dtype=torch.float64) + 0.3 * F.rotation(h, w, 5.0).double()
    traced = torch.rand(h, w, generator=torch.Generator().manual_seed(1)) > 0.2
    links = torch.randint(0, 4, (h, w), generator=torch.Generator().manual_seed(2),
                          dtype=torch.uint8)
    f = -b if forward else None
    ref_map, _ref_src, ref_role = advance_torch(m, traced, links, b, f)
    new_map = np.empty((2, h, w))
    src = np.zeros((2, h, w))
    role = np.empty((h, w), np.uint8)
    dummy = np.zeros((1, 1), np.float32)
    advance(m.numpy(), traced.numpy(), links.numpy(), b[0].numpy(), b[1].numpy(),
            (-b[0]).numpy() if forward else dummy, (-b[1]).numpy() if forward else dummy,
            forward, new_map, src, role)
    assert (role == ref_role.numpy()).all()
    anchored = role == ANCHORED
    assert np.allclose(new_map[:, anchored], ref_map.numpy()[:, anchored], atol=1e-9)


@pytest.mark.parametrize("motion", ["translation", "rotation", "zoom"])
@pytest.mark.slow
def test_kernel_and_torch_paths_agree(motion: str) -> None:
    """Same boxes, same pieces, same persistent values and the same counter-based fresh draws
    (slivers between centres, remainders, pixels out of the anchor): the same noise to float32
    rounding."""
    h = w = 64
    flow = {"translation": F.translation(h, w, 0.25, 0.5), "rotation": F.rotation(h, w, 7.0),
            "zoom": F.zoom(h, w, 0.9)}[motion]
    anchor, field = _setup(h, w)
    m, _, role = advance_torch(pixel_grid(h, w, dtype=torch.float64),
                               torch.ones(h, w, dtype=torch.bool),
                               torch.full((h, w), 3, dtype=torch.uint8), flow, None)
    usable = role == ANCHORED
    noise_t, traced_t, _ = integrate_boxes(m, usable, anchor, field, 4, None, 7)
    out, traced_k = box_integrate(m[0].numpy(), m[1].numpy(), usable.numpy(), anchor.numpy(),
                                  field.numpy(), 4, np.uint64(7))
    noise_k = torch.from_numpy(out)
    assert torch.equal(traced_t, torch.from_numpy(traced_k))
    assert (noise_t.float() - noise_k).abs().max() < 1e-5


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_other_channel_counts_match_the_four_channel_kernel(channels: int) -> None:
    """Every channel count runs the same kernel, its channel loops sized by the arrays. Where
    nothing is drawn fresh (quarter-pixel translation) each channel gets the same values."""
    h = w = 64
    anchor, field = _setup(h, w)
    g = pixel_grid(h, w, dtype=torch.float64) - torch.tensor([0.25, 0.5]).double()[:, None, None]
    args = (g[0].numpy(), g[1].numpy(), np.ones((h, w), np.bool_))
    ref, _ = box_integrate(*args, anchor.numpy(), field.numpy(), 4, np.uint64(7))
    idx = [c % 4 for c in range(channels)]
    out, _ = box_integrate(*args, np.ascontiguousarray(anchor.numpy()[idx]),
                           np.ascontiguousarray(field.numpy()[..., idx]), 4, np.uint64(7))
    assert out.shape == (channels, h, w)
    assert np.allclose(out[:, 2:-2, 2:-2], ref[idx, 2:-2, 2:-2], atol=1e-6)


def test_kernel_is_bit_identical_for_any_thread_count() -> None:
    flow = F.swirl(96, 96, 25.0, 30.0)

    def run() -> torch.Tensor:
        w = warpnoise.NoiseWarper(4, 96, 96, method="persistent", seed=11)
        return torch.stack([w.step(flow, -flow) for _ in range(3)])

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(max(2, before))
        many = run()
    finally:
        numba.set_num_threads(before)
    assert torch.equal(one, many)


@pytest.mark.slow
def test_streams_1000_frames_in_reused_buffers() -> None:
    """State size is constant over 1000 frames, the kernel writes into the same workspace every
    step (no per-step buffers), and every returned frame is new memory that later steps leave
    alone."""
    h = w = 48
    warper = warpnoise.NoiseWarper(4, h, w, method="persistent", seed=0)
    flow = F.rotation(h, w, 1.5)
    ws = warper._state.workspace
    buffers = {name: getattr(ws, name).ctypes.data for name in vars(ws)
               if isinstance(getattr(ws, name), np.ndarray)}
    first = warper.step(flow, -flow)
    kept = first.clone()
    sizes = set()
    for t in range(1000):
        noise = warper.step(flow, -flow)
        st = warper._state
        assert st.workspace is ws
        sizes.add(sum(x.numel() for x in (st.noise, st.anchor, st.field, st.acc_map, st.traced)))
        if t % 250 == 249:
            assert torch.isfinite(noise).all()
    assert len(sizes) == 1
    assert buffers == {name: getattr(ws, name).ctypes.data for name in buffers}
    assert torch.equal(first, kept)
    # Pool the last frames to have enough samples for the statistics at this small size.
    tail = torch.stack([warper.step(flow) for _ in range(16)])
    assert abs(float(tail.mean())) < 0.02 and abs(float(tail.std()) - 1) < 0.02


def test_upsample_above_six_is_refused() -> None:
    with pytest.raises(ValueError, match="upsample <= 6"):
        warpnoise.NoiseWarper(1, 8, 8, method="persistent", upsample=7)


def test_workspace_reset_is_the_anchor() -> None:
    ws = Workspace.empty(2, 5, 7)
    ws.reset()
    assert np.array_equal(ws.maps[0], pixel_grid(5, 7, dtype=torch.float64).numpy())
    assert ws.traced[0].all()
    assert (ws.links[:-1, :-1] == 3).all() and (ws.links[:, -1] & 1 == 0).all()
    assert (ws.links[-1] & 2 == 0).all()


@pytest.mark.slow
def test_torch_path_alone_is_exact_and_coherent() -> None:
    """The path CUDA (or a machine without numba) runs, end to end through NoiseWarper."""
    h = w = 96
    warper = warpnoise.NoiseWarper(4, h, w, method="persistent", seed=5, backend="torch")
    first = warper.noise
    flow = F.translation(h, w, 0.37, 0.21)
    for _ in range(5):
        noise = warper.step(flow)
    assert abs(float(noise.mean())) < 0.02 and abs(float(noise.std()) - 1) < 0.02
    # After 5 frames the content moved by (1.85, 1.05): nearest shift (2, 1), overlap 0.85 * 0.95.
    c = torch.corrcoef(torch.stack([noise[:, 17:-16, 18:-16].flatten(),
                                    first[:, 16:-17, 16:-18].flatten()]))[0, 1]
    assert abs(float(c) - 0.85 * 0.95) < 0.05


@pytest.mark.parametrize("path", ["kernel", "torch"])
@pytest.mark.slow
def test_loose_pixels_carry_their_noise(path: str) -> None:
    """Background uncovered by a layer gets fresh noise once, then keeps it while it stays
    uncovered (it would otherwise flicker until the next anchor)."""
    h = w = 96
    warper = warpnoise.NoiseWarper(4, h, w, method="persistent", seed=3,
                                   backend="torch" if path == "torch" else "numba")
    prev = None
    carried = []
    for t in range(1, 9):
        b, f, _fg = F.layered(h, w, t, size=40, dx=3.0, top=28, left=10)
        noise = warper.step(b, f)
        if prev is not None:
            # Columns uncovered two frames ago or earlier: static background, loose since.
            x0 = 10 + (t - 1) * 3
            carried.append((noise[:, 32:64, 10:x0 - 3], prev[:, 32:64, 10:x0 - 3]))
        prev = noise
    a = torch.cat([x.flatten() for x, _ in carried])
    b_ = torch.cat([y.flatten() for _, y in carried])
    assert a.numel() > 5000
    assert torch.allclose(a, b_, atol=1e-5)


# Backends: the choice, the explicit request, and the fall back of "auto" to the torch path.


@pytest.fixture
def no_failures():
    from warpnoise import backends

    backends.forget_failures()
    yield
    backends.forget_failures()


def _torch_frames(h: int, w: int, flows: list, seed: int, **options) -> torch.Tensor:
    warper = warpnoise.NoiseWarper(4, h, w, seed=seed, backend="torch", **options)
    return torch.stack([warper.step(b, f) for b, f in flows])


def _layered_flows(h: int, w: int, frames: int) -> list:
    return [F.layered(h, w, t, size=h // 3, dx=2.6, top=h // 3, left=4)[:2]
            for t in range(1, frames + 1)]


def test_explicit_torch_backend_stays_on_the_torch_path_through_anchors() -> None:
    h = w = 32
    warper = warpnoise.NoiseWarper(4, h, w, seed=1, backend="torch", anchor_every=2)
    for _ in range(5):
        warper.step(F.translation(h, w, 0.4, 0.2))
        assert warper._state.workspace is None


def test_numba_backend_is_the_automatic_choice_on_the_cpu() -> None:
    h = w = 32
    flows = _layered_flows(h, w, 3)
    frames = []
    for backend in ("auto", "numba"):
        warper = warpnoise.NoiseWarper(4, h, w, seed=2, backend=backend)
        assert warper.backend == "numba"
        frames.append(torch.stack([warper.step(b, f) for b, f in flows]))
    assert torch.equal(frames[0], frames[1])
    assert persistent.backend_for(torch.device("cpu"))[0] == "numba"


@pytest.mark.parametrize("backend", ["triton", "numba"])
def test_unavailable_backend_is_refused_before_any_work(backend: str) -> None:
    device = "cpu" if backend == "triton" else "meta"
    with pytest.raises(ValueError, match=f"backend '{backend}' runs on"):
        persistent.backend_for(torch.device(device), backend)
    with pytest.raises(ValueError, match="backend must be one of auto, numba, triton, torch"):
        warpnoise.NoiseWarper(4, 8, 8, backend="cuda")
    if backend == "triton":
        with pytest.raises(ValueError, match="backend 'triton' runs on CUDA"):
            warpnoise.NoiseWarper(4, 8, 8, backend="triton")


def _failing_numba_step(monkeypatch: pytest.MonkeyPatch, fail_at: int = 1) -> list[int]:
    """Make the numba step raise from its ``fail_at``-th call on, as a kernel that fails to
    compile would; returns the list of calls."""
    from warpnoise.kernels import boxes

    calls: list[int] = []
    real = boxes.step

    def step(*args):
        calls.append(1)
        if len(calls) >= fail_at:
            raise RuntimeError("Failed in nopython mode pipeline (step: simulated)")
        return real(*args)

    monkeypatch.setattr(boxes, "step", step)
    return calls


def test_auto_falls_back_to_torch_when_numba_kernels_fail(monkeypatch, no_failures) -> None:
    """The first step's failure warns once and the sequence continues on the torch path: the
    same bits as ``backend="torch"`` from the same seed (anchor, field and keys are the same
    counter-based draws), so the noise is as exact as the torch path's. The next warper skips
    the failed path."""
    from warpnoise.backends import BackendFallbackWarning

    _failing_numba_step(monkeypatch)
    h = w = 32
    flows = _layered_flows(h, w, 4)
    warper = warpnoise.NoiseWarper(4, h, w, seed=3, anchor_every=2)
    with pytest.warns(BackendFallbackWarning, match="numba kernels failed.*simulated.*torch path"):
        got = torch.stack([warper.step(b, f) for b, f in flows])
    assert warper._state.workspace is None and warper.backend == "torch"
    assert torch.equal(got, _torch_frames(h, w, flows, seed=3, anchor_every=2))
    reason = persistent.backend_for(torch.device("cpu"))
    assert reason[0] == "torch" and "failed earlier" in reason[1]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = warpnoise.NoiseWarper(4, h, w, seed=3)
        assert again._state.workspace is None


def test_explicit_backend_failure_raises(monkeypatch, no_failures) -> None:
    from warpnoise.backends import BackendError

    _failing_numba_step(monkeypatch)
    warper = warpnoise.NoiseWarper(4, 16, 16, seed=0, backend="numba")
    with pytest.raises(BackendError, match=r"numba kernels failed on cpu .*simulated.*doctor"):
        warper.step(torch.zeros(2, 16, 16))


def test_failure_after_the_first_step_is_not_hidden(monkeypatch, no_failures) -> None:
    """Past the first step the compiled buffers may be half written: no silent hand-over."""
    from warpnoise.backends import BackendError

    _failing_numba_step(monkeypatch, fail_at=2)
    warper = warpnoise.NoiseWarper(4, 16, 16, seed=0)
    warper.step(torch.zeros(2, 16, 16))
    with pytest.raises(BackendError, match="numba kernels failed"):
        warper.step(torch.zeros(2, 16, 16))


def test_auto_falls_back_to_torch_when_a_triton_launch_fails(monkeypatch, no_failures) -> None:
    """A Triton kernel that fails to launch mid-step (after earlier kernels wrote the links):
    the warning names the cause, the torch path continues from the anchor with the same bits as
    ``backend="torch"``; an explicit ``backend="triton"`` raises instead."""
    pytest.importorskip("triton")
    from warpnoise.backends import BackendError, BackendFallbackWarning
    from warpnoise.kernels.triton_interp import Interpreted
    from warpnoise.methods.persistent.triton_backend import TritonBackend

    # "auto" as on CUDA: the Triton kernels (here interpreted on CPU tensors).
    monkeypatch.setattr(persistent, "backend_for", lambda device, requested="auto": (
        "triton" if requested == "auto" else requested, "test"))
    real = Interpreted.__getitem__

    def launch(self, grid):
        if self.kernel.fn.__name__ == "_boxes_kernel":
            raise RuntimeError("Triton Error [CUDA]: device kernel image is invalid (simulated)")
        return real(self, grid)

    monkeypatch.setattr(Interpreted, "__getitem__", launch)
    h = w = 16
    flows = _layered_flows(h, w, 2)
    warper = warpnoise.NoiseWarper(4, h, w, seed=4)
    assert warper.backend == "triton"
    with pytest.warns(BackendFallbackWarning, match="triton kernels failed.*image is invalid"):
        got = torch.stack([warper.step(b, f) for b, f in flows])
    assert torch.equal(got, _torch_frames(h, w, flows, seed=4))
    explicit = warpnoise.NoiseWarper(4, h, w, seed=4, backend=TritonBackend())
    with pytest.raises(BackendError, match=r"triton kernels failed on cpu.*backend='auto'"):
        explicit.step(*flows[0])

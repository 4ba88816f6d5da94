"""Properties specific to the ``persistent`` method: its two code paths agree, it is
deterministic whatever the thread count, and it streams in constant memory."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

import warpnoise
from warpnoise.flow import pixel_grid
from warpnoise.kernels.boxes import box_integrate, compose
from warpnoise.methods.integral import advance_map
from warpnoise.methods.persistent import fluctuation_tables, integrate_boxes

from . import _flows as F


def _setup(flow: torch.Tensor, k: int = 4):
    c, h, w = 4, flow.shape[1], flow.shape[2]
    g = torch.Generator().manual_seed(0)
    anchor = torch.randn(h, w, c, generator=g)
    sat = fluctuation_tables((c, h, w), k, g, torch.device("cpu"))
    return anchor, sat


def test_numba_map_composition_matches_torch() -> None:
    b = F.swirl(48, 40, 20.0, 12.0)
    m = pixel_grid(48, 40, dtype=torch.float64) + 0.3 * F.rotation(48, 40, 5.0).double()
    traced = torch.rand(48, 40, generator=torch.Generator().manual_seed(1)) > 0.2
    ref_map, ref_usable = advance_map(m, traced, b, None)
    new_map, usable = compose(m[0].numpy(), m[1].numpy(), traced.numpy(), b[0].numpy(),
                              b[1].numpy())
    assert np.allclose(new_map, ref_map.numpy(), atol=1e-5)
    assert (usable == ref_usable.numpy()).mean() > 0.99  # nearest rounding may differ at .5


@pytest.mark.parametrize("motion", ["translation", "rotation", "zoom"])
def test_kernel_and_torch_paths_agree(motion: str) -> None:
    """Same pieces, same persistent sums: the two paths differ only in their fresh draws."""
    h = w = 64
    flow = {"translation": F.translation(h, w, 0.25, 0.5), "rotation": F.rotation(h, w, 7.0),
            "zoom": F.zoom(h, w, 0.9)}[motion]
    anchor, sat = _setup(flow)
    m, usable = advance_map(pixel_grid(h, w, dtype=torch.float64),
                            torch.ones(h, w, dtype=torch.bool), flow, None)
    noise_t, traced_t = integrate_boxes(m, usable, anchor, sat, 7)
    out, traced_k = box_integrate(m[0].numpy(), m[1].numpy(), usable.numpy(), anchor.numpy(),
                                  sat.numpy(), np.uint64(7))
    noise_k = torch.from_numpy(out).permute(2, 0, 1)
    assert torch.equal(traced_t, torch.from_numpy(traced_k))
    c = torch.corrcoef(torch.stack([noise_t.flatten(), noise_k.flatten()]))[0, 1]
    assert c > 0.6  # the fresh draws (slivers, gaps) are the only difference
    if motion == "translation":  # quarter-pixel offsets: no slivers, no gaps, nothing fresh
        inner = (slice(None), slice(2, -2), slice(2, -2))
        assert torch.allclose(noise_t[inner], noise_k[inner], atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_other_channel_counts_match_the_four_channel_kernel(channels: int) -> None:
    """Four channels take a specialised copy of the kernel; other counts the generic one. Where
    nothing is drawn fresh (quarter-pixel translation) both give the same values."""
    h = w = 64
    flow = F.translation(h, w, 0.25, 0.5)
    anchor, sat = _setup(flow)
    m, usable = advance_map(pixel_grid(h, w, dtype=torch.float64),
                            torch.ones(h, w, dtype=torch.bool), flow, None)
    args = (m[0].numpy(), m[1].numpy(), usable.numpy())
    ref, _ = box_integrate(*args, anchor.numpy(), sat.numpy(), np.uint64(7))
    idx = [c % 4 for c in range(channels)]
    out, _ = box_integrate(*args, np.ascontiguousarray(anchor.numpy()[..., idx]),
                           np.ascontiguousarray(sat.numpy()[..., idx]), np.uint64(7))
    assert out.shape == (h, w, channels)
    assert np.allclose(out[2:-2, 2:-2], ref[2:-2, 2:-2, idx], atol=1e-6)


def test_kernel_is_bit_identical_for_any_thread_count() -> None:
    flow = F.swirl(96, 96, 25.0, 30.0)

    def run() -> torch.Tensor:
        w = warpnoise.NoiseWarper(4, 96, 96, method="persistent", seed=11)
        return torch.stack([w.step(flow) for _ in range(3)])

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(max(2, before))
        many = run()
    finally:
        numba.set_num_threads(before)
    assert torch.equal(one, many)


def test_streams_1000_frames_in_constant_memory() -> None:
    h = w = 48
    warper = warpnoise.NoiseWarper(4, h, w, method="persistent", seed=0)
    flow = F.rotation(h, w, 1.5)
    sizes = set()
    for t in range(1000):
        noise = warper.step(flow)
        st = warper._state
        sizes.add(sum(x.numel() for x in (st.noise, st.anchor, st.sat, st.acc_map, st.traced)))
        if t % 250 == 249:
            assert torch.isfinite(noise).all()
    assert len(sizes) == 1
    # Pool the last frames to have enough samples for the statistics at this small size.
    tail = torch.stack([warper.step(flow) for _ in range(16)])
    assert abs(float(tail.mean())) < 0.02 and abs(float(tail.std()) - 1) < 0.02


def test_upsample_above_eight_is_refused() -> None:
    with pytest.raises(ValueError, match="upsample <= 8"):
        warpnoise.NoiseWarper(1, 8, 8, method="persistent", upsample=16)


def test_torch_path_alone_is_exact_and_coherent(monkeypatch) -> None:
    """The path CUDA (or a machine without numba) runs, end to end through NoiseWarper."""
    from warpnoise.methods import persistent

    monkeypatch.setattr(persistent, "_use_kernel", lambda device: False)
    h = w = 96
    warper = warpnoise.NoiseWarper(4, h, w, method="persistent", seed=5)
    first = warper.noise
    flow = F.translation(h, w, 0.37, 0.21)
    for _ in range(5):
        noise = warper.step(flow)
    assert abs(float(noise.mean())) < 0.02 and abs(float(noise.std()) - 1) < 0.02
    # After 5 frames the content moved by (1.85, 1.05): nearest shift (2, 1), overlap 0.85 * 0.95.
    c = torch.corrcoef(torch.stack([noise[:, 17:-16, 18:-16].flatten(),
                                    first[:, 16:-17, 16:-18].flatten()]))[0, 1]
    assert abs(float(c) - 0.85 * 0.95) < 0.05

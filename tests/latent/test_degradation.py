"""Degradation γ (Go-with-the-Flow §3.3): exactly N(0, 1) per frame for every γ, temporal
correlation scaled by (1-γ)²/((1-γ)²+γ²), γ=0 the warped noise bit for bit, γ=1 fresh noise."""

from __future__ import annotations

import pytest
import torch

from tests.methods._checks import exactness_failures, ideal_overlap, interior_correlation
from warpnoise.diffusion import degradation_map, degrade
from warpnoise.warper import warp_noise

D = (0.37, 0.21)  # px/frame: sub-pixel, so the undegraded correlation is not 1
GAMMAS = [0.0, 0.2, 0.5, 0.7, 1.0]


@pytest.fixture(scope="module")
def warped() -> torch.Tensor:
    """4 x 192² frames of persistent noise under a slow translation (standard error of a
    correlation about 0.003)."""
    t, h, w = 6, 192, 192
    flows = torch.zeros(t - 1, 2, h, w)
    flows[:, 0], flows[:, 1] = -D[0], -D[1]
    return warp_noise(flows, 4, "persistent", seed=0)


def predicted_factor(g: float) -> float:
    return (1 - g) ** 2 / ((1 - g) ** 2 + g**2)


@pytest.mark.parametrize("g", GAMMAS)
@pytest.mark.slow
def test_every_frame_stays_iid_unit_normal(warped: torch.Tensor, g: float) -> None:
    out = degrade(warped, g, seed=1)
    for t, frame in enumerate(out):
        assert exactness_failures(frame) == [], (g, t)


@pytest.mark.parametrize("g", [0.2, 0.5, 0.7])
def test_temporal_correlation_scales_as_predicted(warped: torch.Tensor, g: float) -> None:
    out = degrade(warped, g, seed=2)
    for t in (1, 3, 5):
        _, ix, iy = ideal_overlap(t, D)
        before = interior_correlation(warped[t], warped[0], ix, iy, margin=8)
        after = interior_correlation(out[t], out[0], ix, iy, margin=8)
        assert before > 0.3  # there is correlation to scale
        assert abs(after - predicted_factor(g) * before) < 0.01, (g, t, before, after)


def test_zero_is_the_warped_noise_bit_for_bit(warped: torch.Tensor) -> None:
    assert torch.equal(degrade(warped, 0.0, seed=3), warped)
    # A map of zeros draws ζ but multiplies it by 0: still the same bits.
    assert torch.equal(degrade(warped, torch.zeros(192, 192), seed=3), warped)


def test_one_is_fresh_noise_independent_of_the_warped(warped: torch.Tensor) -> None:
    out = degrade(warped, 1.0, seed=4)
    fresh = torch.randn(warped.shape, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out, fresh)  # exactly ζ: nothing of Q is left
    assert abs(interior_correlation(out[0], warped[0], 0, 0, margin=0)) < 0.01


@pytest.mark.slow
def test_per_pixel_map_mixes_each_pixel_by_its_own_gamma(warped: torch.Tensor) -> None:
    gamma = torch.zeros(192, 192)
    gamma[:, 96:] = 1.0
    out = degrade(warped, gamma, seed=5)
    zeta = torch.randn(warped.shape, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out[..., :96], warped[..., :96])
    torch.testing.assert_close(out[..., 96:], zeta[..., 96:])
    ramp = torch.linspace(0, 1, 192).expand(192, 192)  # every γ in one frame, still N(0,1)
    for frame in degrade(warped, ramp, seed=6):
        assert exactness_failures(frame) == []


def test_same_seed_same_bits_other_seed_other_bits(warped: torch.Tensor) -> None:
    a, b = degrade(warped[:2], 0.5, seed=7), degrade(warped[:2], 0.5, seed=7)
    g = torch.Generator().manual_seed(7)
    assert torch.equal(a, b) and torch.equal(a, degrade(warped[:2], 0.5, generator=g))
    assert not torch.equal(a, degrade(warped[:2], 0.5, seed=8))


def test_half_precision_noise_keeps_its_dtype() -> None:
    x = torch.randn(2, 3, 8, 8).half()
    assert degrade(x, 0.5, seed=0).dtype == torch.float16


@pytest.mark.parametrize("gamma, match", [
    (1.5, r"\[0, 1\]"), (-0.1, r"\[0, 1\]"), (float("nan"), r"\[0, 1\]"),
    (torch.full((5, 5), 0.5), "does not broadcast"), (torch.tensor([float("nan")]), "NaN"),
    (torch.full((3, 2, 4, 8, 8), 0.5), "does not broadcast"),  # would grow the noise
    ("0.5", "number"),
])
def test_bad_gamma_is_refused(gamma: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        degrade(torch.zeros(2, 4, 8, 8), gamma, seed=0)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_map_costs_no_slow_import() -> None:
    """A first map used to cost 0.7 s: torch.broadcast_shapes imports sympy."""
    import subprocess
    import sys

    code = ("import sys, torch\nfrom warpnoise.diffusion import degrade\n"
            "degrade(torch.zeros(2, 4, 4), torch.zeros(4, 4), seed=0)\n"
            "print('sympy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


def test_something_to_draw_needs_a_seed_or_generator() -> None:
    with pytest.raises(ValueError, match=r"seed or a torch\.Generator"):
        degrade(torch.zeros(4, 8, 8), 0.5)


def test_degradation_map_area_averages_the_mask_to_the_latent_grid() -> None:
    mask = torch.zeros(16, 16)
    mask[:8, :8] = 1
    mask[8:12, 8:] = 1  # half of the bottom-right 8x8 blocks
    g = degradation_map(mask, inside=0.2, outside=0.7, size=(2, 2))
    torch.testing.assert_close(g, torch.tensor([[0.2, 0.7], [0.7, 0.45]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        degradation_map(mask * 2, 0.2, 0.7)


def test_read_degradation_map_scales_8_and_16_bit_images_and_checks_values(tmp_path) -> None:
    import cv2
    import numpy as np

    from warpnoise.latent.degradation import read_degradation_map

    ramp = np.array([[0, 51, 255]], np.uint8)
    cv2.imwrite(str(tmp_path / "g8.png"), ramp)
    cv2.imwrite(str(tmp_path / "g16.png"), ramp.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "rgb.png"), np.repeat(ramp[..., None], 3, axis=2))
    for name in ("g8.png", "g16.png", "rgb.png"):
        torch.testing.assert_close(read_degradation_map(tmp_path / name),
                                   torch.tensor([[0.0, 0.2, 1.0]]))
    np.save(tmp_path / "nan.npy", np.array([[0.1, np.nan]]))
    np.save(tmp_path / "rank3.npy", np.zeros((2, 2, 2)))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    for name, match in [("nan.npy", "NaN"), ("rank3.npy", r"must be \(H, W\)"),
                        ("junk.png", "cannot read"), ("missing.png", "does not exist")]:
        with pytest.raises(ValueError, match=match):
            read_degradation_map(tmp_path / name)

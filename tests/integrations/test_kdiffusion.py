"""Per-step warped noise: warped across frames, independent across draws, reproducible."""

from __future__ import annotations

import itertools

import pytest
import torch

from warpnoise.integrations.kdiffusion import WarpedNoiseSampler, warped_noise
from warpnoise.latent.layout import to_video_latents
from warpnoise.stats import shifted_correlation


def shift_flows(t: int, h: int, w: int, dx: float) -> torch.Tensor:
    """Backward flows of content moving ``dx`` px/frame to the right."""
    f = torch.zeros(t - 1, 2, h, w)
    f[:, 0] = -dx
    return f


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("method", ["bilinear", "integral"])
@pytest.mark.slow
def test_each_draw_follows_the_motion_and_draws_are_independent(method: str) -> None:
    ns = WarpedNoiseSampler(shift_flows(3, 48, 48, 2.0), 2, method, seed=0)
    a, b = ns(), ns(torch.tensor(2.0), torch.tensor(1.0))  # k-diffusion passes sigmas
    assert a.shape == b.shape == (3, 2, 48, 48)
    # An integer shift carries noise exactly: frame 1 at x equals frame 0 at x - 2.
    assert shifted_correlation(a[1], a[0], 2, 0) > 0.95
    assert abs(corr(a, b)) < 0.02
    assert abs(shifted_correlation(b[1], a[0], 2, 0)) < 0.05


def test_same_seed_same_chain_other_seed_other_chain() -> None:
    flows = shift_flows(3, 16, 16, 0.5)
    x = [WarpedNoiseSampler(flows, 3, "bilinear", seed=s) for s in (1, 1, 2)]
    draws = [[ns() for _ in range(3)] for ns in x]
    for p, q in zip(draws[0], draws[1], strict=True):
        torch.testing.assert_close(p, q)
    assert abs(corr(draws[0][0], draws[2][0])) < 0.05


@pytest.mark.slow
def test_prefetch_serves_independent_unit_normal_draws() -> None:
    ns = WarpedNoiseSampler(shift_flows(4, 32, 32, 1.0), 4, "integral", seed=0, prefetch=3)
    draws = [ns() for _ in range(4)]  # three from one warp, the fourth from the next
    for d in draws:
        assert d.shape == (4, 4, 32, 32)
        assert abs(float(d.std()) - 1) < 0.03
    for i in range(4):
        for j in range(i):
            assert abs(corr(draws[i], draws[j])) < 0.03


@pytest.mark.slow
def test_latent_factor_integrates_blocks_to_unit_normals() -> None:
    n = warped_noise(shift_flows(3, 64, 64, 1.5), 4, "integral", factor=8, seed=0)
    assert n.shape == (3, 4, 8, 8)
    big = warped_noise(shift_flows(2, 128, 128, 0.7), 4, "integral", factor=4, seed=1)
    assert abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1) < 0.05


def test_factor_must_divide_the_frame() -> None:
    with pytest.raises(ValueError, match="factor"):
        WarpedNoiseSampler(shift_flows(3, 20, 20, 1.0), 4, factor=8)


def test_video_latents_layouts_and_temporal_subsampling() -> None:
    noise = torch.randn(9, 4, 6, 5, generator=torch.Generator().manual_seed(0))
    bcfhw = to_video_latents(noise, "bcfhw", temporal_compression=4, batch_size=2)
    bfchw = to_video_latents(noise, "bfchw", temporal_compression=4)
    assert bcfhw.shape == (2, 4, 3, 6, 5)
    assert bfchw.shape == (1, 3, 4, 6, 5)
    for k, t in enumerate((0, 4, 8)):  # latent frame k is pixel frame k * r
        torch.testing.assert_close(bcfhw[1, :, k], noise[t])
        torch.testing.assert_close(bfchw[0, k], noise[t])


@pytest.mark.parametrize("kwargs, match", [
    ({"layout": "bchw"}, "layout"),
    ({"temporal_compression": 4, "layout": "bcfhw"}, "temporal compression"),
])
def test_video_latents_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        to_video_latents(torch.zeros(8, 4, 2, 2), **kwargs)


def test_k_diffusion_style_sampler_uses_one_draw_per_step() -> None:
    # k-diffusion's sample_euler_ancestral, reduced to its noise path.
    ns = WarpedNoiseSampler(shift_flows(3, 16, 16, 1.0), 3, "bilinear", seed=0)
    x = torch.zeros(3, 3, 16, 16)
    sigmas = torch.tensor([2.0, 1.0, 0.5, 0.0])
    for s, s_next in itertools.pairwise(sigmas):
        sigma_up = (s_next**2 * (s**2 - s_next**2) / s**2).sqrt()
        if s_next > 0:
            x = x + ns(s, s_next) * sigma_up
    assert ns.calls == 2
    ref = WarpedNoiseSampler(shift_flows(3, 16, 16, 1.0), 3, "bilinear", seed=0)
    expect = sum(ref() * (b**2 * (a**2 - b**2) / a**2).sqrt()
                 for a, b in ((sigmas[0], sigmas[1]), (sigmas[1], sigmas[2])))
    torch.testing.assert_close(x, expect)

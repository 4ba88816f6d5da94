"""The baselines' known defects are properties too (Chang et al. 2024, §5)."""

from __future__ import annotations

import math

import pytest
import torch

import warpnoise
from warpnoise.stats import frame_stats, shifted_correlation

from . import _flows as F

H = W = 128


def frames(method: str, flow: torch.Tensor, n: int, **options) -> list[torch.Tensor]:
    w = warpnoise.NoiseWarper(4, H, W, method=method, seed=0, **options)
    return [w.noise] + [w.step(flow) for _ in range(n)]


def test_bilinear_loses_variance_under_subpixel_motion() -> None:
    out = frames("bilinear", F.translation(H, W, 0.5, 0.5), 3)
    assert frame_stats(out[1]).std < 0.6  # one half-pixel step already averages 4 values
    assert frame_stats(out[3]).std < frame_stats(out[1]).std


def test_bicubic_loses_variance_and_correlates_neighbours() -> None:
    s = frame_stats(frames("bicubic", F.translation(H, W, 0.5, 0.5), 2)[2])
    assert s.std < 0.9 and abs(s.lag1_x) > 0.05


def test_nearest_duplicates_values_under_zoom_in() -> None:
    noise = frames("nearest", F.zoom(H, W, 1.2), 1)[1]
    values = noise[0].flatten()
    assert values.unique().numel() < 0.9 * values.numel()


def test_nearest_never_moves_under_slow_motion() -> None:
    out = frames("nearest", F.translation(H, W, 0.37, 0.0), 5)
    assert torch.equal(out[5][:, :, 8:], out[0][:, :, 8:])


def test_random_has_no_temporal_correlation() -> None:
    out = frames("random", F.translation(H, W, 1.0, 0.0), 2)
    assert abs(shifted_correlation(out[1], out[0], 1, 0)) < 0.02
    assert abs(shifted_correlation(out[1], out[0], 0, 0)) < 0.02


def test_fixed_does_not_move() -> None:
    out = frames("fixed", F.translation(H, W, 2.0, 0.0), 3)
    assert torch.equal(out[3], out[0])
    assert abs(shifted_correlation(out[3], out[0], 6, 0)) < 0.02


def test_interpolation_gives_fresh_noise_where_the_source_leaves_the_frame() -> None:
    out = frames("bilinear", F.translation(H, W, 3.0, 0.0), 1)
    entered = out[1][:, :, :3]
    assert abs(frame_stats(entered).std - 1.0) < 0.1
    assert abs(torch.corrcoef(torch.stack([entered.flatten(),
                                           out[0][:, :, :3].flatten()]))[0, 1]) < 0.1


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_pyoco_progressive_correlation_is_alpha_squared_ratio(alpha: float) -> None:
    out = frames("pyoco-progressive", F.translation(H, W, 1.0, 0.0), 2, alpha=alpha)
    expected = alpha / math.sqrt(1 + alpha * alpha)
    assert abs(shifted_correlation(out[1], out[0], 0, 0) - expected) < 0.02
    assert abs(frame_stats(out[2]).std - 1.0) < 0.01


def test_pyoco_mixed_frames_share_one_component() -> None:
    out = frames("pyoco-mixed", F.translation(H, W, 1.0, 0.0), 3, alpha=1.0)
    assert abs(shifted_correlation(out[3], out[1], 0, 0) - 0.5) < 0.02
    assert abs(frame_stats(out[0]).std - 1.0) < 0.01


def test_pyoco_rejects_negative_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        warpnoise.NoiseWarper(1, 8, 8, method="pyoco-mixed", alpha=-1.0)

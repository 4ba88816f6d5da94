from __future__ import annotations

import math

import pytest
import scipy.stats
import torch
import torch.nn.functional as tnf

from warpnoise.stats import frame_stats, ks_normal, morans_i, shifted_correlation


@pytest.mark.parametrize("shift", [0.0, 0.05])
def test_ks_matches_scipy(shift: float) -> None:
    x = torch.randn(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x + shift
    d, p = ks_normal(x)
    ref = scipy.stats.kstest(x.numpy(), "norm")
    assert math.isclose(d, ref.statistic, rel_tol=1e-9)
    assert math.isclose(p, ref.pvalue, rel_tol=0.05, abs_tol=1e-6)


def test_morans_i_is_null_for_white_noise_and_large_for_smooth_noise() -> None:
    g = torch.Generator().manual_seed(1)
    white = torch.randn(4, 96, 96, generator=g)
    assert abs(morans_i(white)[1]) < 4
    smooth = tnf.avg_pool2d(white[None], 3, stride=1, padding=1)[0]
    assert morans_i(smooth)[1] > 50


def test_frame_stats_flag_correlated_channels() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.randn(1, 64, 64, generator=g)
    noise = torch.cat([a, (a + torch.randn(1, 64, 64, generator=g)) / math.sqrt(2)])
    assert frame_stats(noise).channel_corr > 0.6


def test_shifted_correlation_undoes_a_shift() -> None:
    b = torch.randn(2, 40, 40, generator=torch.Generator().manual_seed(3))
    a = torch.roll(b, shifts=(2, -3), dims=(1, 2))  # content moved by (dx, dy) = (-3, 2)
    assert shifted_correlation(a, b, -3, 2) > 0.99
    assert abs(shifted_correlation(a, b, 0, 0)) < 0.05

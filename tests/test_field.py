from __future__ import annotations

import pytest
import torch

from warpnoise.field import block_integrate, conditional_upsample
from warpnoise.stats import frame_stats


@pytest.mark.parametrize("k", [2, 3, 8])
def test_conditional_upsampling_block_sums_reproduce_the_pixel(k: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 20, 24, generator=g)
    u = conditional_upsample(x, k, g)
    assert u.shape == (3, 20 * k, 24 * k)
    assert torch.allclose(block_integrate(u, k), x, atol=1e-5)


def test_conditional_upsampling_gives_iid_unit_normal_subpixels() -> None:
    g = torch.Generator().manual_seed(1)
    u = conditional_upsample(torch.randn(4, 48, 48, generator=g), 4, g)
    s = frame_stats(u)
    assert abs(s.mean) < 0.01 and abs(s.std - 1) < 0.01 and s.ks_p > 1e-3
    assert abs(s.lag1_x) < 0.01 and abs(s.lag1_y) < 0.01


def test_block_integration_keeps_unit_normal() -> None:
    g = torch.Generator().manual_seed(2)
    s = frame_stats(block_integrate(torch.randn(4, 768, 768, generator=g), 4))
    assert abs(s.std - 1) < 0.01 and abs(s.lag1_x) < 0.01


def test_block_integration_rejects_indivisible_sizes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        block_integrate(torch.zeros(1, 10, 12), 4)


def test_upsampling_rejects_zero_factor() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        conditional_upsample(torch.zeros(1, 2, 2), 0, None)

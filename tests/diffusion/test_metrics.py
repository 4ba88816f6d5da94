"""Warping error, PSNR and SSIM of edited videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from warpnoise.diffusion.metrics import detail_ratio, psnr, ssim, warping_error


def moving_clip(t: int = 4, dx: int = 2) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """A random texture translated ``dx`` px/frame to the right, with its exact flows."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (32, 32 + dx * t, 3), dtype=np.uint8)
    frames = np.stack([base[:, dx * (t - i):dx * (t - i) + 32] for i in range(t)])
    b = torch.zeros(t - 1, 2, 32, 32)
    b[:, 0] = -dx
    return frames, b, -b


def test_warping_error_is_zero_for_content_that_moves_with_the_flow() -> None:
    frames, b, f = moving_clip()
    err, per = warping_error(frames, b, f)
    assert err < 1e-6 and len(per) == 3


def test_warping_error_sees_flicker() -> None:
    frames, b, f = moving_clip()
    flicker = frames.copy()
    flicker[1::2] = 255 - flicker[1::2]
    assert warping_error(flicker, b, f)[0] > 0.2


def test_warping_error_checks_flow_count() -> None:
    frames, b, f = moving_clip()
    with pytest.raises(ValueError, match="flows"):
        warping_error(frames, b[:1], f[:1])


def test_psnr_and_ssim_of_identical_and_noisy_clips() -> None:
    frames, _, _ = moving_clip()
    assert psnr(frames, frames) == float("inf")
    assert ssim(frames, frames) == pytest.approx(1.0)
    noisy = np.clip(frames.astype(int) + 20, 0, 255).astype(np.uint8)
    assert 15 < psnr(frames, noisy) < 30
    assert ssim(frames, noisy) < 1.0


def test_detail_ratio_drops_for_blurred_frames() -> None:
    from scipy.ndimage import gaussian_filter

    frames, _, _ = moving_clip()
    blurred = gaussian_filter(frames.astype(float), (0, 1.5, 1.5, 0)).round().astype(np.uint8)
    assert detail_ratio(frames, frames) == pytest.approx(1.0)
    assert detail_ratio(blurred, frames) < 0.5
    with pytest.raises(ValueError, match="no detail"):
        detail_ratio(frames, np.zeros_like(frames))

"""Warping error, PSNR and SSIM of edited videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from warpnoise.editing.metrics import (
    detail_ratio,
    follows_motion,
    psnr,
    ssim,
    sticks_to_screen,
    warping_error,
)


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


# Synthetic "outputs": a smooth scene moving DX px/frame to the right plus detail of amplitude
# 0.05 that moves with it, sticks to the screen, is redrawn every frame, or moves blurred. The
# scene alone is the noise-free output. 6 frames of 64x64x3 = 73k values per pair: a
# correlation's standard error is ~0.004, so the 0.1 margins below cannot be crossed by chance.
DX, T, S = 2, 6, 64


def _strip(rng: np.random.Generator, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    x = rng.standard_normal((3, S, S + DX * T))
    return gaussian_filter(x, (0, sigma, sigma)) if sigma else x


def _moving(strip: np.ndarray) -> torch.Tensor:
    """Frame i shows ``strip`` shifted right by ``DX * i``: backward flow ``(-DX, 0)``."""
    return torch.from_numpy(np.stack([strip[:, :, DX * (T - i):DX * (T - i) + S]
                                      for i in range(T)])).float()


def synthetic_outputs() -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor,
                                 torch.Tensor]:
    rng = np.random.default_rng(0)
    smooth = _moving(_strip(rng, 4.0))
    scene = 0.5 + 0.2 * smooth / smooth.std()
    moves = _moving(_strip(rng, 0.0))
    sticks = moves[:1].expand(T, -1, -1, -1)
    fresh = torch.from_numpy(rng.standard_normal((T, 3, S, S))).float()
    blurred = _moving(_strip(rng, 1.5))  # what interpolated noise leaves: std ~0.2
    details = {"moves": moves, "sticks": sticks, "fresh": fresh, "blurred": blurred}
    outputs = {k: scene + 0.05 * v for k, v in details.items()}
    b = torch.zeros(T - 1, 2, S, S)
    b[:, 0] = -DX
    return scene, outputs, b, -b


def test_follows_motion_ranks_moving_detail_first_and_sticking_or_fresh_detail_near_zero(
) -> None:
    scene, out, b, f = synthetic_outputs()
    score = {k: follows_motion(v, scene, b, f)[0] for k, v in out.items()}
    assert score["moves"] > 0.99 and score["blurred"] > 0.9
    assert abs(score["sticks"]) < 0.1 and abs(score["fresh"]) < 0.1


def test_sticks_to_screen_ranks_fixed_detail_first_and_moving_or_fresh_detail_near_zero(
) -> None:
    scene, out, b, _ = synthetic_outputs()
    score = {k: sticks_to_screen(v, scene, b)[0] for k, v in out.items()}
    assert score["sticks"] > 0.99
    assert abs(score["moves"]) < 0.1 and abs(score["fresh"]) < 0.1
    # Blurred detail is correlated with itself DX px away: it sticks in part.
    assert 0.1 < score["blurred"] < score["sticks"]


def test_warping_error_cannot_tell_sticking_from_fresh_detail_but_the_detail_measures_can(
) -> None:
    scene, out, b, f = synthetic_outputs()
    we = {k: warping_error(v, b, f)[0] for k, v in out.items()}
    assert we["moves"] < 1e-6 and we["blurred"] < 1e-6
    assert we["sticks"] == pytest.approx(we["fresh"], rel=0.05)
    assert sticks_to_screen(out["sticks"], scene, b)[0] - sticks_to_screen(
        out["fresh"], scene, b)[0] > 0.9


def test_detail_ratio_ranks_blurred_detail_last() -> None:
    _, out, _, _ = synthetic_outputs()
    ratio = {k: detail_ratio(v, out["moves"]) for k, v in out.items()}
    assert ratio["blurred"] < 0.7
    assert all(0.9 < ratio[k] < 1.1 for k in ("moves", "sticks", "fresh"))


def test_sticks_to_screen_ignores_pixels_that_moved_less_than_half_a_pixel() -> None:
    scene, out, b, _ = synthetic_outputs()
    slow = b * 0.2  # 0.4 px/frame everywhere: nothing to judge
    value, per_pair = sticks_to_screen(out["sticks"], scene, slow)
    assert np.isnan(value) and all(np.isnan(per_pair))
    assert sticks_to_screen(out["sticks"], scene, slow, min_motion=0.3)[0] > 0.99


def test_detail_measures_check_shapes_and_flow_counts() -> None:
    scene, out, b, f = synthetic_outputs()
    with pytest.raises(ValueError, match="shapes differ"):
        follows_motion(out["moves"], scene[:, :, :32], b, f)
    with pytest.raises(ValueError, match="flows"):
        follows_motion(out["moves"], scene, b[:2], f[:2])
    with pytest.raises(ValueError, match="flows"):
        sticks_to_screen(out["moves"], scene, b[:2])

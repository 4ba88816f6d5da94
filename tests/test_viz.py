from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from warpnoise.viz import flow_to_rgb, noise_to_rgb, plot_covariance_maps, preview_frame


def test_still_flow_is_white() -> None:
    img = flow_to_rgb(torch.zeros(2, 4, 5))
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    assert (img == 255).all()


def test_direction_sets_hue_rightward_red_upward_blue() -> None:
    right = torch.zeros(2, 1, 1)
    right[0] = 1.0
    up = torch.zeros(2, 1, 1)
    up[1] = -1.0
    r = flow_to_rgb(right)[0, 0].astype(int)
    u = flow_to_rgb(up)[0, 0].astype(int)
    assert r[0] > 200 and r[2] < 60  # Middlebury wheel: +x is red
    assert u[2] > 200 and u[0] < 160  # -y (up) is blue-violet


def test_speed_sets_saturation_and_max_magnitude_clips() -> None:
    flow = torch.zeros(2, 1, 3)
    flow[0] = torch.tensor([0.5, 1.0, 4.0])
    img = flow_to_rgb(flow, max_magnitude=1.0).astype(int)
    # Green and blue fade as saturation grows; beyond max_magnitude it stays fully saturated.
    assert img[0, 0, 1] > img[0, 1, 1]
    np.testing.assert_array_equal(img[0, 1], img[0, 2])


def test_flow_shape_error_names_the_shape() -> None:
    with pytest.raises(ValueError, match=r"\(4, 5, 2\)"):
        flow_to_rgb(torch.zeros(4, 5, 2))


def test_noise_to_rgb_maps_three_sigma_to_full_range() -> None:
    noise = torch.tensor([0.0, 3.0, -3.0, 10.0]).view(1, 1, 4).expand(4, 1, 4).clone()
    img = noise_to_rgb(noise)
    assert img.shape == (1, 4, 3)
    assert list(img[0, :, 0]) == [128, 255, 0, 255]


def test_single_channel_noise_is_grey() -> None:
    img = noise_to_rgb(torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(0)))
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()


def test_preview_puts_input_flow_noise_side_by_side_and_enlarges_latent_noise() -> None:
    frame = np.full((16, 24, 3), 7, np.uint8)
    latent = torch.zeros(4, 2, 3)
    out = preview_frame(frame, torch.zeros(2, 16, 24), latent)
    assert out.shape == (16, 72, 3)
    np.testing.assert_array_equal(out[:, :24], frame)
    assert (out[:, 24:48] == 255).all()
    assert (out[:, 48:] == 128).all()


def test_covariance_plot_is_a_png(tmp_path: Path) -> None:
    spatial = np.zeros((3, 3))
    spatial[1, 1] = 1.0
    plot_covariance_maps(spatial, spatial * 0.5, tmp_path / "maps.png", title="t")
    assert (tmp_path / "maps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

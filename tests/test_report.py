from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from warpnoise.report import (
    MAX_RADIUS,
    MOTION_THRESHOLD,
    check_radius,
    covariance_maps,
    flows_to_noise_grid,
    noise_report,
)


def _iid(t: int = 4, c: int = 4, h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(t, c, h, w, generator=torch.Generator().manual_seed(seed))


def _scrolling(t: int = 4, c: int = 4, h: int = 48, w: int = 64) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Noise whose content moves right by 1 px per frame (fresh column entering), and its flows."""
    frames = [_iid(1, c, h, w, seed=0)[0]]
    for i in range(1, t):
        fresh = _iid(1, c, h, 1, seed=100 + i)[0]
        frames.append(torch.cat([fresh, frames[-1][..., :-1]], dim=-1))
    backward = torch.zeros(t - 1, 2, h, w)
    backward[:, 0] = -1.0
    return torch.stack(frames), backward


def test_iid_noise_passes_every_frame_check() -> None:
    rep = noise_report(_iid())
    assert rep.normal
    assert all(not f["fails"] for f in rep.frames)
    assert rep.moves is None
    assert "not checked" in rep.verdict()[1]


def test_shrunk_variance_fails_the_std_check() -> None:
    rep = noise_report(_iid() * 0.9)
    assert not rep.normal
    assert any("std" in msg for msg in rep.frames[0]["fails"])


def test_blurred_noise_fails_the_spatial_checks() -> None:
    x = _iid()
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False) * 3
    rep = noise_report(blurred)
    fails = " ".join(rep.frames[0]["fails"])
    assert "lag1_x" in fails and "Moran" in fails


def test_correlated_channels_fail_the_channel_check() -> None:
    x = _iid()
    x[:, 1] = (x[:, 0] + x[:, 1]) / 2**0.5
    rep = noise_report(x)
    assert any("channel" in m for m in rep.frames[0]["fails"])


def test_noise_moving_with_the_flow_is_detected() -> None:
    noise, backward = _scrolling()
    rep = noise_report(noise, backward)
    assert rep.moves is True
    assert rep.summary["temporal_corr_motion_median"] > 0.95
    assert abs(rep.summary["temporal_corr_static_median"]) < 0.05


def test_fresh_noise_each_frame_does_not_move() -> None:
    _, backward = _scrolling()
    rep = noise_report(_iid(), backward)
    assert rep.moves is False
    assert rep.summary["temporal_corr_motion_median"] < MOTION_THRESHOLD


def _partly_moving(t: int = 4, c: int = 4, h: int = 96, w: int = 96
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A video whose right third scrolls right by 2 px a frame while the rest stands still, as in
    a real clip with a static background: noise that follows it, and its flows (and a mask of
    the moving pixels)."""
    m0 = 2 * w // 3
    moving = torch.zeros(h, w, dtype=torch.bool)
    moving[:, m0:] = True
    frames = [_iid(1, c, h, w, seed=0)[0]]
    for i in range(1, t):
        nxt = frames[-1].clone()
        nxt[..., m0 + 2:] = frames[-1][..., m0:-2]
        nxt[..., m0:m0 + 2] = _iid(1, c, h, 2, seed=50 + i)[0]  # what enters the moving part
        frames.append(nxt)
    backward = torch.zeros(t - 1, 2, h, w)
    backward[:, 0, moving] = -2.0
    return torch.stack(frames), backward, moving


def test_noise_that_follows_a_partly_moving_video_moves() -> None:
    noise, backward, _ = _partly_moving()
    rep = noise_report(noise, backward)
    assert rep.moves is True
    assert rep.summary["moving_corr_motion_median"] > 0.9  # 2 of 32 columns enter fresh
    assert abs(rep.summary["moving_corr_static_median"]) < 0.05


@pytest.mark.parametrize("kind", ["fixed", "fresh where it moves"])
def test_noise_that_sticks_does_not_pass_as_moving(kind: str) -> None:
    """Fixed noise, or noise redrawn where the video moves (a frame-difference mask like
    Control-A-Video's), correlates highly along the motion over a static background: the
    moving pixels must tell it apart."""
    noise, backward, moving = _partly_moving()
    if kind == "fixed":
        stuck = noise[:1].expand_as(noise).clone()
    else:
        stuck = noise[:1].repeat(noise.shape[0], 1, 1, 1)
        fresh = _iid(noise.shape[0], h=noise.shape[2], w=noise.shape[3], seed=9)
        stuck[:, :, moving] = fresh[:, :, moving]
    rep = noise_report(stuck, backward)
    assert rep.summary["temporal_corr_motion_median"] > MOTION_THRESHOLD  # the old criterion
    assert rep.moves is False
    assert any("sticks" in line for line in rep.verdict())


@pytest.mark.slow
def test_occluded_pixels_are_excluded_and_counted() -> None:
    noise, backward = _scrolling()
    # A forward flow that disagrees everywhere in the left half: those pixels are disoccluded.
    forward = -backward.clone()
    forward[..., : 32] = 5.0
    rep = noise_report(noise, backward, forward)
    assert rep.temporal is not None
    assert all(s["occluded"] > 0.4 for s in rep.temporal)


def test_flows_of_pixel_frames_are_integrated_to_the_latent_grid() -> None:
    flows = torch.full((2, 2, 16, 24), 8.0)
    latent = flows_to_noise_grid(flows, 2, 3)
    torch.testing.assert_close(latent, torch.full((2, 2, 2, 3), 1.0))
    with pytest.raises(ValueError, match="integer multiple"):
        flows_to_noise_grid(flows, 5, 3)


def test_wrong_number_of_flows_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="expected 3"):
        noise_report(_iid(), torch.zeros(2, 2, 48, 64))


def test_covariance_maps_of_iid_noise_are_a_unit_spike() -> None:
    spatial, temporal = covariance_maps(_iid(), radius=2)
    assert spatial.shape == (5, 5) and temporal is not None
    assert abs(spatial[2, 2] - 1) < 0.02
    spatial[2, 2] = 0
    assert abs(spatial).max() < 0.02 and abs(temporal).max() < 0.02


def test_temporal_covariance_follows_the_motion() -> None:
    noise, backward = _scrolling()
    _, along = covariance_maps(noise, backward, radius=1)
    _, fixed = covariance_maps(noise, None, radius=1)
    assert along is not None and fixed is not None
    assert along[1, 1] > 0.95
    # Without flows the match sits one pixel to the left of the centre.
    assert fixed[1, 0] > 0.95 and abs(fixed[1, 1]) < 0.05


def test_constant_frame_fails_instead_of_crashing() -> None:
    x = _iid()
    x[2] = 0.0
    rep = noise_report(x)
    assert not rep.normal
    assert rep.frames[2]["fails"] == ["constant frame (zero variance)"]
    assert not rep.frames[1]["fails"]


@pytest.mark.parametrize(("radius", "message"), [
    (-1, "radius must be between 0 and 16, got -1"),
    (1000, "radius must be between 0 and 16, got 1000"),  # 1.2 TB before the check existed
    (8, "radius 8 does not fit frames of 20x8"),
])
def test_bad_radius_is_named_before_any_allocation(radius: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        covariance_maps(_iid(2, 1, 8, 20), radius=radius)
    if radius != 8:
        with pytest.raises(ValueError, match=message):
            check_radius(radius)


def test_covariance_maps_match_their_definition_up_to_the_frame_edge() -> None:
    noise, backward = _scrolling(t=2, c=2, h=7, w=9)
    r = min(MAX_RADIUS, 6)  # the largest radius 7-pixel-high frames allow
    spatial, temporal = covariance_maps(noise, backward, radius=r)
    a, b = noise[1].double(), noise[0].double()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            # Definition: mean of a(x) b(s(x) + d) over the pixels x whose s(x) and s(x) + d
            # are in the frame, s(x) = x + (-1, 0) along the motion (x = j, y = i).
            pairs = [(a[:, i, j] * b[:, i + dy, j - 1 + dx]) for i in range(7) for j in range(9)
                     if 0 <= j - 1 < 9 and 0 <= i + dy < 7 and 0 <= j - 1 + dx < 9]
            want = torch.cat(pairs).mean() if pairs else torch.tensor(float("nan"))
            assert temporal is not None
            assert torch.allclose(torch.tensor(temporal[dy + r, dx + r]), want, atol=1e-6,
                                  equal_nan=True), (dy, dx)
    assert spatial.shape == (2 * r + 1, 2 * r + 1)

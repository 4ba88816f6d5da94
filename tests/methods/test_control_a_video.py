"""Control-A-Video's residual noise (Chen et al. 2023): exact N(0, 1) per frame, static
pixels keep their noise bit for bit, changed pixels get independent noise, and the threshold τ
applies to the residual normalised by the maximum over the whole clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import warpnoise
from warpnoise.field import block_integrate
from warpnoise.methods import control_a_video as cav_module
from warpnoise.methods import needs_frames

from ._checks import exactness_failures

H = W = 192


def jumping_square(t: int, h: int = H, w: int = W, side: int = 96) -> np.ndarray:
    """``(t, h, w, 3)`` uint8: a static dark textured background and a white square jumping
    between the top-left and the bottom-right quadrant every frame (no overlap: every pixel of
    both quadrants changes by at least 155, everything else is identical)."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 101, (h, w, 3), dtype=np.uint8)
    out = np.repeat(background[None], t, axis=0)
    for i in range(t):
        y = x = 0 if i % 2 == 0 else side
        out[i, y:y + side, x:x + side] = 255
    return out


def run(frames: np.ndarray, h: int = H, w: int = W, **options) -> torch.Tensor:
    flows = torch.zeros(len(frames) - 1, 2, h, w)
    return warpnoise.warp_noise(flows, 4, "control-a-video", seed=0, frames=frames, **options)


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


@pytest.mark.slow
def test_every_frame_is_iid_standard_normal() -> None:
    noise = run(jumping_square(5))
    for t in range(5):
        assert exactness_failures(noise[t]) == [], t


def test_static_pixels_keep_their_noise_and_changed_ones_are_independent() -> None:
    frames = jumping_square(4)
    noise = run(frames)
    for t in range(1, 4):
        static = torch.from_numpy((frames[t] == frames[t - 1]).all(-1))
        assert torch.equal(noise[t][:, static], noise[t - 1][:, static])
        changed = ~static  # two 96x96 quadrants: 73k samples, standard error 0.004
        assert changed.sum() == 2 * 96 * 96
        for s in range(t):  # independent of every earlier frame's noise there
            assert abs(corr(noise[t][:, changed], noise[s][:, changed])) < 0.02


def ramp_clip(h: int = 64, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Frames whose residuals are known: ``v`` takes the values ``(k + 1/2) / n``, k < n (shuffled;
    no value within float rounding of a tested threshold), pair 1 changes by ``v / 4`` and pair 2
    by ``v``. Returns the frames and the normalised residual ``v / max v``: the clip's maximum is
    pair 2's, so pair 1's normalised residual is a quarter of it (a per-pair maximum would give
    the same for both)."""
    n = h * w
    order = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    v = ((order.double() + 0.5) / n).view(h, w).numpy()
    f0 = np.zeros((h, w, 3), np.float32)
    f1 = f0 + 0.25 * v[..., None]
    f2 = f1 + v[..., None]
    return np.stack([f0, f1, f2]).astype(np.float32), v / v.max()


def tau_mismatches(tau: float) -> int:
    """Pixels whose renewal disagrees with ``r > τ`` on the globally normalised residual."""
    frames, v = ramp_clip()
    noise = run(frames, 64, 64, tau=tau)
    mismatches = 0
    for t, r in ((1, 0.25 * v), (2, v)):
        renewed = (noise[t] != noise[t - 1]).all(0).numpy()
        kept = (noise[t] == noise[t - 1]).all(0).numpy()
        assert (renewed | kept).all()  # never a mix of old and new
        mismatches += int((renewed != (r > tau)).sum())
    return mismatches


@pytest.mark.parametrize("tau", [0.0, 0.1, 0.2, 0.5])
def test_tau_thresholds_the_residual_normalised_over_the_whole_clip(tau: float) -> None:
    assert tau_mismatches(tau) == 0


def test_larger_tau_keeps_more_of_the_previous_noise() -> None:
    frames, _ = ramp_clip()
    kept = [float((n[2] == n[1]).float().mean())
            for n in (run(frames, 64, 64, tau=tau) for tau in (0.05, 0.1, 0.3, 0.9))]
    assert kept == sorted(kept) and kept[0] < 0.1 and kept[-1] > 0.85


def test_a_per_pair_normalisation_fails_the_tau_check(monkeypatch) -> None:
    """The check is not vacuous: normalising each pair by its own maximum (not the clip's)
    renews the wrong pixels of pair 1."""
    real = cav_module.residual_mask

    def per_pair(previous, current, scale, grid, tau):
        return real(previous, current, float((current - previous).abs().max()), grid, tau)

    monkeypatch.setattr(cav_module, "residual_mask", per_pair)
    assert tau_mismatches(0.1) > 1000


def test_the_mask_is_made_on_the_block_grid_so_latent_noise_is_the_method_there() -> None:
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    frames[1, :, :20] = 200  # changes the first 20 columns: latent columns 0-2 of 8
    frames[2] = frames[1]
    frames[2, 40:, 40:] = 90
    noise = run(frames, 64, 64, block=8)
    renewed = (noise[1] != noise[0]).all(0)
    cells = renewed.view(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(8, 8, 64)
    assert bool((cells.all(-1) | ~cells.any(-1)).all())  # whole 8x8 cells, never part of one
    latent = block_integrate(noise, 8)
    assert torch.equal(latent[1][:, :, 3:], latent[0][:, :, 3:])
    assert not (latent[1][:, :, :2] == latent[0][:, :, :2]).any()


def test_frames_of_another_size_are_resized_to_the_noise_grid() -> None:
    frames = jumping_square(3)  # 192x192 frames, 96x96 noise: quadrants of 48x48 cells
    noise = run(frames, 96, 96)
    renewed = (noise[1] != noise[0]).all(0)
    assert renewed[:48, :48].all() and renewed[48:, 48:].all()
    assert not renewed[:48, 48:].any() and not renewed[48:, :48].any()


def test_a_static_clip_keeps_the_first_noise() -> None:
    noise = run(np.zeros((3, 16, 16, 3), np.uint8), 16, 16)
    assert torch.equal(noise[2], noise[0])


def test_it_is_declared_frame_guided() -> None:
    assert needs_frames("control-a-video") and not needs_frames(warpnoise.DEFAULT_METHOD)


@pytest.mark.parametrize(("options", "message"), [
    ({}, "needs the video's frames"),
    ({"frames": iter(np.zeros((2, 8, 8, 3)))}, "re-iterable"),
    ({"frames": np.zeros((2, 8, 8, 3)), "tau": 1.5}, "tau must be"),
    ({"frames": np.zeros((2, 8, 8, 3)), "tau": float("nan")}, "tau must be"),
    ({"frames": np.zeros((2, 8, 8, 3)), "block": 3}, "not divisible by block 3"),
    ({"frames": np.zeros((2, 8, 8)), "block": 1}, r"must be \(H, W, C\)"),
    ({"frames": [np.zeros((8, 8, 3)), np.zeros((8, 9, 3))]}, "frame 1 has shape"),
    ({"frames": np.full((2, 8, 8, 3), np.nan)}, "NaN"),
])
def test_bad_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        warpnoise.NoiseWarper(2, 8, 8, "control-a-video", **options)


def test_more_noise_frames_than_video_frames_is_an_error() -> None:
    w = warpnoise.NoiseWarper(2, 8, 8, "control-a-video", frames=np.zeros((2, 8, 8, 3)))
    w.step(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="more frames than the clip"):
        w.step(torch.zeros(2, 8, 8))

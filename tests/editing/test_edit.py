"""Editing frames with the bundled model: shapes, the SR task, memory-capped prefetch, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from warpnoise.diffusion import video
from warpnoise.editing.edit import EditOptions, bicubic_up, downsample, edit_frames
from warpnoise.editing.sr import is_sr_model


def frames(t: int = 3, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8)


def test_downsample_then_bicubic_restores_the_size() -> None:
    x = frames(2, 32)
    assert downsample(x, 4).shape == (2, 8, 8, 3)
    assert bicubic_up(downsample(x, 4), 4).shape == x.shape
    flat = np.full((1, 8, 8, 3), 77, np.uint8)
    assert (downsample(flat, 4) == 77).all() and (bicubic_up(flat, 4) == 77).all()


@pytest.mark.slow
def test_prefetch_capped_by_memory_still_edits_reproducibly(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    opts = EditOptions(method="bilinear", steps=4, strength=0.5, batch_size=None)
    zero = torch.zeros(2, 2, 16, 16)
    full = edit_frames(frames(), opts, flows=(zero, zero)).frames
    monkeypatch.setattr(video, "PREFETCH_BYTES", 1)  # one draw per warp
    one = edit_frames(frames(), opts, flows=(zero, zero)).frames
    assert full.shape == one.shape == (3, 16, 16, 3)
    # Different chunking of the seed chain gives different, equally valid noise; same seed,
    # same chunking gives the same video.
    again = edit_frames(frames(), opts, flows=(zero, zero)).frames
    np.testing.assert_array_equal(one, again)


def test_a_method_that_ignores_flows_gets_none_estimated(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """control-a-video edits the same with no flow estimated as with given zero flows."""
    opts = EditOptions(method="control-a-video", steps=2, strength=0.5)
    zero = torch.zeros(2, 2, 16, 16)
    given = edit_frames(frames(), opts, flows=(zero, zero)).frames

    def no_flow(*args: object, **kwargs: object) -> None:
        raise AssertionError("a flow was estimated for a method that ignores flows")

    monkeypatch.setattr("warpnoise.estimate.estimate_flows", no_flow)
    np.testing.assert_array_equal(edit_frames(frames(), opts).frames, given)


@pytest.mark.parametrize("bad, match", [
    (frames(1), "at least 2 frames"),
    (frames(3, 12), "divisible by 8"),
    (frames().astype(np.float32), "uint8"),
])
def test_bad_frames_are_refused(bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        edit_frames(bad, EditOptions(steps=2))


def test_sr4_samples_with_the_bundled_conditional_model(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = video.super_resolve

    def spy(net, scheduler, up, noise, **kw):
        calls.append((net, up.shape))
        return real(net, scheduler, up, noise, **kw)

    monkeypatch.setattr(video, "super_resolve", spy)
    zero = torch.zeros(1, 2, 40, 40)
    out = edit_frames(frames(2, 10), EditOptions(task="sr4", steps=2), flows=(zero, zero))
    assert out.frames.shape == (2, 40, 40, 3) and out.noise.shape == (2, 3, 40, 40)
    assert len(calls) == 1 and is_sr_model(calls[0][0]) and calls[0][1] == (2, 3, 40, 40)


def test_bad_batch_size_is_refused() -> None:
    with pytest.raises(ValueError, match="batch size"):
        EditOptions(batch_size=0).check()


def test_noise_free_edit_is_the_same_whatever_the_method_and_seed() -> None:
    zero = torch.zeros(1, 2, 40, 40)
    lr = frames(2, 10)
    runs = [edit_frames(lr, EditOptions(method=m, task="sr4", steps=4, strength=0.5, seed=s),
                        flows=(zero, zero), noise_free=True).frames
            for m, s in (("random", 0), ("fixed", 7))]
    np.testing.assert_array_equal(runs[0], runs[1])
    noisy = edit_frames(lr, EditOptions(method="random", task="sr4", steps=4, strength=0.5),
                        flows=(zero, zero)).frames
    assert not np.array_equal(noisy, runs[0])  # the noise changes what the zero draws give


def test_noise_free_edit_is_the_sampler_fed_zeros() -> None:
    from diffusers import DDIMScheduler

    from warpnoise.editing.edit import to_model, to_uint8
    from warpnoise.editing.sr import load_sr_model, super_resolve

    net, sched = load_sr_model()
    lr = frames(2, 10)
    got = edit_frames(lr, EditOptions(task="sr4", steps=4, strength=0.5), unet=net,
                      scheduler=sched, noise_free=True).frames
    up = to_model(bicubic_up(lr, 4))
    want = super_resolve(net, DDIMScheduler.from_config(sched.config), up,
                         lambda *_: torch.zeros_like(up), strength=0.5, steps=4)
    np.testing.assert_array_equal(got, to_uint8(want))

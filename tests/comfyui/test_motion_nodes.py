"""The "Warped Noise from Motion" node loaded as ComfyUI loads the pack, run on the bundled
sample's first frame with the bundled example motion, its NOISE fed to the simulated sampler."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.comfyui._pack import RecordingGuider, load_pack, run_node, sampler_custom_advanced
from tests.io._clips import sample_path
from warpnoise import motion
from warpnoise.io.video import read_frames
from warpnoise.report import noise_report

pack = load_pack()
FromMotion = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromMotion"]


def test_example_motion_gives_noise_animation_and_masks_the_sampler_takes() -> None:
    first = torch.from_numpy(read_frames(sample_path(), frames=1)).float() / 255
    text = Path(motion.example_path()).read_text()
    noise, latent, animation, masks = run_node(FromMotion, image=first, motion=text, frames=0,
                                               seed=2, degradation=0.5)
    assert tuple(latent["samples"].shape) == (1, 16, 13, 24, 32)
    assert animation.shape == (49, 192, 256, 3) and masks.shape == (49, 192, 256)
    guider = RecordingGuider()
    sampler_custom_advanced(noise, guider, torch.tensor([1.0, 0.5, 0.0]),
                            {"samples": torch.zeros(1, 16, 13, 24, 32)})
    x = guider.calls[0]["noise"][0].permute(1, 0, 2, 3)
    report = noise_report(x)
    assert all(not fr["fails"] for fr in report.frames)


def test_camera_widgets_without_motion_text() -> None:
    image = torch.rand(1, 48, 64, 3)
    _, latent, animation, masks = run_node(FromMotion, image=image, frames=9, zoom=1.2,
                                           model="sd")
    assert tuple(latent["samples"].shape) == (9, 4, 6, 8)
    assert animation.shape == (9, 48, 64, 3) and float(masks.max()) == 0.0

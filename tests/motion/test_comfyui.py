"""The motion node's work: the same latent noise as ``warpnoise motion --latent``, the animation
and the union of the layers' masks in ComfyUI's formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.io._clips import texture
from warpnoise import motion
from warpnoise.integrations.comfyui import arrange
from warpnoise.io.noisefile import load_latents
from warpnoise.motion.comfyui import ExactPairs, camera_or_file, noise_from_motion
from warpnoise.pipeline import NoiseOptions

from ._scenes import drag


def test_node_noise_is_the_command_line_noise(tmp_path: Path) -> None:
    spec = motion.parse(drag(1.5, 0.5, frames=9, zoom=1.1))
    image = texture(64, 96, seed=3)
    out = noise_from_motion(torch.from_numpy(image).float()[None] / 255, spec, "wan2.1", seed=5,
                            degradation=0.3)
    res = motion.write(image, motion.scene(spec, (96, 64)), tmp_path,
                       NoiseOptions(latent="wan2.1", seed=5, degradation=0.3))
    latents, _ = load_latents(res.noise.output)
    assert torch.equal(arrange(out.noise, "diffusers"), latents)
    assert out.animation.shape == (9, 64, 96, 3) and out.masks.shape == (9, 64, 96)
    frames = [fr for fr in motion.render(motion.scene(spec, (96, 64)), image)]
    assert torch.equal(out.animation[4], torch.from_numpy(frames[4].image).float() / 255)
    assert torch.allclose(out.masks[4], torch.from_numpy(frames[4].masks[0]))


def test_camera_widgets_when_the_text_is_blank() -> None:
    spec = camera_or_file("  ", 17, (4.0, -2.0), 1.3, 10.0)
    assert spec.frames == 17 and spec.camera.keyframes[0].zoom == 1.3
    assert camera_or_file('{"frames": 9}', 0, (0, 0), 1, 0).frames == 9
    assert camera_or_file('{"frames": 9}', 13, (0, 0), 1, 0).frames == 13
    with pytest.raises(ValueError, match="JSON syntax error at line 1"):
        camera_or_file('{"frames": }', 0, (0, 0), 1, 0)


def test_clip_the_model_refuses_names_the_motion() -> None:
    spec = motion.parse(drag(1, 0, frames=8))
    with pytest.raises(ValueError, match="the motion's frames"):
        noise_from_motion(torch.zeros(1, 64, 64, 3), spec, "wan2.1")


def test_exact_pairs_refuses_more_pairs_than_the_motion_has() -> None:
    pairs = ExactPairs(motion.scene(motion.parse(drag(1, 0, frames=2)), (32, 32)))
    frame = np.zeros((32, 32, 3), np.uint8)
    b, f = pairs(frame, frame)
    assert b.shape == f.shape == (2, 32, 32)
    with pytest.raises(ValueError, match="more frame pairs"):
        pairs(frame, frame)

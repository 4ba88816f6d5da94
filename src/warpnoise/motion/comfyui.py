"""The motion node's work for ComfyUI: a first frame and a motion to latent noise, the driving
animation and the layers' masks.

The noise is made by :func:`warpnoise.integrations.comfyui.latent_noise_from_images` on the rendered
animation, with :class:`ExactPairs` in place of an optical-flow estimator: the same pieces and
bits as ``warpnoise motion IMAGE MOTION --latent MODEL --degradation γ --seed SEED``.

Convention:
    ComfyUI's IMAGE is ``[B, H, W, C]`` float in [0, 1] (the first of the batch is the first
    frame), MASK ``[B, H, W]`` float in [0, 1]. The masks output holds, per animation frame, the
    share of each pixel in which any layer is seen (the union of the layers' masks: the mask
    video Go-with-the-Flow's tools write).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..integrations.comfyui import LatentNoise, frame_rgb8, latent_noise_from_images
from ..latent.presets import LatentPreset, check_video, latent_preset
from .flows import flows
from .render import render
from .scene import Scene, scene
from .spec import Motion, parse

__all__ = ["ExactPairs", "MotionOutputs", "camera_or_file", "noise_from_motion"]


class ExactPairs:
    """A pair estimator (``(prev, cur) -> (backward, forward)``) that knows the answer: the
    exact flows of the scene's consecutive frames, handed out in order. Called once per pair of
    the rendered animation, frames 0-1 first; a call past the last pair is an error."""

    def __init__(self, sc: Scene) -> None:
        self._steps = flows(sc)

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> tuple[Tensor, Tensor]:
        step = next(self._steps, None)
        if step is None:
            raise ValueError("more frame pairs than the motion has")
        return step.backward, step.forward


@dataclass
class MotionOutputs:
    """The node's outputs: ``noise`` (latent frames), ``animation`` ``[T, H, W, 3]`` and
    ``masks`` ``[T, H, W]`` float32 in [0, 1]."""

    noise: LatentNoise
    animation: Tensor
    masks: Tensor


def camera_or_file(text: str, frames: int, pan: tuple[float, float], zoom: float,
                   rotate: float) -> Motion:
    """The motion in ``text`` (JSON; ``frames`` > 0 overrides its frame count), or with ``text``
    blank a camera move over ``frames`` frames (:func:`warpnoise.motion.camera_move`)."""
    from . import camera_move

    if text.strip():
        spec = parse(text, "motion")
        return spec if frames <= 0 else spec.with_frames(frames)
    if frames < 2:
        raise ValueError(f"frames must be at least 2 for a camera move, got {frames}")
    return camera_move(frames, pan=pan, zoom=zoom, rotate=rotate)


def noise_from_motion(
    image: Tensor,
    spec: Motion,
    model: str | LatentPreset,
    *,
    seed: int = 0,
    degradation: float = 0.0,
    device: str = "cpu",
    on_frame: Callable[[int, int], None] | None = None,
) -> MotionOutputs:
    """Latent noise, animation and masks for ``spec`` moving the first frame of ``image``.

    Raises:
        ValueError: a bad image, motion, or a clip the model's rules refuse (naming the motion's
            frames or size), before any work.
    """
    if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[0] < 1:
        raise ValueError(f"image must be a ComfyUI IMAGE [B, H, W, C], got "
                         f"{tuple(getattr(image, 'shape', ()))}")
    size = None if spec.size is None else (int(spec.size[0]), int(spec.size[1]))
    first = frame_rgb8(image[0], size)
    sc = scene(spec, (first.shape[1], first.shape[0]))
    p = latent_preset(model)
    try:
        check_video(p, sc.frames, sc.height, sc.width)
    except ValueError as e:
        # The rule's hints name the CLI's flags; here the motion's fields set those values.
        msg = re.sub(r"\(--frames( \d+)?\)", "(the motion's frames)", str(e))
        raise ValueError(msg.replace("(--size)", "(the motion's size, or resize the image)")
                         ) from None
    frames = [fr for fr in render(sc, first)]
    animation = torch.from_numpy(np.stack([fr.image for fr in frames])).float() / 255.0
    masks = torch.from_numpy(np.stack([fr.masks.sum(0) for fr in frames]).clip(0, 1))
    noise = latent_noise_from_images(animation, p, estimator=ExactPairs(sc), seed=seed,
                                     degradation=degradation, device=device, on_frame=on_frame)
    return MotionOutputs(noise, animation, masks.float())

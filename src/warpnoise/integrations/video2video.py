"""Video-to-video with warped noise: SDEdit for video models that take ``latents=``.

diffusers' Wan and CogVideoX video-to-video pipelines encode the video, draw their own noise and
noise the latents to the step where ``strength`` starts; they refuse ``video`` and ``latents``
together. But given ``latents`` alone they skip that stage and denoise from the same
intermediate step. So warped noise enters by building those latents here, exactly as the
pipeline would have with ours in place of ``randn_tensor``:

    z0 = normalise(VAE.encode(video))             (posterior mode: no noise we do not control)
    x  = σ ε + (1 − σ) z0                          flow matching (Wan), σ of the first kept step
    x  = sqrt(ᾱ_t) z0 + sqrt(1 − ᾱ_t) ε           diffusion (CogVideoX)

then ``pipe(prompt, latents=x, strength=s, num_inference_steps=n, height=H, width=W)`` with the
same ``s`` and ``n``. ``ε`` is :func:`~warpnoise.diffusion.latents_for`'s tensor for the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..latent.presets import LatentPreset, latent_preset
from .sdedit import noise_to, sdedit_timesteps

__all__ = ["encode_video", "video_preset", "video_to_video_latents"]


def video_preset(pipe: Any) -> LatentPreset:
    """The latent preset of a loaded Wan or CogVideoX pipeline (by class, VAE channels and
    transformer temporal patch)."""
    name = type(pipe).__name__
    if name.startswith("Wan"):
        spatial = int(getattr(pipe, "vae_scale_factor_spatial", 8))
        return latent_preset("wan2.2-ti2v-5b" if spatial == 16 else "wan2.1")
    if name.startswith("CogVideoX"):
        patch_t = getattr(pipe.transformer.config, "patch_size_t", None)
        return latent_preset("cogvideox1.5" if patch_t else "cogvideox")
    raise ValueError(f"{name} is not a Wan or CogVideoX pipeline; pass model= (a preset name)")


@torch.no_grad()
def encode_video(pipe: Any, frames: Tensor, model: str | LatentPreset | None = None) -> Tensor:
    """``z0``: the clip encoded and normalised as the model's pipeline does, in its layout.

    Wan: ``(z − latents_mean) / latents_std`` per channel, ``(1, C, F, h, w)``; CogVideoX:
    ``z · scaling_factor``, ``(1, F, C, h, w)``. The posterior *mode* is used (Wan's own choice;
    CogVideoX's pipeline samples the posterior, which would add noise we do not control).

    Convention:
        ``frames`` is ``(T, 3, H, W)`` in [-1, 1], frame order = time, ``T`` following the
        model's frame rule.
    """
    p = video_preset(pipe) if model is None else latent_preset(model)
    vae = pipe.vae
    video = frames.permute(1, 0, 2, 3).unsqueeze(0).to(vae.device, vae.dtype)  # (1, 3, T, H, W)
    z = vae.encode(video).latent_dist.mode().float()
    if p.name.startswith("wan"):
        shape = (1, z.shape[1], 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean, device=z.device).view(shape)
        std = torch.tensor(vae.config.latents_std, device=z.device).view(shape)
        return (z - mean) / std
    if p.name.startswith("cogvideox"):
        return (z * vae.config.scaling_factor).permute(0, 2, 1, 3, 4)
    raise ValueError(f"no video-to-video encoding for {p.title}")


def video_to_video_latents(
    pipe: Any,
    frames: Tensor,
    noise: Tensor,
    *,
    strength: float,
    num_inference_steps: int,
    model: str | LatentPreset | None = None,
) -> Tensor:
    """The ``latents=`` that make ``pipe`` edit ``frames`` from step ``strength`` with ``noise``.

    Pass the result to the pipeline with the same ``strength`` and ``num_inference_steps`` (and
    no ``video``): it skips its own encoding and noising and denoises from the same step.

    Convention:
        ``frames`` ``(T, 3, H, W)`` in [-1, 1]; ``noise`` the pipeline-layout tensor of
        :func:`~warpnoise.diffusion.latents_for` for the same model and clip (batch 1). Returns a
        tensor of ``noise``'s shape, float32.

    Raises:
        ValueError: ``noise`` not of the encoded video's shape, bad ``strength``/steps.
    """
    z0 = encode_video(pipe, frames, model)
    if tuple(noise.shape) != tuple(z0.shape):
        raise ValueError(f"noise has shape {tuple(noise.shape)} but the encoded video is "
                         f"{tuple(z0.shape)}: make it with latents_for for this model and clip")
    # A fresh scheduler of the same config: the pipeline's own keeps no state from us.
    sched = type(pipe.scheduler).from_config(pipe.scheduler.config)
    timesteps, _ = sdedit_timesteps(sched, num_inference_steps, strength, z0.device)
    return noise_to(sched, z0, noise.to(z0), timesteps[:1].repeat(z0.shape[0]))

"""Diffusion hooks: warped noise into k-diffusion samplers and diffusers models.

- :class:`WarpedNoiseSampler`: a k-diffusion ``noise_sampler(sigma, sigma_next)`` serving a fresh
  warped ``(T, C, h, w)`` sequence per call (per step), at pixel or latent resolution.
- :func:`sdedit`: SDEdit for video with a diffusers UNet/transformer + scheduler (+ VAE, text
  embeddings), every noise draw ours (``add_noise``/``scale_noise``, ``variance_noise``, or own
  DDPM / Euler-ancestral steps).
- :func:`to_video_latents`: warped noise as ``latents=`` for AnimateDiff/Wan ``[B, C, F, H, W]`` and
  CogVideoX ``[B, F, C, H, W]``.
- :func:`latents_for` and :data:`PRESETS`: warped noise as the exact ``latents=`` tensor of Wan,
  CogVideoX, HunyuanVideo, LTX-Video, SD/SDXL and Flux pipelines (frame and size rules checked).
- :func:`degrade`: Go-with-the-Flow's degradation γ, blending in fresh noise, exactly N(0, 1).
- :func:`video_to_video_latents`: SDEdit for Wan/CogVideoX video pipelines, ``latents=`` noised
  to the step ``strength`` starts from with our noise.
- :func:`load_edit_model`: a pretrained diffusers UNet pipeline (folder or hub id) for
  :func:`sdedit`, as ``warpnoise edit --model`` uses it.
- :func:`load_denoiser`: the small pixel-space model the project trains and bundles.

Needs the ``diffusion`` extra (``pip install 'warpnoise[diffusion]'``) for diffusers models.
"""

from __future__ import annotations

from .degradation import degradation_map, degrade
from .latents import (
    PRESETS,
    LatentPreset,
    arrange_latents,
    check_video,
    keeps_frame,
    latent_preset,
    latents_for,
    split_latents,
)
from .model import load_denoiser
from .noise import WarpedNoiseSampler, to_video_latents, warped_noise
from .pipelines import EditModel, load_edit_model
from .sdedit import ddpm_step, euler_ancestral_step, noise_to, sdedit, sdedit_timesteps
from .video2video import encode_video, video_to_video_latents

__all__ = [
    "PRESETS",
    "EditModel",
    "LatentPreset",
    "WarpedNoiseSampler",
    "arrange_latents",
    "check_video",
    "ddpm_step",
    "degradation_map",
    "degrade",
    "encode_video",
    "euler_ancestral_step",
    "keeps_frame",
    "latent_preset",
    "latents_for",
    "load_denoiser",
    "load_edit_model",
    "noise_to",
    "read_degradation_map",
    "sdedit",
    "sdedit_timesteps",
    "split_latents",
    "to_video_latents",
    "video_to_video_latents",
    "warped_noise",
]

"""Latent targets: what a video model's ``latents=`` takes, below the noise pipeline.

- :mod:`.presets`: per-model presets (Wan, CogVideoX, HunyuanVideo, LTX-Video, SD/SDXL, Flux):
  channels, spatial and temporal factors, frame and size rules, layout and token packing.
- :mod:`.layout`: a ``(T, C, H, W)`` sequence as ``(B, C, F, H, W)`` or ``(B, F, C, H, W)``.
- :mod:`.degradation`: Go-with-the-Flow's degradation γ, blending in fresh noise, exactly N(0, 1).

Nothing here imports the pipeline or a diffusion library: the pipeline, the editing tools and
the integrations all build on these.
"""

from __future__ import annotations

from .degradation import check_degradation, degradation_map, degrade, read_degradation_map
from .layout import to_video_latents
from .presets import (
    PRESETS,
    LatentPreset,
    arrange_latents,
    check_video,
    keeps_frame,
    latent_preset,
    latents_for,
    split_latents,
)

__all__ = [
    "PRESETS",
    "LatentPreset",
    "arrange_latents",
    "check_degradation",
    "check_video",
    "degradation_map",
    "degrade",
    "keeps_frame",
    "latent_preset",
    "latents_for",
    "read_degradation_map",
    "split_latents",
    "to_video_latents",
]

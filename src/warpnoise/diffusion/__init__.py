"""The names of warpnoise 0.x's ``warpnoise.diffusion``, kept so that code written for them runs.

The code lives by what it serves: :mod:`warpnoise.latent` (latent presets, layouts and
degradation, below the pipeline), :mod:`warpnoise.editing` (editing with the bundled or
pretrained models, their metrics and the demo) and :mod:`warpnoise.integrations` (k-diffusion,
video-to-video, ComfyUI). ``warpnoise.diffusion.X`` for each former module ``X`` is that module
(the same object, so patching one patches the other).
"""

from __future__ import annotations

import importlib
import sys

#: Former module name -> where the module lives now.
MOVED = {
    "latents": "warpnoise.latent.presets",
    "degradation": "warpnoise.latent.degradation",
    "noise": "warpnoise.integrations.kdiffusion",
    "model": "warpnoise.editing.denoiser",
    "sr": "warpnoise.editing.sr",
    "sdedit": "warpnoise.integrations.sdedit",
    "pipelines": "warpnoise.editing.models",
    "video": "warpnoise.editing.edit",
    "metrics": "warpnoise.editing.metrics",
    "demo": "warpnoise.editing.demo",
    "comfyui": "warpnoise.integrations.comfyui",
    "video2video": "warpnoise.integrations.video2video",
}

for _old, _new in MOVED.items():
    _module = importlib.import_module(_new)
    sys.modules[f"{__name__}.{_old}"] = _module
    globals()[_old] = _module

from ..editing.denoiser import load_denoiser  # noqa: E402
from ..editing.models import EditModel, load_edit_model  # noqa: E402
from ..integrations.kdiffusion import WarpedNoiseSampler, warped_noise  # noqa: E402
from ..integrations.sdedit import (  # noqa: E402
    ddpm_step,
    euler_ancestral_step,
    noise_to,
    sdedit,
    sdedit_timesteps,
)
from ..integrations.video2video import encode_video, video_to_video_latents  # noqa: E402
from ..latent import (  # noqa: E402
    PRESETS,
    LatentPreset,
    arrange_latents,
    check_video,
    degradation_map,
    degrade,
    keeps_frame,
    latent_preset,
    latents_for,
    read_degradation_map,
    split_latents,
    to_video_latents,
)

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

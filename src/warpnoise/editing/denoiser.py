"""The bundled pixel-space denoiser: a small diffusers ``UNet2DModel`` trained by the project.

The model predicts the noise ε of ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε`` (DDPM, Ho et al. 2020,
Eq. 4 and 14) for RGB images in [-1, 1], with diffusers' default linear β schedule over 1000 steps.
It was trained on crops of real images (scikit-image's sample images and excerpts of OpenCV's
sample videos, see ``scripts/train_denoiser.py``); it is fully convolutional, so it runs at any
size divisible by 8.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch

__all__ = ["BUNDLED_CONFIG", "BUNDLED_WEIGHTS", "denoiser_config", "load_denoiser", "new_denoiser",
           "read_weights", "save_denoiser"]

BUNDLED_WEIGHTS = "denoiser.safetensors"
BUNDLED_CONFIG = "denoiser.json"

#: Architecture of the bundled model (diffusers ``UNet2DModel`` keyword arguments).
_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [32, 64, 128, 128],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D"] * 4,
    "up_block_types": ["UpBlock2D"] * 4,
    "norm_num_groups": 16,
}
#: Noise schedule of the bundled model (diffusers ``DDPMScheduler`` keyword arguments).
_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
    "clip_sample": False,
}


def _require_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the diffusion features need diffusers: pip install 'warpnoise[diffusion]'"
        ) from e
    return diffusers


def denoiser_config() -> dict[str, Any]:
    """The ``{"unet": ..., "scheduler": ...}`` configuration of the bundled denoiser."""
    return {"unet": dict(_UNET), "scheduler": dict(_SCHEDULER)}


def new_denoiser(config: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """A fresh, randomly initialised ``(UNet2DModel, DDPMScheduler)`` pair from ``config``.

    Initialisation draws from torch's default generator, so callers that need a reproducible
    start (the training script) seed it there or load a state dict afterwards.
    """
    diffusers = _require_diffusers()
    cfg = denoiser_config() if config is None else config
    unet = diffusers.UNet2DModel(**cfg["unet"])
    scheduler = diffusers.DDPMScheduler(**cfg["scheduler"])
    return unet, scheduler


def save_denoiser(unet: Any, config: dict[str, Any], path: str | Path,
                  dtype: torch.dtype = torch.float16) -> None:
    """Write ``unet``'s weights to ``path`` (safetensors, cast to ``dtype``) and its config beside
    it (same name, ``.json``). Both files are written atomically."""
    from safetensors.torch import save_file

    from ..io.atomic import atomic_output

    path = Path(path)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in unet.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(state, str(tmp))
    with atomic_output(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(config, indent=2) + "\n")


def read_weights(path: str | Path | None, bundled: str,
                 what: str = "denoiser") -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """``(weights path, config, float32 state dict)`` of a model saved by :func:`save_denoiser`
    (``path=None``: the bundled file named ``bundled``).

    Raises:
        ValueError: the weights or the config beside them is missing or unreadable.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = Path(str(resources.files("warpnoise") / "data" / bundled)) if path is None \
        else Path(path)
    cfg_path = weights.with_suffix(".json")
    if not weights.is_file():
        raise ValueError(f"{what} weights not found: {weights}")
    if not cfg_path.is_file():
        raise ValueError(f"{what} config not found beside the weights: {cfg_path}")
    try:
        config = json.loads(cfg_path.read_text())
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
    except (OSError, json.JSONDecodeError, SafetensorError) as e:
        raise ValueError(f"{weights} is not a warpnoise {what}: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(f"{cfg_path} is not a warpnoise {what} config")
    return weights, config, state


def load_denoiser(
    path: str | Path | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Any, Any]:
    """Load a denoiser saved by :func:`save_denoiser` (``None``: the bundled one).

    Returns:
        ``(unet, scheduler)``: a diffusers ``UNet2DModel`` in eval mode on ``device`` and a
        ``DDPMScheduler`` with the schedule it was trained for.

    Raises:
        ValueError: the weights or config file is missing or does not match.
    """
    weights, config, state = read_weights(path, BUNDLED_WEIGHTS)
    try:
        unet, scheduler = new_denoiser(config)
        unet.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"{weights} is not a warpnoise denoiser: {e}") from e
    unet.to(device)
    if dtype != torch.float32:
        unet.to(dtype)
    unet.eval()
    unet.requires_grad_(False)
    return unet, scheduler

"""The bundled 4x super-resolver: an SR3-style conditional diffusion model the project trains.

SR3 (Saharia et al., "Image Super-Resolution via Iterative Refinement", TPAMI 2022, §2) denoises
``x_t`` with the bicubic upsampling of the low-resolution image concatenated beside it, so every
step is conditioned on the input; sampling is ancestral, so fresh noise enters at every step
(here DDIM with ``eta = 1`` fed warped noise by :func:`~warpnoise.integrations.sdedit`). Three
choices make a small model trainable on a CPU in minutes:

- **Residual diffusion** (SRDiff, Li et al., Neurocomputing 2022, §3.2): the diffused variable is
  ``r = k (x0 - up)``, what bicubic upsampling misses, scaled by ``k = residual_scale`` to about
  unit spread; the image is ``up + r / k``.
- **Predict, then refine** (as Whang et al., CVPR 2022, "Deblurring via Stochastic Refinement"):
  the same network has a regression mode (input ``r_t = 0`` at the last timestep) giving the
  posterior mean ``E[r | up]``; the sampler noises that mean to ``strength · T`` and runs the rest
  of the reverse process from there (SDEdit's truncation, Meng et al., ICLR 2022). A posterior
  sample has twice the mean's squared error, so a full reverse process (``strength = 1``) cannot
  beat bicubic's PSNR unless the mean beats it by 3 dB; a short refinement keeps most of the
  mean's gain and still lets the noise decide the fine detail, at every step.
- **v-prediction** (Salimans & Ho, ICLR 2022, §4) on a cosine schedule (Nichol & Dhariwal, ICML
  2021, Eq. 17): stable at every noise level, which matters when few steps are run.
- **A low-resolution body**: ``[x_t, up]`` is rearranged space-to-depth by the SR factor
  (pixel unshuffle, Shi et al., CVPR 2016), so the residual blocks run on the input's own grid (16x
  fewer positions than the output) and the result is rearranged back (pixel shuffle). Each block
  is ``x + conv(silu(FiLM_t(conv(silu(x)))))`` with the timestep entering by a per-channel scale
  and shift (FiLM, Perez et al., AAAI 2018).

Convention:
    Images in [-1, 1], ``(B, 3, H, W)``, ``H`` and ``W`` multiples of ``unshuffle`` (4). The
    network is called as ``net(torch.cat([x_t, up], 1), t)`` like diffusers' UNets with
    ``in_channels = 6`` (and diffusers' x4 upscaler, which also concatenates its condition).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .denoiser import read_weights, save_denoiser

__all__ = ["SR_WEIGHTS", "SR3Net", "is_sr_model", "load_sr_model", "new_sr_model", "sr_config",
           "super_resolve"]

SR_WEIGHTS = "sr4.safetensors"
#: The config's ``kind``: how a saved file says it is this model and not a plain denoiser.
KIND = "sr3-residual"

_NET: dict[str, Any] = {"channels": 64, "blocks": 8, "unshuffle": 4, "embed": 128}
_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "clip_sample": False,
}
#: ``r = k (x0 - up)``: the 4x residual of natural images in [-1, 1] has a std of about 0.1.
_RESIDUAL_SCALE = 4.0
#: Sampling defaults (measured with benchmarks/bench_sr.py): the share of the reverse process
#: that runs, and the steps of the full schedule: 2 stochastic steps from t = 25 (noise std 0.05
#: on r). Each step of ancestral noise costs PSNR and above all SSIM (a sample has twice the
#: mean's error): with the same weights, strength 0.1 (t = 50, 2 steps) lost 0.005 SSIM to
#: bicubic on the held-out images and 0.3 (6 steps) lost 1 dB, where these settings beat it.
STRENGTH = 0.05
STEPS = 40
ETA = 1.0
START_FROM = "mean"


def sr_config() -> dict[str, Any]:
    """The configuration of the bundled super-resolver: ``kind``, ``factor``, ``net`` (the
    :class:`SR3Net` arguments), ``scheduler`` (``DDPMScheduler`` arguments) and
    ``residual_scale``."""
    return {"kind": KIND, "factor": 4, "net": dict(_NET), "scheduler": dict(_SCHEDULER),
            "residual_scale": _RESIDUAL_SCALE}


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding ``[sin(t f_i), cos(t f_i)]``, ``f_i = 10000^(-i / (dim/2))``
    (Vaswani et al. 2017, §3.5; Ho et al. 2020, App. B). ``t`` ``(B,)`` -> ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _Block(nn.Module):
    """``x + conv2(silu(FiLM(conv1(silu(x)))))``; ``conv2`` starts at zero (an identity block)."""

    def __init__(self, channels: int, embed: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(embed, 2 * channels)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.conv1(F.silu(x)) * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


class SR3Net(nn.Module):
    """The conditional noise network: ``(B, 6, H, W)`` = ``[x_t, bicubic]`` and timesteps ->
    ``(B, 3, H, W)`` (the v-prediction of the residual). See the module docstring.

    Args:
        channels: width of the residual blocks.
        blocks: number of residual blocks.
        unshuffle: the space-to-depth factor (the SR factor: the body runs on the input's grid).
        embed: width of the timestep embedding.
    """

    def __init__(self, channels: int = 64, blocks: int = 8, unshuffle: int = 4,
                 embed: int = 128) -> None:
        super().__init__()
        self.unshuffle = unshuffle
        self.embed = embed
        self.time_mlp = nn.Sequential(nn.Linear(embed, embed), nn.SiLU(), nn.Linear(embed, embed))
        self.head = nn.Conv2d(6 * unshuffle**2, channels, 3, padding=1)
        self.blocks = nn.ModuleList(_Block(channels, embed) for _ in range(blocks))
        self.tail = nn.Conv2d(channels, 3 * unshuffle**2, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: Tensor, timestep: Tensor | float) -> Tensor:
        b, c, h, w = x.shape
        u = self.unshuffle
        if c != 6 or h % u or w % u:
            raise ValueError(f"SR3Net takes (B, 6, H, W) with H, W multiples of {u}, got "
                             f"{tuple(x.shape)}")
        t = torch.as_tensor(timestep, device=x.device).reshape(-1).expand(b)
        emb = F.silu(self.time_mlp(timestep_embedding(t, self.embed).to(x.dtype)))
        feat = self.head(F.pixel_unshuffle(x, u))
        for block in self.blocks:
            feat = block(feat, emb)
        return F.pixel_shuffle(self.tail(F.silu(feat)), u)


def new_sr_model(config: dict[str, Any] | None = None) -> tuple[SR3Net, Any]:
    """A fresh ``(SR3Net, DDPMScheduler)`` from ``config`` (default :func:`sr_config`).

    Initialisation draws from torch's default generator: the training script seeds it.
    The network carries the rest of the config as ``net.config``.
    """
    from diffusers import DDPMScheduler

    cfg = sr_config() if config is None else config
    net = SR3Net(**cfg["net"])
    net.config = cfg  # type: ignore[assignment]  # read by super_resolve and is_sr_model
    return net, DDPMScheduler(**cfg["scheduler"])


def is_sr_model(model: Any) -> bool:
    """Whether ``model`` is a conditional super-resolver built by :func:`new_sr_model`."""
    cfg = getattr(model, "config", None)
    return isinstance(cfg, dict) and cfg.get("kind") == KIND


def is_sr_file(path: str) -> bool:
    """Whether the config beside the weights at ``path`` names this model (not a denoiser);
    False when there are no weights there (the loader then says what is missing).

    Raises:
        ValueError: weights without a readable config beside them.
    """
    import json
    from pathlib import Path

    if not Path(path).is_file():
        return False
    cfg = Path(path).with_suffix(".json")
    try:
        config = json.loads(cfg.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"no readable model config beside {path}: {e}") from None
    return isinstance(config, dict) and config.get("kind") == KIND


def save_sr_model(net: SR3Net, path: str, dtype: torch.dtype = torch.float16) -> None:
    """Write the weights (safetensors) and config (``.json`` beside), atomically."""
    save_denoiser(net, net.config, path, dtype=dtype)  # type: ignore[arg-type]


def load_sr_model(path: str | None = None, *, device: torch.device | str = "cpu",
                  ) -> tuple[SR3Net, Any]:
    """Load a super-resolver saved by :func:`save_sr_model` (``None``: the bundled one).

    Returns:
        ``(net, scheduler)``: the network in eval mode on ``device`` and the ``DDPMScheduler`` it
        was trained with.

    Raises:
        ValueError: missing or mismatched files, or a config of another kind of model.
    """
    weights, config, state = read_weights(path, SR_WEIGHTS, what="super-resolution model")
    if config.get("kind") != KIND:
        raise ValueError(f"{weights} is not a warpnoise super-resolution model (config kind "
                         f"{config.get('kind')!r}, expected {KIND!r})")
    try:
        net, scheduler = new_sr_model(config)
        net.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"{weights} does not match its config: {e}") from e
    net.to(device).eval().requires_grad_(False)
    return net, scheduler


@torch.no_grad()
def predicted_residual(net: SR3Net, scheduler: Any, up: Tensor, batch_size: int | None = None,
                       ) -> Tensor:
    """The network's estimate of the posterior mean ``E[r | up]`` (its regression of the
    residual): the x0-prediction from input ``r_t = 0`` at the last training timestep, a mode
    that ``scripts/train_sr.py`` trains for this (the diffusion itself never reaches that
    timestep with 20-step schedules, whose largest timestep is 950)."""
    t = scheduler.config.num_train_timesteps - 1
    a = scheduler.alphas_cumprod[t].to(up)
    chunk = batch_size or up.shape[0]
    v = torch.cat([net(torch.cat([torch.zeros_like(uc), uc], 1), t) for uc in up.split(chunk)])
    return -(1 - a).sqrt() * v


def super_resolve(
    net: SR3Net,
    scheduler: Any,
    up: Tensor,
    noise: Any,
    *,
    strength: float = STRENGTH,
    steps: int = STEPS,
    eta: float = 1.0,
    batch_size: int | None = None,
    progress: Any = None,
    start_from: str = START_FROM,
) -> Tensor:
    """Sample high-resolution frames given their bicubic upsampling, all noise supplied.

    Runs :func:`~warpnoise.integrations.sdedit` on the residual, with ``up`` concatenated to the
    model input at every step, and returns ``up + r / k``. The reverse process starts at
    ``strength · T`` from ``start_from``: ``"bicubic"`` (``r = 0``) or ``"mean"`` (the network's
    :func:`predicted_residual`: the last part of the reverse process then adds the detail that
    the noise decides).

    Convention:
        ``up`` ``(T, 3, H, W)`` in [-1, 1] (the bicubic 4x upsampling of the input frames);
        ``noise`` a ``(T, 3, H, W)`` tensor or sampler as :func:`sdedit` takes (with a sampler, a
        fresh draw enters every step). Returns ``(T, 3, H, W)``, not clamped.
    """
    from ..integrations.sdedit import sdedit

    if start_from not in ("bicubic", "mean"):
        raise ValueError(f"start_from must be 'bicubic' or 'mean', got {start_from!r}")
    first = noise if isinstance(noise, Tensor) else noise()
    step_noise = None if isinstance(noise, Tensor) else noise
    start = torch.zeros_like(up) if start_from == "bicubic" else predicted_residual(
        net, scheduler, up, batch_size)
    r = sdedit(net, scheduler, start, first, step_noise=step_noise, strength=strength,
               steps=steps, eta=eta, image_condition=up, batch_size=batch_size,
               progress=progress)
    return up + r / net.config["residual_scale"]  # type: ignore[attr-defined]

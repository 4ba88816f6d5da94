"""Video editing with the bundled (or any pixel-space) models: SDEdit and 4x super-resolution.

Frames -> flow -> warped noise -> :func:`~warpnoise.diffusion.sdedit` -> frames. ``task="sr4"``
is 4x super-resolution, the paper's video super-resolution setting (Chang et al. 2024 §6.2):
with the bundled conditional model (:mod:`warpnoise.diffusion.sr`, SR3-style, sampling conditioned
on the bicubic upsampling at every step) or, given a plain denoiser, SDEdit from the bicubic
upsampling. ``task="sdedit"`` re-noises and denoises the frames with the bundled unconditional
denoiser (or yours).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..methods import DEFAULT_METHOD, methods, needs_frames
from .noise import WarpedNoiseSampler
from .sdedit import sdedit
from .sr import STEPS as SR_STEPS
from .sr import STRENGTH as SR_STRENGTH
from .sr import is_sr_model, super_resolve

__all__ = ["EditOptions", "EditResult", "bicubic_up", "downsample", "edit_frames"]

#: ``progress(stage, done, total)`` as in :mod:`warpnoise.pipeline`.
Progress = Callable[[str, int, int], None]
TASKS = ("sdedit", "sr4")
#: The bundled UNet halves the size 3 times.
SIZE_MULTIPLE = 8
#: SDEdit's defaults with a denoiser: ``(strength, steps)``.
SDEDIT_DEFAULTS = (0.2, 50)
#: Memory for noise warped ahead of the sampler (see ``WarpedNoiseSampler(prefetch=...)``).
PREFETCH_BYTES = 2**30


@dataclass
class EditOptions:
    """What ``warpnoise edit`` can be told (see its ``--help``)."""

    method: str = DEFAULT_METHOD
    task: str = "sdedit"
    #: None: the model's default (0.2 and 50 for SDEdit with a denoiser; the bundled
    #: super-resolver's :data:`~warpnoise.diffusion.sr.STRENGTH` and ``STEPS`` for ``sr4``).
    strength: float | None = None
    steps: int | None = None
    eta: float = 1.0
    seed: int = 0
    flow: str = "dis"
    dis_preset: str = "medium"
    batch_size: int | None = 8
    method_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise ValueError naming the first bad option."""
        if self.method not in methods():
            raise ValueError(f"unknown noise method {self.method!r}; choose one of "
                             f"{', '.join(methods())}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.strength is not None and not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")


@dataclass
class EditResult:
    """Edited frames ``(T, H, W, 3)`` uint8, seconds spent (flow, noise, diffusion, total), and
    the first noise draw ``(T, 3, H, W)`` (the one that noised the input)."""

    frames: np.ndarray
    seconds: dict[str, float]
    noise: Tensor | None = None


def downsample(frames: np.ndarray, factor: int) -> np.ndarray:
    """Area-average ``factor x factor`` blocks of ``(T, H, W, 3)`` uint8 frames (the LR input of
    the super-resolution task)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = F.avg_pool2d(x, factor)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def bicubic_up(frames: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic ``factor``x upsampling of ``(T, H, W, 3)`` uint8 frames."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _to_model(frames: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _to_uint8(x: Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def edit_frames(
    frames: np.ndarray,
    options: EditOptions,
    *,
    unet: Any = None,
    scheduler: Any = None,
    flows: tuple[Tensor, Tensor] | None = None,
    progress: Progress | None = None,
) -> EditResult:
    """Edit ``(T, H, W, 3)`` uint8 frames with a pixel-space diffusion model and warped noise.

    ``task="sr4"`` treats ``frames`` as low-resolution and returns 4x larger frames, with the
    bundled super-resolver when ``unet`` is None (or any model built by
    :func:`~warpnoise.diffusion.sr.new_sr_model`), else by SDEdit from the bicubic upsampling. The
    noise is warped along flows estimated on the (upsampled) input, unless ``flows=(backward,
    forward)`` ``(T-1, 2, H, W)`` at output resolution are given; frame-guided noise
    (``control-a-video``) gets those frames. The scheduler is DDIM with ``eta`` (default 1: fresh
    warped noise enters at every step, through ``variance_noise``).

    Raises:
        ValueError: bad options, fewer than 2 frames, or a size the denoiser cannot take.
    """
    from diffusers import DDIMScheduler

    from ..estimate import estimate_flows
    from .model import load_denoiser
    from .sr import load_sr_model

    options.check()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if frames.shape[0] < 2:
        raise ValueError("need at least 2 frames to warp noise between them")
    tic = time.perf_counter()
    x = bicubic_up(frames, 4) if options.task == "sr4" else frames
    h, w = x.shape[1:3]
    conditional = options.task == "sr4" and (unet is None or is_sr_model(unet))
    # The super-resolver's output is 4x its input: always a multiple of its factor.
    if not conditional and (h % SIZE_MULTIPLE or w % SIZE_MULTIPLE):
        raise ValueError(f"the model needs sizes divisible by {SIZE_MULTIPLE}; the frames are "
                         f"{w}x{h} (resize with --size)")
    if unet is None:
        unet, trained = load_sr_model() if conditional else load_denoiser()
        scheduler = scheduler or trained
    sched = DDIMScheduler.from_config(scheduler.config)
    default_strength, default_steps = (SR_STRENGTH, SR_STEPS) if conditional else SDEDIT_DEFAULTS
    strength = default_strength if options.strength is None else options.strength
    steps = default_steps if options.steps is None else options.steps
    seconds: dict[str, float] = {}
    if flows is None:
        def flow_progress(done: int, total: int) -> None:
            if progress is not None:
                progress("flow", done, total)
        backward, forward = estimate_flows(x, options.flow, preset=options.dis_preset,
                                           progress=flow_progress)
    else:
        backward, forward = flows
    seconds["flow"] = time.perf_counter() - tic
    n_draws = 1 + (max(1, int(steps * strength)) if options.eta > 0 else 0)
    # Warp every draw in one go when it fits in PREFETCH_BYTES (one geometry pass), else fewer.
    per_draw = x.shape[0] * 3 * h * w * 4
    prefetch = max(1, min(n_draws, PREFETCH_BYTES // per_draw))
    tic = time.perf_counter()
    guide = {"frames": x} if needs_frames(options.method) else {}
    sampler = WarpedNoiseSampler(backward, 3, options.method, seed=options.seed,
                                 forward_flows=forward, prefetch=prefetch,
                                 **options.method_options, **guide)
    first = sampler()  # with prefetch, this one warp makes the draws of the run
    seconds["noise"] = time.perf_counter() - tic
    served = {"first": False}

    def noise(sigma: Any = None, sigma_next: Any = None) -> Tensor:
        if not served["first"]:
            served["first"] = True
            return first
        return sampler(sigma, sigma_next)

    tic = time.perf_counter()

    def step_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("diffusion", done, total)

    if conditional:
        out = super_resolve(unet, sched, _to_model(x), noise, strength=strength, steps=steps,
                            eta=options.eta, batch_size=options.batch_size,
                            progress=step_progress)
    else:
        out = sdedit(unet, sched, _to_model(x), noise, strength=strength, steps=steps,
                     eta=options.eta, batch_size=options.batch_size, progress=step_progress)
    seconds["diffusion"] = time.perf_counter() - tic
    seconds["total"] = sum(seconds.values())
    return EditResult(frames=_to_uint8(out), seconds=seconds, noise=first)

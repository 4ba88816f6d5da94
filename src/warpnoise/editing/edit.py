"""Video editing with the bundled models or a pretrained pipeline: SDEdit and 4x super-resolution.

Frames -> flow -> warped noise -> :func:`~warpnoise.integrations.sdedit` -> frames. ``task="sr4"``
is 4x super-resolution, the paper's video super-resolution setting (Chang et al. 2024 §6.2):
with the bundled conditional model (:mod:`warpnoise.editing.sr`, SR3-style, sampling conditioned
on the bicubic upsampling at every step) or, given another model, SDEdit from the bicubic
upsampling. ``task="sdedit"`` re-noises and denoises the frames (the bundled unconditional
denoiser by default).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..estimate import check_flow_options
from ..integrations.kdiffusion import WarpedNoiseSampler
from ..integrations.sdedit import sdedit, takes_step_noise
from ..methods import DEFAULT_METHOD, check_options, methods, needs_frames, uses_flows
from ..rng import check_seed
from .models import SCHEDULERS, EditModel, make_scheduler
from .sr import STEPS as SR_STEPS
from .sr import STRENGTH as SR_STRENGTH
from .sr import is_sr_model, super_resolve

__all__ = ["EditOptions", "EditResult", "bicubic_up", "check_frame_size", "downsample",
           "edit_frames", "edit_measures", "input_frames", "to_model", "to_uint8"]

#: ``progress(stage, done, total)`` as in :mod:`warpnoise.pipeline`.
Progress = Callable[[str, int, int], None]
TASKS = ("sdedit", "sr4")
#: The bundled UNet halves the size 3 times.
SIZE_MULTIPLE = 8
#: SDEdit's defaults with a denoiser or pipeline: ``(strength, steps)``.
SDEDIT_DEFAULTS = (0.2, 50)
#: Memory for noise warped ahead of the sampler (see ``WarpedNoiseSampler(prefetch=...)``).
PREFETCH_BYTES = 2**30


@dataclass
class EditOptions:
    """What ``warpnoise edit`` can be told (see its ``--help``)."""

    method: str = DEFAULT_METHOD
    task: str = "sdedit"
    #: None: the model's default (0.2 and 50 for SDEdit; the bundled super-resolver's
    #: :data:`~warpnoise.editing.sr.STRENGTH` and ``STEPS`` for ``sr4`` with it).
    strength: float | None = None
    steps: int | None = None
    eta: float = 1.0
    seed: int = 0
    scheduler: str = "ddim"  # a warpnoise.editing.models.SCHEDULERS name
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
        if not 0 <= self.eta < math.inf:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got "
                             f"{self.scheduler!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        check_seed(self.seed)
        check_flow_options(self.flow, self.dis_preset)
        check_options(self.method, **self.method_options)  # bad names or values fail now


@dataclass
class EditResult:
    """Edited frames ``(T, H, W, 3)`` uint8, seconds spent (flow, noise, diffusion, total), and
    the first noise draw ``(T, C, h, w)`` (the one that noised the input)."""

    frames: np.ndarray
    seconds: dict[str, float]
    noise: Tensor | None = None


def check_frame_size(width: int, height: int, task: str, multiple: int = SIZE_MULTIPLE) -> None:
    """Raise ValueError unless input frames of ``width x height`` reach the model (after
    ``sr4``'s 4x upsampling) at sizes divisible by ``multiple`` (the bundled model's:
    :data:`SIZE_MULTIPLE`)."""
    up = 4 if task == "sr4" else 1
    if (width * up) % multiple or (height * up) % multiple:
        raise ValueError(f"the model needs sizes divisible by {multiple}; the frames are "
                         f"{width * up}x{height * up} (resize with --size)")


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


def input_frames(frames: np.ndarray, task: str) -> np.ndarray:
    """What the model edits: ``frames`` for ``sdedit``, their bicubic 4x upsampling for ``sr4``."""
    return bicubic_up(frames, 4) if task == "sr4" else frames


def to_model(frames: np.ndarray) -> Tensor:
    """``(T, H, W, 3)`` uint8 frames -> ``(T, 3, H, W)`` float32 in [-1, 1], the models' range."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` in [-1, 1] (clipped) -> ``(T, H, W, 3)`` uint8 frames, rounded."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def edit_frames(
    frames: np.ndarray,
    options: EditOptions,
    *,
    unet: Any = None,
    scheduler: Any = None,
    model: EditModel | None = None,
    flows: tuple[Tensor, Tensor] | None = None,
    progress: Progress | None = None,
    noise_free: bool = False,
) -> EditResult:
    """Edit ``(T, H, W, 3)`` uint8 frames with a diffusion model and warped noise.

    The model is ``model`` (any :class:`~warpnoise.editing.models.EditModel`: a pretrained
    pipeline, latent or pixel space, with its prompt embeddings), else ``unet``/``scheduler``
    (pixel space), else the bundled one: the conditional super-resolver for ``task="sr4"``, the
    denoiser for ``"sdedit"``. ``task="sr4"`` treats ``frames`` as low-resolution and returns 4x
    larger frames: with a super-resolver (:func:`~warpnoise.editing.sr.is_sr_model`) sampled
    conditioned on the bicubic upsampling, with any other model by SDEdit from it. The noise is
    warped along flows estimated on the (upsampled) input at pixel resolution, unless
    ``flows=(backward, forward)`` ``(T-1, 2, H, W)`` at output resolution are given, then
    integrated to the model's latent grid; frame-guided noise (``control-a-video``) gets those
    frames, and no flow is estimated for it. The scheduler is ``options.scheduler`` built from
    the model's config (default DDIM with ``eta``, 1: fresh warped noise enters at every step,
    through ``variance_noise``).

    With ``noise_free`` every noise draw is zero (no flow, no warp): the model's deterministic
    answer on the same input with the same sampling, which
    :func:`~warpnoise.editing.metrics.hallucinated_detail` subtracts to isolate what the noise
    made. ``options.method`` is then ignored.

    Raises:
        ValueError: bad options, fewer than 2 frames, or a size the model cannot take.
    """
    from ..estimate import estimate_flows
    from .denoiser import load_denoiser
    from .sr import load_sr_model

    options.check()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if frames.shape[0] < 2:
        raise ValueError("need at least 2 frames to warp noise between them")
    tic = time.perf_counter()
    x = input_frames(frames, options.task)
    h, w = x.shape[1:3]
    if model is None:
        if unet is None:
            unet, trained = load_sr_model() if options.task == "sr4" else load_denoiser()
            scheduler = scheduler or trained
        model = EditModel(unet=unet, scheduler=scheduler,
                          size_multiple=getattr(unet, "unshuffle", SIZE_MULTIPLE),
                          device=getattr(unet, "device", "cpu"),
                          dtype=getattr(unet, "dtype", torch.float32))
    conditional = is_sr_model(model.unet)
    if conditional and options.task != "sr4":
        raise ValueError("the model is a 4x super-resolver: use it with task sr4")
    check_frame_size(frames.shape[2], frames.shape[1], options.task, model.size_multiple)
    sched = make_scheduler(options.scheduler, model.scheduler)
    default_strength, default_steps = (SR_STRENGTH, SR_STEPS) if conditional else SDEDIT_DEFAULTS
    strength = default_strength if options.strength is None else options.strength
    steps = default_steps if options.steps is None else options.steps
    seconds: dict[str, float] = {}
    if noise_free:
        backward = forward = torch.zeros(0)
    elif flows is None and not uses_flows(options.method):  # the method ignores flows: zeros
        backward = torch.zeros(x.shape[0] - 1, 2, h, w)
        forward = backward
    elif flows is None:
        def flow_progress(done: int, total: int) -> None:
            if progress is not None:
                progress("flow", done, total)
        backward, forward = estimate_flows(x, options.flow, preset=options.dis_preset,
                                           progress=flow_progress)
    else:
        backward, forward = flows
    seconds["flow"] = time.perf_counter() - tic
    stochastic = takes_step_noise(sched, options.eta)
    n_draws = 1 + (max(1, int(steps * strength)) if stochastic else 0)
    # Warp every draw in one go when it fits in PREFETCH_BYTES (one geometry pass), else fewer.
    per_draw = x.shape[0] * model.channels * h * w * 4  # warped at pixel resolution
    prefetch = max(1, min(n_draws, PREFETCH_BYTES // per_draw))
    tic = time.perf_counter()
    if noise_free:
        first = torch.zeros(x.shape[0], model.channels, h // model.factor, w // model.factor,
                            device=model.device)

        def sampler(*_: Any) -> Tensor:
            return first
    else:
        guide = {"frames": x, "block": model.factor} if needs_frames(options.method) else {}
        sampler = WarpedNoiseSampler(backward, model.channels, options.method,
                                     factor=model.factor, seed=options.seed,
                                     forward_flows=forward, prefetch=prefetch,
                                     device=model.device, **options.method_options, **guide)
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

    x_model = to_model(x).to(model.device, model.dtype)
    if conditional:
        out = super_resolve(model.unet, sched, x_model, noise, strength=strength, steps=steps,
                            eta=options.eta, batch_size=options.batch_size,
                            progress=step_progress)
    else:
        cond_kw, neg_kw = model.size_kwargs(h, w) if model.size_kwargs else (None, None)
        out = sdedit(model.unet, sched, x_model, noise, strength=strength, steps=steps,
                     eta=options.eta, vae=model.vae,
                     encoder_hidden_states=model.encoder_hidden_states,
                     negative_encoder_hidden_states=model.negative_encoder_hidden_states,
                     guidance_scale=model.guidance_scale, batch_size=options.batch_size,
                     cond_kwargs=cond_kw, negative_cond_kwargs=neg_kw, progress=step_progress)
    seconds["diffusion"] = time.perf_counter() - tic
    seconds["total"] = sum(seconds.values())
    return EditResult(frames=to_uint8(out.float().cpu()), seconds=seconds, noise=first)


def edit_measures(
    frames: np.ndarray,
    options: EditOptions,
    edited: np.ndarray,
    *,
    model: EditModel | None = None,
    unet: Any = None,
    scheduler: Any = None,
    flows: tuple[Tensor, Tensor] | None = None,
) -> dict[str, float | None]:
    """What the noise did to ``edited`` (:func:`edit_frames` of ``frames`` with ``options``),
    without a ground truth: :func:`~warpnoise.editing.metrics.coherence_measures` with the
    input's flows (``flows``, or DIS flow of the edited-at-resolution input, as
    :func:`edit_frames` estimates them) standing for the real motion, the noise-free edit of the
    same model (one more run, every draw zero) and the input as the detail's reference
    (``detail`` 1 = as sharp as the input; for ``sr4``, its bicubic upsampling).

    Returns:
        ``{"follows_motion", "sticks_to_screen", "warping_error" (0-255), "detail"}``.
    """
    from ..estimate import estimate_flows
    from .metrics import coherence_measures

    x = input_frames(frames, options.task)
    if flows is None:
        flows = estimate_flows(x, options.flow, preset=options.dis_preset)
    free = edit_frames(frames, options, unet=unet, scheduler=scheduler, model=model,
                       noise_free=True).frames
    return coherence_measures(edited, free, *flows, x)

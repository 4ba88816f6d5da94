"""SDEdit for video with any diffusers model: frame-by-frame image diffusion fed warped noise.

SDEdit (Meng et al., ICLR 2022) noises an input to an intermediate time ``t0 = strength · T`` and
denoises it back. Run on every frame of a clip with an image model, the noise decides what the
model invents; warped noise makes those inventions follow the motion (Chang et al., "How I Warped
Your Noise", ICLR 2024, §5). Noise enters in two places, and this loop controls both:

- the start: ``scheduler.add_noise(x0, ε, t0)`` (``scale_noise`` for flow matching) with ``ε``
  the first warped sequence;
- every stochastic step: ``variance_noise=`` for schedulers that take it (DDIM with ``eta > 0``,
  DPM-Solver ``sde-dpmsolver(++)``), or this module's own step for DDPM and Euler ancestral, which
  otherwise draw from a generator; each step gets a fresh warped sequence.

Deterministic schedulers (DDIM with ``eta = 0``, Euler, DPM-Solver++, flow-matching Euler, ...)
take noise only at the start.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["ddpm_step", "euler_ancestral_step", "noise_to", "sdedit", "sdedit_timesteps",
           "takes_step_noise"]

NoiseSource = Callable[..., Tensor]
Progress = Callable[[int, int], None]

#: Schedulers that draw noise inside ``step`` from a generator and that this loop cannot feed.
_UNSUPPORTED_STOCHASTIC = {
    "KDPM2AncestralDiscreteScheduler", "DPMSolverSDEScheduler", "LCMScheduler", "TCDScheduler",
    "CMStochasticIterativeScheduler", "EDMEulerScheduler",
}


def ddpm_step(scheduler: Any, model_output: Tensor, timestep: Any, sample: Tensor,
              noise: Tensor | None) -> Tensor:
    """One ancestral DDPM step ``x_{t-1} = μ(x_t, x̂0) + σ_t z`` with our ``z``.

    Ho et al. 2020, Eq. 6-7 and 15: ``x̂0`` from the model output, the posterior mean
    ``μ = sqrt(ᾱ_{t-1}) β_t / (1-ᾱ_t) x̂0 + sqrt(α_t) (1-ᾱ_{t-1}) / (1-ᾱ_t) x_t`` and
    ``σ_t² = (1-ᾱ_{t-1}) / (1-ᾱ_t) β_t`` (``fixed_small``), ``β_t`` (``fixed_large``), or the
    learned interpolation of their logs (``learned_range``, Nichol & Dhariwal 2021, Eq. 15;
    DeepFloyd IF). Same arithmetic as ``DDPMScheduler.step``, which only takes a generator.

    Args:
        scheduler: a ``diffusers.DDPMScheduler`` after ``set_timesteps``.
        model_output: ``(B, C, H, W)``, or ``(B, 2C, H, W)`` with a predicted variance.
        timestep: the current discrete timestep.
        sample: ``x_t``, ``(B, C, H, W)``.
        noise: ``z`` like ``sample``; ignored (may be None) at the last step, where ``σ = 0``.
    """
    cfg = scheduler.config
    c = sample.shape[1]
    predicted_variance = None
    if model_output.shape[1] == 2 * c and cfg.variance_type in ("learned", "learned_range"):
        model_output, predicted_variance = model_output.split(c, dim=1)
    t = int(timestep)
    prev_t = int(scheduler.previous_timestep(t))
    a_t = scheduler.alphas_cumprod[t].to(sample.device, torch.float32)
    a_prev = (scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)).to(a_t)
    beta_t = 1 - a_t / a_prev
    x0 = _predict_x0(cfg.prediction_type, model_output, sample, a_t)
    if cfg.thresholding:
        x0 = scheduler._threshold_sample(x0)
    elif cfg.clip_sample:
        x0 = x0.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)
    mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 \
        + ((1 - beta_t).sqrt() * (1 - a_prev) / (1 - a_t)) * sample
    if t <= 0:
        return mean
    if noise is None:
        raise ValueError("ddpm_step needs noise at every step but the last")
    small = ((1 - a_prev) / (1 - a_t) * beta_t).clamp(min=1e-20)
    vt = cfg.variance_type
    if vt == "fixed_small":
        std = small.sqrt()
    elif vt == "fixed_small_log":
        std = small.log().mul(0.5).exp().sqrt()  # diffusers multiplies z by exp(log σ² / 2)^½
    elif vt == "fixed_large":
        std = beta_t.sqrt()
    elif vt == "learned_range" and predicted_variance is not None:
        frac = (predicted_variance + 1) / 2
        std = (0.5 * (frac * beta_t.log() + (1 - frac) * small.log())).exp()
    else:
        raise ValueError(f"DDPM variance_type {vt!r} is not supported by the warped-noise loop "
                         "(use fixed_small, fixed_small_log, fixed_large or learned_range)")
    return mean + std * noise.to(sample)


def euler_ancestral_step(model_output: Tensor, sample: Tensor, sigma: Tensor | float,
                         sigma_next: Tensor | float, noise: Tensor | None,
                         prediction_type: str = "epsilon") -> Tensor:
    """One Euler ancestral step (Karras et al. 2022 / k-diffusion ``sample_euler_ancestral``).

    ``σ_up = sqrt(σ'² (σ² - σ'²) / σ²)``, ``σ_down = sqrt(σ'² - σ_up²)``,
    ``x' = x + (x - x̂0) / σ · (σ_down - σ) + σ_up z`` with our ``z``; the same arithmetic as
    ``EulerAncestralDiscreteScheduler.step``, which only takes a generator. Works on the
    unscaled ``x`` (variance-exploding parametrisation, ``x = x0 + σ ε``).
    """
    s = torch.as_tensor(sigma, dtype=torch.float32, device=sample.device)
    s2 = torch.as_tensor(sigma_next, dtype=torch.float32, device=sample.device)
    x = sample.float()
    if prediction_type == "epsilon":
        x0 = x - s * model_output
    elif prediction_type == "v_prediction":
        x0 = model_output * (-s / (s**2 + 1).sqrt()) + x / (s**2 + 1)
    else:
        raise ValueError(f"Euler ancestral does not support prediction_type {prediction_type!r}")
    sigma_up = (s2**2 * (s**2 - s2**2) / s**2).clamp(min=0).sqrt()
    sigma_down = (s2**2 - sigma_up**2).clamp(min=0).sqrt()
    out = x + (x - x0) / s * (sigma_down - s)
    if float(sigma_up) > 0:
        if noise is None:
            raise ValueError("euler_ancestral_step needs noise when sigma_next > 0")
        out = out + sigma_up * noise.to(out)
    return out.to(sample.dtype)


def _predict_x0(prediction_type: str, out: Tensor, sample: Tensor, a_t: Tensor) -> Tensor:
    if prediction_type == "epsilon":
        return (sample - (1 - a_t).sqrt() * out) / a_t.sqrt()
    if prediction_type == "sample":
        return out
    if prediction_type == "v_prediction":
        return a_t.sqrt() * sample - (1 - a_t).sqrt() * out
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def sdedit_timesteps(scheduler: Any, steps: int, strength: float,
                     device: torch.device | str = "cpu") -> tuple[Tensor, int]:
    """The tail of the schedule that SDEdit runs, as diffusers' img2img pipelines do.

    Sets ``steps`` timesteps, keeps the last ``int(steps · strength)`` of them and tells the
    scheduler where it starts (``set_begin_index``). Returns ``(timesteps, begin_index)``.
    """
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    scheduler.set_timesteps(steps, device=device)
    keep = max(1, min(int(steps * strength), steps))
    begin = (steps - keep) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:], begin


def noise_to(scheduler: Any, x0: Tensor, eps: Tensor, timestep: Tensor) -> Tensor:
    """``x0`` noised with ``eps`` to ``timestep``, as the scheduler defines it.

    Flow matching (``scale_noise``): ``σ ε + (1 − σ) x0`` (Lipman et al. 2023; Esser et al.
    2024, Eq. 3); diffusion (``add_noise``): ``sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) ε`` (Ho et al.
    2020, Eq. 4). ``timestep`` holds one entry per batch element (schedulers whose sigmas are
    flow sigmas, e.g. UniPC with ``use_flow_sigmas``, give the flow-matching form through
    ``add_noise`` too).
    """
    if hasattr(scheduler, "scale_noise"):
        return scheduler.scale_noise(x0, timestep, eps)
    return scheduler.add_noise(x0, eps, timestep)


def _kind(scheduler: Any, eta: float) -> str:
    """How noise enters this scheduler's steps: none, variance_noise, ddpm or euler_a."""
    name = type(scheduler).__name__
    if name == "DDPMScheduler":
        return "ddpm"
    if name == "EulerAncestralDiscreteScheduler":
        return "euler_a"
    if name in _UNSUPPORTED_STOCHASTIC or getattr(scheduler.config, "stochastic_sampling", False):
        raise ValueError(f"{name} draws its own noise inside step(); use DDIM (eta > 0), DDPM, "
                         "Euler ancestral, DPM-Solver (sde-dpmsolver++) or a deterministic "
                         "scheduler with warped noise")
    params = inspect.signature(scheduler.step).parameters
    if "variance_noise" in params:
        if name == "DDIMScheduler" and eta <= 0:
            return "none"
        algo = getattr(scheduler.config, "algorithm_type", None)
        if algo is not None and not str(algo).startswith("sde"):
            return "none"
        return "variance_noise"
    return "none"


def takes_step_noise(scheduler: Any, eta: float = 1.0) -> bool:
    """Whether :func:`sdedit` feeds ``scheduler`` a fresh draw at every step (DDIM with
    ``eta > 0``, DDPM, Euler ancestral, DPM-Solver SDE), not only at the start.

    Raises:
        ValueError: a scheduler that draws its own noise, which this loop refuses.
    """
    return _kind(scheduler, eta) != "none"


def _as_output(out: Any) -> Tensor:
    if hasattr(out, "sample"):
        return out.sample
    if isinstance(out, tuple):
        return out[0]
    return out


def _batched(kw: dict[str, Any], n: int) -> dict[str, Any]:
    """Conditioning keyword arguments with every batch-1 tensor expanded to ``n`` (nested
    dicts too, e.g. SDXL's ``added_cond_kwargs``)."""
    return {k: _batched(v, n) if isinstance(v, dict) else
            v.expand(n, *v.shape[1:]) if isinstance(v, Tensor) and v.shape[0] == 1 else v
            for k, v in kw.items()}


def _stacked(u: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    """``u`` then ``c`` along the batch, key by key: the batch of a guided call."""
    return {k: _stacked(u[k], v) if isinstance(v, dict) else
            torch.cat([u[k], v]) if isinstance(v, Tensor) else v for k, v in c.items()}


def _model_output(model: Any, x: Tensor, t: Tensor, cond: Tensor | None, uncond: Tensor | None,
                  guidance_scale: float, kwargs: dict[str, Any], channels: int,
                  cond_kw: dict[str, Any] | None = None,
                  uncond_kw: dict[str, Any] | None = None) -> Tensor:
    """``model(x, t)`` on one chunk, with classifier-free guidance when ``uncond`` is given.
    ``channels``: those of the sample (``x`` may carry an image condition beside them)."""
    n = x.shape[0]
    if cond is None:
        return _as_output(model(x, t, **kwargs))
    c = cond.expand(n, *cond.shape[1:]) if cond.shape[0] == 1 else cond
    ck = _batched(cond_kw or {}, n)
    if uncond is None or guidance_scale == 1.0:
        return _as_output(model(x, t, encoder_hidden_states=c, **ck, **kwargs))
    u = uncond.expand(n, *uncond.shape[1:]) if uncond.shape[0] == 1 else uncond
    uk = _batched(uncond_kw if uncond_kw is not None else (cond_kw or {}), n)
    out = _as_output(model(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([u, c]),
                           **_stacked(uk, ck), **kwargs))
    out_u, out_c = out.chunk(2)
    if out_c.shape[1] == 2 * channels:
        # Learned variance (DeepFloyd IF): guide the noise, keep the conditional variance.
        (eu, _), (ec, var) = out_u.split(channels, 1), out_c.split(channels, 1)
        return torch.cat([eu + guidance_scale * (ec - eu), var], dim=1)
    return out_u + guidance_scale * (out_c - out_u)


def _encode(vae: Any, images: Tensor, chunk: int) -> Tensor:
    parts = []
    for x in images.split(chunk):
        enc = vae.encode(x)
        # The posterior's mode, not a sample: the VAE must not add noise we do not control.
        lat = enc.latent_dist.mode() if hasattr(enc, "latent_dist") else _as_output(enc)
        parts.append(lat)
    lat = torch.cat(parts)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (lat - shift) * getattr(vae.config, "scaling_factor", 1.0)


def _decode(vae: Any, latents: Tensor, chunk: int) -> Tensor:
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    lat = latents / getattr(vae.config, "scaling_factor", 1.0) + shift
    return torch.cat([_as_output(vae.decode(x)) for x in lat.split(chunk)])


@torch.no_grad()
def sdedit(
    model: Any,
    scheduler: Any,
    frames: Tensor,
    noise: NoiseSource | Tensor,
    *,
    strength: float = 0.5,
    steps: int = 50,
    step_noise: NoiseSource | None = None,
    eta: float = 1.0,
    vae: Any | None = None,
    encoder_hidden_states: Tensor | None = None,
    negative_encoder_hidden_states: Tensor | None = None,
    guidance_scale: float = 1.0,
    batch_size: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    cond_kwargs: dict[str, Any] | None = None,
    negative_cond_kwargs: dict[str, Any] | None = None,
    image_condition: Tensor | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """Edit a clip frame by frame with an image diffusion model, all noise supplied by the caller.

    Convention:
        ``frames`` is ``(T, 3, H, W)`` in [-1, 1] (diffusers' image range), frame order = time.
        Noise is ``(T, C, h, w)`` at the model's resolution (latent: ``h = H / 8`` for SD's VAE;
        build it with :class:`~warpnoise.diffusion.WarpedNoiseSampler` ``factor=8``). Returns
        ``(T, 3, H, W)`` (decoded if ``vae`` is given), not clamped.

    Args:
        model: a diffusers UNet/transformer called as ``model(x, t, encoder_hidden_states=...)``,
            or any callable ``(x, t, **kw) -> tensor``; wrap models with other signatures (SD3,
            Flux) in a lambda.
        scheduler: a diffusers scheduler (see the module docstring for which take noise where).
        noise: the initial noise, a ``(T, C, h, w)`` tensor or a sampler called as
            ``noise(sigma, sigma_next)`` (:class:`~warpnoise.diffusion.WarpedNoiseSampler`).
        strength: SDEdit's ``t0 / T`` in (0, 1]: how much is re-invented.
        steps: inference steps of the full schedule; ``int(steps · strength)`` of them run.
        step_noise: the per-step noise sampler; defaults to ``noise`` when that is a sampler.
        eta: DDIM's η (1 = ancestral DDPM-like noise, 0 = deterministic).
        vae: optional ``AutoencoderKL``-like; frames are encoded (posterior mode, scaled by
            ``scaling_factor``) and decoded.
        encoder_hidden_states: text embeddings, batch 1 or T.
        negative_encoder_hidden_states: the negative prompt's embeddings, batch 1 or T; with
            ``guidance_scale != 1`` and a negative, classifier-free guidance is used.
        batch_size: frames per model call (default: all T).
        model_kwargs: extra keyword arguments for every model call.
        cond_kwargs: keyword arguments that belong to the prompt (batch-1 tensors, nested dicts
            allowed), batched with the text embeddings; e.g. SDXL's
            ``{"added_cond_kwargs": {"text_embeds": pooled, "time_ids": ids}}``.
        negative_cond_kwargs: the same for the negative prompt; defaults to ``cond_kwargs``.
        image_condition: ``(T, C', h, w)`` concatenated to the model input along channels at
            every step, frame by frame (SR3's conditioning on the upsampled input, Saharia et
            al. 2022; diffusers' x4 upscaler does the same with its low-resolution image).
        progress: called as ``progress(step, total)`` after each step.

    Raises:
        ValueError: bad shapes, an unsupported stochastic scheduler, or a stochastic scheduler
            with no per-step noise.
    """
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, 3, H, W), got shape {tuple(frames.shape)}")
    if not bool(torch.isfinite(frames).all()):
        raise ValueError("frames contain NaN or inf")
    kind = _kind(scheduler, eta)
    if step_noise is None and callable(noise) and not isinstance(noise, Tensor):
        step_noise = noise
    if kind != "none" and step_noise is None:
        raise ValueError(f"{type(scheduler).__name__} adds noise at every step: pass a sampler "
                         "as noise= or step_noise=")
    t_count = frames.shape[0]
    chunk = batch_size or t_count
    device = frames.device
    x0 = _encode(vae, frames, chunk) if vae is not None else frames
    timesteps, begin = sdedit_timesteps(scheduler, steps, strength, device)
    eps = noise if isinstance(noise, Tensor) else noise(None, None)
    if eps.shape != x0.shape:
        raise ValueError(f"noise has shape {tuple(eps.shape)} but the model works on "
                         f"{tuple(x0.shape)} (T, C, h, w)")
    eps = eps.to(x0)
    if image_condition is not None and (image_condition.ndim != 4 or image_condition.shape[0]
                                        != t_count or image_condition.shape[2:] != x0.shape[2:]):
        raise ValueError(f"image_condition has shape {tuple(image_condition.shape)}; expected "
                         f"({t_count}, C, {x0.shape[2]}, {x0.shape[3]})")
    x = noise_to(scheduler, x0, eps, timesteps[:1].repeat(t_count))
    sigmas = getattr(scheduler, "sigmas", None)
    kwargs = model_kwargs or {}
    extra = {"eta": eta} if "eta" in inspect.signature(scheduler.step).parameters else {}
    for i, t in enumerate(timesteps):
        if kind == "euler_a":
            s, s_next = sigmas[begin + i], sigmas[begin + i + 1]
            x_in = x / (s**2 + 1).sqrt()
        elif hasattr(scheduler, "scale_model_input"):
            x_in = scheduler.scale_model_input(x, t)
        else:
            x_in = x  # flow matching: the model takes x_t as it is
        if image_condition is not None:
            x_in = torch.cat([x_in, image_condition.to(x_in)], dim=1)
        out = torch.cat([
            _model_output(model, xc, t, _chunk(encoder_hidden_states, j, chunk, t_count),
                          _chunk(negative_encoder_hidden_states, j, chunk, t_count),
                          guidance_scale, kwargs, x.shape[1], cond_kwargs, negative_cond_kwargs)
            for j, xc in enumerate(x_in.split(chunk))
        ])
        if kind == "ddpm":
            last = int(scheduler.previous_timestep(t)) < 0
            z = None if last else step_noise(None, None)
            x = ddpm_step(scheduler, out, t, x, z)
        elif kind == "euler_a":
            z = step_noise(s, s_next) if float(s_next) > 0 else None
            x = euler_ancestral_step(out, x, s, s_next, z, scheduler.config.prediction_type)
        else:
            if out.shape[1] == 2 * x.shape[1]:
                out = out[:, : x.shape[1]]  # learned variance: only DDPM uses it
            if kind == "variance_noise":
                extra["variance_noise"] = step_noise(None, None).to(x)
            x = scheduler.step(out, t, x, **extra).prev_sample
        if progress is not None:
            progress(i + 1, len(timesteps))
    return _decode(vae, x, chunk) if vae is not None else x


def _chunk(cond: Tensor | None, j: int, chunk: int, t_count: int) -> Tensor | None:
    """Rows of ``cond`` for chunk ``j`` when it has one row per frame; batch-1 ``cond`` as is."""
    if cond is None or cond.shape[0] == 1:
        return cond
    if cond.shape[0] != t_count:
        raise ValueError(f"encoder_hidden_states has batch {cond.shape[0]}; expected 1 or "
                         f"{t_count} (one per frame)")
    return cond[j * chunk:(j + 1) * chunk]

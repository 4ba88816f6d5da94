"""Video-to-video with warped noise through tiny random-weight Wan and CogVideoX pipelines:
the latents are ``σ ε + (1 − σ) z0`` (Wan) / ``add_noise`` (CogVideoX) with our ε, and the
pipeline denoises exactly those from the step ``strength`` starts at."""

from __future__ import annotations

from typing import Any

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from tests.editing._tiny import cogvideox_v2v, wan_v2v
from warpnoise.diffusion import (
    encode_video,
    latents_for,
    video_to_video_latents,
)
from warpnoise.integrations.video2video import video_preset
from warpnoise.warper import warp_noise

T, H, W = 9, 32, 32
STEPS, STRENGTH = 4, 0.5


def clip() -> torch.Tensor:
    """A texture moving 1 px/frame to the right, (T, 3, H, W) in [-1, 1]."""
    tex = torch.rand(3, H, W + T, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return torch.stack([tex[:, :, T - t:T - t + W] for t in range(T)])


def warped(model: str) -> torch.Tensor:
    flows = torch.zeros(T - 1, 2, H, W)
    flows[:, 0] = -1.0
    return latents_for(warp_noise(flows, 16, "persistent", seed=1), model, grid="pixel")


def pipeline_start(pipe: Any) -> tuple[float, Any]:
    """Sigma and timestep where the v2v pipeline's loop starts (its get_timesteps, order 1)."""
    sched = type(pipe.scheduler).from_config(pipe.scheduler.config)
    sched.set_timesteps(STEPS)
    t_start = STEPS - min(int(STEPS * STRENGTH), STEPS)
    sigmas = getattr(sched, "sigmas", None)
    return (None if sigmas is None else float(sigmas[t_start])), sched.timesteps[t_start]


def run_recording(pipe: Any, latents: torch.Tensor) -> tuple[list[tuple[Any, Any]], Any]:
    calls: list[tuple[Any, Any]] = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda mod, args, kwargs: calls.append((kwargs["hidden_states"].clone(),
                                                kwargs["timestep"].clone())),
        with_kwargs=True)
    try:
        out = pipe(prompt="a cat", latents=latents, strength=STRENGTH,
                   num_inference_steps=STEPS, height=H, width=W, guidance_scale=1.0,
                   output_type="pt", max_sequence_length=16)
    finally:
        hook.remove()
    return calls, out


@pytest.fixture(scope="module")
def wan() -> Any:
    return wan_v2v()


@pytest.fixture(scope="module")
def cog() -> Any:
    return cogvideox_v2v()


@pytest.mark.slow
def test_wan_latents_are_sigma_eps_plus_one_minus_sigma_z0(wan: Any) -> None:
    assert video_preset(wan).name == "wan2.1"
    eps = warped("wan2.1")
    assert eps.shape == (1, 16, 3, 4, 4)
    lat = video_to_video_latents(wan, clip(), eps, strength=STRENGTH, num_inference_steps=STEPS)
    sigma, _ = pipeline_start(wan)
    assert 0 < sigma < 1  # an intermediate step, not pure noise
    z0 = encode_video(wan, clip())
    torch.testing.assert_close(lat, sigma * eps + (1 - sigma) * z0)
    # z0 is the VAE's posterior mode, normalised as the pipeline does.
    with torch.no_grad():
        raw = wan.vae.encode(clip().permute(1, 0, 2, 3)[None]).latent_dist.mode()
    mean = torch.tensor(wan.vae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(wan.vae.config.latents_std).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(z0, (raw - mean) / std)


@pytest.mark.slow
def test_wan_pipeline_denoises_exactly_our_latents_from_the_intermediate_step(wan: Any) -> None:
    lat = video_to_video_latents(wan, clip(), warped("wan2.1"), strength=STRENGTH,
                                 num_inference_steps=STEPS)
    calls, out = run_recording(wan, lat)
    assert len(calls) == int(STEPS * STRENGTH)  # it started half-way, as asked
    torch.testing.assert_close(calls[0][0], lat)
    assert float(calls[0][1].flatten()[0]) == float(pipeline_start(wan)[1])
    assert out.frames.shape == (1, T, 3, H, W)


def test_cogvideox_latents_are_add_noise_with_our_eps(cog: Any) -> None:
    assert video_preset(cog).name == "cogvideox"
    eps = warped("cogvideox")
    assert eps.shape == (1, 3, 16, 4, 4)
    lat = video_to_video_latents(cog, clip(), eps, strength=STRENGTH, num_inference_steps=STEPS)
    t0 = pipeline_start(cog)[1]
    a = cog.scheduler.alphas_cumprod[int(t0)]
    z0 = encode_video(cog, clip())
    assert z0.shape == eps.shape  # frames before channels
    torch.testing.assert_close(lat, a.sqrt() * z0 + (1 - a).sqrt() * eps)
    calls, out = run_recording(cog, lat)
    assert len(calls) == int(STEPS * STRENGTH)
    torch.testing.assert_close(calls[0][0], lat * cog.scheduler.init_noise_sigma)
    assert int(calls[0][1].flatten()[0]) == int(t0)
    assert out.frames.shape == (1, T, 3, H, W)


def test_noise_of_the_wrong_shape_is_refused(wan: Any) -> None:
    with pytest.raises(ValueError, match="latents_for"):
        video_to_video_latents(wan, clip(), warped("cogvideox"), strength=0.5,
                               num_inference_steps=4)

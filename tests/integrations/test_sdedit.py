"""The SDEdit loop feeds exactly our noise to diffusers schedulers, and only ours."""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from warpnoise.diffusion import (  # noqa: E402
    WarpedNoiseSampler,
    ddpm_step,
    euler_ancestral_step,
    sdedit,
    sdedit_timesteps,
)

T, C, H, W = 3, 3, 8, 8


class Recorder:
    """A noise source serving seeded standard normals and remembering every draw and its seed."""

    def __init__(self, base: int = 100) -> None:
        self.base = base
        self.draws: list[torch.Tensor] = []

    def __call__(self, sigma: object = None, sigma_next: object = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.base + len(self.draws))
        z = torch.randn(T, C, H, W, generator=g)
        self.draws.append(z)
        return z


class LinearModel(torch.nn.Module):
    """A model whose output is a fixed linear function of its input (and t): cheap and
    sensitive to every value that reaches it."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kw: object) -> torch.Tensor:
        return 0.3 * x + 1e-4 * torch.as_tensor(t, dtype=x.dtype)


def zero_model(x: torch.Tensor, t: torch.Tensor, **kw: object) -> torch.Tensor:
    return torch.zeros_like(x)


def frames() -> torch.Tensor:
    return torch.rand(T, C, H, W, generator=torch.Generator().manual_seed(0)) * 2 - 1


def reference_loop(model, scheduler, x0, rec: Recorder, strength: float, steps: int,
                   mode: str, eta: float = 1.0) -> torch.Tensor:
    """diffusers' own img2img-style loop; per-step noise from seeded generators (same seeds
    as ``rec``'s draws) or passed as ``variance_noise``."""
    timesteps, _ = sdedit_timesteps(scheduler, steps, strength)
    eps = rec.draws[0]
    x = scheduler.add_noise(x0, eps, timesteps[:1].repeat(T))
    k = 1
    for t in timesteps:
        out = model(scheduler.scale_model_input(x, t), t)
        if mode == "generator":
            g = torch.Generator().manual_seed(rec.base + k)
            x = scheduler.step(out, t, x, generator=g).prev_sample
            k += 1
        elif mode == "variance_noise":
            kw = {"eta": eta} if isinstance(scheduler, diffusers.DDIMScheduler) else {}
            x = scheduler.step(out, t, x, variance_noise=rec.draws[k], **kw).prev_sample
            k += 1
        else:
            x = scheduler.step(out, t, x).prev_sample
    return x


@pytest.mark.parametrize("make", [
    lambda: diffusers.DDPMScheduler(),
    lambda: diffusers.DDPMScheduler(variance_type="fixed_large"),
    lambda: diffusers.EulerAncestralDiscreteScheduler(),
], ids=["ddpm", "ddpm_fixed_large", "euler_ancestral"])
def test_own_steps_match_scheduler_step_fed_the_same_normals(make) -> None:
    model = LinearModel()
    x0 = frames()
    rec = Recorder()
    ours = sdedit(model, make(), x0, rec, strength=0.6, steps=10)
    ref = reference_loop(model, make(), x0, rec, 0.6, 10, "generator")
    assert len(rec.draws) >= 5  # the start plus a draw per noisy step
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make, eta", [
    (lambda: diffusers.DDIMScheduler(), 1.0),
    (lambda: diffusers.DDIMScheduler(), 0.5),
    (lambda: diffusers.DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++"), 1.0),
], ids=["ddim_eta1", "ddim_eta05", "dpmpp_sde"])
def test_variance_noise_schedulers_get_every_draw(make, eta: float) -> None:
    model = LinearModel()
    x0 = frames()
    rec = Recorder()
    ours = sdedit(model, make(), x0, rec, strength=0.5, steps=10, eta=eta)
    assert len(rec.draws) == 1 + 5
    ref = reference_loop(model, make(), x0, rec, 0.5, 10, "variance_noise", eta=eta)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: diffusers.DDIMScheduler(),
    lambda: diffusers.EulerDiscreteScheduler(),
    lambda: diffusers.DPMSolverMultistepScheduler(),
], ids=["ddim_eta0", "euler", "dpmpp_2m"])
def test_deterministic_schedulers_draw_once(make) -> None:
    rec = Recorder()
    sdedit(LinearModel(), make(), frames(), rec, strength=0.5, steps=10, eta=0.0)
    assert len(rec.draws) == 1


def test_zero_model_ddim_returns_x0_plus_scaled_noise() -> None:
    # ε_θ = 0 makes each deterministic DDIM step x_prev = x_t sqrt(ᾱ_prev / ᾱ_t), so the result is
    # x_t0 / sqrt(ᾱ_t0) = x0 + sqrt((1 - ᾱ_t0) / ᾱ_t0) ε: a known function of our noise.
    flows = torch.zeros(T - 1, 2, H, W)
    flows[:, 0] = -1.0
    sampler = WarpedNoiseSampler(flows, C, "bilinear", seed=3)
    eps = WarpedNoiseSampler(flows, C, "bilinear", seed=3)()
    sched = diffusers.DDIMScheduler(clip_sample=False)
    x0 = frames()
    out = sdedit(zero_model, sched, x0, sampler, strength=0.3, steps=20, eta=0.0)
    t0 = int(sched.timesteps[20 - 6])
    a = sched.alphas_cumprod[t0]
    torch.testing.assert_close(out, x0 + ((1 - a) / a).sqrt() * eps, rtol=1e-4, atol=1e-4)


def test_zero_model_ddpm_final_noise_enters_with_posterior_std() -> None:
    # With ε_θ = 0 and one step from t to 0 noise is added only at the start, and DDPM's last step
    # is noise-free: the result is linear in the first draw only.
    a, b = Recorder(0), Recorder(0)
    sched = diffusers.DDPMScheduler()
    out1 = sdedit(zero_model, sched, frames(), a, strength=0.1, steps=10)
    out2 = sdedit(zero_model, diffusers.DDPMScheduler(), frames(), b, strength=0.1, steps=10)
    assert len(a.draws) == 1
    torch.testing.assert_close(out1, out2)


def test_ddpm_step_learned_range_matches_scheduler() -> None:
    sched = diffusers.DDPMScheduler(variance_type="learned_range")
    sched.set_timesteps(10)
    t = sched.timesteps[3]
    x = frames()
    out = torch.cat([0.2 * x, torch.tanh(x)], dim=1)  # ε and the variance interpolation v
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    ref = sched.step(out, t, x, generator=torch.Generator().manual_seed(7)).prev_sample
    torch.testing.assert_close(ddpm_step(sched, out, t, x, z), ref, rtol=1e-5, atol=1e-5)


def test_euler_ancestral_step_is_deterministic_at_sigma_zero() -> None:
    x = frames()
    out = euler_ancestral_step(torch.zeros_like(x), x, 2.0, 0.0, None)
    torch.testing.assert_close(out, x)  # ε = 0: x̂0 = x, and the step lands on it


def test_ddpm_needs_step_noise() -> None:
    with pytest.raises(ValueError, match="adds noise at every step"):
        sdedit(zero_model, diffusers.DDPMScheduler(), frames(), torch.zeros(T, C, H, W),
               strength=0.5, steps=10)


@pytest.mark.slow
def test_unsupported_stochastic_scheduler_is_refused() -> None:
    with pytest.raises(ValueError, match="draws its own noise"):
        sdedit(zero_model, diffusers.KDPM2AncestralDiscreteScheduler(), frames(), Recorder(),
               strength=0.5, steps=10)


def test_noise_of_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="noise has shape"):
        sdedit(zero_model, diffusers.DDIMScheduler(), frames(), torch.zeros(T, 4, H, W),
               strength=0.5, steps=10, eta=0.0)


def test_bad_strength_is_refused() -> None:
    with pytest.raises(ValueError, match="strength"):
        sdedit(zero_model, diffusers.DDIMScheduler(), frames(), Recorder(), strength=0.0)


def test_flow_matching_noises_with_scale_noise() -> None:
    sched = diffusers.FlowMatchEulerDiscreteScheduler()
    rec = Recorder()
    seen: list[torch.Tensor] = []

    def model(x: torch.Tensor, t: torch.Tensor, **kw: object) -> torch.Tensor:
        seen.append(x.clone())
        return torch.zeros_like(x)

    x0 = frames()
    sdedit(model, sched, x0, rec, strength=0.5, steps=10)
    s = sched.sigmas[5]
    torch.testing.assert_close(seen[0], (1 - s) * x0 + s * rec.draws[0])


@pytest.mark.slow
def test_tiny_unet_and_vae_run_at_latent_resolution() -> None:
    torch.manual_seed(0)  # weights only: the noise comes from the sampler's own seed chain
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
        norm_num_groups=4, attention_head_dim=2).eval()
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=4, layers_per_block=1).eval()
    pix = torch.rand(T, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    flows = torch.zeros(T - 1, 2, 16, 16)
    flows[:, 0] = -2.0
    cond = torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(2))
    runs = [
        sdedit(unet, diffusers.DDIMScheduler(), pix,
               WarpedNoiseSampler(flows, 4, "bilinear", factor=2, seed=s), vae=vae,
               encoder_hidden_states=cond, negative_encoder_hidden_states=torch.zeros_like(cond),
               guidance_scale=3.0, strength=0.5, steps=4, batch_size=2)
        for s in (0, 0, 1)
    ]
    assert runs[0].shape == (T, 3, 16, 16)
    torch.testing.assert_close(runs[0], runs[1])  # same seed, same video
    assert not torch.allclose(runs[0], runs[2])  # the noise is what changed


def test_guidance_mixes_the_noise_and_keeps_the_conditional_variance() -> None:
    # A DeepFloyd-IF-like model: output = [ε, v], both depending on the text embedding.
    seen: list[torch.Tensor] = []

    def model(x: torch.Tensor, t: torch.Tensor, encoder_hidden_states: torch.Tensor
              ) -> torch.Tensor:
        c = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        out = torch.cat([x * 0 + c, x * 0 + 0.1 * c], dim=1)
        seen.append(out)
        return out

    sched = diffusers.DDPMScheduler(variance_type="learned_range")
    cond, uncond = torch.full((1, 2, 4), 0.5), torch.zeros(1, 2, 4)
    rec, ref = Recorder(), Recorder()
    out = sdedit(model, sched, frames(), rec, strength=0.2, steps=10,
                 encoder_hidden_states=cond, negative_encoder_hidden_states=uncond,
                 guidance_scale=4.0)
    # Same run with the guided output written out by hand: ε = 0 + 4 (0.5 - 0), v = 0.05.
    fixed = torch.cat([torch.full((T, C, H, W), 2.0), torch.full((T, C, H, W), 0.05)], dim=1)
    expect = sdedit(lambda x, t: fixed, diffusers.DDPMScheduler(variance_type="learned_range"),
                    frames(), ref, strength=0.2, steps=10)
    assert seen[0].shape[0] == 2 * T  # unconditional and conditional in one batch
    torch.testing.assert_close(out, expect)


@pytest.mark.parametrize("make, eta, expected", [
    (lambda: diffusers.DDIMScheduler(), 0.0, False),
    (lambda: diffusers.DDIMScheduler(), 1.0, True),
    (lambda: diffusers.DDPMScheduler(), 0.0, True),
    (lambda: diffusers.EulerAncestralDiscreteScheduler(), 0.0, True),
    (lambda: diffusers.EulerDiscreteScheduler(), 1.0, False),
    (lambda: diffusers.DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++"), 0.0, True),
    (lambda: diffusers.DPMSolverMultistepScheduler(), 1.0, False),
], ids=["ddim0", "ddim1", "ddpm", "euler_a", "euler", "dpm_sde", "dpmpp"])
def test_takes_step_noise_says_which_schedulers_get_a_draw_per_step(make, eta: float,
                                                                   expected: bool) -> None:
    from warpnoise.integrations.sdedit import takes_step_noise

    assert takes_step_noise(make(), eta) is expected


def test_takes_step_noise_refuses_schedulers_that_draw_their_own() -> None:
    from warpnoise.integrations.sdedit import takes_step_noise

    with pytest.raises(ValueError, match="draws its own noise"):
        takes_step_noise(diffusers.KDPM2AncestralDiscreteScheduler())


class ConditionRecorder(torch.nn.Module):
    """Returns zeros like the sample and remembers every input it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, **kw: object) -> torch.Tensor:
        self.inputs.append(x.clone())
        return torch.zeros(x.shape[0], C, *x.shape[2:])


def test_image_condition_is_concatenated_beside_the_sample_frame_by_frame() -> None:
    model = ConditionRecorder()
    cond = torch.arange(T, dtype=torch.float32).view(T, 1, 1, 1).expand(T, 2, H, W) + 10
    sdedit(model, diffusers.DDIMScheduler(), frames(), Recorder(), strength=0.5, steps=4,
           image_condition=cond, batch_size=2)
    assert len(model.inputs) == 2 * 2  # 2 steps x 2 chunks (frames 0-1, frame 2)
    for k, x in enumerate(model.inputs):
        first = 0 if k % 2 == 0 else 2
        assert x.shape[1] == C + 2
        torch.testing.assert_close(x[:, C:], cond[first:first + x.shape[0]])


def test_image_condition_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="image_condition has shape"):
        sdedit(zero_model, diffusers.DDIMScheduler(), frames(), Recorder(), strength=0.5,
               steps=2, image_condition=torch.zeros(T, 3, H + 1, W))

"""Presets give exactly the tensor each diffusers pipeline's ``latents=`` takes.

Shapes are compared with the pipelines' own ``prepare_latents`` (built without weights: their
default scale factors are the real models'), packing with their own ``_pack_latents``.
"""

from __future__ import annotations

import inspect

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from warpnoise.diffusion import (  # noqa: E402
    PRESETS,
    arrange_latents,
    check_video,
    keeps_frame,
    latent_preset,
    latents_for,
    split_latents,
)
from warpnoise.field import block_integrate  # noqa: E402
from warpnoise.latent.presets import pack_tokens, unpack_tokens  # noqa: E402


def bare(cls: type, **components: object) -> object:
    """A pipeline with no weights: every component None except those given."""
    names = [n for n in inspect.signature(cls.__init__).parameters if n != "self"]
    return cls(**({n: None for n in names} | components))


def flow_sched() -> object:
    return diffusers.FlowMatchEulerDiscreteScheduler()


def tiny_wan22_vae() -> object:
    # Only the config matters to prepare_latents: Wan 2.2 TI2V-5B's 48 channels and x16.
    return diffusers.AutoencoderKLWan(base_dim=3, z_dim=48, dim_mult=[1, 1, 1, 1],
                                      num_res_blocks=1, latents_mean=[0.0] * 48,
                                      latents_std=[1.0] * 48, scale_factor_spatial=16)


def g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def reference(name: str, t: int, h: int, w: int) -> tuple[int, ...]:
    """The shape of the pipeline's own random latents for ``t`` frames of ``h x w``."""
    f32 = torch.float32
    if name in ("wan2.1", "wan2.2-a14b"):
        p = bare(diffusers.WanPipeline, scheduler=flow_sched())
        return p.prepare_latents(1, 16, h, w, t, f32, "cpu", g()).shape
    if name == "wan2.2-ti2v-5b":
        p = bare(diffusers.WanPipeline, scheduler=flow_sched(), vae=tiny_wan22_vae())
        return p.prepare_latents(1, 48, h, w, t, f32, "cpu", g()).shape
    if name in ("cogvideox", "cogvideox1.5"):
        p = bare(diffusers.CogVideoXPipeline, scheduler=diffusers.CogVideoXDDIMScheduler())
        if name == "cogvideox1.5":  # CogVideoXPipeline.__call__ with patch_size_t = 2
            latent_frames = (t - 1) // p.vae_scale_factor_temporal + 1
            t += (-latent_frames % 2) * p.vae_scale_factor_temporal
        return p.prepare_latents(1, 16, t, h, w, f32, "cpu", g()).shape
    if name == "hunyuanvideo":
        p = bare(diffusers.HunyuanVideoPipeline, scheduler=flow_sched())
        return p.prepare_latents(1, 16, h, w, t, f32, "cpu", g()).shape
    if name == "ltx-video":
        p = bare(diffusers.LTXPipeline, scheduler=flow_sched())
        return p.prepare_latents(1, 128, h, w, t, f32, "cpu", g()).shape
    if name == "flux":
        p = bare(diffusers.FluxPipeline, scheduler=flow_sched())
        return (t, *p.prepare_latents(1, 16, h, w, f32, "cpu", g())[0].shape[1:])
    cls = {"sd": diffusers.StableDiffusionPipeline, "sdxl": diffusers.StableDiffusionXLPipeline}
    extra = {"requires_safety_checker": False} if name == "sd" else {}
    p = bare(cls[name], scheduler=diffusers.DDIMScheduler(clip_sample=False), **extra)
    return (t, *p.prepare_latents(1, 4, h, w, f32, "cpu", g()).shape[1:])


CASES = {  # (frames, height, width) each model's pipeline documents or defaults to
    "wan2.1": (81, 480, 832), "wan2.2-a14b": (81, 480, 832), "wan2.2-ti2v-5b": (121, 704, 1280),
    "cogvideox": (49, 480, 720), "cogvideox1.5": (81, 768, 1360),
    "hunyuanvideo": (129, 720, 1280), "ltx-video": (161, 512, 704), "sd": (3, 512, 512),
    "sdxl": (2, 1024, 1024), "flux": (2, 1024, 768),
}


def test_every_preset_has_a_reference_case() -> None:
    assert set(CASES) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_preset_shape_is_the_pipelines_own(name: str) -> None:
    t, h, w = CASES[name]
    p = latent_preset(name)
    noise = torch.zeros(t, p.channels, h // p.spatial, w // p.spatial)
    assert tuple(latents_for(noise, name).shape) == tuple(reference(name, t, h, w))


def test_packing_is_diffusers_pack_latents() -> None:
    x = torch.randn(2, 8, 4, 6, 10, generator=g())
    for pt, p in ((1, 1), (1, 2), (2, 2)):
        torch.testing.assert_close(pack_tokens(x, pt, p),
                                   diffusers.LTXPipeline._pack_latents(x, p, pt))
        torch.testing.assert_close(unpack_tokens(pack_tokens(x, pt, p), 4, 6, 10, pt, p), x)
    img = torch.randn(3, 16, 6, 10, generator=g())
    torch.testing.assert_close(pack_tokens(img.unsqueeze(2), 1, 2).contiguous(),
                               diffusers.FluxPipeline._pack_latents(img, 3, 16, 6, 10))


def test_latent_frame_k_is_pixel_frame_k_r_in_each_layout() -> None:
    noise = torch.randn(17, 16, 4, 6, generator=g())
    wan, cog = latents_for(noise, "wan2.1"), latents_for(noise, "cogvideox")
    for k in range(5):
        torch.testing.assert_close(wan[0, :, k], noise[4 * k])
        torch.testing.assert_close(cog[0, k], noise[4 * k])
    ltx_noise = torch.randn(17, 128, 2, 3, generator=g())
    tokens = latents_for(ltx_noise, "ltx-video")  # frame-major tokens, 128 features each
    assert tokens.shape == (1, 3 * 2 * 3, 128)
    torch.testing.assert_close(tokens[0, 6 + 1 * 3 + 2], ltx_noise[8, :, 1, 2])


def test_subsampling_keeps_unit_variance_where_averaging_would_not() -> None:
    # Strongly correlated frames (a static scene): the kept frames are still N(0, 1).
    base = torch.randn(1, 16, 64, 64, generator=g())
    noise = base.expand(9, -1, -1, -1).clone()
    lat = latents_for(noise, "wan2.1")
    for k in range(3):
        assert abs(float(lat[0, :, k].std()) - 1) < 0.02
    averaged = noise[1:5].sum(0) / 2  # sum / sqrt(r): unit variance only for independent frames
    assert float(averaged.std()) > 1.5


@pytest.mark.parametrize("name", sorted(CASES))
def test_split_latents_undoes_arrange(name: str) -> None:
    p = latent_preset(name)
    t = 1 + 2 * p.temporal
    noise = torch.randn(t, p.channels, 64 // p.spatial, 64 // p.spatial, generator=g())
    lat = latents_for(noise, name, seed=3)
    back = split_latents(lat, name, 64, 64, frames=t)
    torch.testing.assert_close(back, noise[:: p.temporal])


def test_cogvideox15_pads_at_the_front_with_fresh_seeded_noise() -> None:
    noise = torch.randn(9, 16, 4, 4, generator=g())  # 3 latent frames -> padded to 4
    a = latents_for(noise, "cogvideox1.5", seed=5)
    assert a.shape == (1, 4, 16, 4, 4)
    torch.testing.assert_close(a[0, 1:], noise[::4])  # the pipeline drops latents[:, :1]
    torch.testing.assert_close(a[0, 0], torch.randn(16, 4, 4, generator=torch.Generator()
                                                    .manual_seed(5)))
    assert torch.equal(a, latents_for(noise, "cogvideox1.5", seed=5))
    assert latents_for(noise[:5], "cogvideox1.5").shape == (1, 2, 16, 4, 4)  # even: no pad


def test_pixel_grid_noise_is_integrated_to_the_latent_grid() -> None:
    pix = torch.randn(5, 16, 32, 48, generator=g())
    torch.testing.assert_close(latents_for(pix, "wan2.1", grid="pixel"),
                               latents_for(block_integrate(pix, 8), "wan2.1"))


def test_degradation_is_applied_frame_by_frame_from_the_generator() -> None:
    from warpnoise.diffusion import degrade

    noise = torch.randn(9, 16, 4, 4, generator=g())
    out = latents_for(noise, "cogvideox", degradation=0.5, seed=11)
    gen = torch.Generator().manual_seed(11)
    stream = [degrade(noise[t], 0.5, generator=gen)
              for t in range(9) if keeps_frame("cogvideox", t)]
    torch.testing.assert_close(out[0], torch.stack(stream))
    gamma = torch.rand(4, 4, generator=g())  # a per-pixel map on the latent grid
    assert latents_for(noise, "wan2.1", degradation=gamma, seed=1).shape == (1, 16, 3, 4, 4)


def test_image_models_take_the_frames_as_the_batch() -> None:
    noise = torch.randn(3, 4, 8, 8, generator=g())
    torch.testing.assert_close(latents_for(noise, "sd"), noise)
    with pytest.raises(ValueError, match="batch_size must be 1"):
        latents_for(noise, "sd", batch_size=2)
    assert latents_for(torch.randn(9, 16, 2, 2), "wan2.1", batch_size=3).shape == (3, 16, 3, 2, 2)


@pytest.mark.parametrize("name, t, h, w, match", [
    ("wan2.1", 50, 480, 832, r"4k\+1 frames.*use 49 \(--frames 49\)"),
    ("ltx-video", 24, 512, 704, r"8k\+1 frames.*use 17 \(--frames 17\)"),
    ("ltx-video", 25, 500, 704, "multiples of 32"),
    ("wan2.2-ti2v-5b", 5, 496, 832, "multiples of 32"),
    ("cogvideox", 49, 480, 728, "multiples of 16"),
])
def test_frame_and_size_rules_are_named(name: str, t: int, h: int, w: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_video(name, t, h, w)


def test_bad_presets_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown latent model 'wan3'.*wan2\.1"):
        latents_for(torch.zeros(5, 16, 2, 2), "wan3")
    with pytest.raises(ValueError, match=r"\(T, 16, H, W\).*channels=16"):
        latents_for(torch.zeros(5, 4, 2, 2), "wan2.1")
    with pytest.raises(ValueError, match="grid"):
        latents_for(torch.zeros(5, 16, 2, 2), "wan2.1", grid="image")
    with pytest.raises(ValueError, match="multiples of 16"):
        latents_for(torch.zeros(5, 16, 20, 20), "wan2.1", grid="pixel")
    with pytest.raises(ValueError, match=r"\(F, 16, h, w\)"):
        arrange_latents(torch.zeros(2, 4, 2, 2), "wan2.1")


def test_frame_rule_suggests_only_a_count_the_clip_has() -> None:
    # A 24-frame clip cannot give 25 frames: --frames can only keep fewer.
    with pytest.raises(ValueError, match=r"got 24: use 21 \(--frames 21\)$"):
        check_video("cogvideox", 24, 480, 720)

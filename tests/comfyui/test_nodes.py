"""Every node of the pack run on ComfyUI-format data from the bundled clip, its NOISE fed to a
simulated SamplerCustomAdvanced, and the noise checked with warpnoise's own statistics.

The clip is ``sample.mp4`` (24 real frames of 256x192, OpenCV's box.mp4), as a ComfyUI IMAGE:
``[T, H, W, 3]`` float32 in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.comfyui._pack import (
    RecordingGuider,
    load_pack,
    run_node,
    sampler_custom_advanced,
)
from tests.io._clips import sample_path
from warpnoise.estimate import estimate_flows
from warpnoise.flow import compose_map, pixel_grid
from warpnoise.io.noisefile import load_latents
from warpnoise.io.video import read_frames
from warpnoise.pipeline import NoiseOptions, video_to_noise
from warpnoise.report import noise_report

pack = load_pack()
FromVideo = pack.NODE_CLASS_MAPPINGS["WarpnoiseNoiseFromVideo"]
LoadFile = pack.NODE_CLASS_MAPPINGS["WarpnoiseLoadNoiseFile"]
WAN_SIGMAS = torch.tensor([1.0, 0.9, 0.5, 0.0])  # flow matching: the first sigma is 1


def as_image(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` frames as ComfyUI's IMAGE."""
    return torch.from_numpy(frames).float() / 255.0


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return read_frames(sample_path())


@pytest.fixture(scope="module")
def flows(frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return estimate_flows(frames)


@pytest.fixture(scope="module")
def wan(frames: np.ndarray) -> tuple:
    """Wan 2.1 noise for 21 frames (4k+1), degradation 0.5, the default method."""
    return run_node(FromVideo, images=as_image(frames[:21]), model="wan2.1", seed=3,
                    degradation=0.5)


def latent_frames(samples: torch.Tensor) -> torch.Tensor:
    """ComfyUI's ``[1, C, F, h, w]`` as ``(F, C, h, w)`` for the report."""
    return samples[0].permute(1, 0, 2, 3)


def composed(backward: torch.Tensor, r: int) -> torch.Tensor:
    """Backward flows from pixel frame ``k r`` to ``(k - 1) r``: the motion between latent
    frames under temporal compression ``r``."""
    _, _, h, w = backward.shape
    grid = pixel_grid(h, w)
    out = []
    for k in range(1, (backward.shape[0]) // r + 1):
        m = grid
        for t in range((k - 1) * r + 1, k * r + 1):
            m = compose_map(m, backward[t - 1])
        out.append(m - grid)
    return torch.stack(out)


@pytest.mark.slow
def test_from_video_gives_comfyuis_wan_latent_and_a_preview(wan: tuple) -> None:
    _, latent, preview = wan
    assert latent["samples"].shape == (1, 16, 6, 24, 32)  # EmptyHunyuanLatentVideo(256, 192, 21)
    assert preview.shape == (6, 192, 3 * 256, 3)


def test_noise_feeds_sampler_custom_advanced_exactly_n01_per_frame(wan: tuple) -> None:
    noise, latent, _ = wan
    empty = {"samples": torch.zeros(1, 16, 6, 24, 32)}
    guider = RecordingGuider()
    sampler_custom_advanced(noise, guider, WAN_SIGMAS, empty)
    got = guider.calls[0]
    assert got["seed"] == 3 and got["noise"].dtype == torch.float32
    assert torch.equal(got["noise"], latent["samples"])
    report = noise_report(latent_frames(got["x"]))  # σ = 1: the model sees the noise itself
    assert report.normal, report.verdict()


def test_noise_refuses_a_latent_of_another_clip_naming_both_shapes(wan: tuple) -> None:
    noise = wan[0]
    guider = RecordingGuider()
    wrong = {"samples": torch.zeros(1, 16, 13, 60, 104)}  # 49 frames of 832x480
    with pytest.raises(ValueError, match=r"\(1, 16, 13, 60, 104\).*\(1, 16, 6, 24, 32\)"):
        sampler_custom_advanced(noise, guider, WAN_SIGMAS, wrong)
    assert guider.calls == []


@pytest.mark.slow
def test_wan_noise_moves_with_the_clip_and_random_noise_does_not(
        frames: np.ndarray, flows: tuple, wan: tuple) -> None:
    motion = composed(flows[0][:20], 4)  # pixel frames 0, 4, ..., 20 -> latent frames
    warped = noise_report(latent_frames(wan[1]["samples"]), motion)
    assert warped.normal and warped.moves, warped.verdict()
    control = run_node(FromVideo, images=as_image(frames[:21]), model="wan2.1", seed=3,
                       degradation=0.5, method="random")
    fresh = noise_report(latent_frames(control[1]["samples"]), motion)
    assert fresh.normal and not fresh.moves, fresh.verdict()


def cut(flows: tuple, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The flows of the first ``t`` frames."""
    return flows[0][: t - 1], flows[1][: t - 1]


@pytest.fixture(scope="module")
def fine(frames: np.ndarray) -> dict[str, torch.Tensor]:
    """Noise on a 2x2 grid (custom: 4 channels, no temporal compression), 9 frames, per method:
    4 x 96 x 128 values per frame (the statistical suite's sample sizes)."""
    out = {}
    for method in ("persistent", "bilinear", "random"):
        latent = run_node(FromVideo, images=as_image(frames[:9]), model="custom", channels=4,
                          spatial_compression=2, temporal_compression=1, method=method)[1]
        out[method] = latent["samples"]
    return out


@pytest.mark.slow
def test_fine_noise_is_n01_and_moves_with_the_clip(fine: dict, flows: tuple) -> None:
    assert fine["persistent"].shape == (9, 4, 96, 128)  # frames are the batch
    report = noise_report(fine["persistent"], *cut(flows, 9))
    assert report.normal and report.moves, report.verdict()


@pytest.mark.slow
def test_the_statistics_catch_broken_noise(fine: dict, flows: tuple) -> None:
    assert not noise_report(fine["bilinear"], *cut(flows, 9)).normal  # variance lost
    assert not noise_report(fine["random"], *cut(flows, 9)).moves  # does not follow


@pytest.mark.slow
def test_image_model_noise_is_a_batch_of_frames_that_moves(frames: np.ndarray,
                                                           flows: tuple) -> None:
    noise, latent, _ = run_node(FromVideo, images=as_image(frames[:9]), model="sd", seed=1)
    empty = {"samples": torch.zeros(9, 4, 24, 32)}  # EmptyLatentImage(256, 192, batch 9)
    guider = RecordingGuider()
    sampler_custom_advanced(noise, guider, torch.tensor([14.6, 0.0]), empty)
    assert torch.equal(guider.calls[0]["noise"], latent["samples"])
    report = noise_report(latent["samples"], *cut(flows, 9))  # flows integrated to 8x8 blocks
    assert report.normal and report.moves, report.verdict()


# ComfyUI's empty latents for 9 frames of 64x64 (EmptyHunyuanLatentVideo, Wan22ImageToVideoLatent,
# EmptyLTXVLatentVideo, EmptyLatentImage / EmptySD3LatentImage with batch 9).
COMFY_LATENTS = {
    "wan2.1": (1, 16, 3, 8, 8), "wan2.2-a14b": (1, 16, 3, 8, 8),
    "wan2.2-ti2v-5b": (1, 48, 3, 4, 4), "cogvideox": (1, 16, 3, 8, 8),
    "cogvideox1.5": (1, 16, 3, 8, 8), "hunyuanvideo": (1, 16, 3, 8, 8),
    "ltx-video": (1, 128, 2, 2, 2), "sd": (9, 4, 8, 8), "sdxl": (9, 4, 8, 8),
    "flux": (9, 16, 8, 8),
}


@pytest.mark.parametrize("model", sorted(COMFY_LATENTS))
def test_every_model_preset_fits_comfyuis_empty_latent(frames: np.ndarray, model: str) -> None:
    shape = COMFY_LATENTS[model]
    noise, latent, preview = run_node(FromVideo, images=as_image(frames[:9]), model=model,
                                      width=64, height=64, method="random")
    assert latent["samples"].shape == shape
    assert sampler_custom_advanced(noise, RecordingGuider(), WAN_SIGMAS,
                                   {"samples": torch.zeros(shape)})["samples"].shape == shape
    assert preview.shape[1:] == (64, 192, 3)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The command line's files for 21 frames of the clip at 128x96, seed 3."""
    d = tmp_path_factory.mktemp("cli")
    opts = {"seed": 3, "frames": 21, "size": (128, 96)}
    video_to_noise(sample_path(), d / "wan.safetensors",
                   NoiseOptions(latent="wan2.1", degradation=0.5, **opts))
    video_to_noise(sample_path(), d / "noise.safetensors",
                   NoiseOptions(channels=16, downsample=8, **opts))
    return {"dir": d, "frames": read_frames(sample_path(), size=(128, 96), frames=21)}


@pytest.mark.slow
def test_nodes_give_the_bits_of_the_command_line(small: dict) -> None:
    want, _ = load_latents(small["dir"] / "wan.safetensors")  # noise --latent wan2.1
    warped = run_node(FromVideo, images=as_image(small["frames"]), model="wan2.1", seed=3,
                      degradation=0.5, layout="diffusers")[1]["samples"]
    assert torch.equal(warped, want)
    loaded = run_node(LoadFile, path=str(small["dir"] / "noise.safetensors"), model="wan2.1",
                      seed=3, degradation=0.5, layout="diffusers")[1]["samples"]
    assert torch.equal(loaded, want)


def test_load_node_feeds_the_sampler_from_a_latents_file(small: dict) -> None:
    noise, latent = run_node(LoadFile, path=str(small["dir"] / "wan.safetensors"),
                             model="wan2.1")
    assert latent["samples"].shape == (1, 16, 6, 12, 16)
    guider = RecordingGuider()
    sampler_custom_advanced(noise, guider, WAN_SIGMAS, {"samples": torch.zeros(1, 16, 6, 12, 16)})
    assert noise_report(latent_frames(guider.calls[0]["noise"])).normal
    with pytest.raises(ValueError, match=r"\(1, 16, 5, 12, 16\).*frames 6 vs 5"):
        noise.generate_noise({"samples": torch.zeros(1, 16, 5, 12, 16)})
    with pytest.raises(ValueError, match=r"holds Wan 2\.1 latents"):
        run_node(LoadFile, path=str(small["dir"] / "wan.safetensors"), model="cogvideox")

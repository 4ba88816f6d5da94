"""ComfyUI adapters without ComfyUI: the NOISE object's layouts and shape errors, noise files.

The nodes themselves (run through the pack, on the bundled clip) are tested in tests/comfyui/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.io._clips import moving_frames, write_png_folder
from warpnoise.diffusion import latents_for
from warpnoise.integrations.comfyui import (
    LatentNoise,
    WarpedNoise,
    arrange,
    custom_preset,
    flow_estimator,
    latent_noise_from_images,
    load_latent_noise,
    parse_method_options,
    resolve_input_path,
)
from warpnoise.io.noisefile import load_latents, save_noise
from warpnoise.latent.presets import latent_preset
from warpnoise.methods import methods
from warpnoise.pipeline import NoiseOptions, video_to_noise
from warpnoise.rng import derive_seed


def latent_noise(model: str = "wan2.1", frames: int = 3, h: int = 4, w: int = 6,
                 seed: int = 0) -> LatentNoise:
    p = latent_preset(model)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(frames, p.channels, h, w, generator=gen)
    return LatentNoise(frames=x, preset=p, pixel_frames=(frames - 1) * p.temporal + 1,
                       pixel_size=(w * p.spatial, h * p.spatial), generator=gen)


def test_video_noise_fits_comfyui_video_latent_and_repeats_over_its_batch() -> None:
    n = latent_noise("wan2.1")
    out = WarpedNoise(n, seed=5).generate_noise({"samples": torch.zeros(2, 16, 3, 4, 6)})
    assert out.shape == (2, 16, 3, 4, 6) and out.device.type == "cpu"
    assert torch.equal(out[0], n.frames.permute(1, 0, 2, 3))
    assert torch.equal(out[1], out[0])


def test_auto_layout_also_accepts_frames_before_channels() -> None:
    n = latent_noise("cogvideox")
    out = WarpedNoise(n, seed=0).generate_noise({"samples": torch.zeros(1, 3, 16, 4, 6)})
    assert torch.equal(out[0], n.frames)


def test_explicit_layout_refuses_the_other_one() -> None:
    n = latent_noise("cogvideox")
    noise = WarpedNoise(n, seed=0, layout="B,C,T,H,W")
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 4, 6\).*\(1, 16, 3, 4, 6\)"):
        noise.generate_noise({"samples": torch.zeros(1, 3, 16, 4, 6)})


def test_image_model_frames_are_the_batch_and_batch_index_selects_frames() -> None:
    n = latent_noise("sd", frames=5)
    noise = WarpedNoise(n, seed=0)
    assert torch.equal(noise.generate_noise({"samples": torch.zeros(5, 4, 4, 6)}), n.frames)
    part = noise.generate_noise({"samples": torch.zeros(2, 4, 4, 6), "batch_index": [3, 4]})
    assert torch.equal(part, n.frames[3:])
    with pytest.raises(ValueError, match="frames 5 vs 2"):
        noise.generate_noise({"samples": torch.zeros(2, 4, 4, 6)})


@pytest.mark.parametrize(("latent", "what"), [
    ((1, 16, 13, 4, 6), "frames 3 vs 13"),
    ((1, 48, 3, 4, 6), "channels 16 vs 48"),
    ((1, 16, 3, 60, 104), "height 4 vs 60, width 6 vs 104"),
    ((1, 16, 4, 6), "the latent is 4-D, the noise 5-D"),
])
def test_a_wrong_latent_shape_names_both_shapes_and_what_differs(
        latent: tuple[int, ...], what: str) -> None:
    noise = WarpedNoise(latent_noise("wan2.1"), seed=0, layout="B,C,T,H,W")
    with pytest.raises(ValueError) as e:
        noise.generate_noise({"samples": torch.zeros(latent)})
    msg = str(e.value)
    assert str(latent) in msg and what in msg
    assert "(1, 16, 3, 4, 6)" in msg and "9 frames of 48x32" in msg


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_nested_or_missing_samples_are_refused_clearly() -> None:
    noise = WarpedNoise(latent_noise("wan2.1"), seed=0)
    with pytest.raises(ValueError, match="no 'samples' tensor"):
        noise.generate_noise({})
    nested = torch.nested.nested_tensor([torch.zeros(16, 3, 4, 6), torch.zeros(8, 1, 2, 5)])
    with pytest.raises(ValueError, match="nested tensor"):
        noise.generate_noise({"samples": nested})


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_noise_dtype_follows_the_latent(dtype: torch.dtype) -> None:
    noise = WarpedNoise(latent_noise("wan2.1"), seed=0)
    latent = {"samples": torch.zeros(1, 16, 3, 4, 6, dtype=dtype)}
    assert noise.generate_noise(latent).dtype == dtype


def test_auto_layout_is_comfyuis_own_per_model() -> None:
    assert arrange(latent_noise("ltx-video", h=2, w=2)).shape == (1, 128, 3, 2, 2)
    assert arrange(latent_noise("sd", frames=4)).shape == (4, 4, 4, 6)
    assert arrange(latent_noise("cogvideox", frames=3), "diffusers").shape == (1, 3, 16, 4, 6)
    assert arrange(latent_noise("flux", frames=2), "diffusers").shape == (2, 6, 64)


def test_load_keeps_every_rth_frame_of_a_go_with_the_flow_npy(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arr = rng.standard_normal((49, 6, 10, 16)).astype(np.float16)  # [T, H, W, C]
    path = tmp_path / "noises.npy"
    np.save(path, arr)
    n = load_latent_noise(path, "cogvideox")
    want = torch.from_numpy(arr[::4].astype(np.float32)).permute(0, 3, 1, 2)
    assert torch.equal(n.frames, want)
    out = WarpedNoise(n, seed=0).generate_noise({"samples": torch.zeros(1, 16, 13, 6, 10)})
    assert torch.equal(out[0], want.permute(1, 0, 2, 3))


def test_load_with_degradation_gives_the_bits_of_latents_for(tmp_path) -> None:
    noise = torch.randn(9, 16, 4, 6, generator=torch.Generator().manual_seed(1))
    save_noise(tmp_path / "n.safetensors", noise)
    n = load_latent_noise(tmp_path / "n.safetensors", "cogvideox1.5", degradation=0.5, seed=7)
    want = latents_for(noise, "cogvideox1.5", degradation=0.5,
                       seed=derive_seed(7, "degradation"))
    assert torch.equal(arrange(n, "diffusers"), want)  # 3 frames padded to 4 at the front
    assert torch.equal(arrange(n, "diffusers"), want)  # and again: arrange draws from a copy
    noise_out = WarpedNoise(n, seed=7, layout="diffusers").generate_noise({"samples": want})
    assert torch.equal(noise_out, want)
    assert arrange(n).shape == (1, 16, 3, 4, 6)  # ComfyUI: no padding


def test_load_refuses_files_that_do_not_fit_the_model(tmp_path) -> None:
    save_noise(tmp_path / "four.safetensors", torch.randn(9, 4, 4, 6))
    with pytest.raises(ValueError, match=r"Wan 2\.1 takes 16 latent channels.* has 4"):
        load_latent_noise(tmp_path / "four.safetensors", "wan2.1")
    save_noise(tmp_path / "ten.safetensors", torch.randn(10, 16, 4, 6))
    with pytest.raises(ValueError, match="4k\\+1 frames"):
        load_latent_noise(tmp_path / "ten.safetensors", "wan2.1")
    with pytest.raises(ValueError, match="does not exist"):
        load_latent_noise(tmp_path / "nope.safetensors", "wan2.1")
    n = load_latent_noise(tmp_path / "four.safetensors", "custom", temporal=2)
    assert n.frames.shape == (5, 4, 4, 6)


def test_bad_options_are_refused_before_any_work() -> None:
    images = torch.rand(5, 32, 48, 3)
    est = flow_estimator("dis-ultrafast")
    with pytest.raises(ValueError, match=r"got 4: use 1 \(trim the IMAGE batch"):
        latent_noise_from_images(images[:4], "wan2.1", estimator=est)
    with pytest.raises(ValueError, match=r"multiples of 16.*set the node's width and height"):
        latent_noise_from_images(images, "wan2.1", estimator=est, size=(40, 32))
    with pytest.raises(ValueError, match=r"degradation must lie in \[0, 1\]"):
        latent_noise_from_images(images, "wan2.1", estimator=est, degradation=1.5)
    with pytest.raises(ValueError, match=r"\[B, H, W, C\].*\(32, 48, 3\)"):
        latent_noise_from_images(images[0], "wan2.1", estimator=est)
    bad = images.clone()
    bad[2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        latent_noise_from_images(bad, "wan2.1", estimator=est)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            latent_noise_from_images(images, "wan2.1", estimator=est, device="cuda")
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        custom_preset(0, 8, 4)
    with pytest.raises(ValueError, match="unknown flow"):
        flow_estimator("sparse")
    with pytest.raises(ValueError, match="JSON object"):
        parse_method_options("upsample=4")
    assert parse_method_options(' {"upsample": 4} ') == {"upsample": 4}


def test_paths_are_read_only_inside_the_input_folder(tmp_path, monkeypatch) -> None:
    inside = tmp_path / "in"
    (inside / "sub").mkdir(parents=True)
    for name in ("in/n.npy", "in/sub/m.npy", "secret.npy"):
        (tmp_path / name).write_bytes(b"")
    (inside / "escape.npy").symlink_to(tmp_path / "secret.npy")
    monkeypatch.chdir(tmp_path)  # a file beside the server's working folder is not the input
    assert resolve_input_path("n.npy", str(inside)) == (inside / "n.npy").resolve()
    assert resolve_input_path("sub/m.npy", str(inside)) == (inside / "sub" / "m.npy").resolve()
    assert resolve_input_path(str(inside / "n.npy"), str(inside)) == (inside / "n.npy").resolve()
    # A name is looked up in the input folder only, never beside the server's working folder.
    assert resolve_input_path("secret.npy", str(inside)) == (inside / "secret.npy").resolve()
    for bad in (str(tmp_path / "secret.npy"), "../secret.npy", "escape.npy", "/etc/passwd"):
        with pytest.raises(ValueError, match="outside ComfyUI's input folder"):
            resolve_input_path(bad, str(inside))
    # Outside ComfyUI (no input folder) a path is taken as given.
    assert resolve_input_path("secret.npy", None) == Path("secret.npy")


def test_preview_panels_are_capped_so_long_clips_stay_small() -> None:
    images = torch.rand(5, 480, 832, 3, generator=torch.Generator().manual_seed(0))
    n = latent_noise_from_images(images, "wan2.1", estimator=flow_estimator("dis-ultrafast"),
                                 method="random", preview=True)
    assert n.preview is not None and n.preview.shape == (2, 295, 3 * 512, 3)


def test_frame_guided_methods_get_the_images_as_frames() -> None:
    """control-a-video is offered by the node: it reads the IMAGE batch itself (no flow is
    estimated for it), so a static clip keeps its noise and a changed region is drawn afresh."""
    images = torch.rand(1, 32, 48, 3, generator=torch.Generator().manual_seed(0)).repeat(5, 1, 1, 1)
    images[3:, :16, :16] = 1.0 - images[3:, :16, :16]  # a region changes at frame 3
    def no_flow(*args: object) -> None:
        raise AssertionError("a flow was estimated for a method that ignores flows")

    n = latent_noise_from_images(images, "sd", estimator=no_flow, method="control-a-video")
    shown = latent_noise_from_images(images, "sd", estimator=flow_estimator("dis-ultrafast"),
                                     method="control-a-video", preview=True)
    x = n.frames
    assert torch.equal(x, shown.frames)  # the same noise as with the preview's flows
    assert x.shape == (5, 4, 4, 6)
    assert torch.equal(x[1], x[0]) and torch.equal(x[2], x[0])
    changed = torch.zeros(4, 6, dtype=torch.bool)
    changed[:2, :2] = True
    assert not torch.equal(x[3][:, changed], x[2][:, changed])
    assert torch.equal(x[3][:, ~changed], x[2][:, ~changed])


@pytest.mark.parametrize("cached", [False, True])
def test_first_run_announces_the_kernel_compilation(cached: bool, monkeypatch, capsys) -> None:
    """A ComfyUI console shows why the first run waits (numba compiling), and when it is over;
    nothing once the kernels are cached."""
    from warpnoise.integrations.comfyui import custom_preset
    from warpnoise.kernels import boxes

    monkeypatch.setattr(boxes, "cache_status", lambda channels=4: cached)
    images = torch.rand(2, 32, 48, 3)
    latent_noise_from_images(images, custom_preset(4, 8, 1),
                             estimator=flow_estimator("dis-ultrafast"))
    err = capsys.readouterr().err
    if cached:
        assert "compiling" not in err
    else:
        assert "compiling the CPU kernels" in err and "warpnoise warmup" in err
        assert "kernels ready" in err


@pytest.mark.parametrize("method", methods())
def test_node_noise_equals_the_command_for_every_method(method: str, tmp_path: Path) -> None:
    """The node and ``warpnoise noise --latent`` run one streaming core: the same bits for every
    registered method (frame-guided ones get the latent block size on both paths)."""
    frames = moving_frames(t=5, height=32, width=48, dx=2, dy=1)
    clip = write_png_folder(tmp_path / "clip", frames)
    out = tmp_path / "noise.safetensors"
    video_to_noise(clip, out, NoiseOptions(method=method, latent="wan2.1", seed=5,
                                           degradation=0.25))
    want, _ = load_latents(out)
    got = latent_noise_from_images(torch.from_numpy(frames).float() / 255.0, "wan2.1",
                                   estimator=flow_estimator("dis-medium"), method=method,
                                   seed=5, degradation=0.25)
    assert torch.equal(arrange(got, "diffusers"), want)

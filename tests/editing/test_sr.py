"""The bundled super-resolver: small, loads offline, beats bicubic on a held-out image, and its
output depends on the noise (stochastic sampling)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import DDIMScheduler

from warpnoise.editing.denoiser import denoiser_config, new_denoiser, save_denoiser
from warpnoise.editing.edit import bicubic_up, downsample
from warpnoise.editing.metrics import psnr, ssim
from warpnoise.editing.sr import (
    SR3Net,
    is_sr_file,
    is_sr_model,
    load_sr_model,
    new_sr_model,
    save_sr_model,
    sr_config,
    super_resolve,
)

BUNDLED = Path(str(resources.files("warpnoise") / "data" / "sr4.safetensors"))


def held_out(size: int = 96) -> np.ndarray:
    """A crop of scikit-image's ``chelsea`` (never used in training), ``(1, size, size, 3)``."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.chelsea()[60:60 + size, 150:150 + size][None])


def sr(x: np.ndarray, seed: int) -> np.ndarray:
    net, trained = load_sr_model()
    up = torch.from_numpy(bicubic_up(downsample(x, 4), 4)).permute(0, 3, 1, 2).float() / 127.5 - 1
    g = torch.Generator().manual_seed(seed)
    out = super_resolve(net, DDIMScheduler.from_config(trained.config), up,
                        lambda *_: torch.randn(up.shape, generator=g))
    return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_bundled_weights_are_small_safetensors_with_config() -> None:
    assert BUNDLED.is_file() and BUNDLED.with_suffix(".json").is_file()
    assert BUNDLED.stat().st_size <= 20 * 2**20
    assert is_sr_file(str(BUNDLED))


@pytest.mark.slow
def test_bundled_model_beats_bicubic_on_a_held_out_image() -> None:
    x = held_out()
    up = bicubic_up(downsample(x, 4), 4)
    out = sr(x, seed=0)
    assert psnr(out, x) > psnr(up, x) and ssim(out, x) > ssim(up, x)


@pytest.mark.slow
def test_the_noise_changes_the_output() -> None:
    x = held_out(48)
    a, b = sr(x, 0), sr(x, 1)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, sr(x, 0))  # same noise, same bits


def tiny_config() -> dict:
    cfg = sr_config()
    cfg["net"].update(channels=8, blocks=1, embed=8)
    return cfg


def test_save_then_load_roundtrip(tmp_path: Path) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)  # weight initialisation only
        net, _ = new_sr_model(tiny_config())
        for p in net.parameters():  # the zero-initialised layers too
            p.data.normal_()
    path = tmp_path / "m.safetensors"
    save_sr_model(net, str(path), dtype=torch.float32)
    loaded, sched = load_sr_model(str(path))
    x = torch.randn(2, 6, 8, 12, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loaded(x, 10), net(x, 10))
    assert is_sr_model(loaded) and sched.config.prediction_type == "v_prediction"


def test_a_plain_denoiser_is_not_taken_for_a_super_resolver(tmp_path: Path) -> None:
    cfg = denoiser_config()
    cfg["unet"].update(block_out_channels=[8, 8, 16, 16], norm_num_groups=4)
    unet, _ = new_denoiser(cfg)
    save_denoiser(unet, cfg, tmp_path / "d.safetensors")
    assert not is_sr_file(str(tmp_path / "d.safetensors")) and not is_sr_model(unet)
    with pytest.raises(ValueError, match="not a warpnoise super-resolution model"):
        load_sr_model(str(tmp_path / "d.safetensors"))
    with pytest.raises(ValueError, match="weights not found"):
        load_sr_model(str(tmp_path / "none.safetensors"))


def test_network_names_a_bad_input_shape() -> None:
    net = SR3Net(channels=8, blocks=1, embed=8)
    with pytest.raises(ValueError, match=r"takes \(B, 6, H, W\)"):
        net(torch.zeros(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.zeros(1, 6, 10, 8), 0)

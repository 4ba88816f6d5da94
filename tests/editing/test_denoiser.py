"""The bundled denoiser: loads offline, is small, and actually denoises real images."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from warpnoise.editing.demo import load_sr_clip
from warpnoise.editing.denoiser import (
    denoiser_config,
    load_denoiser,
    new_denoiser,
    save_denoiser,
)

BUNDLED = Path(str(resources.files("warpnoise") / "data" / "denoiser.safetensors"))


def test_bundled_weights_are_small_safetensors_with_config() -> None:
    assert BUNDLED.is_file() and BUNDLED.with_suffix(".json").is_file()
    assert BUNDLED.stat().st_size <= 20 * 2**20


@pytest.mark.slow
def test_bundled_model_denoises_a_real_frame_better_than_the_noisy_input() -> None:
    unet, sched = load_denoiser()
    x0 = torch.from_numpy(load_sr_clip()[:1]).permute(0, 3, 1, 2).float() / 127.5 - 1
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    t = 200
    a = sched.alphas_cumprod[t]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    with torch.no_grad():
        x0_hat = (xt - (1 - a).sqrt() * unet(xt, t).sample) / a.sqrt()
    noisy_mse = float(((xt / a.sqrt()) - x0).square().mean())
    assert float((x0_hat - x0).square().mean()) < 0.25 * noisy_mse


@pytest.mark.slow
def test_save_then_load_roundtrip(tmp_path: Path) -> None:
    cfg = denoiser_config()
    cfg["unet"].update(block_out_channels=[8, 8, 16, 16], norm_num_groups=4)
    torch.manual_seed(0)  # weight initialisation only
    unet, _ = new_denoiser(cfg)
    path = tmp_path / "d.safetensors"
    save_denoiser(unet, cfg, path, dtype=torch.float32)
    loaded, sched = load_denoiser(path)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 10).sample, unet.eval()(x, 10).sample)
    assert sched.config.num_train_timesteps == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "d.safetensors"]


def test_missing_weights_or_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_denoiser(tmp_path / "nope.safetensors")
    (tmp_path / "w.safetensors").write_bytes(BUNDLED.read_bytes())
    with pytest.raises(ValueError, match="config not found"):
        load_denoiser(tmp_path / "w.safetensors")


def test_clip_is_the_bundled_ground_truth() -> None:
    clip = load_sr_clip()
    assert clip.shape == (16, 128, 128, 3) and clip.dtype == np.uint8

"""The header-only completeness check used when a batch resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from warpnoise.batch.verify import quick_check_noise_file
from warpnoise.io.noisefile import save_latents, save_noise, validate_noise_file

#: A latents file (``warpnoise noise --latent``) of 5 video frames: (B, T', C, H, W).
LATENTS_SHAPE = (1, 2, 16, 8, 6)


@pytest.fixture(params=[(".safetensors", "float32"), (".safetensors", "float16"),
                        (".npy", "float16"), ("latents", "float32")],
                ids=["st32", "st16", "npy", "latents"])
def noise_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    suffix, dtype = request.param
    g = torch.Generator().manual_seed(0)
    if suffix == "latents":
        path = tmp_path / "l.safetensors"
        save_latents(path, torch.randn(*LATENTS_SHAPE, generator=g), {"frames": 5},
                     dtype=dtype)
        return path
    path = tmp_path / f"n{suffix}"
    save_noise(path, torch.randn(5, 3, 8, 6, generator=g), {"seed": 0}, dtype=dtype)
    return path


def test_complete_file_passes_with_the_same_frames_and_shape_as_full_validation(
        noise_file: Path) -> None:
    quick = quick_check_noise_file(noise_file)
    full = validate_noise_file(noise_file)
    shape = LATENTS_SHAPE if noise_file.name == "l.safetensors" else (5, 3, 8, 6)
    assert quick == {"frames": full["frames"], "shape": full["shape"]} == {
        "frames": 5, "shape": shape}


@pytest.mark.parametrize("damage", ["truncate-1", "truncate-half", "pad", "empty"])
def test_truncated_padded_or_empty_file_fails(noise_file: Path, damage: str) -> None:
    data = noise_file.read_bytes()
    noise_file.write_bytes({"truncate-1": data[:-1], "truncate-half": data[:len(data) // 2],
                            "pad": data + b"\0", "empty": b""}[damage])
    with pytest.raises(ValueError, match=r"truncated|bytes|not a"):
        quick_check_noise_file(noise_file)


def test_foreign_safetensors_and_wrong_rank_npy_fail(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"noise": torch.zeros(2, 3, 4, 4)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a warpnoise noise file"):
        quick_check_noise_file(tmp_path / "x.safetensors")
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 4), np.float16))
    with pytest.raises(ValueError, match=r"\[T, H, W, C\]"):
        quick_check_noise_file(tmp_path / "x.npy")
    with pytest.raises(ValueError, match="does not exist"):
        quick_check_noise_file(tmp_path / "missing.npy")

"""``warpnoise noise --latent MODEL --degradation γ``: the file holds exactly what
``latents_for`` makes of the same warped noise, and bad options exit 2 before any work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import warpnoise
from tests.io._clips import moving_frames, write_png_folder
from warpnoise.cli import load_commands
from warpnoise.diffusion import PRESETS, degrade, latents_for
from warpnoise.field import block_integrate
from warpnoise.io.flowfile import save_flows
from warpnoise.io.noisefile import load_latents, load_noise, validate_noise_file
from warpnoise.rng import derive_seed
from warpnoise.warper import warp_noise

app = load_commands()
runner = CliRunner()
T, H, W = 9, 32, 48


def run(*args: str | Path) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.Tensor]:
    """A 9-frame 48x32 clip and a flow file of a sub-pixel translation."""
    tmp = tmp_path_factory.mktemp("latclip")
    folder = write_png_folder(tmp / "frames", moving_frames(T, H, W, dx=1))
    backward = torch.zeros(T - 1, 2, H, W)
    backward[:, 0], backward[:, 1] = -0.6, -0.3
    save_flows(tmp / "flows.safetensors", backward, -backward)
    return folder, tmp / "flows.safetensors", backward


@pytest.mark.parametrize("model, gamma", [("wan2.1", 0.5), ("cogvideox1.5", 0.3),
                                          ("sd", 0.0)])
@pytest.mark.slow
def test_file_is_latents_for_of_the_same_warped_noise(clip: tuple, tmp_path: Path, model: str,
                                                      gamma: float) -> None:
    folder, flows, backward = clip
    out = tmp_path / "lat.safetensors"
    code, stdout, stderr = run("noise", folder, "-o", out, "--flow", flows, "--latent", model,
                               "--degradation", str(gamma), "--seed", "3", "-q")
    assert code == 0, stderr
    latents, meta = load_latents(out)
    channels = {"wan2.1": 16, "cogvideox1.5": 16, "sd": 4}[model]
    pixel = warp_noise(backward, channels, "persistent", seed=3, forward_flows=-backward)
    expect = latents_for(pixel, model, grid="pixel", degradation=gamma,
                         seed=derive_seed(3, "degradation"))
    # The streamed warper and warp_noise agree to float32 rounding (a few ulp), not bit for bit.
    torch.testing.assert_close(latents, expect, rtol=0, atol=1e-5)
    assert meta["latent_model"] == model and meta["degradation"] == str(gamma)
    assert str(tuple(latents.shape)) in stdout
    assert validate_noise_file(out)["shape"] == tuple(latents.shape)


def test_degradation_without_latent_degrades_every_frame(clip: tuple, tmp_path: Path) -> None:
    folder, flows, backward = clip
    out = tmp_path / "n.safetensors"
    assert run("noise", folder, "-o", out, "--flow", flows, "--degradation", "0.5",
               "--downsample", "8", "-q")[0] == 0
    noise, _ = load_noise(out)
    pixel = warp_noise(backward, 4, "persistent", seed=0, forward_flows=-backward)
    gen = torch.Generator().manual_seed(derive_seed(0, "degradation"))
    expect = torch.stack([degrade(f, 0.5, generator=gen) for f in block_integrate(pixel, 8)])
    torch.testing.assert_close(noise, expect, rtol=0, atol=1e-5)


def test_degradation_map_degrades_each_pixel_by_its_own_gamma(clip: tuple,
                                                               tmp_path: Path) -> None:
    """A (4, 6) .npy of γ over the 48x32 frames, noise at --downsample 8 (a 6x4 grid): every
    frame is degrade(frame, map) with the file's seed-derived stream, γ = 0 pixels unchanged."""
    import numpy as np

    folder, flows, backward = clip
    gamma = np.linspace(0.0, 1.0, 24, dtype=np.float32).reshape(4, 6)
    np.save(tmp_path / "g.npy", gamma)
    out = tmp_path / "n.safetensors"
    code, _, stderr = run("noise", folder, "-o", out, "--flow", flows, "--degradation-map",
                          tmp_path / "g.npy", "--downsample", "8", "-q")
    assert code == 0, stderr
    noise, meta = load_noise(out)
    pixel = block_integrate(warp_noise(backward, 4, "persistent", seed=0,
                                       forward_flows=-backward), 8)
    gen = torch.Generator().manual_seed(derive_seed(0, "degradation"))
    g = torch.from_numpy(gamma)
    expect = torch.stack([degrade(f, g, generator=gen) for f in pixel])
    torch.testing.assert_close(noise, expect, rtol=0, atol=1e-5)
    assert torch.equal(noise[..., 0, 0], pixel[..., 0, 0])  # γ = 0 keeps the warped noise
    assert meta["degradation"] == "per-pixel map"
    assert meta["degradation_map"] == "g.npy"  # the name only (no --record-source-path)


@pytest.mark.parametrize("gamma, extra, match", [
    ([[0.5, 1.5]], [], r"values in \[0.5, 1.5\]"),
    ([[0.5] * 6] * 2, [], "aspect ratio"),
    ([[0.5] * 6] * 4, ["--degradation", "0.2"], "not both"),
    (None, [], "does not exist"),
])
def test_bad_degradation_maps_exit_2_and_write_nothing(clip: tuple, tmp_path: Path, gamma: list,
                                                       extra: list, match: str) -> None:
    import numpy as np

    folder, flows, _ = clip
    if gamma is not None:
        np.save(tmp_path / "g.npy", np.array(gamma, np.float32))
    out = tmp_path / "o.safetensors"
    code, _, stderr = run("noise", folder, "-o", out, "--flow", flows, "--downsample", "8",
                          "--degradation-map", tmp_path / "g.npy", "-q", *extra)
    assert code == 2, stderr
    assert re.search(match, stderr) and "Traceback" not in stderr and len(stderr.splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("extra, match", [
    (["--latent", "wan3"], "unknown latent model"),
    (["--latent", "ltx-video", "--frames", "5"], r"8k\+1 frames"),
    (["--latent", "wan2.2-ti2v-5b"], "multiples of 32"),
    (["--latent", "wan2.1", "--channels", "8"], "drop --channels"),
    (["--latent", "wan2.1", "--frames", "8"], r"4k\+1 frames.*got 8: use 5 \(--frames 5\)"),
    (["--degradation", "1.5"], r"\[0, 1\]"),
    (["--degradation", "-0.5"], r"\[0, 1\]"),
])
def test_bad_latent_options_exit_2_and_write_nothing(clip: tuple, tmp_path: Path, extra: list,
                                                     match: str) -> None:
    folder, _, _ = clip
    out = tmp_path / "o.safetensors"
    code, _, stderr = run("noise", folder, "-o", out, "--flow", "farneback", "-q", *extra)
    assert code == 2, stderr
    assert re.search(match, stderr) and "Traceback" not in stderr and len(stderr.splitlines()) == 1
    assert not out.exists()


def test_latent_needs_safetensors(clip: tuple, tmp_path: Path) -> None:
    folder, flows, _ = clip
    code, _, stderr = run("noise", folder, "-o", tmp_path / "o.npy", "--flow", flows,
                          "--latent", "wan2.1", "-q")
    assert code == 2 and ".safetensors" in stderr
    assert not (tmp_path / "o.npy").exists()


def test_stats_on_a_latents_file_says_what_it_is(clip: tuple, tmp_path: Path) -> None:
    folder, flows, _ = clip
    out = tmp_path / "lat.safetensors"
    assert run("noise", folder, "-o", out, "--flow", flows, "--latent", "sd", "-q")[0] == 0
    code, _, stderr = run("stats", out)
    assert code == 2 and "load_latents" in stderr and "Traceback" not in stderr


@pytest.fixture(scope="module")
def square_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 9-frame 64x64 clip: valid for every preset (4k+1 and 8k+1 frames, sizes of 32)."""
    tmp = tmp_path_factory.mktemp("square")
    return write_png_folder(tmp / "clip", moving_frames(9, 64, 64, dx=1))


@pytest.mark.parametrize("model", list(PRESETS))
def test_latent_file_metadata_describes_its_tensor_for_every_preset(
        square_clip: Path, tmp_path: Path, model: str) -> None:
    p = PRESETS[model]
    out = tmp_path / "lat.safetensors"
    code, _, stderr = run("noise", square_clip, "-o", out, "--latent", model, "-m", "random",
                          "--seed", "7", "-q")
    assert code == 0, stderr
    latents, meta = load_latents(out)
    latent_frames = (9 - 1) // p.temporal + 1
    expect = {
        "latent_model": model, "layout": p.layout, "channels": str(p.channels),
        "downsample": str(p.spatial), "temporal_compression": str(p.temporal),
        "grid": f"{64 // p.spatial}x{64 // p.spatial}", "frame_size": "64x64", "frames": "9",
        "latent_frames": str(latent_frames), "shape": "x".join(map(str, latents.shape)),
        "method": "random", "seed": "7", "dtype": "float32", "source": square_clip.name,
        "warpnoise_version": warpnoise.__version__, "torch_version": torch.__version__,
        "format": "warpnoise-latents/1"}
    assert {k: meta.get(k) for k in expect} == expect


def test_source_is_the_file_name_unless_asked_for_the_path(clip: tuple, tmp_path: Path) -> None:
    folder, flows, _ = clip
    out = tmp_path / "n.safetensors"
    assert run("noise", folder, "-o", out, "--flow", flows, "-q")[0] == 0
    meta = load_noise(out)[1]
    assert meta["source"] == folder.name and meta["flow"] == flows.name
    assert str(tmp_path.parent) not in "".join(meta.values())  # no folder of the maker's
    assert run("noise", folder, "-o", out, "--flow", flows, "-q", "--record-source-path")[0] == 0
    meta = load_noise(out)[1]
    assert meta["source"] == str(folder.resolve()) and meta["flow"] == str(flows.resolve())


def test_latent_files_are_byte_reproducible(clip: tuple, tmp_path: Path) -> None:
    folder, flows, _ = clip
    outs = [tmp_path / f"lat{i}.safetensors" for i in range(3)]
    for out in outs:
        assert run("noise", folder, "-o", out, "--flow", flows, "--latent", "wan2.1", "-q",
                   "--degradation", "0.5")[0] == 0
    assert outs[0].read_bytes() == outs[1].read_bytes() == outs[2].read_bytes()


def test_stats_shows_the_files_metadata(clip: tuple, tmp_path: Path) -> None:
    folder, flows, _ = clip
    out = tmp_path / "n.safetensors"
    assert run("noise", folder, "-o", out, "--flow", flows, "--seed", "11", "-q")[0] == 0
    code, stdout, stderr = run("stats", out, "--flows", flows)
    assert code == 0, stderr
    for key, value in load_noise(out)[1].items():
        assert re.search(rf"^\s*{re.escape(key)}\s+{re.escape(value)}\s*$", stdout, re.M), key

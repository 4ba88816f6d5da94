from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.io._clips import moving_frames, sample_path, write_png_folder
from warpnoise import DEFAULT_METHOD
from warpnoise.io.flowfile import load_flows, save_flows
from warpnoise.io.noisefile import load_noise
from warpnoise.pipeline import (
    NoiseOptions,
    source_flows,
    validate_noise_file,
    video_to_flows,
    video_to_noise,
)
from warpnoise.stats import ks_normal


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 lossless 64x48 frames of a texture moving right by 1 px per frame."""
    return write_png_folder(tmp_path_factory.mktemp("clip"), moving_frames(5, 48, 64, dx=1))


def test_noise_file_has_shape_dtype_and_metadata(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "n.safetensors"
    calls: list[tuple[str, int, int]] = []
    res = video_to_noise(clip, out, NoiseOptions(method="random", channels=3, seed=7),
                         progress=lambda *a: calls.append(a))
    assert res.shape == (5, 3, 48, 64) and res.frames == 5
    assert set(res.seconds) >= {"decode", "flow", "warp", "write", "total"}
    info = validate_noise_file(out)
    meta = info["metadata"]
    assert info["shape"] == (5, 3, 48, 64) and info["dtype"] == "float32"
    assert (meta["method"], meta["seed"], meta["flow"], meta["frame_size"]) == (
        "random", "7", "dis", "64x48")
    assert meta["source"] == str(clip.resolve()) and "warpnoise_version" in meta
    assert ("noise", 4, 4) in calls and any(c[0] == "decode" for c in calls)


def test_same_seed_same_noise_and_float16(clip: Path, tmp_path: Path) -> None:
    o = NoiseOptions(method="fixed", seed=3)
    video_to_noise(clip, tmp_path / "a.safetensors", o)
    video_to_noise(clip, tmp_path / "b.safetensors", NoiseOptions(method="fixed", seed=3,
                                                                   dtype="float16"))
    a, _ = load_noise(tmp_path / "a.safetensors")
    b, _ = load_noise(tmp_path / "b.safetensors")
    assert b.dtype == torch.float16
    torch.testing.assert_close(b.float(), a, atol=2e-3, rtol=1e-3)


def test_npy_output_is_the_transposed_float16_noise(clip: Path, tmp_path: Path) -> None:
    o = NoiseOptions(method="random", seed=1, downsample=4)
    video_to_noise(clip, tmp_path / "a.safetensors", o)
    video_to_noise(clip, tmp_path / "noises.npy", o)
    a, _ = load_noise(tmp_path / "a.safetensors")
    arr = np.load(tmp_path / "noises.npy")
    assert arr.shape == (5, 12, 16, 4) and arr.dtype == np.float16
    np.testing.assert_allclose(arr, a.permute(0, 2, 3, 1).numpy(), atol=4e-3, rtol=1e-3)


def test_downsampled_default_method_noise_stays_standard_normal(tmp_path: Path) -> None:
    frames_dir = write_png_folder(tmp_path / "c", moving_frames(4, 96, 128, dx=1, dy=1, seed=3))
    res = video_to_noise(frames_dir, tmp_path / "n.safetensors",
                         NoiseOptions(method=DEFAULT_METHOD, downsample=4, seed=0))
    noise, _ = load_noise(res.output)
    assert noise.shape == (4, 4, 24, 32)
    # Frames are correlated with each other (the noise moves), so test each warped frame alone.
    for x in noise[1:].double():
        n = x.numel()
        assert abs(float(x.mean())) < 5 / math.sqrt(n)
        assert abs(float(x.std()) - 1) < 5 / math.sqrt(2 * n)
        assert ks_normal(x)[1] > 1e-3
    # Independent draws would not be this alike: the latent noise still moves.
    assert float(torch.corrcoef(noise[1:3].flatten(1))[0, 1]) > 0.3


def test_flow_file_gives_the_same_noise_as_estimating(clip: Path, tmp_path: Path) -> None:
    video_to_flows(clip, tmp_path / "f.safetensors", NoiseOptions())
    b, f = load_flows(tmp_path / "f.safetensors")
    assert b.shape == (4, 2, 48, 64) and f is not None
    o = NoiseOptions(method="bilinear", seed=2)
    video_to_noise(clip, tmp_path / "a.safetensors", o)
    video_to_noise(clip, tmp_path / "b.safetensors",
                   NoiseOptions(method="bilinear", seed=2, flow=str(tmp_path / "f.safetensors")))
    torch.testing.assert_close(load_noise(tmp_path / "b.safetensors")[0],
                               load_noise(tmp_path / "a.safetensors")[0])


def test_preview_is_input_flow_noise_side_by_side(clip: Path, tmp_path: Path) -> None:
    from warpnoise.io.video import read_frames

    video_to_noise(clip, tmp_path / "n.safetensors", NoiseOptions(method="random", downsample=8),
                   preview=tmp_path / "p.mp4")
    pv = read_frames(tmp_path / "p.mp4")
    assert pv.shape == (5, 48, 192, 3)


def test_source_flows_re_estimates_from_the_metadata(clip: Path, tmp_path: Path) -> None:
    video_to_noise(clip, tmp_path / "n.safetensors", NoiseOptions(method="random"))
    _, meta = load_noise(tmp_path / "n.safetensors")
    found = source_flows(meta)
    assert found is not None
    b, f, note = found
    assert b.shape == (4, 2, 48, 64) and f is not None and "re-estimated" in note
    assert source_flows(meta | {"source": str(tmp_path / "gone.mp4")}) is None


def test_bundled_sample_runs_end_to_end(tmp_path: Path) -> None:
    res = video_to_noise(sample_path(), tmp_path / "n.safetensors",
                         NoiseOptions(method="random", frames=3, size=(64, 48)))
    assert res.shape == (3, 4, 48, 64)


@pytest.mark.parametrize(("opts", "match"), [
    (NoiseOptions(method="nope"), "unknown method"),
    (NoiseOptions(channels=0), "channels"),
    (NoiseOptions(downsample=5), "not divisible by --downsample 5"),
    (NoiseOptions(dtype="float64"), "dtype"),
    (NoiseOptions(flow="/no/such/flows.safetensors"), "neither a flow method"),
    (NoiseOptions(flow="raft"), "RAFT"),
    (NoiseOptions(start=99), "keeps no frame"),
    (NoiseOptions(device="tpu9"), "device"),
])
def test_bad_options_write_nothing(clip: Path, tmp_path: Path, opts: NoiseOptions,
                                   match: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match=match):
        video_to_noise(clip, out / "n.safetensors", opts, preview=out / "p.mp4")
    assert list(out.iterdir()) == []


def test_mismatched_flow_file_writes_nothing(clip: Path, tmp_path: Path) -> None:
    save_flows(tmp_path / "f.safetensors", torch.zeros(4, 2, 10, 10))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="10x10 but the frames are 64x48"):
        video_to_noise(clip, out / "n.safetensors",
                       NoiseOptions(flow=str(tmp_path / "f.safetensors")))
    save_flows(tmp_path / "g.safetensors", torch.zeros(2, 2, 48, 64))
    with pytest.raises(ValueError, match="has 2 flows but 5 frames"):
        video_to_noise(clip, out / "n.safetensors",
                       NoiseOptions(flow=str(tmp_path / "g.safetensors")))
    assert list(out.iterdir()) == []


def test_bad_output_paths_are_value_errors(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must end in \.safetensors"):
        video_to_noise(clip, tmp_path / "n.pt", NoiseOptions(method="random"))
    with pytest.raises(ValueError, match="does not exist"):
        video_to_noise(clip, tmp_path / "no" / "n.safetensors", NoiseOptions(method="random"))
    with pytest.raises(ValueError, match=r"\.mp4"):
        video_to_noise(clip, tmp_path / "n.safetensors", NoiseOptions(method="random"),
                       preview=tmp_path / "p.avi")


def test_failure_mid_run_leaves_no_output(clip: Path, tmp_path: Path, monkeypatch) -> None:
    from warpnoise.io.noisefile import NoiseWriter

    real_write = NoiseWriter.write

    def write_then_fail(self: NoiseWriter, frame: torch.Tensor) -> None:
        if self.written == 2:
            raise RuntimeError("disk on fire")
        real_write(self, frame)

    monkeypatch.setattr(NoiseWriter, "write", write_then_fail)
    with pytest.raises(RuntimeError):
        video_to_noise(clip, tmp_path / "n.safetensors", NoiseOptions(method="random"),
                       preview=tmp_path / "p.mp4")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_streamed_file_matches_the_in_memory_writer(clip: Path, tmp_path: Path) -> None:
    from warpnoise.io.noisefile import save_noise

    video_to_noise(clip, tmp_path / "a.safetensors", NoiseOptions(method="random", seed=4))
    a, meta = load_noise(tmp_path / "a.safetensors")
    save_noise(tmp_path / "b.safetensors", a, meta)
    b, meta_b = load_noise(tmp_path / "b.safetensors")
    torch.testing.assert_close(a, b)
    assert meta_b == meta


def test_control_a_video_gets_the_frames_and_masks_on_the_latent_grid(tmp_path: Path) -> None:
    """Left half static, right half switching between two textures: with --downsample 4 every
    latent pixel of the left half keeps its noise exactly, the right half's is renewed."""
    from tests.io._clips import texture

    frames = np.repeat(texture(48, 64, seed=1)[None], 3, axis=0)
    for i in range(3):
        frames[i, :, 32:] = texture(48, 32, seed=2 + i % 2)
    folder = write_png_folder(tmp_path / "c", frames)
    res = video_to_noise(folder, tmp_path / "n.safetensors",
                         NoiseOptions(method="control-a-video", downsample=4, seed=0))
    noise, meta = load_noise(res.output)
    assert noise.shape == (3, 4, 12, 16) and meta["method"] == "control-a-video"
    for t in (1, 2):
        assert torch.equal(noise[t, :, :, :8], noise[t - 1, :, :, :8])
        renewed = (noise[t, :, :, 8:] != noise[t - 1, :, :, 8:]).all(0)
        assert float(renewed.float().mean()) > 0.9


def test_control_a_video_frames_cannot_come_from_an_option(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="takes its frames from the input video"):
        video_to_noise(clip, tmp_path / "n.safetensors",
                       NoiseOptions(method="control-a-video", method_options={"frames": 1}))
    assert not (tmp_path / "n.safetensors").exists()

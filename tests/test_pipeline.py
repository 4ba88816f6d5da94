from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests._streaming import live_frames
from tests.io._clips import moving_frames, sample_path, write_png_folder
from warpnoise import DEFAULT_METHOD
from warpnoise.io.flowfile import load_flows, save_flows
from warpnoise.io.noisefile import load_noise
from warpnoise.methods.persistent import BITS_VERSION
from warpnoise.pipeline import (
    LOOKAHEAD,
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
    assert meta["source"] == clip.name and "warpnoise_version" in meta
    assert ("noise", 4, 4) in calls and any(c[0] == "decode" for c in calls)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_metadata_records_the_backend_and_bits_that_made_the_noise(clip: Path, tmp_path: Path,
                                                                    backend: str) -> None:
    out = tmp_path / "n.safetensors"
    video_to_noise(clip, out, NoiseOptions(seed=7, method_options={"backend": backend}))
    meta = validate_noise_file(out)["metadata"]
    assert (meta["backend"], meta["bits_version"]) == (backend, str(BITS_VERSION))


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
    video_to_noise(clip, tmp_path / "n.safetensors", NoiseOptions(method="random",
                                                                  record_source_path=True))
    _, meta = load_noise(tmp_path / "n.safetensors")
    found = source_flows(meta)
    assert found is not None
    b, f, note = found
    assert b.shape == (4, 2, 48, 64) and f is not None and "re-estimated" in note
    assert source_flows(meta | {"source": str(tmp_path / "gone.mp4")}) is None


def test_source_flows_finds_a_source_named_beside_the_noise_file(clip: Path,
                                                                 tmp_path: Path) -> None:
    out = clip.parent / "n.safetensors"
    video_to_noise(clip, out, NoiseOptions(method="random"))
    _, meta = load_noise(out)
    assert meta["source"] == clip.name
    assert source_flows(meta, near=out) is not None
    assert source_flows(meta, near=tmp_path / "elsewhere.safetensors") is None
    out.unlink()


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


def test_a_method_that_ignores_flows_gets_none_estimated(clip: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    """control-a-video reads the frames, not the flows: without a preview no flow is estimated,
    and the noise is the one made when a preview's flows are estimated beside it."""
    opts = NoiseOptions(method="control-a-video", seed=3)
    shown = video_to_noise(clip, tmp_path / "a.safetensors", opts, preview=tmp_path / "p.mp4")
    assert shown.seconds["flow"] > 0

    def no_flow(*args: object) -> None:
        raise AssertionError("a flow was estimated for a method that ignores flows")

    monkeypatch.setattr("warpnoise.pipeline.make_estimator", lambda *a, **k: no_flow)
    res = video_to_noise(clip, tmp_path / "b.safetensors", opts)
    assert res.seconds["flow"] == 0 and res.frames == 5
    assert torch.equal(load_noise(res.output)[0], load_noise(shown.output)[0])
    with pytest.raises(AssertionError, match="flow was estimated"):
        video_to_noise(clip, tmp_path / "c.safetensors", NoiseOptions(method="persistent"))


def test_control_a_video_frames_cannot_come_from_an_option(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="takes its frames from the input video"):
        video_to_noise(clip, tmp_path / "n.safetensors",
                       NoiseOptions(method="control-a-video", method_options={"frames": 1}))
    assert not (tmp_path / "n.safetensors").exists()


def test_frames_are_dropped_as_they_are_used(tmp_path: Path, monkeypatch) -> None:
    """Whatever the length, at most LOOKAHEAD + 2 decoded frames are alive at once (the one
    being warped and previewed, the look-ahead, and the one being decoded)."""
    frames_dir = write_png_folder(tmp_path / "c", moving_frames(30, 24, 32, dx=1))
    with live_frames(monkeypatch) as live:
        res = video_to_noise(frames_dir, tmp_path / "n.safetensors",
                             NoiseOptions(method="random", downsample=8),
                             preview=tmp_path / "p.mp4")
    assert res.frames == 30 and live.decoded == 30
    assert 2 <= live.most <= LOOKAHEAD + 2


def test_flows_are_estimated_and_written_as_the_frames_stream(tmp_path: Path,
                                                              monkeypatch) -> None:
    frames_dir = write_png_folder(tmp_path / "c", moving_frames(30, 24, 32, dx=1))
    with live_frames(monkeypatch) as live:
        res = video_to_flows(frames_dir, tmp_path / "f.safetensors",
                             NoiseOptions(dis_preset="ultrafast"))
    assert res.flows == 29 and live.decoded == 30
    assert 2 <= live.most <= LOOKAHEAD + 2


def test_flow_file_with_a_preview_streams_frames_and_flows(tmp_path: Path,
                                                           monkeypatch) -> None:
    frames_dir = write_png_folder(tmp_path / "c", moving_frames(30, 24, 32, dx=1))
    video_to_flows(frames_dir, tmp_path / "f.npz", NoiseOptions(dis_preset="ultrafast"))

    def no_whole_file(*args: object) -> None:
        raise AssertionError("the flow file must be read one step at a time")

    monkeypatch.setattr("warpnoise.pipeline.load_flows", no_whole_file)
    with live_frames(monkeypatch) as live:
        res = video_to_noise(frames_dir, tmp_path / "n.npy",
                             NoiseOptions(method="bilinear", flow=str(tmp_path / "f.npz")),
                             preview=tmp_path / "p.mp4")
    assert res.frames == 30 and live.decoded == 30
    assert 1 <= live.most <= 2  # the frame being previewed, and the next being decoded


@pytest.mark.parametrize("selection", [{"start": 2, "stride": 3, "frames": 5},
                                       {"start": 1, "stride": 2}, {"frames": 4}])
def test_selection_of_a_video_gives_the_noise_of_exactly_those_frames(
        tmp_path: Path, selection: dict) -> None:
    """Streaming keeps --start/--stride/--frames: the noise of a selection of the bundled video
    equals the noise of a folder holding just the selected frames (lossless PNGs)."""
    from warpnoise.io.video import read_frames

    size = (64, 48)
    picked = write_png_folder(tmp_path / "picked", read_frames(sample_path(), size=size,
                                                               **selection))
    opts = {"method": "bilinear", "seed": 4, "size": size}
    a = video_to_noise(sample_path(), tmp_path / "a.safetensors",
                       NoiseOptions(**opts, **selection))
    b = video_to_noise(picked, tmp_path / "b.safetensors", NoiseOptions(**opts))
    assert a.frames == b.frames == len(list(picked.iterdir()))
    torch.testing.assert_close(load_noise(a.output)[0], load_noise(b.output)[0], rtol=0, atol=0)


def test_selection_of_an_image_folder_gives_the_noise_of_exactly_those_frames(
        tmp_path: Path) -> None:
    frames = moving_frames(12, 24, 32, dx=1, dy=1)
    # Natural order: frame10 after frame9, as warpnoise reads a folder.
    full = write_png_folder(tmp_path / "full", frames)
    picked = write_png_folder(tmp_path / "picked", frames[3:12:4])
    opts = {"method": "bilinear", "seed": 5}
    a = video_to_noise(full, tmp_path / "a.safetensors",
                       NoiseOptions(**opts, start=3, stride=4, frames=10))
    b = video_to_noise(picked, tmp_path / "b.safetensors", NoiseOptions(**opts))
    assert a.frames == b.frames == 3
    torch.testing.assert_close(load_noise(a.output)[0], load_noise(b.output)[0], rtol=0, atol=0)


def test_streamed_flows_match_flows_of_the_whole_selection(tmp_path: Path) -> None:
    from warpnoise.estimate import estimate_flows
    from warpnoise.io.video import read_frames

    frames_dir = write_png_folder(tmp_path / "c", moving_frames(12, 48, 64, dx=1, dy=1))
    res = video_to_flows(frames_dir, tmp_path / "f.npz",
                         NoiseOptions(start=1, stride=3, frames=3))
    assert (res.flows, res.width, res.height) == (2, 64, 48)
    b, f = load_flows(tmp_path / "f.npz")
    b_ref, f_ref = estimate_flows(read_frames(frames_dir, start=1, stride=3, frames=3))
    torch.testing.assert_close(b, b_ref)
    torch.testing.assert_close(f, f_ref)


def test_flow_file_with_a_preview_decodes_the_frames_in_step(clip: Path, tmp_path: Path) -> None:
    video_to_flows(clip, tmp_path / "f.safetensors", NoiseOptions())
    opts = NoiseOptions(method="bilinear", seed=2, flow=str(tmp_path / "f.safetensors"))
    video_to_noise(clip, tmp_path / "a.safetensors", opts, preview=tmp_path / "a.mp4")
    video_to_noise(clip, tmp_path / "b.safetensors", NoiseOptions(method="bilinear", seed=2),
                   preview=tmp_path / "b.mp4")
    torch.testing.assert_close(load_noise(tmp_path / "a.safetensors")[0],
                               load_noise(tmp_path / "b.safetensors")[0])
    from warpnoise.io.video import read_frames

    np.testing.assert_array_equal(read_frames(tmp_path / "a.mp4"), read_frames(tmp_path / "b.mp4"))


def test_flows_to_noise_writes_the_warp_of_the_given_flows(tmp_path: Path) -> None:
    from warpnoise.pipeline import flows_to_noise
    from warpnoise.warper import warp_noise

    b = torch.zeros(3, 2, 16, 24)
    b[:, 0] = -0.6
    steps = [(None, None, None)] + [(None, b[i], -b[i]) for i in range(3)]
    res = flows_to_noise(iter(steps), tmp_path / "n.safetensors", NoiseOptions(seed=3),
                         (4, 16, 24), {"flow": "given", "seed": "overridden?"})
    x, meta = load_noise(res.output)
    assert torch.equal(x, warp_noise(b, 4, seed=3, forward_flows=-b))
    assert meta["flow"] == "given" and meta["seed"] == "3" and "source" not in meta
    assert set(res.seconds) >= {"flow", "warp", "write", "total"}


def test_flows_to_noise_checks_the_latent_rules_before_writing(tmp_path: Path) -> None:
    from warpnoise.pipeline import flows_to_noise

    with pytest.raises(ValueError, match="4k\\+1"):
        flows_to_noise(iter([]), tmp_path / "n.safetensors", NoiseOptions(latent="wan2.1"),
                       (6, 16, 16), {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["random", "fixed"])
def test_methods_that_ignore_flows_estimate_none(clip: Path, tmp_path: Path, method: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def estimated(*args: object, **kwargs: object) -> None:
        raise AssertionError("flows were estimated for a method that ignores them")

    monkeypatch.setattr("warpnoise.pipeline._estimated_steps", estimated)
    res = video_to_noise(clip, tmp_path / "n.safetensors", NoiseOptions(method=method))
    assert res.shape == (5, 4, 48, 64) and res.seconds["flow"] == 0.0

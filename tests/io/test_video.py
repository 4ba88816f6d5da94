from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.io._clips import moving_frames, sample_path, write_png_folder
from warpnoise.io.video import VideoWriter, natural_key, parse_size, read_frames, write_video


def test_bundled_sample_reads_as_uint8_rgb_sequence() -> None:
    frames = read_frames(sample_path())
    assert frames.shape == (24, 192, 256, 3)
    assert frames.dtype == np.uint8
    assert frames.std() > 20  # real content, not a blank clip


def test_start_stride_frames_select_the_same_frames_as_slicing() -> None:
    full = read_frames(sample_path())
    picked = read_frames(sample_path(), start=3, stride=4, frames=3)
    np.testing.assert_array_equal(picked, full[3::4][:3])


def test_size_and_scale_resize_frames() -> None:
    assert read_frames(sample_path(), size=(64, 40), frames=2).shape == (2, 40, 64, 3)
    assert read_frames(sample_path(), scale=0.25, frames=2).shape == (2, 48, 64, 3)


def test_image_folder_is_read_in_natural_order(tmp_path: Path) -> None:
    colors = np.arange(1, 4, dtype=np.uint8).repeat(3 * 8 * 8).reshape(3, 8, 8, 3) * 60
    write_png_folder(tmp_path, colors, ["f10.png", "f2.png", "f1.png"])
    frames = read_frames(tmp_path)
    # Natural order is f1, f2, f10: colours 180, 120, 60.
    assert [int(f[0, 0, 0]) for f in frames] == [180, 120, 60]


def test_natural_key_orders_numbers_by_value() -> None:
    assert sorted(["a10", "a2", "a1"], key=natural_key) == ["a1", "a2", "a10"]


def test_gif_is_readable(tmp_path: Path) -> None:
    from PIL import Image

    frames = moving_frames(3, 32, 40)
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(tmp_path / "c.gif", save_all=True, append_images=imgs[1:], duration=100)
    out = read_frames(tmp_path / "c.gif")
    assert out.shape == (3, 32, 40, 3)


def test_write_video_round_trips_and_pads_odd_sizes(tmp_path: Path) -> None:
    frames = moving_frames(5, 31, 45)
    write_video(tmp_path / "v.mp4", frames, fps=10)
    back = read_frames(tmp_path / "v.mp4")
    assert back.shape == (5, 32, 46, 3)
    # Lossy H.264 with 4:2:0 chroma: brightness close, not exact.
    err = np.abs(back[:, :31, :45].mean(-1) - frames.mean(-1)).mean()
    assert err < 6


def test_video_writer_leaves_no_file_when_interrupted(tmp_path: Path) -> None:
    frames = moving_frames(3, 32, 32)
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "v.mp4") as w:
        w.write(frames[0])
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"size": (64, 48), "scale": 0.5}, "either size or scale"),
    ({"stride": 0}, "stride"),
    ({"frames": 0}, "frames"),
    ({"start": -1}, "start"),
    ({"start": 1000}, "keeps no frame"),
])
def test_bad_selection_is_a_value_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_frames(sample_path(), **kwargs)


def test_missing_garbage_and_truncated_inputs_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        read_frames(tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video")
    with pytest.raises(ValueError, match="cannot open"):
        read_frames(tmp_path / "junk.mp4")
    data = sample_path().read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError):
        read_frames(tmp_path / "cut.mp4")


def test_folder_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no images"):
        read_frames(tmp_path)
    write_png_folder(tmp_path, moving_frames(1, 16, 16), ["a1.png"])
    write_png_folder(tmp_path, moving_frames(1, 20, 16), ["a2.png"])
    with pytest.raises(ValueError, match="one size"):
        read_frames(tmp_path)


def test_copied_sample_in_a_folder_with_spaces_reads(tmp_path: Path) -> None:
    d = tmp_path / "my clips"
    d.mkdir()
    shutil.copy(sample_path(), d / "clip one.mp4")
    assert read_frames(d / "clip one.mp4", frames=2).shape[0] == 2


@pytest.mark.parametrize("text", ["640", "0x10", "axb", "10x"])
def test_parse_size_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="WxH"):
        parse_size(text)


def test_parse_size_reads_w_then_h() -> None:
    assert parse_size("640x480") == (640, 480)


def test_damaged_slices_warn_in_the_decoder_but_do_not_stop_reading(tmp_path: Path) -> None:
    data = bytearray(sample_path().read_bytes())
    rng = np.random.default_rng(0)
    # Scramble bytes inside the H.264 payload (past the headers): the decoder conceals them.
    for off in range(15000, 30000, 1500):
        data[off:off + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    assert read_frames(tmp_path / "damaged.mp4").shape == (24, 192, 256, 3)


@pytest.mark.parametrize(("name", "fmt", "codec"), [
    ("c.mov", "mov", "libx264"), ("c.webm", "webm", "libvpx"), ("c.avi", "avi", "mpeg4"),
])
def test_other_containers_are_readable(tmp_path: Path, name: str, fmt: str, codec: str) -> None:
    import av

    frames = moving_frames(3, 32, 48)
    with av.open(str(tmp_path / name), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    assert read_frames(tmp_path / name).shape == (3, 32, 48, 3)


def test_frame_source_gives_the_same_frames_on_every_pass() -> None:
    from warpnoise.io.video import FrameSource

    src = FrameSource(sample_path(), size=(64, 48), start=1, stride=3, frames=5)
    first, second = list(src), list(src)
    assert len(first) == 5
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    np.testing.assert_array_equal(np.stack(first), read_frames(sample_path(), size=(64, 48),
                                                               start=1, stride=3, frames=5))


@pytest.mark.parametrize("kwargs", [{}, {"start": 5, "stride": 4}, {"frames": 7},
                                    {"start": 20, "stride": 2, "frames": 9}, {"scale": 0.5}])
def test_probe_counts_the_selection_and_gives_its_size(kwargs: dict) -> None:
    from warpnoise.io.video import FrameSource

    frames = read_frames(sample_path(), **kwargs)
    info = FrameSource(sample_path(), **kwargs).probe()
    assert (info.frames, info.height, info.width) == frames.shape[:3]


def test_probe_of_an_image_folder_reads_one_image(tmp_path: Path, monkeypatch) -> None:
    import cv2

    from warpnoise.io.video import FrameSource

    write_png_folder(tmp_path, moving_frames(7, 16, 24))
    reads: list[str] = []
    real = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda p, *a: reads.append(p) or real(p, *a))
    info = FrameSource(tmp_path, start=1, stride=2, size=(12, 8)).probe()
    assert (info.frames, info.width, info.height) == (3, 12, 8)
    assert len(reads) == 1


def test_probe_rejects_what_reading_rejects(tmp_path: Path) -> None:
    from warpnoise.io.video import FrameSource

    with pytest.raises(ValueError, match="keeps no frame"):
        FrameSource(sample_path(), start=1000).probe()
    data = sample_path().read_bytes()
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video")
    with pytest.raises(ValueError, match="cannot open"):
        FrameSource(tmp_path / "junk.mp4").probe()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError):
        FrameSource(tmp_path / "cut.mp4").probe()
    with pytest.raises(ValueError, match="does not exist"):
        FrameSource(tmp_path / "nope.mp4")


def test_video_writer_keeps_no_frame_it_was_given(tmp_path: Path) -> None:
    """The preview writer encodes each frame as it comes: once the caller drops a frame, it is
    gone (x264's look-ahead holds its own converted copies, a fixed number)."""
    import gc
    import weakref

    alive: set[int] = set()
    gc.disable()
    try:
        with VideoWriter(tmp_path / "v.mp4", fps=30) as writer:
            for i, frame in enumerate(moving_frames(40, 32, 48, dx=1)):
                frame = frame.copy()  # its own buffer, not a view of the whole stack
                alive.add(i)
                weakref.finalize(frame, alive.discard, i)
                writer.write(frame)
                del frame
                assert not alive, f"frames {sorted(alive)} are still held after writing"
    finally:
        gc.enable()
    assert read_frames(tmp_path / "v.mp4").shape == (40, 32, 48, 3)

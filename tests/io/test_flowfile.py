from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from warpnoise.io.flowfile import load_flows, save_flows


def _flows(n: int = 3, h: int = 6, w: int = 7, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, h, w, generator=g)


@pytest.mark.parametrize("ext", [".safetensors", ".npz"])
def test_backward_and_forward_round_trip(tmp_path: Path, ext: str) -> None:
    b, f = _flows(seed=1), _flows(seed=2)
    save_flows(tmp_path / f"x{ext}", b, f, metadata={"flow": "dis"})
    b2, f2 = load_flows(tmp_path / f"x{ext}")
    torch.testing.assert_close(b2, b)
    assert f2 is not None
    torch.testing.assert_close(f2, f)


def test_npy_holds_backward_flows_only(tmp_path: Path) -> None:
    b = _flows()
    save_flows(tmp_path / "x.npy", b)
    b2, f2 = load_flows(tmp_path / "x.npy")
    torch.testing.assert_close(b2, b)
    assert f2 is None


def test_flo_is_middlebury_via_opencv(tmp_path: Path) -> None:
    import cv2

    b = _flows(1)
    save_flows(tmp_path / "x.flo", b)
    # OpenCV reads it back in its (H, W, 2) layout: the file is a real Middlebury .flo.
    hw2 = cv2.readOpticalFlow(str(tmp_path / "x.flo"))
    np.testing.assert_allclose(hw2, b[0].permute(1, 2, 0).numpy())
    assert (tmp_path / "x.flo").read_bytes()[:4] == b"PIEH"
    b2, _ = load_flows(tmp_path / "x.flo")
    torch.testing.assert_close(b2, b)


def test_folder_of_flo_files_is_a_sequence_in_natural_order(tmp_path: Path) -> None:
    b = _flows(3)
    for i, name in enumerate(["f1.flo", "f2.flo", "f10.flo"]):
        save_flows(tmp_path / name, b[i:i + 1])
    b2, _ = load_flows(tmp_path)
    torch.testing.assert_close(b2, b)


def test_bad_flo_magic_is_a_value_error(tmp_path: Path) -> None:
    (tmp_path / "bad.flo").write_bytes(b"XXXX" + bytes(16))
    with pytest.raises(ValueError, match=r"not a valid \.flo"):
        load_flows(tmp_path / "bad.flo")


def test_opencv_layout_npy_is_rejected_with_a_hint(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((6, 7, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(2, H, W\)|\(T, 2, H, W\)"):
        load_flows(tmp_path / "x.npy")


def test_nan_flow_is_rejected(tmp_path: Path) -> None:
    b = _flows()
    b[0, 0, 0, 0] = float("nan")
    np.save(tmp_path / "x.npy", b.numpy())
    with pytest.raises(ValueError, match="NaN"):
        load_flows(tmp_path / "x.npy")


def test_missing_backward_key_and_missing_file_and_unknown_type(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", flows=np.zeros((1, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="no 'backward'"):
        load_flows(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="does not exist"):
        load_flows(tmp_path / "none.safetensors")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ValueError, match="unknown flow file type"):
        load_flows(tmp_path / "x.txt")


def test_truncated_safetensors_is_a_value_error(tmp_path: Path) -> None:
    save_flows(tmp_path / "x.safetensors", _flows(), _flows())
    data = (tmp_path / "x.safetensors").read_bytes()
    (tmp_path / "x.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="safetensors"):
        load_flows(tmp_path / "x.safetensors")


def test_flo_cannot_hold_a_sequence(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one flow"):
        save_flows(tmp_path / "x.flo", _flows(2))
    assert not (tmp_path / "x.flo").exists()


@pytest.mark.parametrize("ext", [".safetensors", ".npz", ".npy"])
def test_reader_gives_the_saved_flows_one_step_at_a_time(tmp_path: Path, ext: str) -> None:
    from warpnoise.io.flowfile import FlowReader

    b, f = _flows(4, seed=1), _flows(4, seed=2)
    save_flows(tmp_path / f"x{ext}", b, f)
    with FlowReader(tmp_path / f"x{ext}") as reader:
        assert (reader.count, reader.height, reader.width) == (4, 6, 7)
        assert reader.has_forward == (ext != ".npy")
        steps = list(reader)
    assert len(steps) == 4
    for i, (bi, fi) in enumerate(steps):
        torch.testing.assert_close(bi, b[i])
        if ext == ".npy":
            assert fi is None
        else:
            torch.testing.assert_close(fi, f[i])


def test_written_files_are_read_by_the_safetensors_library_and_numpy(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    b, f = _flows(seed=1), _flows(seed=2)
    save_flows(tmp_path / "x.safetensors", b, f, metadata={"flow": "dis"})
    back = load_file(str(tmp_path / "x.safetensors"))
    np.testing.assert_array_equal(back["backward"], b.numpy())
    np.testing.assert_array_equal(back["forward"], f.numpy())
    save_flows(tmp_path / "x.npz", b, f)
    with np.load(tmp_path / "x.npz") as z:
        np.testing.assert_array_equal(z["backward"], b.numpy())
        np.testing.assert_array_equal(z["forward"], f.numpy())


def test_reader_takes_files_written_by_other_tools(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    b, f = _flows(seed=1), _flows(seed=2)
    save_file({"forward": f, "backward": b}, str(tmp_path / "x.safetensors"))
    np.savez_compressed(tmp_path / "x.npz", backward=b.double().numpy(),
                        forward=f.double().numpy())
    np.save(tmp_path / "one.npy", b[0].numpy().astype(">f4"))  # big-endian, a single flow
    for name in ("x.safetensors", "x.npz"):
        b2, f2 = load_flows(tmp_path / name)
        torch.testing.assert_close(b2, b)
        torch.testing.assert_close(f2, f)
    torch.testing.assert_close(load_flows(tmp_path / "one.npy")[0], b[:1])


def test_nan_in_a_later_step_is_found_when_that_step_is_read(tmp_path: Path) -> None:
    from warpnoise.io.flowfile import FlowReader

    b = _flows(3)
    b[2, 1, 0, 0] = float("inf")
    np.save(tmp_path / "x.npy", b.numpy())
    with FlowReader(tmp_path / "x.npy") as reader:
        steps = iter(reader)
        next(steps)
        next(steps)
        with pytest.raises(ValueError, match=r"backward\[2\].*inf"):
            next(steps)


def test_writer_with_missing_steps_or_wrong_shapes_leaves_nothing(tmp_path: Path) -> None:
    from warpnoise.io.flowfile import FlowWriter

    for ext in (".safetensors", ".npz"):
        with pytest.raises(ValueError, match="only 1 of 3"), FlowWriter(
                tmp_path / f"x{ext}", 3, 6, 7) as w:
            w.write(_flows(1)[0], _flows(1)[0])
        with pytest.raises(ValueError, match=r"expected \(2, 6, 7\)"), FlowWriter(
                tmp_path / f"x{ext}", 3, 6, 7) as w:
            w.write(torch.zeros(2, 6, 8), torch.zeros(2, 6, 8))
    assert list(tmp_path.iterdir()) == []

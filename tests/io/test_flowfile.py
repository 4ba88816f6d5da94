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

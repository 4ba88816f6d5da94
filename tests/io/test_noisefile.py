from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from warpnoise.io.noisefile import NOISE_FORMAT, load_noise, save_noise, validate_noise_file


def _noise(t: int = 3, c: int = 4, h: int = 5, w: int = 6) -> torch.Tensor:
    return torch.randn(t, c, h, w, generator=torch.Generator().manual_seed(0))


def test_safetensors_round_trip_keeps_tensor_and_metadata(tmp_path: Path) -> None:
    n = _noise()
    save_noise(tmp_path / "n.safetensors", n, {"method": "integral", "seed": 3})
    back, meta = load_noise(tmp_path / "n.safetensors")
    torch.testing.assert_close(back, n)
    assert meta["method"] == "integral" and meta["seed"] == "3"
    assert meta["format"] == NOISE_FORMAT and meta["shape"] == "3x4x5x6"


def test_float16_option_stores_half(tmp_path: Path) -> None:
    save_noise(tmp_path / "n.safetensors", _noise(), dtype="float16")
    back, _ = load_noise(tmp_path / "n.safetensors")
    assert back.dtype == torch.float16


def test_npy_is_go_with_the_flow_layout_t_h_w_c_float16(tmp_path: Path) -> None:
    n = _noise(t=2, c=3, h=4, w=5)
    save_noise(tmp_path / "noises.npy", n)
    arr = np.load(tmp_path / "noises.npy")
    assert arr.shape == (2, 4, 5, 3) and arr.dtype == np.float16
    np.testing.assert_allclose(arr[1, 2, 3, 0], float(n[1, 0, 2, 3]), rtol=1e-3, atol=1e-3)
    back, meta = load_noise(tmp_path / "noises.npy")
    assert back.shape == (2, 3, 4, 5) and meta == {}


def test_validate_reports_frames_and_shape(tmp_path: Path) -> None:
    save_noise(tmp_path / "n.safetensors", _noise(), {"method": "random"})
    info = validate_noise_file(tmp_path / "n.safetensors")
    assert info["frames"] == 3 and info["shape"] == (3, 4, 5, 6)
    assert info["metadata"]["method"] == "random"


def test_validate_rejects_truncated_and_foreign_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_noise(tmp_path / "n.safetensors", _noise())
    data = (tmp_path / "n.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        validate_noise_file(tmp_path / "cut.safetensors")
    save_file({"noise": _noise()}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a warpnoise noise file"):
        validate_noise_file(tmp_path / "other.safetensors")
    save_file({"x": _noise()}, str(tmp_path / "nokey.safetensors"))
    with pytest.raises(ValueError, match="no 'noise' tensor"):
        load_noise(tmp_path / "nokey.safetensors")


@pytest.mark.parametrize(("noise", "match"), [
    (torch.zeros(4, 5, 6), r"\(T, C, H, W\)"),
    (torch.full((1, 1, 2, 2), float("nan")), "NaN"),
])
def test_bad_noise_is_not_written(tmp_path: Path, noise: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        save_noise(tmp_path / "n.safetensors", noise)
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_and_dtype_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown noise file type"):
        save_noise(tmp_path / "n.pt", _noise())
    with pytest.raises(ValueError, match="dtype"):
        save_noise(tmp_path / "n.safetensors", _noise(), dtype="int8")


def test_writer_with_missing_frames_leaves_nothing(tmp_path: Path) -> None:
    from warpnoise.io.noisefile import NoiseWriter

    with pytest.raises(ValueError, match="only 1 of 3"), NoiseWriter(
            tmp_path / "n.safetensors", (3, 4, 5, 6)) as w:
        w.write(_noise()[0])
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_a_frame_of_the_wrong_shape(tmp_path: Path) -> None:
    from warpnoise.io.noisefile import NoiseWriter

    with pytest.raises(ValueError, match=r"expected \(4, 5, 6\)"), NoiseWriter(
            tmp_path / "n.npy", (3, 4, 5, 6)) as w:
        w.write(torch.zeros(4, 5, 7))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["n.safetensors", "n.npy"])
def test_validate_reads_every_frame_and_names_the_bad_one(tmp_path: Path, name: str) -> None:
    import struct

    path = tmp_path / name
    save_noise(path, _noise(t=4), {"method": "random"})
    data = bytearray(path.read_bytes())
    frame = 4 * 5 * 6 * (2 if name.endswith(".npy") else 4)
    start = len(data) - 4 * frame  # the data is the file's tail
    bad = struct.pack("<e", float("nan")) if name.endswith(".npy") else struct.pack(
        "<f", float("nan"))
    data[start + 2 * frame + 8:start + 2 * frame + 8 + len(bad)] = bad
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"NaN or inf values \(frame 2\)"):
        validate_noise_file(path)


def test_npy_writer_does_not_map_the_file_into_memory(tmp_path: Path, monkeypatch) -> None:
    from warpnoise.io.noisefile import NoiseWriter

    def no_memmap(*args: object, **kwargs: object) -> None:
        raise AssertionError("mapped pages count in resident memory; write the file instead")

    monkeypatch.setattr(np.lib.format, "open_memmap", no_memmap)
    monkeypatch.setattr(np, "memmap", no_memmap)
    n = _noise(t=3)
    with NoiseWriter(tmp_path / "n.npy", tuple(n.shape)) as w:
        for frame in n:
            w.write(frame)
    np.testing.assert_allclose(np.load(tmp_path / "n.npy"), n.permute(0, 2, 3, 1).numpy(),
                               atol=2e-3, rtol=1e-3)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.io._clips import moving_frames
from warpnoise.estimate import estimate_flows, make_estimator
from warpnoise.flow import forward_backward_occlusion


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_translation_gives_opposite_backward_and_forward_flows(method: str) -> None:
    frames = moving_frames(3, 64, 80, dx=2, dy=1)
    b, f = estimate_flows(frames, method)
    assert b.shape == f.shape == (2, 2, 64, 80)
    assert b.dtype == torch.float32
    inner = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    # Content moves by (+2, +1): frame t's pixel came from x - (2, 1).
    torch.testing.assert_close(b[inner].mean(dim=(0, 2, 3)), torch.tensor([-2.0, -1.0]),
                               atol=0.15, rtol=0)
    torch.testing.assert_close(f[inner].mean(dim=(0, 2, 3)), torch.tensor([2.0, 1.0]),
                               atol=0.15, rtol=0)


def test_consistent_flows_mark_few_pixels_occluded() -> None:
    frames = moving_frames(2, 64, 80, dx=1, dy=0)
    b, f = estimate_flows(frames, "dis")
    occ = forward_backward_occlusion(b[0], f[0])
    # Only the column entering at the left edge has no source.
    assert float(occ.float().mean()) < 0.1


def test_single_frame_gives_no_flows() -> None:
    b, f = estimate_flows(moving_frames(1, 32, 32))
    assert b.shape == f.shape == (0, 2, 32, 32)


@pytest.mark.parametrize("preset", ["ultrafast", "fast", "medium"])
def test_dis_presets_are_accepted(preset: str) -> None:
    b, _ = estimate_flows(moving_frames(2, 32, 32), "dis", preset=preset)
    assert b.shape == (1, 2, 32, 32)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "lucas"}, "unknown flow method"),
    ({"method": "dis", "preset": "slow"}, "unknown DIS preset"),
    ({"method": "raft"}, "local weights file"),
    ({"method": "raft", "raft_weights": "/nonexistent/raft.pth"}, "does not exist"),
])
def test_bad_estimator_choices_are_value_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_estimator(**kwargs)


def test_raft_without_torchvision_says_what_it_needs(tmp_path: Path, monkeypatch) -> None:
    import sys

    weights = tmp_path / "raft.pth"
    torch.save({}, weights)
    # Simulate the missing/broken torchvision of this environment on any machine.
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    monkeypatch.setitem(sys.modules, "torchvision.models.optical_flow", None)
    with pytest.raises(ValueError, match="RAFT needs torchvision"):
        make_estimator("raft", raft_weights=str(weights))


@pytest.mark.parametrize(("frames", "match"), [
    (np.zeros((2, 8, 8), np.uint8), r"\(T, H, W, 3\)"),
    (np.zeros((2, 8, 8, 3), np.float32), "uint8"),
])
def test_bad_frames_are_value_errors(frames: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate_flows(frames)


def test_raft_from_a_local_weights_file_gives_both_flows(tmp_path: Path) -> None:
    # Runs only where torchvision imports beside this torch (not in this project's venv).
    try:
        from torchvision.models.optical_flow import raft_small
    except Exception:
        pytest.skip("torchvision is not importable here")
    torch.manual_seed(0)  # test-side: the random RAFT weights only need to exist
    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None, progress=False).state_dict(), weights)
    b, f = estimate_flows(moving_frames(2, 60, 76), "raft", raft_weights=str(weights),
                          device="cpu")
    assert b.shape == f.shape == (1, 2, 60, 76)
    assert bool(torch.isfinite(b).all()) and bool(torch.isfinite(f).all())

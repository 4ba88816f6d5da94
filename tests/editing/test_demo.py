"""The demo's method list and clip."""

from __future__ import annotations

from warpnoise import DEFAULT_METHOD
from warpnoise.editing.demo import BASELINES, demo_methods


def test_demo_compares_the_baselines_and_the_default_once() -> None:
    names = demo_methods()
    assert names[: len(BASELINES)] == list(BASELINES)
    assert names.count(DEFAULT_METHOD) == 1


def test_demo_compares_every_baseline_the_paper_names() -> None:
    # Chang et al. 2024, §6: random, fixed, bilinear, bicubic, nearest, PYoCo, Control-A-Video.
    for name in ("random", "fixed", "nearest", "bilinear", "bicubic", "pyoco-mixed",
                 "pyoco-progressive", "control-a-video", "integral"):
        assert name in demo_methods()


def test_results_table_writes_a_dash_where_a_score_has_no_meaning() -> None:
    from warpnoise.editing.demo import DemoRow, _table

    settings = {"frames": 2, "size": "64x48", "eta": 1.0, "strength": 0.5, "steps": 10,
                "seed": 0, "former": False, "default_method": "persistent"}
    clips = {"box": {"what": "a box", "median_px": 2.0, "p90_px": 3.0, "moving_share": 0.5}}
    rows = [DemoRow("box", "ground truth", "demo", None, None, 4.01, 1.0, float("inf"), 1.0,
                    None, 0.0),
            DemoRow("box", "bicubic input", "demo", None, None, 4.24, 0.13, 22.59, 0.6184,
                    None, 0.0),
            DemoRow("box", "persistent", "demo", 0.5, 0.02, 3.5, 0.8, 24.0, 0.7, 1.7, 12.3)]
    lines = _table(rows, settings, clips).splitlines()
    assert "| ground truth | – | – | 4.01 | 1.00 | – | 1.0000 | – | – |" in lines
    assert "| bicubic input | – | – | 4.24 | 0.13 | 22.59 | 0.6184 | – | – |" in lines
    assert ("| persistent (default) | 0.500 | 0.020 | 3.50 | 0.80 | 24.00 | 0.7000 | 1.70 | "
            "12.3 |") in lines


def test_every_bundled_clip_is_16_frames_of_128_squared_and_distinct() -> None:
    import numpy as np

    from warpnoise.editing.demo import CLIPS, load_clip, load_sr_clip

    clips = {name: load_clip(name) for name in CLIPS}
    assert set(clips) == {"box", "box-turn", "hand-box"}
    for v in clips.values():
        assert v.shape == (16, 128, 128, 3) and v.dtype == np.uint8
    np.testing.assert_array_equal(load_sr_clip(), clips["box"])
    assert not np.array_equal(clips["box-turn"], clips["hand-box"])


def test_an_unknown_clip_is_refused_by_name() -> None:
    import pytest

    from warpnoise.editing.demo import load_clip

    with pytest.raises(ValueError, match="unknown clip 'tree'"):
        load_clip("tree")


def test_slice_row_is_the_row_with_the_most_horizontal_motion() -> None:
    import torch

    from warpnoise.editing.demo import slice_row

    b = torch.zeros(3, 2, 64, 64)
    b[:, 0, 40] = -3.0
    b[:, 1, 20] = -5.0  # vertical motion does not count
    b[:, 0, 2] = -9.0  # the outer eighth is left out
    assert slice_row(b) == 40

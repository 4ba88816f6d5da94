"""The demo's method list and clip."""

from __future__ import annotations

from warpnoise import DEFAULT_METHOD
from warpnoise.diffusion.demo import BASELINES, demo_methods


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
    from warpnoise.diffusion.demo import DemoRow, _table

    settings = {"frames": 2, "size": "64x48", "eta": 1.0, "strength": 0.5, "steps": 10,
                "run_steps": 5, "seed": 0}
    rows = [DemoRow("ground truth", 4.01, float("inf"), 1.0, 1.0, 0.0),
            DemoRow("bicubic input", 4.24, 22.59, 0.6184, 0.13, 0.0),
            DemoRow("persistent", 3.5, 24.0, 0.7, 0.8, 12.3)]
    lines = _table(rows, settings).splitlines()
    assert "| ground truth | 4.01 | – | 1.0000 | 1.00 | – |" in lines
    assert "| bicubic input | 4.24 | 22.59 | 0.6184 | 0.13 | – |" in lines
    assert "| persistent | 3.50 | 24.00 | 0.7000 | 0.80 | 12.3 |" in lines

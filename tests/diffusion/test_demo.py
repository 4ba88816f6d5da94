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

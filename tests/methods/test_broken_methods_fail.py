"""The statistical suite can fail: deliberately broken variants of the paper's method miss it.

This is the check that the tests of the exact methods are not vacuous.
"""

from __future__ import annotations

import pytest
import torch

import warpnoise
from warpnoise.methods import integral as integral_module

from . import _flows as F
from ._checks import coherence_errors, exactness_failures


def test_integral_without_sqrt_normalisation_fails_exactness(monkeypatch) -> None:
    real = integral_module.integrate_or_fresh

    def unnormalised(sums, count, pix, shape, generator):
        # Divide by the count instead of its square root: the variance collapses.
        return real(sums / count.clamp_min(1).to(sums.dtype).sqrt()[None], count, pix, shape,
                    generator)

    monkeypatch.setattr(integral_module, "integrate_or_fresh", unnormalised)
    w = warpnoise.NoiseWarper(4, 96, 96, method="integral", seed=0)
    noise = w.step(F.rotation(96, 96, 2.0))
    assert any(f.startswith("std") for f in exactness_failures(noise))


@pytest.mark.slow
def test_integral_reupsampled_every_frame_fails_coherence() -> None:
    """Re-anchoring every frame (fresh sub-pixel detail each frame, as frame-to-frame warpers do)
    keeps every frame exact but loses the long-range correlation the coherence test demands."""
    d = (0.37, 0.21)
    w = warpnoise.NoiseWarper(4, 96, 96, method="integral", seed=0, anchor_every=1)
    flow = F.translation(96, 96, *d)
    frames = torch.stack([w.noise] + [w.step(flow) for _ in range(10)])
    assert exactness_failures(frames[-1]) == []
    assert max(coherence_errors(frames, d, margin=16)) > 0.2


def test_bilinear_baseline_fails_exactness() -> None:
    w = warpnoise.NoiseWarper(4, 192, 192, method="bilinear", seed=0)
    noise = w.step(F.translation(192, 192, 0.37, 0.21))
    fails = exactness_failures(noise)
    assert any(f.startswith("std") for f in fails) and any(f.startswith("lag") for f in fails)

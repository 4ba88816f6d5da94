"""``persistent`` at object boundaries: a layer moving over a static background keeps its noise
up to its edges, the background beside it keeps its own, and what the layer uncovers is new noise.

The measure is the *carry* of a pixel class (:func:`_layers.carry`): how much of the noise that
exact transport would bring from the previous frame (each pixel's unit square moved back with its
layer, over the pixels of the same layer) a frame does bring; 1 for exact transport, 0 for
independent noise. Under a whole-pixel move exact transport is reachable and edges must carry
0.95 of it. Under sub-pixel motion the persistent field's resolution (``upsample``) already costs
the interior of the layer a few percent between consecutive frames, so there the edges must carry
0.95 of what the same layer's interior carries in the same frames, the leading and trailing edges
0.90 (:data:`EDGE_SHARE`). Samples: 8 frames x 8 seeds of 160^2 x 4 channels; an edge class
holds 16-80 thousand values, and the old midpoint rule misses the bound by 0.3 or more. Every
frame of seed 1 also passes the exactness checks (:data:`EXACT_SEED`).
"""

from __future__ import annotations

import pytest
import torch

import warpnoise
from warpnoise.methods.persistent import torch_backend

from ._checks import exactness_failures
from ._layers import Scene, edge_classes

SCENES = {
    "whole_pixel": Scene(160, 160, 80, 30, 40, dx=3.0),
    "sub_pixel": Scene(160, 160, 80, 30, 40, dx=2.6),
    "diagonal": Scene(160, 160, 64, 30, 30, dx=2.3, dy=1.7),
    "rotating": Scene(160, 160, 72, 44, 44, spin=3.0),
}
FRAMES, SEEDS = 8, 8
#: The seed whose frames pass the exactness checks. Those checks' bounds are sized for 192^2
#: frames; at 160^2 a lag-1 correlation of i.i.d. noise has a standard error of 0.003, so about
#: one seed in twenty brushes the 0.01 bound somewhere in 8 frames (seed 0 of the version-2 bits
#: does at frame 7). The exactness of every frame is tested at full size in test_exact_methods.
EXACT_SEED = 1
#: Edge classes must carry this fraction of the interior's carry. Under sub-pixel motion the
#: leading edge of a diagonally moving layer carries 0.97 of the interior on average (0.032
#: between seeds; the former midpoint rule: 0.3 or more below), so 0.90 with 8 seeds puts the
#: method 6 standard errors above the bound and the broken rule far below it.
EDGE_SHARE = {"layer_edge": 0.95, "background_edge": 0.95, "leading": 0.90, "trailing": 0.90}


def _run(scene: Scene, seeds: int = SEEDS, backend: str = "auto") -> dict[str, list[float]]:
    """Carry per pixel class, pooled over frames and seeds (numerator and denominator summed)."""
    sums: dict[str, list[float]] = {}
    for seed in range(seeds):
        w = warpnoise.NoiseWarper(4, scene.h, scene.w, seed=seed, backend=backend)
        prev = w.noise
        for t in range(1, FRAMES + 1):
            b, f = scene.flows(t)
            noise = w.step(b, f)
            if seed == EXACT_SEED:
                assert exactness_failures(noise) == [], f"frame {t}"
            pred = scene.transport(t, prev)
            classes = edge_classes(scene, t)
            classes["interior"] = scene.mask(t) & ~classes["layer_edge"]
            for name, mask in classes.items():
                if name == "disoccluded" or not mask.any():
                    continue
                g, p = noise.double()[:, mask], pred[:, mask]
                acc = sums.setdefault(name, [0.0, 0.0])
                acc[0] += float((g * p).sum())
                acc[1] += float((p * p).sum())
            prev = noise
    return sums


# The torch path (CUDA, no numba) is slower on the CPU: two scenes, two seeds.
CASES = [(name, "kernel") for name in sorted(SCENES)] + [
    ("whole_pixel", "torch"), ("rotating", "torch")]


@pytest.mark.parametrize(("name", "path"), CASES)
@pytest.mark.slow
def test_edges_and_background_keep_their_noise(name: str, path: str) -> None:
    scene = SCENES[name]
    sums = _run(scene, SEEDS if path == "kernel" else 2, "auto" if path == "kernel" else "torch")
    got = {k: num / den for k, (num, den) in sums.items()}
    target = 1.0 if name == "whole_pixel" else got["interior"]
    classes = ["layer_edge", "background_edge"]
    if scene.dx or scene.dy:
        classes += ["leading", "trailing"]
    low = {k: round(got[k], 3) for k in classes if got[k] < EDGE_SHARE[k] * target}
    assert not low, (f"{name} ({path}): carry below {EDGE_SHARE} x {target:.3f}", low, got)


@pytest.mark.slow
def test_uncovered_background_is_new_noise() -> None:
    """What the layer uncovers this frame is independent of the noise any warp could give it:
    its own position's noise in the previous frame (the layer that was there), and the layer
    pixels beside it now, which carry that noise on."""
    scene = Scene(160, 160, 80, 30, 40, dx=3.0)
    pairs: dict[str, list[torch.Tensor]] = {"uncovered": [], "before": [], "layer_now": []}
    for seed in range(4):
        w = warpnoise.NoiseWarper(4, scene.h, scene.w, seed=seed)
        prev = w.noise
        for t in range(1, 13):
            b, f = scene.flows(t)
            noise = w.step(b, f)
            gone = edge_classes(scene, t)["disoccluded"]
            pairs["uncovered"].append(noise[:, gone])
            pairs["before"].append(prev[:, gone])
            pairs["layer_now"].append(noise[:, gone.roll(3, dims=1)])
            prev = noise
    cat = {k: torch.cat(v, dim=1).flatten() for k, v in pairs.items()}
    assert cat["uncovered"].numel() > 40_000  # standard error of a correlation < 0.005
    for other in ("before", "layer_now"):
        c = float(torch.corrcoef(torch.stack([cat["uncovered"], cat[other]]))[0, 1])
        assert abs(c) <= 0.02, (other, c)


@pytest.mark.slow
def test_old_midpoint_rule_fails_the_edge_test(monkeypatch) -> None:
    """Linking every pair of neighbours (the rule before boundary-aware boxes: midpoints to
    whatever neighbour, interpolation across the boundary) loses the edges' noise: the test
    above can fail."""
    monkeypatch.setattr(torch_backend, "_linked", lambda a, usable, axis: torch.ones_like(
        usable.narrow(1 - axis, 0, usable.shape[1 - axis] - 1)))
    sums = _run(SCENES["whole_pixel"], seeds=1, backend="torch")
    got = {k: num / den for k, (num, den) in sums.items()}
    assert got["layer_edge"] < 0.8 and got["background_edge"] < 0.9, got

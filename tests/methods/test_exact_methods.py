"""The statistical suite (``docs/method.md``, "How it is tested") applied to every exact method.

Every frame of an exact method must be i.i.d. N(0, 1) whatever the motion, and the noise must move
with the content: under a sub-pixel translation the correlation with frame 0 at the nearest integer
shift is the ∫-noise overlap ``(1-|e_x|)(1-|e_y|)``.
"""

from __future__ import annotations

import pytest
import torch

import warpnoise
from warpnoise.stats import shifted_correlation

from . import _flows as F
from ._checks import coherence_errors, exactness_failures

H = W = 192
EXACT = ["integral", "persistent", "snap"] + (["bridge"] if "bridge" in warpnoise.methods() else [])
# The paper's reference rasterises k^2 sub-pixels per pixel: fewer frames keep it quick, and the
# anchored state after a few frames is already as far from the anchor as any later one.
FRAMES = {"integral": 3, "persistent": 8, "bridge": 8, "snap": 8}

MOTIONS = {
    "translation": lambda: F.translation(H, W, 0.37, 0.21),
    "rotation": lambda: F.rotation(H, W, 2.0),
    "zoom_in": lambda: F.zoom(H, W, 1.03),
    "zoom_out": lambda: F.zoom(H, W, 1 / 1.03),
    "shear": lambda: F.shear(H, W, 0.01),
    "swirl": lambda: F.swirl(H, W, 6.0, 40.0),
}


def run(method: str, flow: torch.Tensor, frames: int, seed: int = 0, **options) -> list:
    w = warpnoise.NoiseWarper(4, H, W, method=method, seed=seed, **options)
    return [w.noise] + [w.step(flow) for _ in range(frames)]


@pytest.mark.parametrize("motion", sorted(MOTIONS))
@pytest.mark.parametrize("method", EXACT)
@pytest.mark.slow
def test_every_frame_is_iid_standard_normal(method: str, motion: str) -> None:
    frames = run(method, MOTIONS[motion](), FRAMES[method], seed=1)
    for t, noise in enumerate(frames):
        assert noise.shape == (4, H, W) and noise.dtype == torch.float32
        assert exactness_failures(noise) == [], f"{method} {motion} frame {t}"


@pytest.mark.parametrize("method", EXACT)
@pytest.mark.slow
def test_layered_scene_keeps_layers_apart(method: str) -> None:
    """A square moving 3 px/frame over a static background, with forward flows for occlusion:
    every frame stays exact, the moving layer carries its own noise along, and the background it
    uncovers gets noise independent of the layer's (no duplicated noise)."""
    size, dx, top, left = 64, 3, 60, 40
    w = warpnoise.NoiseWarper(4, H, W, method=method, seed=2)
    prev = w.noise
    rows = slice(top + 4, top + size - 4)  # the square's first and last rows are distorted
    pairs: dict[str, list[torch.Tensor]] = {"uncovered": [], "f2f": [], "anchored": []}
    for t in range(1, 5):
        b, f, _ = F.layered(H, W, t, size=size, dx=float(dx), top=top, left=left)
        noise = w.step(b, f)
        assert exactness_failures(noise) == [], f"{method} frame {t}"
        # Background uncovered this frame, and the layer pixels a naive warp would fill it from:
        # the frame-to-frame partner (dx to the right) and the anchored one (dx * t).
        x0 = left + t * dx
        pairs["uncovered"].append(noise[:, rows, x0 - dx:x0].flatten())
        pairs["f2f"].append(noise[:, rows, x0:x0 + dx].flatten())
        pairs["anchored"].append(noise[:, rows, x0 - dx + dx * t:x0 + dx * t].flatten())
        if method != "bridge":  # bridge re-splits the source every frame (Deng et al. 2025)
            inner = noise[:, rows, x0 + 4:x0 + size - 4]
            src = prev[:, rows, x0 + 4 - dx:x0 + size - 4 - dx]
            assert torch.allclose(inner, src, atol=1e-4), "moving layer must keep its noise"
        prev = noise
    uncovered = torch.cat(pairs["uncovered"])
    bound = 4.0 / uncovered.numel() ** 0.5  # 4 standard errors; duplicated noise gives ~1
    for name in ("f2f", "anchored"):
        c = torch.corrcoef(torch.stack([uncovered, torch.cat(pairs[name])]))[0, 1]
        assert abs(float(c)) < bound, (name, float(c), bound)


# snap carries whole values (correlation 1 or 0, not the overlap): tests/methods/test_snap.py.
@pytest.mark.parametrize("method", [m for m in EXACT if m not in ("bridge", "snap")])
@pytest.mark.slow
def test_noise_follows_subpixel_translation_for_30_frames(method: str) -> None:
    d = (0.37, 0.21)
    # 96 x 96 keeps the reference affordable at upsample=16 (its overlaps are quantised to 1/k,
    # which at the default k=8 alone can cost 0.05); SE of each correlation is still ~0.006.
    h = w = 96
    options = {"upsample": 16} if method == "integral" else {}
    warper = warpnoise.NoiseWarper(4, h, w, method=method, seed=3, **options)
    flow = F.translation(h, w, *d)
    frames = torch.stack([warper.noise] + [warper.step(flow) for _ in range(30)])
    errs = coherence_errors(frames, d, margin=16)
    assert max(errs) < 0.05, [round(e, 3) for e in errs]


@pytest.mark.slow
def test_persistent_detail_is_shared_between_neighbouring_frames() -> None:
    """The sub-pixel field persists: frame t+1 correlates with frame t as the ∫-noise ideal says,
    (1-0.37)(1-0.21) = 0.498 under a (0.37, 0.21) px/frame translation. Redrawing the sub-pixel
    detail every frame (what persistence avoids) averages about 0.35 here, with frames near 0.23."""
    d = (0.37, 0.21)
    ideal = (1 - d[0]) * (1 - d[1])
    h = w = 128
    warper = warpnoise.NoiseWarper(4, h, w, method="persistent", seed=4)
    flow = F.translation(h, w, *d)
    frames = [warper.noise] + [warper.step(flow) for _ in range(12)]
    inner = [f[:, 16:-16, 16:-16] for f in frames]
    corrs = [shifted_correlation(inner[t + 1], inner[t], 0, 0) for t in range(4, 12)]
    assert abs(sum(corrs) / len(corrs) - ideal) < 0.05, corrs
    assert min(corrs) > 0.38, corrs


@pytest.mark.parametrize("method", EXACT)
@pytest.mark.slow
def test_same_seed_gives_same_bits(method: str) -> None:
    flow = F.rotation(64, 64, 3.0)

    def seq(seed: int) -> torch.Tensor:
        w = warpnoise.NoiseWarper(3, 64, 64, method=method, seed=seed)
        return torch.stack([w.noise] + [w.step(flow) for _ in range(3)])

    a, b, c = seq(5), seq(5), seq(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)

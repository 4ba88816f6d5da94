"""Noise for authored motion: every frame i.i.d. N(0, 1); a dragged layer keeps its noise (whole
pixels: all of it, inside and at the edges; sub-pixel: the exact overlap correlation); what it
uncovers is new noise; a camera zoom transports noise as exact ∫-noise does; files as
``warpnoise noise`` writes them, for every latent preset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.io._clips import texture
from tests.methods._checks import coherence_errors, exactness_failures
from warpnoise import motion
from warpnoise.diffusion import PRESETS, latents_for
from warpnoise.io.noisefile import load_latents, load_noise, validate_noise_file
from warpnoise.pipeline import NoiseOptions
from warpnoise.rng import derive_seed

from ._scenes import drag

N = 192
BIG = [[16.0, 16.0], [175.0, 16.0], [175.0, 175.0], [16.0, 175.0]]  # 160 x 160 pixels


def _scene(d: dict) -> motion.Scene:
    return motion.scene(motion.parse(d), (N, N))


def _edges(owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer-0 pixels next to a non-layer pixel (edge) and the rest of the layer (inside)."""
    layer = owner == 0
    outside = torch.nn.functional.max_pool2d((~layer)[None, None].float(), 3, 1, 1)[0, 0] > 0
    return layer & outside, layer & ~outside


def test_every_frame_is_iid_standard_normal_under_layers_and_camera() -> None:
    d = drag(2.3, -1.1, frames=6, zoom=1.08, rotation=4, pan=[3, 2])
    d["layers"].append({"polygon": [[100, 20], [180, 40], [150, 110]],
                        "keyframes": [{"frame": 5, "translate": [-20, 30], "scale": 1.3}]})
    x = motion.noise(_scene(d), 4, seed=1)
    assert x.shape == (6, 4, N, N) and x.dtype == torch.float32
    for t, frame in enumerate(x):
        assert exactness_failures(frame) == [], t


def test_whole_pixel_drag_keeps_the_layer_noise_inside_and_at_edges() -> None:
    d = drag(3, 2, frames=7)
    sc = _scene(d)
    x = motion.noise(sc, 4, seed=2)
    sums = {"inside": [0.0, 0.0], "edge": [0.0, 0.0]}
    for step in motion.flows(sc):
        edge, inside = _edges(step.owner)
        prev = torch.roll(x[step.frame - 1], shifts=(2, 3), dims=(1, 2))  # moved with the layer
        for name, m in (("inside", inside), ("edge", edge)):
            g, p = x[step.frame][:, m].double(), prev[:, m].double()
            sums[name][0] += float((g * p).sum())
            sums[name][1] += float((p * p).sum())
    for name, (num, den) in sums.items():
        assert num / den >= 0.95, (name, num / den)


def test_subpixel_drag_gives_the_exact_overlap_correlation() -> None:
    d = (0.37, 0.21)
    x = motion.noise(_scene(drag(*d, frames=13, polygon=BIG)), 4, seed=3)
    errs = coherence_errors(x, d, margin=24)  # the layer's interior, away from its edges
    assert max(errs) < 0.05, [round(e, 3) for e in errs]


def test_uncovered_background_is_independent_of_the_layer() -> None:
    sc = _scene(drag(4, 0, frames=13, polygon=BIG))
    x = motion.noise(sc, 4, seed=4)
    new, same_pixel, partner = [], [], []
    for step in motion.flows(sc):
        t, m = step.frame, step.disoccluded
        new.append(x[t][:, m])
        same_pixel.append(x[t - 1][:, m])  # what the layer had there
        partner.append(torch.roll(x[t], -4, dims=2)[:, m])  # where that noise went
    a = torch.cat([v.flatten() for v in new])
    assert a.numel() > 25_000
    for other in (same_pixel, partner):
        c = torch.corrcoef(torch.stack([a, torch.cat([v.flatten() for v in other])]))[0, 1]
        assert abs(float(c)) <= 0.02, float(c)


def _zoom_transport(previous: torch.Tensor, z: float, samples: int = 8) -> torch.Tensor:
    """Exact ∫-noise transport of a zoom by ``z`` about the frame centre: E[G_t(x) | G_{t-1}]
    = sum_y |Omega(x) ∩ y| G_{t-1}(y) / sqrt|Omega(x)|, Omega(x) the pixel's square mapped back
    (side 1/z), its overlaps counted with ``samples``² points."""
    c, h, w = previous.shape
    centre = ((w - 1) / 2, (h - 1) / 2)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    offs = (torch.arange(samples, dtype=torch.float64) + 0.5) / samples - 0.5
    out = torch.zeros(c, h, w, dtype=torch.float64)
    flat = previous.double().reshape(c, -1)
    for oy in offs:
        for ox in offs:
            sx = centre[0] + (xs + ox - centre[0]) / z
            sy = centre[1] + (ys + oy - centre[1]) / z
            col = torch.floor(sx + 0.5).long().clamp(0, w - 1)
            row = torch.floor(sy + 0.5).long().clamp(0, h - 1)
            out += flat[:, (row * w + col).reshape(-1)].reshape(c, h, w)
    area = 1 / z**2
    return out / samples**2 * area / math.sqrt(area)


@pytest.mark.parametrize("zoom", [1.04, 1 / 1.04])
def test_camera_zoom_passes_the_affine_transport_check(zoom: float) -> None:
    frames = 5
    d = {"frames": frames, "camera": {"easing": "linear", "keyframes": [
        {"frame": frames - 1, "zoom": zoom ** (frames - 1)}]}}
    x = motion.noise(_scene(d), 4, seed=5)
    inner = (slice(None), slice(24, N - 24), slice(24, N - 24))
    num = den = 0.0
    for t in range(1, frames):
        p = _zoom_transport(x[t - 1], zoom)[inner]
        g = x[t][inner].double()
        num += float((g * p).sum())
        den += float((p * p).sum())
        assert exactness_failures(x[t]) == []
    # Exact transport: the regression of the noise on its prediction has slope 1 (the default
    # method, whose field has a finite resolution, measures 0.96 at zoom 1.04); fresh noise 0.
    assert 0.9 <= num / den <= 1.1, num / den


def test_write_makes_the_files_and_records_the_motion(tmp_path: Path) -> None:
    d = drag(2, 1, frames=5)
    sc = _scene(d)
    image = texture(N, N, seed=1)
    seen: list[int] = []
    res = motion.write(image, sc, tmp_path / "out", NoiseOptions(seed=7), preview=True,
                       on_frame=lambda fr: seen.append(fr.frame))
    assert seen == [0, 1, 2, 3, 4]
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["animation.mp4", "mask_0_square.mp4", "noise.safetensors", "preview.mp4"]
    x, meta = load_noise(res.noise.output)
    assert torch.equal(x, motion.noise(sc, 4, seed=7))  # the same bits as in memory
    assert motion.parse(meta["motion"]) == sc.spec and meta["frame_size"] == f"{N}x{N}"
    assert validate_noise_file(res.noise.output)["metadata"]["seed"] == "7"
    assert set(res.seconds) >= {"flows", "render", "warp", "total"}


@pytest.mark.parametrize("model", sorted(PRESETS))
def test_every_latent_preset_with_degradation(model: str, tmp_path: Path) -> None:
    p = PRESETS[model]
    sc = motion.scene(motion.parse(drag(1.5, 0.5, frames=9, polygon=[[8, 8], [40, 8], [24, 40]])),
                      (64, 64))
    res = motion.write(np.zeros((64, 64, 3), np.uint8), sc, tmp_path, NoiseOptions(
        latent=model, degradation=0.4, seed=11))
    got, meta = load_latents(res.noise.output)
    want = latents_for(motion.noise(sc, p.channels, seed=11), p, grid="pixel", degradation=0.4,
                       seed=derive_seed(11, "degradation"))
    assert meta["latent_model"] == model and json.loads(meta["motion"])["frames"] == 9
    assert torch.equal(got, want)


def test_write_refuses_a_clip_the_model_refuses_before_writing(tmp_path: Path) -> None:
    sc = motion.scene(motion.parse(drag(1, 0, frames=8)), (64, 64))
    with pytest.raises(ValueError, match=r"4k\+1|frames"):
        motion.write(np.zeros((64, 64, 3), np.uint8), sc, tmp_path / "o",
                     NoiseOptions(latent="wan2.1"))
    assert not (tmp_path / "o").exists()

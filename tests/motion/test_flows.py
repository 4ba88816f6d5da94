"""Exact flows: they carry points where the keyframes say, backward and forward are inverse on
pixels seen in both frames, the front-most layer owns a pixel, and what a layer uncovers comes
out occluded for the warper."""

from __future__ import annotations

import numpy as np
import torch

from warpnoise import motion
from warpnoise.flow import forward_backward_occlusion, pixel_grid, sample

from ._scenes import SQUARE, drag

W, H = 192, 160
CAMERA = {"zoom": 1.15, "pan": [6, -4], "rotation": 5}


def _spec(**camera: float) -> motion.Motion:
    d = drag(0, 0, frames=7, **camera)
    d["layers"][0]["path"] = "smooth"
    d["layers"][0]["keyframes"] = [
        {"frame": 3, "translate": [12, 5], "rotation": 20, "scale": 1.2},
        {"frame": 6, "translate": [20, -6], "rotation": -10, "scale": 0.9}]
    return motion.parse(d)


def _same_owner_around(owner: torch.Tensor, pts: torch.Tensor, k: int) -> torch.Tensor:
    """Points whose four bilinear neighbours all belong to layer ``k`` (bilinear sampling of a
    layer's affine flow there is exact)."""
    x0, y0 = pts[0].floor().long(), pts[1].floor().long()
    ok = (x0 >= 0) & (y0 >= 0) & (x0 < W - 1) & (y0 < H - 1)
    out = ok.clone()
    for dy in (0, 1):
        for dx in (0, 1):
            xi, yi = (x0 + dx).clamp(0, W - 1), (y0 + dy).clamp(0, H - 1)
            out &= owner[yi, xi] == k
    return out


def test_chained_forward_flows_carry_points_to_their_keyframed_places() -> None:
    sc = motion.scene(_spec(**CAMERA), (W, H))
    pts0 = np.array([[60.0, 70.0], [80.5, 90.25], [100.0, 110.0], [55.0, 100.0]])
    p = torch.from_numpy(pts0.T.copy())
    prev_owner = torch.from_numpy(sc.owner(pixel_grid(H, W, dtype=torch.float64).numpy(), 0))
    for step in motion.flows(sc, dtype=torch.float64):
        assert bool(_same_owner_around(prev_owner, p, 0).all()), step.frame
        p = p + sample(step.forward, p)
        want = motion.positions(sc, pts0, 0, step.frame)
        assert np.abs(p.numpy().T - want).max() < 1e-4, step.frame
        prev_owner = step.owner


def test_backward_and_forward_are_inverse_on_pixels_seen_in_both_frames() -> None:
    sc = motion.scene(_spec(**CAMERA), (W, H))
    grid = pixel_grid(H, W, dtype=torch.float64)
    prev_owner = torch.from_numpy(sc.owner(grid.numpy(), 0))
    checked = 0
    for step in motion.flows(sc, dtype=torch.float64):
        src = grid + step.backward
        for k in (motion.BACKGROUND, 0):
            sel = (step.owner == k) & ~step.disoccluded
            sel &= _same_owner_around(prev_owner, src, k)
            round_trip = step.backward + sample(step.forward, src)
            assert round_trip[:, sel].abs().max() < 1e-6, (step.frame, k)
            checked += int(sel.sum())
        prev_owner = step.owner
    assert checked > 0.8 * W * H * (sc.frames - 1)


def test_front_most_layer_owns_the_overlap() -> None:
    d = drag(1, 0, frames=3)
    d["layers"].append({"name": "back", "polygon": [[80, 60], [150, 60], [150, 140], [80, 140]],
                        "keyframes": [{"frame": 2}]})
    sc = motion.scene(motion.parse(d), (W, H))
    step = next(motion.flows(sc))
    assert int(step.owner[100, 100]) == 0  # inside both squares: the front one
    assert int(step.owner[100, 140]) == 1 and int(step.owner[10, 10]) == motion.BACKGROUND
    vis = step.visibility(2)
    assert vis.shape == (2, H, W) and not bool((vis[0] & vis[1]).any())
    # The back layer stands still: its visible pixels do not move.
    assert step.backward[:, vis[1] & ~step.disoccluded].abs().max() == 0


def test_uncovered_background_is_occluded_even_for_slow_drags() -> None:
    """0.4 px per frame is below the forward-backward test's tolerance: the flows themselves
    must say that the strip the layer leaves has no source."""
    sc = motion.scene(motion.parse(drag(0.4, 0.0, frames=6)), (W, H))
    grid = pixel_grid(H, W, dtype=torch.float64).numpy()
    total = 0
    for step in motion.flows(sc):
        was = torch.from_numpy(sc.owner(grid, step.frame - 1)) == 0
        uncovered = was & (step.owner == motion.BACKGROUND)
        assert torch.equal(step.disoccluded, uncovered)
        total += int(uncovered.sum())
        occluded = forward_backward_occlusion(step.backward, step.forward)
        assert bool(occluded[uncovered].all())
        assert not bool(occluded[(step.owner == 0)].any())  # the layer itself is carried
    assert total >= 80  # a column of the square's height every 2.5 frames


def test_polygon_pixels_are_those_with_centres_inside() -> None:
    sc = motion.scene(motion.parse(drag(0, 0, frames=2)), (W, H))
    own = sc.owner(pixel_grid(H, W, dtype=torch.float64).numpy(), 0)
    (x0, y0), (x1, y1) = SQUARE[0], SQUARE[2]
    want = np.zeros((H, W), bool)
    want[int(y0) + 1:int(y1), int(x0) + 1:int(x1)] = True  # edges on pixel centres: half-open
    assert int(((own == 0) ^ want).sum()) <= 2 * (x1 - x0 + y1 - y0)

"""The driving animation tells the same story as the flows: optical flow estimated on it (DIS)
agrees with the exact flows inside the layers; frame 0 is the image; masks are visible shares."""

from __future__ import annotations

import numpy as np
import torch

from tests.io._clips import texture
from warpnoise import motion
from warpnoise.estimate import estimate_flows

from ._scenes import drag

W, H = 192, 160


def _scene() -> motion.Scene:
    d = drag(0, 0, frames=6, zoom=1.06, pan=[4, 2])
    d["layers"][0]["keyframes"] = [{"frame": 5, "translate": [11, 6], "rotation": 8,
                                    "scale": 1.1}]
    d["layers"].append({"name": "bar", "polygon": [[110, 20], [170, 30], [165, 60], [105, 50]],
                        "keyframes": [{"frame": 5, "translate": [-14, 9]}]})
    return motion.scene(motion.parse(d), (W, H))


def _interior(mask: torch.Tensor, depth: int) -> torch.Tensor:
    """Pixels of ``mask`` at least ``depth`` pixels from its outside (and from the border)."""
    k = 2 * depth + 1
    outside = torch.nn.functional.max_pool2d((~mask)[None, None].float(), k, 1, depth)[0, 0]
    inner = mask & (outside == 0)
    inner[:depth], inner[-depth:], inner[:, :depth], inner[:, -depth:] = False, False, False, False
    return inner


def test_dis_on_the_animation_agrees_with_the_exact_flows_inside_layers() -> None:
    sc = _scene()
    image = texture(H, W, seed=5)
    frames = np.stack([f.image for f in motion.render(sc, image)])
    b_dis, _ = estimate_flows(frames)
    for step in motion.flows(sc):
        for k in range(len(sc.layers)):
            inner = _interior(step.owner == k, 6) & ~step.disoccluded
            err = (b_dis[step.frame - 1] - step.backward)[:, inner].norm(dim=0)
            assert int(inner.sum()) > 300
            assert float(err.median()) < 0.5, (step.frame, k, float(err.median()))


def test_frame_zero_is_the_image_and_masks_are_visible_shares() -> None:
    sc = _scene()
    image = texture(H, W, seed=6)
    frames = list(motion.render(sc, image))
    assert len(frames) == sc.frames and np.array_equal(frames[0].image, image)
    for fr in frames:
        assert fr.masks.shape == (2, H, W) and fr.masks.dtype == np.float32
        assert fr.masks.min() >= 0 and fr.masks.sum(0).max() <= 1 + 1e-5
    # Away from edges, a mask is 1 exactly where the flows give the layer the pixel.
    steps = {s.frame: s for s in motion.flows(sc)}
    for t in (2, 5):
        for k in range(2):
            inner = _interior(steps[t].owner == k, 2)
            assert np.all(frames[t].masks[k][inner.numpy()] > 0.999)
            outer = _interior(steps[t].owner != k, 2)
            assert np.all(frames[t].masks[k][outer.numpy()] < 1e-3)


def test_holes_are_inpainted_not_left_black() -> None:
    sc = motion.scene(motion.parse(drag(6, 0, frames=4)), (W, H))
    image = np.full((H, W, 3), 200, np.uint8)
    image[50:131, 40:121] = (30, 60, 90)  # the layer's colour differs from the background
    last = list(motion.render(sc, image))[-1]
    hole = last.image[60:120, 45:55]  # uncovered by the drag of 18 px
    assert np.abs(hole.astype(int) - 200).max() < 40


def test_outlines_follow_the_layer() -> None:
    sc = _scene()
    start = motion.outlines(sc, 0)[0][0]
    assert np.allclose(start, np.array(sc.layers[0].polygon))
    moved = motion.outlines(sc, 5)[0][0]
    assert np.allclose(moved, motion.positions(sc, start, 0, 5))
    drawn = motion.draw_outlines(np.zeros((H, W, 3), np.uint8), sc, 5)
    assert drawn.any() and drawn.shape == (H, W, 3)

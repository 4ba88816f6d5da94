"""The preview's motion is the full motion seen at a smaller scale: every layer map and every
homography conjugated by the scaling, so the preview moves exactly as the full frames do."""

from __future__ import annotations

import numpy as np
import pytest

from warpnoise import motion as mo
from warpnoise.studio.preview import noise_colours, preview, scaled, single_threaded

SPEC = mo.parse({
    "size": [200, 120], "frames": 9,
    "camera": {"keyframes": [{"frame": 8, "pan": [10, -4], "zoom": 1.2, "rotation": 5,
                              "homography": [[1, 0.02, 0], [0, 1, 0], [0.0001, 0, 1]]}]},
    "layers": [{"polygon": [[20, 20], [90, 25], [80, 90]], "anchor": [50, 40],
                "keyframes": [{"frame": 4, "translate": [30, 5], "rotation": 20},
                              {"frame": 8, "translate": [50, -10], "scale": 1.3}]},
               {"polygon": [[120, 40], [180, 40], [180, 100], [120, 100]],
                "keyframes": [{"frame": 8, "translate": [-40, 0]}]}]})


def test_scaled_layer_maps_are_the_full_maps_conjugated_by_the_scale() -> None:
    s = 0.5
    full, small = mo.scene(SPEC), mo.scene(scaled(SPEC, (200, 120), s, (100, 60)))
    S = np.diag([s, s, 1.0])
    for a, b in zip(full.layers, small.layers, strict=True):
        assert np.allclose(b.motion, S @ a.motion @ np.linalg.inv(S), atol=1e-9)
        assert np.allclose(b.anchor, s * a.anchor)
    h_full = np.array(SPEC.camera.keyframes[0].homography)
    h_small = np.array(scaled(SPEC, (200, 120), s, (100, 60)).camera.keyframes[0].homography)
    assert np.allclose(h_small, S @ h_full @ np.linalg.inv(S))


def test_mask_layers_are_refused_with_their_field() -> None:
    spec = mo.parse({"size": [20, 10], "frames": 2,
                     "layers": [{"mask": "m.png", "keyframes": [{"frame": 1}]}]})
    with pytest.raises(ValueError, match=r"layers\[0\] is a mask layer"):
        scaled(spec, (20, 10), 0.5, (10, 5))


def test_preview_keeps_aspect_and_paths_are_in_full_size_pixels() -> None:
    image = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    p = preview(SPEC, image, side=100)
    assert (p.width, p.height, p.frames) == (100, 60, 9)
    path = np.array(p.paths[0])
    assert path.shape == (9, 2)
    assert np.allclose(path[4], [80, 45]) and np.allclose(path[8], [100, 30])


def test_noise_colours_map_zero_to_mid_grey() -> None:
    x = np.zeros((4, 2, 3), np.float32)
    x[1, 0, 0] = 10
    c = noise_colours(x)
    assert c.shape == (2, 3, 3) and c[1, 1, 0] == 128 and c[0, 0, 1] == 255


def test_single_threaded_restores_the_thread_counts_even_after_an_error() -> None:
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    with pytest.raises(RuntimeError), single_threaded():
        assert (torch.get_num_threads(), numba.get_num_threads()) == (1, 1)
        raise RuntimeError
    assert (torch.get_num_threads(), numba.get_num_threads()) == before

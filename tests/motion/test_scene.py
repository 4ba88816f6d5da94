"""Keyframes are met exactly: a layer's points land where translation, rotation and scale about
the anchor, composed with the camera's zoom, pan and rotation about the frame centre, say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from warpnoise import motion
from warpnoise.motion.scene import ease

W, H = 200, 160
CENTRE = np.array([(W - 1) / 2, (H - 1) / 2])
SPEC = {
    "frames": 13,
    "camera": {"keyframes": [{"frame": 6, "zoom": 1.25, "pan": [7, -3], "rotation": 10},
                             {"frame": 12, "zoom": 0.8, "pan": [-5, 4], "rotation": -15}]},
    "layers": [{"polygon": [[40, 40], [100, 40], [100, 90], [40, 90]], "anchor": [55, 60],
                "keyframes": [{"frame": 4, "translate": [20, 5], "rotation": 30, "scale": 1.5},
                              {"frame": 9, "translate": [-10, 25], "rotation": -45, "scale": 0.5,
                               "easing": "smooth"},
                              {"frame": 11, "translate": [3, 3]}]}],
}


def _similarity(p: np.ndarray, centre: np.ndarray, shift: np.ndarray, deg: float,
                scale: float) -> np.ndarray:
    a = math.radians(deg)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return centre + shift + scale * (p - centre) @ r.T


def _expected(p: np.ndarray, layer_key: dict, camera_key: dict) -> np.ndarray:
    anchor = np.array([55.0, 60.0])
    on_layer = _similarity(p, anchor, np.array(layer_key.get("translate", [0, 0])),
                           layer_key.get("rotation", 0.0), layer_key.get("scale", 1.0))
    return _similarity(on_layer, CENTRE, np.array(camera_key["pan"]), camera_key["rotation"],
                       camera_key["zoom"])


def _camera_at(t: int) -> dict:
    """The camera where it is keyed (frames 6 and 12) or held."""
    keys = {k["frame"]: k for k in SPEC["camera"]["keyframes"]}
    return keys[t]


@pytest.mark.parametrize("t", [6, 12])
def test_layer_points_land_where_keyframes_say(t: int) -> None:
    """At camera keyframes 6 and 12 the layer is between (6) or after (12) its own keyframes;
    both are checked against closed-form positions to 1e-4 px."""
    sc = motion.scene(motion.parse(SPEC), (W, H))
    pts = np.array([[55.0, 60.0], [40.0, 40.0], [100.0, 90.0], [70.3, 81.7]])
    got = motion.positions(sc, pts, 0, t)
    if t == 12:  # held at the last layer keyframe (frame 11)
        want = _expected(pts, SPEC["layers"][0]["keyframes"][2], _camera_at(12))
    else:  # frame 6 of the segment 4 -> 9, eased smooth, scale geometric, path Catmull-Rom
        u = ease(2 / 5, "smooth")
        p = [np.zeros(2), np.array([20.0, 5]), np.array([-10.0, 25]), np.array([3.0, 3])]
        p0, p1, p2, p3 = p
        shift = 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2
                       + (3 * p1 - p0 - 3 * p2 + p3) * u**3)
        key = {"translate": shift, "rotation": 30 + (-45 - 30) * u,
               "scale": 1.5 * (0.5 / 1.5) ** u}
        want = _expected(pts, key, _camera_at(6))
    assert np.abs(got - want).max() < 1e-4


def test_keyed_positions_are_met_at_every_layer_keyframe_without_camera() -> None:
    spec = dict(SPEC, camera={})
    sc = motion.scene(motion.parse(spec), (W, H))
    anchor = np.array([[55.0, 60.0]])
    for key in spec["layers"][0]["keyframes"]:
        got = motion.positions(sc, anchor, 0, key["frame"])
        assert np.abs(got - (anchor + key["translate"])).max() < 1e-9


def test_frame_zero_is_at_rest_and_tracks_hold_after_the_last_keyframe() -> None:
    sc = motion.scene(motion.parse(SPEC), (W, H))
    assert np.allclose(sc.placement(0, 0), np.eye(3)) and np.allclose(sc.camera[0], np.eye(3))
    spec = dict(SPEC, frames=20)
    sc2 = motion.scene(motion.parse(spec), (W, H))
    assert np.allclose(sc2.placement(0, 12), sc2.placement(0, 19))


def test_straight_path_with_linear_easing_moves_at_constant_speed() -> None:
    spec = {"frames": 11, "layers": [{"polygon": [[0, 0], [10, 0], [10, 10]], "path": "straight",
                                      "keyframes": [{"frame": 10, "translate": [30, -10]}]}]}
    sc = motion.scene(motion.parse(spec), (64, 48))
    for t in range(11):
        got = motion.positions(sc, np.array([[0.0, 0.0]]), 0, t)
        assert np.abs(got - [[3.0 * t, -1.0 * t]]).max() < 1e-12


def test_homography_keyframe_maps_the_picture() -> None:
    hom = [[1.0, 0.05, 2.0], [0.0, 1.1, -1.0], [0.0005, 0.0, 1.0]]
    spec = {"frames": 3, "camera": {"keyframes": [{"frame": 2, "homography": hom}]}}
    sc = motion.scene(motion.parse(spec), (W, H))
    p = np.array([[30.0, 40.0, 1.0]])
    q = p @ np.array(hom).T
    got = motion.positions(sc, p[:, :2], motion.BACKGROUND, 2)
    assert np.abs(got - q[:, :2] / q[:, 2:]).max() < 1e-9


def test_homography_that_puts_the_horizon_in_the_frame_is_refused() -> None:
    # Frame row y = 50 (row 100 halfway, at frame 1) would come from infinitely far away.
    hom = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.02, 1.0]]
    spec = {"frames": 3, "camera": {"keyframes": [{"frame": 2, "homography": hom}]}}
    with pytest.raises(motion.MotionError, match=r"camera\.keyframes: the homography at frame 1 "):
        motion.scene(motion.parse(spec), (W, H))

"""The motion description: valid files load; every mistake is a MotionError naming its field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from warpnoise import motion
from warpnoise.motion import MotionError

from ._scenes import drag


def _error(data: Any) -> str:
    with pytest.raises(MotionError) as e:
        motion.parse(data if isinstance(data, str) else json.dumps(data), "m.json")
    return str(e.value)


def _with_layer(**changes: Any) -> dict[str, Any]:
    d = drag(1, 0)
    d["layers"][0].update(changes)
    return d


def test_example_file_loads_and_fits_the_bundled_sample() -> None:
    spec = motion.load(motion.example_path())
    sc, img = motion.load_scene(spec, Path(motion.example_path()).with_name("sample.mp4"))
    assert (sc.width, sc.height, sc.frames) == (256, 192, 49) and img.shape == (192, 256, 3)
    assert [layer.name for layer in sc.layers] == ["pen", "box"]


@pytest.mark.parametrize(("data", "field", "words"), [
    ({**drag(1, 0), "colour": 1}, "colour", "unknown key"),
    (_with_layer(polygon=[[0, 0], [5, 5]]), "layers[0].polygon", "at least 3 points"),
    (_with_layer(polygon=[[0, 0], [5, 5], [10, 10]]), "layers[0].polygon", "zero area"),
    (_with_layer(keyframes=[{"frame": 5}, {"frame": 3}]), "layers[0].keyframes[1].frame",
     "out of order"),
    (_with_layer(keyframes=[{"frame": 9}]), "layers[0].keyframes[0].frame", "beyond the clip"),
    (_with_layer(keyframes=[{"frame": 0}]), "layers[0].keyframes[0].frame", "frame 0"),
    (_with_layer(keyframes=[{"frame": 4, "scale": 0}]), "layers[0].keyframes[0].scale",
     "greater than 0"),
    (_with_layer(keyframes=[{"frame": 4, "scale": -2}]), "layers[0].keyframes[0].scale",
     "greater than 0"),
    ({**drag(1, 0), "frames": 1}, "frames", "greater than or equal to 2"),
    ({**drag(1, 0), "camera": {"keyframes": [{"frame": 3, "zoom": 0}]}},
     "camera.keyframes[0].zoom", "greater than 0"),
    ({**drag(1, 0), "camera": {"keyframes": [{"frame": 3, "zoom": 1, "tilt": 2}]}},
     "camera.keyframes[0].tilt", "unknown key"),
    (_with_layer(mask="m.png"), "layers[0]", "exactly one"),
    (_with_layer(easing="bouncy"), "layers[0].easing", "'linear' or 'smooth'"),
    ({"layers": []}, "frames", "missing"),
])
def test_bad_field_is_named(data: dict[str, Any], field: str, words: str) -> None:
    msg = _error(data)
    assert msg.startswith(f"m.json: {field}: "), msg
    assert words in msg, msg


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    text = json.dumps(drag(1, 0)).replace('"translate": [8', f'"translate": [{value}')
    msg = _error(text)
    assert "layers[0].keyframes[0].translate" in msg and "finite" in msg, msg


def test_json_syntax_error_gives_line_and_column() -> None:
    msg = _error('{\n  "frames": 9,\n  "layers": [,]\n}')
    assert msg.startswith("m.json: JSON syntax error at line 3, column 14"), msg


def test_top_level_must_be_an_object() -> None:
    assert "a JSON object" in _error("[1, 2]")


def test_load_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"frames": 9, "layers": [{"polygon": [[0, 0], [1, 1]], "keyframes": '
                 '[{"frame": 1}]}]}')
    with pytest.raises(MotionError, match=r"bad.json: layers\[0\].polygon: .*3 points"):
        motion.load(p)


def test_mask_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "m.png"), np.full((10, 12), 255, np.uint8))
    spec = motion.parse({"frames": 3, "layers": [{"mask": "m.png", "keyframes": [{"frame": 2}]}]})
    with pytest.raises(MotionError, match=r"layers\[0\].mask: .*12x10 but the frames are 64x48"):
        motion.scene(spec, (64, 48), base=tmp_path)


def test_with_frames_rechecks_keyframes() -> None:
    spec = motion.parse(drag(1, 0, frames=9))
    assert spec.with_frames(12).frames == 12
    with pytest.raises(MotionError, match=r"keyframes\[0\].frame: 8 is beyond the clip"):
        spec.with_frames(5)


def test_round_trip_through_json_keeps_the_motion() -> None:
    spec = motion.parse(drag(1.5, -2, zoom=1.2))
    assert motion.parse(spec.to_json()) == spec

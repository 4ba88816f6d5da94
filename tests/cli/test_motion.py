"""``warpnoise motion``: run as users type it (another folder, relative paths); every bad motion
file or option exits 2 with one line naming the problem, before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.io._clips import sample_path, texture
from tests.motion._scenes import drag
from warpnoise import motion
from warpnoise.cli import load_commands
from warpnoise.io.noisefile import load_latents, load_noise

app = load_commands()
runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding a 64x48 image; the command runs from there."""
    cv2.imwrite(str(tmp_path / "first.png"), texture(48, 64, seed=2))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(folder: Path, data: Any, name: str = "m.json") -> Path:
    (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))
    return Path(name)


def test_example_motion_on_the_bundled_sample_makes_wan_latents(here: Path) -> None:
    shutil.copy(sample_path(), here / "sample.mp4")
    shutil.copy(motion.example_path(), here / "motion_example.json")
    code, out, err = run("motion", "sample.mp4", "motion_example.json", "-o", "out",
                         "--latent", "wan2.1", "--degradation", "0.5", "--preview", "-q")
    assert code == 0, err
    names = sorted(p.name for p in (here / "out").iterdir())
    assert names == ["animation.mp4", "mask_0_pen.mp4", "mask_1_box.mp4", "noise.safetensors",
                     "preview.mp4"]
    lat, meta = load_latents(here / "out" / "noise.safetensors")
    assert tuple(lat.shape) == (1, 16, 13, 24, 32) and meta["degradation"] == "0.5"
    assert json.loads(meta["motion"])["layers"][1]["name"] == "box"
    assert "wrote out/noise.safetensors" in out


def test_ready_made_zoom_without_a_file(here: Path) -> None:
    code, _, err = run("motion", "first.png", "--zoom", "1.2", "--rotate", "5", "--frames",
                         "5", "-o", "z", "-c", "3", "--seed", "4", "-q")
    assert code == 0, err
    x, meta = load_noise(here / "z" / "noise.safetensors")
    assert tuple(x.shape) == (5, 3, 48, 64) and meta["seed"] == "4"
    assert json.loads(meta["motion"])["camera"]["keyframes"][0]["zoom"] == 1.2
    assert sorted(p.name for p in (here / "z").iterdir()) == ["animation.mp4",
                                                               "noise.safetensors"]


def test_layer_leaving_the_frame_is_allowed_and_reported(here: Path) -> None:
    m = _write(here, drag(40, 0, frames=5, polygon=[[5, 5], [20, 5], [20, 20]]))
    code, _, err = run("motion", "first.png", m, "-o", "out", "-q")
    assert code == 0, err
    assert "note: layer 'square' is entirely outside the frame in 3 frames (2..4)" in err


def _bad_layer(**changes: Any) -> dict[str, Any]:
    d = drag(1, 0, frames=5, polygon=[[5, 5], [30, 5], [30, 30]])
    d["layers"][0].update(changes)
    return d


@pytest.mark.parametrize(("data", "words"), [
    ({**drag(1, 0, frames=5), "speed": 2}, "m.json: speed: unknown key"),
    (_bad_layer(polygon=[[0, 0], [4, 4]]), "layers[0].polygon: needs at least 3 points"),
    (_bad_layer(polygon=[[0, 0], [4, 4], [8, 8]]), "layers[0].polygon: has zero area"),
    (_bad_layer(keyframes=[{"frame": 3}, {"frame": 2}]), "layers[0].keyframes[1].frame: 2 is "
     "out of order"),
    (_bad_layer(keyframes=[{"frame": 7}]), "layers[0].keyframes[0].frame: 7 is beyond the clip "
     "(frames 0 to 4)"),
    (_bad_layer(keyframes=[{"frame": 2, "scale": 0}]), "layers[0].keyframes[0].scale: Input "
     "should be greater than 0"),
    (json.dumps(_bad_layer()).replace('"translate": [4', '"translate": [NaN'),
     "layers[0].keyframes[0].translate[0]: must be a finite number"),
    ({**drag(1, 0, frames=5), "frames": 1}, "frames: Input should be greater than or equal "
     "to 2"),
    ('{"frames": 5,\n "layers": [}', "m.json: JSON syntax error at line 2, column 13"),
    (_bad_layer(polygon=None, mask="mask.png"), "layers[0].mask: mask image 'mask.png' is 10x10 "
     "but the frames are 64x48"),
])
def test_bad_motion_file_exits_2_naming_the_field_before_any_work(
        here: Path, data: Any, words: str) -> None:
    cv2.imwrite(str(here / "mask.png"), np.full((10, 10), 255, np.uint8))
    m = _write(here, data)
    code, out, err = run("motion", "first.png", m, "-o", "out")
    assert code == 2, (out, err)
    assert err.startswith("warpnoise: error: ") and words in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (here / "out").exists()


@pytest.mark.parametrize(("args", "words"), [
    (["--pan", "3"], "--pan must be two numbers DX,DY"),
    (["--zoom", "0"], "--zoom must be a positive number"),
    (["--zoom", "1.1", "--frames", "1"], "--frames must be at least 2"),
    (["--pan", "1,1", "--latent", "wan2.1", "--frames", "6"], "frames"),
    (["--pan", "1,1", "--degradation", "2"], "degradation must be a number in [0, 1]"),
    (["--pan", "1,1", "--latent", "nope"], "unknown latent model 'nope'"),
    ([], "give a motion file, or a ready-made move"),
])
def test_bad_options_exit_2_before_any_work(here: Path, args: list[str], words: str) -> None:
    code, _, err = run("motion", "first.png", *args, "-o", "out")
    assert code == 2 and words in err, err
    assert not (here / "out").exists()


def test_file_and_ready_made_move_together_is_refused(here: Path) -> None:
    m = _write(here, drag(1, 0, frames=5))
    code, _, err = run("motion", "first.png", m, "--zoom", "2", "-o", "out")
    assert code == 2 and "not both" in err


def test_missing_image_is_named(here: Path) -> None:
    code, _, err = run("motion", "nope.png", "--zoom", "2", "-o", "out")
    assert code == 2 and "'nope.png' does not exist" in err


def test_an_output_that_is_the_input_image_is_refused_before_any_work(here: Path) -> None:
    (here / "out").mkdir()
    shutil.copy(sample_path(), here / "out" / "animation.mp4")
    before = (here / "out" / "animation.mp4").read_bytes()
    code, _, err = run("motion", "out/animation.mp4", "--zoom", "1.1", "--frames", "3",
                       "-o", "out")
    assert code == 2 and "same file as IMAGE" in err, err
    assert (here / "out" / "animation.mp4").read_bytes() == before
    assert sorted(p.name for p in (here / "out").iterdir()) == ["animation.mp4"]

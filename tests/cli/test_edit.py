"""`warpnoise edit` and `warpnoise demo` end to end, on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")

from typer.testing import CliRunner

from warpnoise.cli import load_commands
from warpnoise.io.video import read_frames, write_video

runner = CliRunner()


def clip(path: Path, t: int = 3, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size, size + 2 * t, 3), dtype=np.uint8)
    write_video(path, np.stack([base[:, 2 * i:2 * i + size] for i in range(t)]))
    return path


def invoke(*args: str):
    return runner.invoke(load_commands(), list(args))


@pytest.mark.slow
def test_edit_writes_a_video_of_the_same_size(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    r = invoke("edit", str(clip(tmp_path / "in.mp4")), "-o", str(out), "--method", "bilinear",
               "--steps", "4", "--strength", "0.5", "-q")
    assert r.exit_code == 0, r.output
    assert read_frames(out).shape == (3, 16, 16, 3)


@pytest.mark.parametrize("noise", ["random", "control-a-video"])
def test_edit_sr4_makes_frames_four_times_larger(tmp_path: Path, noise: str) -> None:
    out = tmp_path / "sr.mp4"
    src = clip(tmp_path / "in.mp4", t=2, size=8)
    r = invoke("edit", str(src), "-o", str(out), "--task", "sr4", "--method", noise,
               "--steps", "2", "--strength", "0.5", "-q")
    assert r.exit_code == 0, r.output
    assert read_frames(out).shape == (2, 32, 32, 3)


def test_edit_report_prints_the_four_measures(tmp_path: Path) -> None:
    out = tmp_path / "sr.mp4"
    src = clip(tmp_path / "in.mp4", t=3, size=16)
    r = invoke("edit", str(src), "-o", str(out), "--task", "sr4", "--method", "fixed",
               "--steps", "4", "--strength", "0.5", "--report", "-q")
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("report:"))
    for name in ("follows motion", "sticks to screen", "warping error", "detail"):
        assert name in line
    # Fixed noise under 8 px/frame of motion (2 px at the input): its detail stays put.
    sticks = float(line.split("sticks to screen ")[1].split(",")[0])
    follows = float(line.split("follows motion ")[1].split(",")[0])
    assert sticks > follows


def test_edit_refuses_the_super_resolver_for_sdedit(tmp_path: Path) -> None:
    from importlib import resources

    weights = resources.files("warpnoise") / "data" / "sr4.safetensors"
    r = invoke("edit", str(clip(tmp_path / "in.mp4")), "-o", str(tmp_path / "o.mp4"),
               "--model", str(weights), "-q")
    assert r.exit_code == 2 and "use it with --task sr4" in r.output


@pytest.mark.parametrize("extra, match", [
    (["--method", "nope"], "unknown noise method"),
    (["--task", "colorize"], "task must be"),
    (["--size", "20x20"], "divisible by 8"),
    (["--strength", "1.5"], "strength"),
])
def test_edit_bad_options_exit_2_without_output(tmp_path: Path, extra: list[str],
                                                match: str) -> None:
    out = tmp_path / "out.mp4"
    r = invoke("edit", str(clip(tmp_path / "in.mp4")), "-o", str(out), "--steps", "2", "-q",
               *extra)
    assert r.exit_code == 2, r.output
    assert match in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_edit_missing_input_exits_2(tmp_path: Path) -> None:
    r = invoke("edit", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "o.mp4"), "-q")
    assert r.exit_code == 2 and "Traceback" not in r.output


@pytest.mark.slow
def test_demo_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = invoke("demo", "-o", str(out), "--frames", "3", "--steps", "3", "-n", "random",
               "-n", "control-a-video", "--clip", "box", "--clip", "hand-box", "--no-former",
               "--no-noise-preview", "-q")
    assert r.exit_code == 0, r.output
    for name in ("side_by_side.mp4", "comparison.png", "xt_slices.png", "frame_strip.png",
                 "noise_figure.png", "results.json", "results.md"):
        assert (out / name).is_file(), name
    def reject(name: str) -> None:  # strict parsers refuse NaN and Infinity
        raise AssertionError(f"not strict JSON: {name}")

    res = json.loads((out / "results.json").read_text(), parse_constant=reject)
    assert res["rows"][0]["psnr"] is None  # the ground truth against itself: infinite PSNR
    names = ["ground truth", "bicubic input", "random", "control-a-video"]
    assert [(row["clip"], row["noise"]) for row in res["rows"]] == \
        [("box", n) for n in names] + [("hand-box", n) for n in names]
    assert all(row["warping_error"] > 0 and row["seconds"] >= 0 for row in res["rows"])
    assert res["rows"][1]["psnr"] < float("inf") and 0 < res["rows"][1]["ssim"] < 1
    for row in res["rows"]:
        measured = row["noise"] not in ("ground truth", "bicubic input")
        for key in ("follows_motion", "sticks_to_screen"):
            assert (row[key] is not None) == measured, (row, key)
    assert set(res["clips"]) == {"box", "hand-box"}
    text = (out / "results.md").read_text()
    assert "| control-a-video |" in text and "### hand-box" in text
    assert read_frames(out / "side_by_side.mp4").shape == (3, 2 * 128, 4 * 128, 3)


def test_edit_noise_is_a_hidden_alias_of_method(tmp_path: Path) -> None:
    src = clip(tmp_path / "in.mp4", t=2, size=8)
    common = ["--task", "sr4", "--steps", "2", "--strength", "0.5", "-q"]
    new = invoke("edit", str(src), "-o", str(tmp_path / "m.mp4"), "--method", "nearest", *common)
    old = invoke("edit", str(src), "-o", str(tmp_path / "n.mp4"), "--noise", "nearest", *common)
    short = invoke("edit", str(src), "-o", str(tmp_path / "s.mp4"), "-n", "nearest", *common)
    for r in (new, old, short):
        assert r.exit_code == 0, r.output
        assert "method nearest" in r.stdout
    assert "deprecated; use --method" in old.stderr and new.stderr == ""
    assert np.array_equal(read_frames(tmp_path / "m.mp4"), read_frames(tmp_path / "n.mp4"))
    assert np.array_equal(read_frames(tmp_path / "m.mp4"), read_frames(tmp_path / "s.mp4"))
    default = invoke("edit", str(src), "-o", str(tmp_path / "d.mp4"), *common)
    assert default.exit_code == 0 and "method persistent" in default.stdout
    text = invoke("edit", "--help").stdout
    assert "--method" in text and "--noise" not in text and "-n " not in text

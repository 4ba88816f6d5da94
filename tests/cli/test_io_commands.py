"""``warpnoise flow / noise / stats`` end to end: round trips on small clips, every bad input
(exit 2, one line, no traceback), internal errors (exit 1), and a run killed mid-way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.io._clips import moving_frames, sample_path, write_png_folder
from warpnoise.cli import load_commands
from warpnoise.io.flowfile import save_flows
from warpnoise.io.noisefile import load_noise, save_noise

app = load_commands()
runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_png_folder(tmp_path_factory.mktemp("clip"), moving_frames(4, 48, 64, dx=1))


@pytest.mark.slow
def test_noise_then_stats_round_trip_on_the_bundled_clip(tmp_path: Path) -> None:
    out, pv = tmp_path / "n.safetensors", tmp_path / "p.mp4"
    code, stdout, _ = run("noise", sample_path(), "-o", out, "--method", "random", "--frames",
                          "4", "--size", "64x48", "--preview", pv, "--seed", "5",
                          "--record-source-path")
    assert code == 0, stdout
    assert "wrote" in stdout and "frames/s" in stdout
    noise, meta = load_noise(out)
    assert noise.shape == (4, 4, 48, 64) and meta["seed"] == "5"
    assert pv.stat().st_size > 0
    code, stdout, _ = run("stats", out, "--json", "--plot", tmp_path / "maps.png")
    assert code == 0, stdout
    report = json.loads(stdout)
    assert report["normal"] is True and len(report["frames"]) == 4
    assert report["moves_with_video"] is False  # fresh noise every frame does not move
    assert "re-estimated" in report["flows"]
    assert (tmp_path / "maps.png").read_bytes()[:4] == b"\x89PNG"


def test_stats_table_says_normal_and_moving_for_warped_noise(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "n.safetensors"
    assert run("noise", clip, "-o", out, "--method", "nearest", "-q",
               "--record-source-path")[0] == 0
    code, stdout, _ = run("stats", out)
    assert code == 0
    assert "i.i.d. N(0,1) per frame: yes" in stdout
    assert "moves with the video: yes" in stdout


def test_flow_file_feeds_noise_and_stats(clip: Path, tmp_path: Path) -> None:
    flows = tmp_path / "f.safetensors"
    code, stdout, _ = run("flow", clip, "-o", flows, "--flow", "farneback", "-q")
    assert code == 0 and "3 backward + 3 forward" in stdout
    out = tmp_path / "n.safetensors"
    assert run("noise", clip, "-o", out, "--flow", flows, "--method", "random", "-q")[0] == 0
    code, stdout, _ = run("stats", out, "--flows", flows, "--json")
    assert code == 0 and json.loads(stdout)["temporal"] is not None


def test_npy_output_is_gwtf_layout(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "noises.npy"
    code, stdout, _ = run("noise", clip, "-o", out, "--method", "random", "--downsample", "8",
                          "--channels", "16", "-q")
    assert code == 0
    arr = np.load(out)
    assert arr.shape == (4, 6, 8, 16) and arr.dtype == np.float16
    assert "noise (4, 6, 8, 16) float16 [T, H, W, C]" in stdout  # the shape as stored
    assert run("stats", out)[0] == 0


def test_method_options_are_passed_through(clip: Path, tmp_path: Path) -> None:
    code, _, err = run("noise", clip, "-o", tmp_path / "n.safetensors", "--method", "random",
                       "--option", "bogus=1", "-q")
    assert code == 2 and "bad options for method 'random'" in err


def _bad_inputs(tmp: Path, clip: Path) -> list[tuple[list[str | Path], str]]:
    (tmp / "junk.mp4").write_bytes(b"not a video at all")
    data = sample_path().read_bytes()
    (tmp / "cut.mp4").write_bytes(data[: len(data) // 3])
    save_flows(tmp / "small.safetensors", torch.zeros(3, 2, 8, 8))
    np.save(tmp / "nanflow.npy", np.full((3, 2, 48, 64), np.nan, np.float32))
    (tmp / "raft.pth").write_bytes(b"x")
    g = torch.Generator().manual_seed(0)
    save_noise(tmp / "n.safetensors", torch.randn(2, 1, 4, 4, generator=g))
    (tmp / "cut.safetensors").write_bytes((tmp / "n.safetensors").read_bytes()[:-20])
    o = ["-o", tmp / "out.safetensors"]
    return [
        (["noise", tmp / "missing.mp4", *o], "does not exist"),
        (["noise", tmp / "junk.mp4", *o], "cannot open"),
        (["noise", tmp / "cut.mp4", *o], "cut.mp4"),
        (["noise", tmp, *o], "no images"),
        (["noise", clip, *o, "--size", "64"], "WxH"),
        (["noise", clip, *o, "--downsample", "5"], "not divisible"),
        (["noise", clip, *o, "--method", "magic"], "unknown method"),
        (["noise", clip, *o, "--dtype", "int8"], "dtype"),
        (["noise", clip, *o, "--flow", "raft"], "weights"),
        (["noise", clip, *o, "--flow", "raft", "--raft-weights", tmp / "raft.pth"], "RAFT"),
        (["noise", clip, *o, "--flow", tmp / "small.safetensors"], "8x8"),
        (["noise", clip, *o, "--flow", tmp / "nanflow.npy"], "NaN"),
        (["noise", clip, *o, "--dis-preset", "slow"], "preset"),
        (["noise", clip, "-o", tmp / "out.pt"], ".safetensors"),
        (["noise", clip, "-o", tmp / "nodir" / "n.safetensors"], "does not exist"),
        (["noise", clip, *o, "--preview", tmp / "p.gif"], ".mp4"),
        (["noise", clip, *o, "--start", "50"], "keeps no frame"),
        (["noise", clip, *o, "--option", "novalue"], "KEY=VALUE"),
        (["flow", clip, "-o", tmp / "f.npy"], ".safetensors or .npz"),
        (["stats", tmp / "missing.safetensors"], "does not exist"),
        (["stats", tmp / "cut.safetensors"], "truncated"),
        (["stats", tmp / "n.safetensors", "--flows", tmp / "small.safetensors"], "3 flows"),
        (["stats", tmp / "n.safetensors", "--plot", tmp / "maps.jpg"], ".png"),
    ]


@pytest.mark.slow
def test_every_bad_input_exits_2_with_one_line_and_writes_nothing(clip: Path,
                                                                   tmp_path: Path) -> None:
    for args, needle in _bad_inputs(tmp_path, clip):
        before = set(tmp_path.iterdir())
        code, stdout, err = run(*args)
        assert code == 2, (args, stdout, err)
        lines = [ln for ln in err.splitlines() if ln.startswith("warpnoise: error:")]
        assert len(lines) == 1 and needle in lines[0], (args, err)
        assert "Traceback" not in err
        assert set(tmp_path.iterdir()) == before, args


def test_internal_error_exits_1_without_traceback(clip: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import warpnoise.pipeline as pipeline

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(pipeline, "video_to_noise", boom)
    monkeypatch.delenv("WARPNOISE_DEBUG", raising=False)
    code, _, err = run("noise", clip, "-o", tmp_path / "n.safetensors")
    assert code == 1
    assert "internal error: RuntimeError: unexpected" in err and "Traceback" not in err


def test_every_command_has_help() -> None:
    for cmd in ([], ["flow"], ["noise"], ["stats"]):
        code, stdout, _ = run(*cmd, "--help")
        assert code == 0 and "Usage" in stdout


def _wait_for(pattern: str, folder: Path, proc: subprocess.Popen, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if list(folder.glob(pattern)):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.slow
def test_killed_run_leaves_no_output_file(tmp_path: Path, sig: signal.Signals) -> None:
    out, pv = tmp_path / "n.safetensors", tmp_path / "p.mp4"
    cmd = [sys.executable, "-c", "from warpnoise.cli import main; main()", "noise",
           str(sample_path()), "-o", str(out), "--preview", str(pv), "--method", "bilinear",
           "--size", "640x480", "-q"]  # large frames: seconds of work left when the signal comes
    env = os.environ | {"PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        # The preview's temporary file exists exactly while the run is under way.
        started = _wait_for(".p.mp4.*.part.mp4", tmp_path, proc, timeout=60)
        assert started, proc.communicate()
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and not pv.exists()
    if sig == signal.SIGTERM:
        assert proc.returncode == 143  # 128 + SIGTERM, the shell convention
        assert "terminated" in proc.stderr.read().decode()
        assert list(tmp_path.iterdir()) == []  # temporary files cleaned up too
    else:  # SIGKILL cannot be caught: its temporary files stay until the same outputs are made
        assert len(list(tmp_path.glob(".*.part.*"))) == 2
        code, _, err = run("noise", sample_path(), "-o", out, "--preview", pv, "--method",
                           "bilinear", "--size", "64x48", "--frames", "2", "-q")
        assert code == 0, err
        assert sorted(tmp_path.iterdir()) == sorted([out, pv])


def test_stats_json_is_strict_json_even_for_degenerate_noise(tmp_path: Path) -> None:
    # A constant frame: its KS test, correlations and Moran's I are undefined (NaN).
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x[1] = 0.0
    save_noise(tmp_path / "n.safetensors", x)
    code, stdout, _ = run("stats", tmp_path / "n.safetensors", "--json")
    assert code == 0

    def reject(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    report = json.loads(stdout, parse_constant=reject)
    assert report["frames"][1]["ks_p"] is None and report["frames"][1]["morans_z"] is None


def test_noise_and_flow_commands_stream_a_selection_of_an_image_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests._streaming import live_frames
    from warpnoise.io.flowfile import load_flows
    from warpnoise.pipeline import LOOKAHEAD

    folder = write_png_folder(tmp_path / "c", moving_frames(40, 24, 32, dx=1))
    select = ["--start", "2", "--stride", "2", "--frames", "15"]
    with live_frames(monkeypatch) as live:
        code, stdout, _ = run("noise", folder, "-o", tmp_path / "n.safetensors", "--method",
                              "random", "--preview", tmp_path / "p.mp4", *select, "-q")
    assert code == 0, stdout
    assert load_noise(tmp_path / "n.safetensors")[0].shape == (15, 4, 24, 32)
    assert live.decoded == 15 and 2 <= live.most <= LOOKAHEAD + 2
    with live_frames(monkeypatch) as live:
        code, stdout, _ = run("flow", folder, "-o", tmp_path / "f.npz", "--dis-preset",
                              "ultrafast", *select, "-q")
    assert code == 0, stdout
    assert load_flows(tmp_path / "f.npz")[0].shape == (14, 2, 24, 32)
    assert live.decoded == 15 and 2 <= live.most <= LOOKAHEAD + 2

"""``warpnoise studio``: bad options exit 2 before anything listens; the server prints its
address, warns when it listens beyond this machine, and Ctrl-C stops it with exit 130 leaving
no file behind, also in the middle of a generation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import pytest
from typer.testing import CliRunner

from tests.io._clips import texture
from warpnoise.cli import load_commands

app = load_commands()


def run(*args: str | Path) -> tuple[int, str]:
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, r.stderr


@pytest.mark.parametrize("args, words", [
    (["missing.png"], "does not exist"),
    (["--port", "70000"], "--port must be 0 to 65535"),
    (["--max-upload", "0"], "--max-upload"),
])
def test_bad_option_exits_2_before_listening(args: list[str], words: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, err = run("studio", "--no-browser", *args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1


def _start(*args: str) -> tuple[subprocess.Popen[str], str, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from warpnoise.cli import main; main()", "studio",
         "--no-browser", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell's background job ignores SIGINT; the studio is started as a person would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = proc.stdout.readline().split()[2]
    folder = Path(proc.stdout.readline().split()[2])
    return proc, url, folder


def test_ctrl_c_mid_generation_exits_130_and_leaves_no_file(tmp_path: Path) -> None:
    image = tmp_path / "first.png"
    cv2.imwrite(str(image), texture(192, 256, seed=1))
    proc, url, folder = _start(str(image), "--host", "127.0.0.2")
    try:
        assert url.startswith("http://127.0.0.2:") and folder.is_dir()
        config = httpx.get(url + "api/config", timeout=30).json()
        assert config["initial"]["name"] == "first.png"
        motion = {"size": [256, 192], "frames": 400, "layers": [
            {"polygon": [[50, 50], [120, 50], [120, 120]],
             "keyframes": [{"frame": 399, "translate": [60, 0]}]}]}
        job = httpx.post(url + "api/generate", json={"image": config["initial"]["id"],
                                                      "motion": motion}, timeout=60).json()
        while httpx.get(url + f"api/jobs/{job['id']}", timeout=30).json()["done"] < 2:
            time.sleep(0.2)
        assert any(folder.rglob("*"))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "warning: listening on 127.0.0.2" in err and "interrupted" in err
    assert "Traceback" not in err
    assert not folder.exists()


def test_output_folder_keeps_finished_generations_only(tmp_path: Path) -> None:
    image = tmp_path / "first.png"
    cv2.imwrite(str(image), texture(48, 64, seed=1))
    proc, url, folder = _start(str(image), "--output", str(tmp_path / "out"))
    try:
        assert folder == tmp_path / "out"
        image_id = httpx.get(url + "api/config", timeout=30).json()["initial"]["id"]
        motion = {"size": [64, 48], "frames": 3, "layers": []}
        job = httpx.post(url + "api/generate", json={"image": image_id, "motion": motion},
                         timeout=60).json()["id"]
        while httpx.get(url + f"api/jobs/{job}", timeout=30).json()["state"] != "done":
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    kept = sorted(p.name for p in (folder / "jobs" / job).iterdir())
    assert kept == ["animation.mp4", "motion.json", "noise.safetensors"]
    assert json.loads((folder / "jobs" / job / "motion.json").read_text())["frames"] == 3
    assert sorted(p.name for p in folder.iterdir()) == ["jobs"]

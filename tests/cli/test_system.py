"""``warpnoise doctor`` and ``warpnoise warmup``, and ``--backend`` of ``warpnoise noise``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.io._clips import moving_frames, write_png_folder
from warpnoise.cli import load_commands
from warpnoise.io.noisefile import load_noise

app = load_commands()
runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_doctor_says_which_path_runs_and_whether_it_is_compiled() -> None:
    code, out, _ = run("doctor")
    assert code == 0
    assert out.startswith("warpnoise ") and "torch " in out and "numba " in out
    assert "  cpu (" in out and "): numba (CPU and numba" in out
    assert "numba kernels cached: yes, for every channel count" in out
    assert "bundled clip decodes: yes" in out and "caches: numba " in out


def test_doctor_json_is_valid_json_with_the_same_content() -> None:
    code, out, _ = run("doctor", "--json")
    assert code == 0
    r = json.loads(out)
    assert r["devices"][0]["backend"] == "numba"
    assert r["versions"]["warpnoise"] and "python" in r


def test_warmup_reports_each_device_and_channel_count() -> None:
    code, out, _ = run("warmup", "--channels", "4", "--device", "cpu")
    assert code == 0
    assert out.startswith("cpu, 4 channels: numba kernels ") and " s\n" in out


@pytest.mark.parametrize("args, message", [
    (["--channels", "0"], "channels must be positive"),
    (["--device", "cuda:7"], "device"),
])
def test_warmup_bad_options_exit_2(args: list[str], message: str) -> None:
    code, _, err = run("warmup", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_png_folder(tmp_path_factory.mktemp("clip"), moving_frames(3, 32, 48, dx=1))


@pytest.mark.parametrize("args, message", [
    (["--backend", "triton"], "backend 'triton' runs on CUDA devices, not on cpu"),
    (["--backend", "gpu"], "backend must be one of auto, numba, triton, torch"),
    (["--backend", "torch", "--option", "backend=numba"], "not both"),
    (["--backend", "torch", "--method", "integral"], "bad options for method 'integral'"),
])
def test_bad_backend_exits_2_before_any_work(clip: Path, tmp_path: Path, args: list[str],
                                            message: str) -> None:
    out = tmp_path / "n.safetensors"
    code, _, err = run("noise", clip, "-o", out, "-q", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_torch_backend_runs_end_to_end(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "n.safetensors"
    code, stdout, _ = run("noise", clip, "-o", out, "-q", "--backend", "torch")
    assert code == 0, stdout
    noise, meta = load_noise(out)
    assert noise.shape == (3, 4, 32, 48)
    assert json.loads(meta["method_options"]) == {"backend": "torch"}

"""What every command shares: exceptions become exit codes and one line, never a traceback."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.io._clips import moving_frames
from warpnoise._interrupt import Terminated
from warpnoise.cli import load_commands
from warpnoise.cli._common import handle_errors
from warpnoise.io.video import write_video
from warpnoise.methods.base import REGISTRY


def _exit_of(error: BaseException | None = None, *, kernel: type[BaseException] | None = None
             ) -> tuple[int, str]:
    """Exit code and stderr of a one-command app that raises ``error`` or runs a kernel that a
    signal raising ``kernel`` interrupts."""
    app = typer.Typer()

    @app.command()
    @handle_errors
    def cmd() -> None:
        if kernel is not None:
            from tests._native_interrupt import interrupted_kernel

            interrupted_kernel(kernel)
        if error is not None:
            raise error

    r = CliRunner().invoke(app, [])
    return r.exit_code, r.stderr


@pytest.mark.parametrize(("error", "code", "line"), [
    (PermissionError(errno.EACCES, "Permission denied", "out/n.safetensors"), 2,
     "warpnoise: error: Permission denied: 'out/n.safetensors'"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/n.npy"), 2,
     "warpnoise: error: Read-only file system: '/mnt/n.npy'"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "afile/x"), 2,
     "warpnoise: error: Not a directory: 'afile/x'"),
    (ValueError("bad\ninput"), 2, "warpnoise: error: bad input"),
    (RuntimeError("bug"), 1, "warpnoise: error: internal error: RuntimeError: bug"),
    (KeyboardInterrupt(), 130, "warpnoise: error: interrupted"),
    (Terminated(), 143, "warpnoise: error: terminated (SIGTERM)"),
])
def test_exceptions_map_to_exit_codes_and_one_line(error: BaseException, code: int, line: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARPNOISE_DEBUG", raising=False)
    got, err = _exit_of(error)
    assert got == code
    assert len(err.splitlines()) == 1 and err.startswith(line), err


@pytest.mark.parametrize(("signal_raises", "code"), [(KeyboardInterrupt, 130), (Terminated, 143)])
def test_an_interrupt_inside_a_numba_kernel_exits_as_interrupted(
        signal_raises: type[BaseException], code: int) -> None:
    pytest.importorskip("numba")
    got, err = _exit_of(kernel=signal_raises)  # numba turns it into a SystemError
    assert got == code, err
    assert "internal error" not in err and "SystemError" not in err


def test_ctrl_c_in_the_kernel_during_warpnoise_noise_exits_130_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests._native_interrupt import InterruptedInKernel

    monkeypatch.setitem(REGISTRY, "interrupted-in-kernel", InterruptedInKernel)
    clip = tmp_path / "in" / "clip.mp4"
    clip.parent.mkdir()
    write_video(clip, moving_frames(3, 16, 16))
    out = tmp_path / "out"
    out.mkdir()
    r = CliRunner().invoke(load_commands(), [
        "noise", str(clip), "-o", str(out / "n.safetensors"), "--preview", str(out / "p.mp4"),
        "--method", "interrupted-in-kernel", "-q"])
    assert r.exit_code == 130, r.stderr
    assert r.stderr.strip() == "warpnoise: error: interrupted; no output was left half-written"
    assert list(out.iterdir()) == []

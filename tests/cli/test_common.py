"""What every command shares: exceptions become exit codes and one line, never a traceback."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
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


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from warpnoise.cli import main; main()", *args]


def _cli_env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(Path(__file__).parents[2] / "src")}


def _blocked_on_open(pid: int) -> bool:
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return "fifo" in wchan or wchan == "wait_for_partner"  # the kernel's FIFO open wait


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("moment", ["start-up", "blocked on open"])
@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                    (signal.SIGTERM, 143, "terminated")])
def test_a_signal_at_any_moment_exits_with_one_line(
        tmp_path: Path, moment: str, sig: signal.Signals, code: int, word: str) -> None:
    # A FIFO nobody writes: the input blocks on open for as long as the test wants.
    fifo = tmp_path / "in.mp4"
    os.mkfifo(fifo)
    proc = subprocess.Popen(_cli("noise", str(fifo), "-o", str(tmp_path / "n.safetensors"), "-q"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_cli_env())
    try:
        if moment == "start-up":
            time.sleep(0.5)  # importing torch and the commands takes seconds
        else:
            deadline = time.monotonic() + 120
            while not _blocked_on_open(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _blocked_on_open(proc.pid), "the run never reached the input"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.decode().splitlines()
    assert proc.returncode == code, err.decode()
    assert len(lines) == 1 and lines[0].startswith(f"warpnoise: error: {word}"), err.decode()
    assert list(tmp_path.iterdir()) == [fifo]


@pytest.mark.parametrize("args", [["noise", "--bogus"], ["noise"], ["stats", "a", "b"],
                                  ["noise", "x.mp4", "-o", "n.safetensors", "--seed", "many"],
                                  ["nosuchcommand"]])
def test_a_parse_error_is_one_line_with_exit_2(args: list[str]) -> None:
    proc = subprocess.run(_cli(*args), capture_output=True, text=True, env=_cli_env(),
                          timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("warpnoise: error: "), proc.stderr
    assert "--help" in lines[0]


def test_help_and_no_arguments_still_print_the_help() -> None:
    for args, code in ((["--help"], 0), (["noise", "--help"], 0), ([], 2)):
        proc = subprocess.run(_cli(*args), capture_output=True, text=True, env=_cli_env(),
                              timeout=120)
        assert proc.returncode == code and "Usage" in proc.stdout + proc.stderr, args


@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough "
                 "memory: you tried to allocate 1099511627776 bytes."),
    RuntimeError("CUDA out of memory. Tried to allocate 80.00 GiB"),
])
def test_an_allocation_failure_is_a_user_error_with_exit_2(error: BaseException) -> None:
    code, err = _exit_of(error)
    assert code == 2
    assert err.startswith("warpnoise: error: not enough memory") and len(err.splitlines()) == 1

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from warpnoise.io.atomic import (
    atomic_output,
    check_output_folder,
    check_outputs,
    check_writable,
    temp_name_pattern,
)


def test_file_appears_only_after_the_block(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"abc")
        assert not target.exists()
        assert tmp.parent == tmp_path  # same folder: os.replace is atomic
    assert target.read_bytes() == b"abc"
    assert list(tmp_path.iterdir()) == [target]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_output_gets_umask_permissions_not_0600(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o666 & ~mask


def test_missing_folder_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"), atomic_output(tmp_path / "no" / "x"):
        pass


def _temp_of(target: Path, middle: str = "k1lled_0") -> Path:
    """A temporary file of ``target`` as a killed writer leaves it (our naming, no lock)."""
    path = target.parent / f".{target.name}.{middle}.part{target.suffix}"
    path.write_bytes(b"half a file")
    return path


def test_a_killed_writers_temp_file_is_removed_by_the_next_write_of_that_output(
        tmp_path: Path) -> None:
    target = tmp_path / "n.safetensors"
    stale = _temp_of(target)
    assert temp_name_pattern(target).fullmatch(stale.name)
    with atomic_output(target) as tmp:
        assert not stale.exists()  # removed as the write starts
        tmp.write_bytes(b"new")
    assert sorted(tmp_path.iterdir()) == [target]


def test_only_our_own_temp_files_of_that_output_are_ever_removed(tmp_path: Path) -> None:
    target = tmp_path / "n.safetensors"
    other = tmp_path / "m.safetensors"
    survivors = [
        _temp_of(other),                                             # another output's
        _temp_of(tmp_path / "n.safetensors.bak"),                    # a longer name
        tmp_path / ".n.safetensors.short.part.safetensors",          # not 8 random characters
        tmp_path / ".n.safetensors.ABCDEFGH.part.safetensors",       # not mkstemp's alphabet
        tmp_path / ".n.safetensors.abcdefgh.part.npy",               # another suffix
        tmp_path / "n.safetensors.abcdefgh.part.safetensors",        # not hidden
        tmp_path / "n.safetensors.part",
        tmp_path / "notes.txt",
    ]
    for p in survivors[2:]:
        p.write_bytes(b"keep me")
    folder = tmp_path / ".n.safetensors.f0lder__.part.safetensors"  # matches, but a folder
    folder.mkdir()
    link = tmp_path / ".n.safetensors.l1nk____.part.safetensors"     # matches, but a link
    link.symlink_to(survivors[-1])
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert all(p.read_bytes() in (b"keep me", b"half a file") for p in survivors)
    assert folder.is_dir() and link.is_symlink()


def test_a_live_writers_temp_file_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "n.safetensors"
    with atomic_output(target) as first:
        first.write_bytes(b"in progress")
        with atomic_output(target) as second:  # a second writer of the same output
            second.write_bytes(b"second")
            assert first.read_bytes() == b"in progress"  # still held by its writer
        assert target.read_bytes() == b"second"
    assert target.read_bytes() == b"in progress"
    assert sorted(tmp_path.iterdir()) == [target]


def test_a_temp_file_held_by_another_process_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "n.safetensors"
    live = _temp_of(target, "h3ld_by_")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
         str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"new")
        assert live.exists()
    finally:
        holder.kill()
        holder.wait()


def test_an_output_whose_folder_is_a_file_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"output '.*afile/n.bin': .* is not a folder"):
        check_writable(blocker / "n.bin")
    with pytest.raises(ValueError, match="is a file"):
        check_output_folder(blocker / "sub" / "deeper")
    with pytest.raises(ValueError, match="is a file"):
        check_output_folder(blocker)
    assert list(tmp_path.iterdir()) == [blocker]


def test_an_unwritable_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, for whom every folder is writable: os.access stands in for the OS.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match=r"no write permission in folder"):
        check_writable(tmp_path / "n.bin")
    with pytest.raises(ValueError, match=r"no write permission in folder"):
        check_output_folder(tmp_path / "out")


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_a_folder_that_passes_access_but_takes_no_file_is_refused() -> None:
    # /proc passes os.access for root; only creating a file there shows it is not writable.
    with pytest.raises(ValueError, match=r"cannot write output '/proc/n.bin'"):
        check_writable("/proc/n.bin")
    with pytest.raises(ValueError, match=r"cannot write output folder '/proc/out'"):
        check_output_folder("/proc/out")


def test_the_writability_probe_leaves_nothing(tmp_path: Path) -> None:
    check_writable(tmp_path / "n.bin")
    check_output_folder(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_an_input_is_refused_by_path_symlink_and_hard_link(
        tmp_path: Path) -> None:
    video = tmp_path / "a.mp4"
    video.write_bytes(b"video")
    (tmp_path / "link.mp4").symlink_to(video)
    os.link(video, tmp_path / "hard.mp4")
    for out in (video, tmp_path / "link.mp4", tmp_path / "hard.mp4",
                tmp_path / "sub" / ".." / "a.mp4"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(ValueError, match=r"is the same file as the input video .*a.mp4"):
            check_outputs({"--preview": out}, {"the input video": video})
    assert video.read_bytes() == b"video"
    check_outputs({"--preview": tmp_path / "b.mp4"}, {"the input video": video, "--flow": None})


def test_two_outputs_that_are_one_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"same file as output .*write one file twice"):
        check_outputs({"output": tmp_path / "n.mp4", "--preview": tmp_path / "n.mp4"})

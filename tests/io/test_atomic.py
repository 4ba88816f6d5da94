from __future__ import annotations

import os
from pathlib import Path

import pytest

from warpnoise.io.atomic import atomic_output


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

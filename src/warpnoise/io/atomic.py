"""Atomic output: write to a temporary file beside the target, rename when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output", "check_writable"]


def check_writable(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if its folder exists and it is not a folder itself.

    Raises:
        ValueError: the folder is missing or the path names a folder.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"output {str(p)!r} is a folder, expected a file name")
    if not p.parent.exists():
        raise ValueError(f"output folder {str(p.parent)!r} does not exist")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    The rename is ``os.replace`` on the same file system, so a reader sees either the old file or
    the complete new one, never a half-written file. On any exception the temporary file is
    removed and the exception propagates.
    """
    target = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}",
                              dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 (and writers may recreate the file): give the output the
        # permissions a plain open() would.
        tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise

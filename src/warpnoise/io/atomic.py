"""Atomic output: write to a temporary file beside the target, rename when complete.

The temporary file of target ``DIR/NAME.EXT`` is ``DIR/.NAME.EXT.<8 random>.part.EXT``
(``tempfile.mkstemp``'s names). Its writer holds an OS lock on it until the rename, so a file
of that pattern that nobody holds belongs to a writer that was killed (SIGKILL, power loss):
the next write of the same target removes it. Nothing else is ever removed.

Every command checks its outputs before any work with :func:`check_outputs`: each output can be
written (proven by creating and removing a file in its folder, which also catches ``/proc`` and
``/sys``, where permission bits say yes), and none is the same file as an input or as another
output (same path, a symlink to it, or a hard link: same device and inode).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output", "check_output_folder", "check_outputs", "check_writable",
           "temp_name_pattern"]

PathLike = str | os.PathLike

try:
    import fcntl
except ImportError:  # no POSIX locks (Windows): nothing tells a live writer from a dead one
    fcntl = None  # type: ignore[assignment]


def _check_folder_writable(folder: Path, what: str) -> None:
    # os.access also reports read-only file systems; root passes it everywhere else.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {what}: no write permission in folder {str(folder)!r}")
    # Root passes os.access on /proc and /sys too: only creating a file proves it.
    try:
        fd, probe = tempfile.mkstemp(prefix=".warpnoise-probe.", dir=folder)
    except OSError as e:
        raise ValueError(f"cannot write {what}: {e.strerror or type(e).__name__} in folder "
                         f"{str(folder)!r}") from None
    os.close(fd)
    os.unlink(probe)


def check_writable(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if a file can be written there.

    Raises:
        ValueError: the path names a folder, its folder is missing, is not a folder, or is not
            writable. The message names the path.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"output {str(p)!r} is a folder, expected a file name")
    if not p.parent.exists():
        raise ValueError(f"output folder {str(p.parent)!r} does not exist")
    if not p.parent.is_dir():
        raise ValueError(f"cannot write output {str(p)!r}: {str(p.parent)!r} is not a folder")
    _check_folder_writable(p.parent, f"output {str(p)!r}")
    return p


def check_output_folder(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path if it is, or can be created as, a writable folder.

    Creates nothing: checks the folder itself if it exists, else its nearest existing ancestor.

    Raises:
        ValueError: ``path`` is a file, an ancestor is a file, or the folder is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"output folder {str(p)!r} is a file")
    existing = next(a for a in (p, *p.absolute().parents) if a.exists())
    if not existing.is_dir():
        raise ValueError(f"cannot create output folder {str(p)!r}: {str(existing)!r} is a file")
    _check_folder_writable(existing, f"output folder {str(p)!r}")
    return p


def _identity(path: Path) -> tuple[str, tuple[int, int] | None]:
    """The resolved path (symlinks followed) and, for an existing file, its (device, inode)."""
    try:
        st = path.stat()
        inode = (st.st_dev, st.st_ino)
    except OSError:
        inode = None
    return os.path.realpath(path), inode


def check_outputs(outputs: dict[str, PathLike | None],
                  inputs: dict[str, PathLike | None] | None = None, *,
                  writable: bool = True) -> None:
    """Check, before any work, that every output can be written and overwrites no input.

    Args:
        outputs: ``{what: path}`` of the files a command will write, ``what`` naming it in
            messages (``"output"``, ``"--preview"``); None entries are skipped.
        inputs: ``{what: path}`` of the files it reads (a video, a flow file, weights); None
            entries, and names that are not files (a method name), are skipped.
        writable: also prove each output writable (:func:`check_writable`); False for outputs
            whose folders are made later (the caller checks the root with
            :func:`check_output_folder`).

    Raises:
        ValueError: an output is not writable (see :func:`check_writable`), or resolves to an
            input or to another output: the same path, a symlink to it, or a hard link (same
            device and inode). The message names both.
    """
    seen: list[tuple[str, Path, tuple[str, tuple[int, int] | None]]] = []
    for what, path in (inputs or {}).items():
        if path is not None:
            seen.append((what, Path(path), _identity(Path(path))))
    n_inputs = len(seen)
    for what, path in outputs.items():
        if path is None:
            continue
        p = check_writable(path) if writable else Path(path)
        real, inode = _identity(p)
        for i, (other, q, (q_real, q_inode)) in enumerate(seen):
            if real == q_real or (inode is not None and inode == q_inode):
                harm = "overwrite an input" if i < n_inputs else "write one file twice"
                raise ValueError(f"{what} {str(p)!r} is the same file as {other} {str(q)!r}: "
                                 f"that would {harm}; choose another output name")
        seen.append((what, p, (real, inode)))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_name_pattern(target: str | os.PathLike) -> re.Pattern[str]:
    """The names :func:`atomic_output` gives the temporary files of ``target`` (and only those:
    the target's name and suffix, and ``mkstemp``'s 8 characters from ``[a-z0-9_]``)."""
    t = Path(target)
    return re.compile(rf"\.{re.escape(t.name)}\.[a-z0-9_]{{8}}\.part{re.escape(t.suffix)}")


def _new_locked_temp(target: Path) -> tuple[int, Path]:
    """Create the temporary file and lock it; retry if a concurrent cleaner removed it between
    creation and lock (it holds no lock then, so it looked dead)."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".part{target.suffix}",
                                   dir=target.parent)
        if fcntl is None:
            return fd, Path(tmp)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # no locks on this file system: no cleaner can lock it either
            return fd, Path(tmp)
        if os.fstat(fd).st_nlink > 0:
            return fd, Path(tmp)
        os.close(fd)


def _remove_dead_temps(target: Path, own: Path) -> None:
    """Remove temporary files of ``target`` left by killed writers: those matching
    :func:`temp_name_pattern` whose lock nobody holds."""
    if fcntl is None:
        return
    pattern = temp_name_pattern(target)
    with os.scandir(target.parent) as entries:
        stale = [e.path for e in entries if e.name != own.name and pattern.fullmatch(e.name)
                 and e.is_file(follow_symlinks=False)]
    for path in stale:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue  # gone already, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer lives
            with contextlib.suppress(OSError):
                os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    The rename is ``os.replace`` on the same file system, so a reader sees either the old file or
    the complete new one, never a half-written file. On any exception the temporary file is
    removed and the exception propagates. Temporary files of the same target left by a killed
    writer are removed (see the module docstring).
    """
    target = check_writable(path)
    fd, tmp_path = _new_locked_temp(target)  # the lock lives as long as fd is open
    try:
        _remove_dead_temps(target, tmp_path)
        yield tmp_path
        # mkstemp creates 0600 (and writers may recreate the file): give the output the
        # permissions a plain open() would.
        tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)

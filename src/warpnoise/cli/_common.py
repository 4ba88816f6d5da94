"""What every ``warpnoise`` command shares: error handling, exit codes, progress bars.

Exit codes: 0 ok; 2 bad usage or input (one line on stderr, no traceback); 1 internal error (one
line; the traceback too when ``WARPNOISE_DEBUG=1``); 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM): outputs written with :func:`warpnoise.io.atomic_output` are cleaned up, no half file
is left.

Use in a command module::

    from ._common import handle_errors, progress_bar

    @app.command()
    @handle_errors
    def mycmd(...) -> None:
        with progress_bar(quiet) as progress:   # progress(stage, done, total)
            library_call(..., progress=progress)
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import typer

from .._interrupt import Terminated, interrupt_in_chain

__all__ = [
    "DEBUG_ENV",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "fail",
    "handle_errors",
    "progress_bar",
]

DEBUG_ENV = "WARPNOISE_DEBUG"
EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
#: File-system errors the user fixes (a path, a permission, a full disk), not bugs: exit 2.
_USER_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
                   FileExistsError)
_USER_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG}

F = TypeVar("F", bound=Callable[..., Any])


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``warpnoise: error: <message>`` on stderr and exit with ``code``."""
    typer.echo(f"warpnoise: error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def _os_error_line(e: OSError) -> str:
    """``<reason>: <path>`` (the path the OS named), e.g. ``Permission denied: 'out/n.npy'``."""
    if e.filename is None:
        return _one_line(e)
    paths = repr(str(e.filename)) + ("" if e.filename2 is None else f" -> {str(e.filename2)!r}")
    return f"{e.strerror or type(e).__name__}: {paths}"


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise Terminated


def _interrupted(e: KeyboardInterrupt) -> NoReturn:
    if isinstance(e, Terminated):
        fail("terminated (SIGTERM); no output was left half-written", EXIT_TERMINATED)
    fail("interrupted; no output was left half-written", EXIT_INTERRUPTED)


def handle_errors(fn: F) -> F:
    """Decorate a command: map exceptions to exit codes and one-line messages.

    ValueError, and OS errors about a path (missing, not a folder, permission denied, read-only
    or full file system) -> exit 2; KeyboardInterrupt -> exit 130 and SIGTERM -> exit 143 after
    cleanup, also when compiled code wrapped the interrupt in a ``SystemError`` (see
    :mod:`warpnoise._interrupt`); anything else -> exit 1 (traceback only with
    ``WARPNOISE_DEBUG=1``). ``typer.Exit`` and ``SystemExit`` pass through.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # SIGTERM becomes KeyboardInterrupt so `finally`/atomic writers clean up their temp files.
        previous = None
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            previous = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt as e:
            _interrupted(e)
        except Exception as e:
            if os.environ.get(DEBUG_ENV):
                traceback.print_exc()
            interrupt = interrupt_in_chain(e)
            if interrupt is not None:
                _interrupted(interrupt)
            if isinstance(e, ValueError):
                fail(_one_line(e), EXIT_USAGE)
            if isinstance(e, OSError) and (isinstance(e, _USER_OS_ERRORS)
                                           or e.errno in _USER_ERRNOS):
                fail(_os_error_line(e), EXIT_USAGE)
            fail(f"internal error: {type(e).__name__}: {_one_line(e)} "
                 f"(set {DEBUG_ENV}=1 for the traceback)", EXIT_INTERNAL)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


_STAGE_LABELS = {"decode": "decoding", "flow": "optical flow", "noise": "flow + warp"}


@contextlib.contextmanager
def progress_bar(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """Yield a ``progress(stage, done, total)`` callback drawing Rich bars on stderr.

    One bar per stage (created on its first call; ``total == 0`` means unknown), each with the
    count, the rate in frames/s, elapsed and remaining time. ``quiet`` yields a no-op.
    """
    if quiet:
        yield lambda stage, done, total: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("  -- frames/s" if speed is None else f"{speed:6.1f} frames/s")

    bars = Progress(TextColumn("{task.description:<13}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=False)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(_STAGE_LABELS.get(stage, stage), total=total or None)
        bars.update(tasks[stage], completed=done, total=total or None)

    with bars:
        yield update
    sys.stderr.flush()

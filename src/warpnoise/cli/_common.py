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
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import typer

from .._interrupt import (
    Terminated,
    as_interrupt,
    interrupt_in_chain,
    last_signal,
    signals_as_interrupts,
)
from . import INTERRUPTED, TERMINATED

__all__ = [
    "DEBUG_ENV",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "fail",
    "handle_errors",
    "progress_bar",
    "run_cli",
]

DEBUG_ENV = "WARPNOISE_DEBUG"
EXIT_USAGE = 2
EXIT_INTERNAL = 1
_, EXIT_INTERRUPTED = INTERRUPTED  # 128 + SIGINT
_, EXIT_TERMINATED = TERMINATED  # 128 + SIGTERM
#: File-system errors the user fixes (a path, a permission, a full disk), not bugs: exit 2.
_USER_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
                   FileExistsError)
_USER_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG}

F = TypeVar("F", bound=Callable[..., Any])
_reported: list[str] = []  # the lines fail() printed: an exit code with its message


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``warpnoise: error: <message>`` on stderr and exit with ``code``."""
    line = f"warpnoise: error: {' '.join(message.split())}"
    _reported.append(line)
    typer.echo(line, err=True)
    raise typer.Exit(code)


def _is_allocation_failure(e: BaseException) -> bool:
    """MemoryError, or torch's allocator refusing a size (CPU or CUDA): the input's size, which
    the user chose, not a bug."""
    if isinstance(e, MemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("DefaultCPUAllocator: not enough memory" in text
                                            or "out of memory" in text.lower())


def _os_error_line(e: OSError) -> str:
    """``<reason>: <path>`` (the path the OS named), e.g. ``Permission denied: 'out/n.npy'``."""
    if e.filename is None:
        return _one_line(e)
    paths = repr(str(e.filename)) + ("" if e.filename2 is None else f" -> {str(e.filename2)!r}")
    return f"{e.strerror or type(e).__name__}: {paths}"


def _interrupted(e: KeyboardInterrupt) -> NoReturn:
    fail(*(TERMINATED if isinstance(e, Terminated) else INTERRUPTED))


def _exit_code(fn: Callable[..., Any], *args: Any) -> int:
    """Run ``fn(*args)``; return 0, or the exit code of the ``typer.Exit`` that :func:`fail`
    raised."""
    try:
        fn(*args)
    except typer.Exit as e:
        return e.exit_code
    return 0


def run_cli(load: Callable[[], typer.Typer]) -> int:
    """Load the commands with ``load`` and run the one on the command line; return the exit code.

    What no command's :func:`handle_errors` sees becomes one line too: an interrupt while the
    commands load (importing torch takes seconds) or while arguments are parsed (Typer would exit
    130 silently, also for SIGTERM), and a parse error (Click would print a usage box).
    """
    # Click's exceptions, wherever this Typer keeps them (it vendors Click since 0.22).
    click = sys.modules[typer.BadParameter.__module__]
    try:
        app = load()
    except Exception as e:
        # An import cut short by a signal can surface as another error (numpy's "cannot load
        # module more than once"): a signal received while loading explains it.
        interrupt = interrupt_in_chain(e)
        if interrupt is None and last_signal() is None:
            raise
        return _exit_code(_interrupted, interrupt or as_interrupt(last_signal()))
    except KeyboardInterrupt as e:
        return _exit_code(_interrupted, e)
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt as e:
        return _exit_code(_interrupted, e)
    except click.ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # `warpnoise` alone: the help, as before
            e.show()
            return e.exit_code
        command = e.ctx.command_path if getattr(e, "ctx", None) is not None else "warpnoise"
        hint = f" (see '{command} --help')" if isinstance(e, click.UsageError) else ""
        return _exit_code(fail, e.format_message() + hint, e.exit_code)
    except (getattr(click, "Abort", typer.Abort), typer.Abort):
        return _exit_code(fail, "aborted", EXIT_INTERNAL)
    code = code if isinstance(code, int) else 0
    if code == EXIT_INTERRUPTED and not _reported:  # Typer swallowed an interrupt into exit 130
        return _exit_code(_interrupted, as_interrupt(last_signal()))
    return code


def handle_errors(fn: F) -> F:
    """Decorate a command: map exceptions to exit codes and one-line messages.

    ValueError, OS errors about a path (missing, not a folder, permission denied, read-only
    or full file system) and allocation failures (a size too large for the memory) -> exit 2;
    KeyboardInterrupt -> exit 130 and SIGTERM -> exit 143 after cleanup, also when compiled
    code wrapped the interrupt in a ``SystemError`` (see :mod:`warpnoise._interrupt`); anything
    else -> exit 1 (traceback only with ``WARPNOISE_DEBUG=1``). ``typer.Exit`` and
    ``SystemExit`` pass through.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # SIGTERM becomes KeyboardInterrupt so `finally`/atomic writers clean up their temp files.
        try:
            with signals_as_interrupts():
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
            if _is_allocation_failure(e):
                fail(f"not enough memory for this size ({_one_line(e)}); try a smaller --size "
                     "or --frames", EXIT_USAGE)
            if isinstance(e, OSError) and (isinstance(e, _USER_OS_ERRORS)
                                           or e.errno in _USER_ERRNOS):
                fail(_os_error_line(e), EXIT_USAGE)
            fail(f"internal error: {type(e).__name__}: {_one_line(e)} "
                 f"(set {DEBUG_ENV}=1 for the traceback)", EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


_STAGE_LABELS = {"decode": "decoding", "flow": "optical flow", "noise": "flow + warp"}


@contextlib.contextmanager
def progress_bar(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """Yield a ``progress(stage, done, total)`` callback drawing Rich bars on stderr.

    One bar per stage (created on its first call; ``total == 0`` means unknown), each with the
    count, the rate in frames/s, elapsed and remaining time; nothing is drawn before the first
    call. ``quiet`` yields a no-op.
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
        if not tasks:
            bars.start()
        if stage not in tasks:
            tasks[stage] = bars.add_task(_STAGE_LABELS.get(stage, stage), total=total or None)
        bars.update(tasks[stage], completed=done, total=total or None)

    # Started on the first update: an error found before any work prints its one line alone
    # (a started, empty display leaves a blank line on stderr).
    try:
        yield update
    finally:
        if tasks:
            bars.stop()
        sys.stderr.flush()

"""The ``warpnoise`` command line. Thin: it parses, calls the library, reports.

Each group of commands lives in its own module of this package and registers itself on ``app``;
the modules are imported in :data:`COMMAND_MODULES` order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    app: typer.Typer

COMMAND_MODULES: list[str] = ["io_commands", "edit", "batch", "motion", "studio", "system"]

#: The message and exit code of an interrupt (Ctrl-C) and of SIGTERM (128 + the signal).
INTERRUPTED = ("interrupted; no output was left half-written", 130)
TERMINATED = ("terminated (SIGTERM); no output was left half-written", 143)


def __getattr__(name: str) -> Any:
    # `app` is made on first use, so that `main` installs its signal handlers before any import.
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import typer

    value = typer.Typer(
        name="warpnoise",
        help="Gaussian noise that moves with a video: coherent over time, i.i.d. N(0,1) per "
        "frame.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    globals()["app"] = value
    return value


def load_commands() -> typer.Typer:
    """Import every module of :data:`COMMAND_MODULES` (registering its commands) and return
    ``app``; tests call this before ``typer.testing.CliRunner().invoke(app, ...)``."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return __getattr__("app") if "app" not in globals() else globals()["app"]


def _exit_at_once(signum: int) -> None:
    """The one line and exit code of a signal that landed where raising is not safe (an import,
    which writes nothing)."""
    import os
    import signal

    message, code = TERMINATED if signum == signal.SIGTERM else INTERRUPTED
    os.write(2, f"warpnoise: error: {message}\n".encode())
    os._exit(code)


def main() -> None:
    """The ``warpnoise`` console script. Ctrl-C and SIGTERM exit 130 / 143 with one line from
    its first statement on (see :func:`warpnoise.cli._common.run_cli`)."""
    import sys

    from .._interrupt import signals_as_interrupts

    with signals_as_interrupts(exit_now=_exit_at_once):
        try:
            from ._common import run_cli

            code = run_cli(load_commands)
        except KeyboardInterrupt as e:  # in the instant before run_cli took over
            message, code = TERMINATED if type(e).__name__ == "Terminated" else INTERRUPTED
            print(f"warpnoise: error: {message}", file=sys.stderr)
    sys.exit(code)

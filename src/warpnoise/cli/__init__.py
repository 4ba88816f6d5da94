"""The ``warpnoise`` command line. Thin: it parses, calls the library, reports.

Each group of commands lives in its own module of this package and registers itself on ``app``;
the modules are imported in :data:`COMMAND_MODULES` order.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="warpnoise",
    help="Gaussian noise that moves with a video: coherent over time, i.i.d. N(0,1) per frame.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES: list[str] = ["io_commands", "edit", "batch", "motion", "studio"]


def load_commands() -> typer.Typer:
    """Import every module of :data:`COMMAND_MODULES` (registering its commands) and return
    ``app``; tests call this before ``typer.testing.CliRunner().invoke(app, ...)``."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return app


def main() -> None:
    load_commands()
    app()

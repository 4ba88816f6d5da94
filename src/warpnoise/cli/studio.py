"""``warpnoise studio``: the motion editor in the browser. Thin: check, print, serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import app
from ._common import handle_errors


@app.command("studio")
@handle_errors
def studio_command(
    image: Annotated[Path | None, typer.Argument(
        help="An image or a video (its first frame) to open; or load one in the page.",
        metavar="IMAGE_OR_VIDEO",
        show_default=False)] = None,
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: a free one).")] = 0,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. Anything but 127.0.0.1 lets other machines use "
        "the studio (and read what it writes).")] = "127.0.0.1",
    no_browser: Annotated[bool, typer.Option(
        "--no-browser", help="Do not open the page in a browser; just print its address.")
    ] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Keep finished generations in this folder (default: a temporary "
        "folder removed on exit).", show_default=False)] = None,
    max_upload: Annotated[int, typer.Option(
        "--max-upload", help="Largest upload accepted, in MB.")] = 200,
) -> None:
    """Draw and drag motion in the browser: a local web app that previews the animation and
    its warped noise, saves the motion file `warpnoise motion` reads and generates the noise.

    Listens on 127.0.0.1 (this machine only) at a free port, prints the address and opens it.
    Ctrl-C stops it; unfinished outputs are removed.
    """
    try:
        from ..studio.serve import LOCAL_HOSTS, serve
    except ImportError as e:
        raise ValueError(f"the studio needs its extra ({e.name} is missing): pip install "
                         "'warpnoise[studio]'") from None

    if not 0 <= port <= 65535:
        raise ValueError(f"--port must be 0 to 65535, got {port}")
    if max_upload < 1:
        raise ValueError(f"--max-upload must be at least 1 MB, got {max_upload}")
    if output is not None and output.exists() and not output.is_dir():
        raise ValueError(f"output folder {str(output)!r} is a file")
    if host not in LOCAL_HOSTS:
        typer.echo(f"warpnoise: warning: listening on {host}: other machines can reach the "
                   "studio, upload files and download what it writes; it has no login",
                   err=True)
    serve(image, host=host, port=port, open_browser=not no_browser, output=output,
          max_upload=max_upload * 2**20, echo=typer.echo)

"""Run the studio: bind, print the address, open the browser, serve until Ctrl-C."""

from __future__ import annotations

import os
import socket
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path

from .server import DEFAULT_MAX_UPLOAD, Session, create_app

__all__ = ["LOCAL_HOSTS", "bind", "serve"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port the OS picks).

    Raises:
        ValueError: the address is taken or cannot be bound (one line).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(64)
    return sock


def serve(image: str | os.PathLike | None = None, *, host: str = "127.0.0.1", port: int = 0,
          open_browser: bool = True, output: str | os.PathLike | None = None,
          max_upload: int = DEFAULT_MAX_UPLOAD, echo: Callable[[str], None] = print) -> None:
    """Serve the studio until interrupted.

    ``image`` (an image or video) is loaded in the page from the start. Outputs go to a
    temporary folder removed on exit, or under ``output`` (finished generations stay there).
    Ctrl-C stops generations, removes unfinished outputs and re-raises KeyboardInterrupt.

    Raises:
        ValueError: an unreadable ``image`` or an address that cannot be bound, before anything
            is served.
    """
    import uvicorn

    from .. import motion as mo

    if image is not None:
        mo.first_frame(image)  # a missing or unreadable file fails before the server starts
    sock = bind(host, port)
    session = Session(output, max_upload=max_upload)
    try:
        if image is not None:
            session.initial = session.add_image(Path(image).resolve(), Path(image).name)["id"]
        actual = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{actual}/"
        hosts = ["127.0.0.1", "localhost", "::1", "[::1]"] if host in LOCAL_HOSTS else None
        config = uvicorn.Config(create_app(session, hosts), log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        echo(f"warpnoise studio: {url}  (Ctrl-C to stop)")
        echo(f"outputs in {session.root}" + (" (removed on exit)" if session.temporary else ""))
        if open_browser:
            threading.Timer(0.5, webbrowser.open, args=(url,)).start()
        server.run(sockets=[sock])
    finally:
        sock.close()
        session.close()

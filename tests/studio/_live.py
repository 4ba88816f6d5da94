"""A studio server on a free local port, run by uvicorn in a thread, for tests that need real
HTTP (raw request paths, the browser)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from warpnoise.studio import Session, create_app
from warpnoise.studio.serve import bind


@contextlib.contextmanager
def running(session: Session) -> Iterator[str]:
    """Serve ``session`` until the block ends; yields the base URL (``http://127.0.0.1:PORT``)."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(session), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the studio server did not start")
        time.sleep(0.05)
    assert httpx.get(url + "/api/config").status_code == 200
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        session.close()

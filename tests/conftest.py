"""Fixtures shared across the test tree."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def live_ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler for the test. A shell starts background jobs (``make test
    &``) with SIGINT ignored, and then a test of what Ctrl-C does would see nothing happen."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

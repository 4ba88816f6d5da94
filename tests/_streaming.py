"""Counting decoded frames that are alive at once, to check that a command streams its clip.

Every frame a :class:`warpnoise.io.video.FrameSource` yields gets a finaliser; with the cyclic
garbage collector off, a frame dies exactly when its last reference is dropped, so the most
frames alive at once is what the code under test holds. Decoding the whole clip first (or
keeping every frame in a list) makes it the clip's length.
"""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Iterator

import pytest

from warpnoise.io.video import FrameSource


class LiveFrames:
    """``most``: the most decoded frames alive at once; ``decoded``: frames decoded in all."""

    def __init__(self) -> None:
        self.alive: set[int] = set()
        self.most = 0
        self.decoded = 0


@contextlib.contextmanager
def live_frames(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveFrames]:
    """Count the decoded frames alive at once while the ``with`` body runs (gc disabled)."""
    record = LiveFrames()
    real_iter = FrameSource.__iter__

    def counted(self: FrameSource) -> Iterator:
        for frame in real_iter(self):
            n = record.decoded
            record.decoded += 1
            record.alive.add(n)
            weakref.finalize(frame, record.alive.discard, n)
            record.most = max(record.most, len(record.alive))
            yield frame
            del frame

    monkeypatch.setattr(FrameSource, "__iter__", counted)
    gc.disable()  # frames must be freed by reference counting, as they are used
    try:
        yield record
    finally:
        gc.enable()
        monkeypatch.setattr(FrameSource, "__iter__", real_iter)
